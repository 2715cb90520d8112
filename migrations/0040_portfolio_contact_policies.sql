-- A portfolio's own contact policy (docs/features/compliance.md, "A portfolio's policy"):
-- a creditor client may contract stricter hours or fewer calls than the agency's
-- policy (`contact_policy`). Each column a portfolio sets replaces the agency's; a NULL
-- one follows it, now and after the agency's changes. A portfolio with no row follows
-- the agency's policy entirely.
CREATE TABLE portfolio_contact_policies (
    portfolio_id          uuid PRIMARY KEY REFERENCES portfolios (id),
    window_start          time,
    window_end            time,
    window_channels       text[] CHECK (window_channels <@ '{call,sms,email,letter,visit}'),
    call_attempt_limit    integer CHECK (call_attempt_limit BETWEEN 1 AND 1000),
    call_attempt_days     integer CHECK (call_attempt_days BETWEEN 1 AND 366),
    conversation_days     integer CHECK (conversation_days BETWEEN 0 AND 366),
    conversation_outcomes text[],
    override_minutes      integer CHECK (override_minutes BETWEEN 1 AND 1440),
    updated_by            uuid REFERENCES users (id),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Every policy in force: the agency's (portfolio_id NULL) and each portfolio's with the
-- columns it leaves NULL taken from the agency's. The guard, the index's contact inputs
-- and the queue read policies only through this view.
CREATE VIEW contact_policies AS
    SELECT NULL::uuid AS portfolio_id, window_start, window_end, window_channels, call_attempt_limit,
           call_attempt_days, conversation_days, conversation_outcomes, override_minutes
    FROM contact_policy
    UNION ALL
    SELECT p.portfolio_id, coalesce(p.window_start, d.window_start), coalesce(p.window_end, d.window_end),
           coalesce(p.window_channels, d.window_channels), coalesce(p.call_attempt_limit, d.call_attempt_limit),
           coalesce(p.call_attempt_days, d.call_attempt_days), coalesce(p.conversation_days, d.conversation_days),
           coalesce(p.conversation_outcomes, d.conversation_outcomes), coalesce(p.override_minutes, d.override_minutes)
    FROM portfolio_contact_policies p CROSS JOIN contact_policy d;

CREATE TRIGGER portfolio_contact_policies_audit_insert AFTER INSERT ON portfolio_contact_policies
    FOR EACH ROW EXECUTE FUNCTION audit_changes('portfolio_contact_policy', '', 'updated_by',
        '{updated_at,updated_by}', '{}', 'portfolio_id');
SELECT audit_watch_updates('portfolio_contact_policies', 'portfolio_contact_policy', '',
    '{updated_at,updated_by}', '{}', 'portfolio_id');
CREATE TRIGGER portfolio_contact_policies_audit_delete AFTER DELETE ON portfolio_contact_policies
    FOR EACH ROW EXECUTE FUNCTION audit_changes('portfolio_contact_policy', '', '', '{}', '{}', 'portfolio_id');

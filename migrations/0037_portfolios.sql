-- Portfolios (docs/features/portfolios.md): the accounts one creditor client placed with
-- the agency, worked under that placement's terms, and who is granted to work them (one
-- user, or every member of a team). Names are unique among live portfolios; a deleted
-- portfolio keeps its row (accounts and the audit trail still name it).

CREATE TABLE portfolios (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    client          text CHECK (length(client) BETWEEN 1 AND 200),
    placement_date  date,
    -- The agency's share of what it collects, in percent.
    commission_rate numeric(7, 4) CHECK (commission_rate BETWEEN 0 AND 100),
    created_by      uuid REFERENCES users (id),
    updated_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX portfolios_live_name ON portfolios (lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX portfolios_name ON portfolios ((lower(name)) COLLATE "C", id);

CREATE TABLE portfolio_grants (
    id           uuid PRIMARY KEY,
    portfolio_id uuid NOT NULL REFERENCES portfolios (id),
    user_id      uuid REFERENCES users (id) ON DELETE CASCADE,
    team         text CHECK (length(team) BETWEEN 1 AND 100),
    granted_by   uuid REFERENCES users (id),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (team IS NULL))
);
CREATE UNIQUE INDEX portfolio_grants_user ON portfolio_grants (portfolio_id, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX portfolio_grants_team ON portfolio_grants (portfolio_id, team) WHERE team IS NOT NULL;
CREATE INDEX portfolio_grants_of_user ON portfolio_grants (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX portfolio_grants_of_team ON portfolio_grants (team) WHERE team IS NOT NULL;

CREATE TRIGGER portfolios_audit_insert AFTER INSERT ON portfolios
    FOR EACH ROW EXECUTE FUNCTION audit_changes('portfolio', '', 'created_by',
        '{created_at,created_by,updated_at,updated_by}', '{}');
SELECT audit_watch_updates('portfolios', 'portfolio', '', '{created_at,created_by,updated_at,updated_by}', '{}');

CREATE TRIGGER portfolio_grants_audit_insert AFTER INSERT ON portfolio_grants
    FOR EACH ROW EXECUTE FUNCTION audit_changes('portfolio_grant', '', 'granted_by', '{granted_at,granted_by}', '{}');
CREATE TRIGGER portfolio_grants_audit_delete AFTER DELETE ON portfolio_grants
    FOR EACH ROW EXECUTE FUNCTION audit_changes('portfolio_grant', '', '', '{}', '{}');

-- A custom field may belong to one portfolio (0036 left the column without a key).
ALTER TABLE field_definitions ADD CONSTRAINT field_definitions_portfolio_fkey
    FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);

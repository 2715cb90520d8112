-- Overdue is an event (docs/features/accounts.md#overdue): an active account whose due
-- date has passed unpaid, in the debtor's time zone, by more than its portfolio's
-- `delinquent_after_days` (or OVERDUE_AFTER_DAYS) becomes delinquent, and its agent is
-- told. The scheduler finds them through the index below.

ALTER TABLE portfolios
    ADD COLUMN delinquent_after_days integer CHECK (delinquent_after_days BETWEEN 0 AND 365);

CREATE INDEX accounts_active_by_due_date ON accounts (due_date)
    WHERE status = 'active' AND due_date IS NOT NULL AND deleted_at IS NULL;

-- The portfolio's update trigger watches the new column too.
SELECT audit_watch_updates('portfolios', 'portfolio', '', '{created_at,created_by,updated_at,updated_by}', '{}');

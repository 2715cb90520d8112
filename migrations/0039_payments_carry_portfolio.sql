-- Payment documents carry their account's portfolio, so payment lists and exports are
-- limited to the portfolios a user sees (docs/features/portfolios.md): moving an account
-- to another portfolio re-versions its payments, as a new name or agent does.
DROP TRIGGER accounts_payments_outbox ON accounts;

CREATE TRIGGER accounts_payments_outbox
    AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (OLD.debtor_name IS DISTINCT FROM NEW.debtor_name
          OR OLD.account_number IS DISTINCT FROM NEW.account_number
          OR OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id
          OR OLD.currency IS DISTINCT FROM NEW.currency
          OR OLD.portfolio_id IS DISTINCT FROM NEW.portfolio_id
          OR (OLD.deleted_at IS NULL) IS DISTINCT FROM (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION reversion_payments_of_account();

-- Payments of accounts placed in a portfolio before this migration get documents with it.
UPDATE payments SET search_version = 0
WHERE account_id IN (SELECT id FROM accounts WHERE portfolio_id IS NOT NULL);

-- Payment documents carry whether their account is deleted (hidden like the account):
-- deleting or restoring an account re-versions its payments, as a new name does.
DROP TRIGGER accounts_payments_outbox ON accounts;

CREATE TRIGGER accounts_payments_outbox
    AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (OLD.debtor_name IS DISTINCT FROM NEW.debtor_name
          OR OLD.account_number IS DISTINCT FROM NEW.account_number
          OR OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id
          OR OLD.currency IS DISTINCT FROM NEW.currency
          OR (OLD.deleted_at IS NULL) IS DISTINCT FROM (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION reversion_payments_of_account();

-- Payments of accounts deleted before this migration get documents with the flag.
UPDATE payments SET search_version = 0
WHERE account_id IN (SELECT id FROM accounts WHERE deleted_at IS NOT NULL);

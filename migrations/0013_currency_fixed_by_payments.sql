-- An account's currency is the currency of its payments: once it has one, the currency
-- cannot change (from the API, a bulk update or an import alike).
CREATE FUNCTION accounts_currency_fixed_by_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency IS DISTINCT FROM OLD.currency
       AND EXISTS (SELECT 1 FROM payments WHERE account_id = NEW.id) THEN
        RAISE EXCEPTION 'account % has payments in %', NEW.id, OLD.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_currency_fixed_by_payments';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_currency_fixed_by_payments
    BEFORE UPDATE OF currency ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_currency_fixed_by_payments();

-- An open promise to pay or an active payment plan is an amount in the account's
-- currency, as a payment is: changing the currency under one restated it (12.34 USD
-- promised became "12 JPY"). The rule of 0013 now refuses that too, whatever the path.
CREATE OR REPLACE FUNCTION accounts_currency_fixed_by_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency IS DISTINCT FROM OLD.currency THEN
        IF EXISTS (SELECT 1 FROM payments WHERE account_id = NEW.id) THEN
            RAISE EXCEPTION 'account % has payments in %', NEW.id, OLD.currency
                USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_currency_fixed_by_payments';
        END IF;
        IF EXISTS (SELECT 1 FROM promises WHERE account_id = NEW.id AND status = 'open')
           OR EXISTS (SELECT 1 FROM plans WHERE account_id = NEW.id AND status = 'active') THEN
            RAISE EXCEPTION 'account % has an open promise or plan in %', NEW.id, OLD.currency
                USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_currency_fixed_by_open_promises';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

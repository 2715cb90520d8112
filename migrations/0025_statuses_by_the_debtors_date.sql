-- An account leaving `promise_to_pay` (its promise kept) or `paid` (money given back)
-- became `delinquent` when its due date was before the *database's* date
-- (`current_date`, the server's time zone), while everything else (a plan ending, a
-- promise cancelled or broken, the queue, the list filters) judges by the date in the
-- debtor's zone. A debtor in Kiritimati (UTC+14) whose due date was yesterday there
-- read as `active` until UTC's midnight. Both now judge by the debtor's date, as
-- `status_after_plan` (0017) does.

CREATE OR REPLACE FUNCTION settle_promises(account uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    kept integer;
BEGIN
    UPDATE promises p SET status = 'kept', resolved_at = now()
    WHERE p.account_id = account AND p.status = 'open'
      AND (SELECT coalesce(sum(amount), 0) FROM payments
           WHERE account_id = account AND status = 'completed' AND received_at >= p.created_at) >= p.amount;
    GET DIAGNOSTICS kept = ROW_COUNT;
    IF kept > 0 THEN
        UPDATE accounts a SET status = CASE WHEN a.due_date < (now() AT TIME ZONE a.timezone)::date THEN 'delinquent' ELSE 'active' END
        WHERE a.id = account AND a.status = 'promise_to_pay';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION adjust_account_balance(account uuid, delta numeric) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF delta = 0 THEN
        PERFORM touch_account(account);
        RETURN;
    END IF;
    UPDATE accounts a SET
        current_balance = a.current_balance - delta,
        status = CASE
            WHEN delta > 0 AND a.current_balance - delta <= 0 THEN 'paid'
            WHEN delta < 0 AND a.status = 'paid' AND a.current_balance - delta > 0 THEN
                CASE WHEN a.due_date < (now() AT TIME ZONE a.timezone)::date THEN 'delinquent' ELSE 'active' END
            ELSE a.status END,
        updated_at = now()
    WHERE a.id = account;
    IF delta > 0 THEN
        PERFORM settle_promises(account);
    END IF;
END;
$$;

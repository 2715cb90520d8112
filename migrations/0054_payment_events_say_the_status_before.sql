-- A payment's `payment.updated` says the status it left (`previous_status`; null in a
-- `payment.created`), so `stats.updated` can carry how the statistics changed: a refund
-- takes a completed payment out of the money collected (docs/features/live-events.md).
CREATE OR REPLACE FUNCTION payment_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    PERFORM emit_event(CASE WHEN TG_OP = 'INSERT' THEN 'payment.created' ELSE 'payment.updated' END, NULL,
        ARRAY['payments', 'account:' || NEW.account_id],
        payment_json(NEW) || jsonb_build_object('previous_status', CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END));
    IF NEW.status = 'completed' THEN
        SELECT * INTO account FROM accounts WHERE id = NEW.account_id;
        PERFORM notify_user(account.assigned_agent_id, 'payment_received',
            'Payment received from ' || account.debtor_name,
            jsonb_build_object('payment_id', NEW.id, 'account_id', NEW.account_id, 'amount', NEW.amount::text,
                               'currency', NEW.currency, 'account_number', account.account_number),
            CASE WHEN TG_OP = 'INSERT' THEN NEW.created_by END);
    END IF;
    RETURN NULL;
END;
$$;

-- A completed payment wrote its `payment.created` event, the assigned agent's
-- notification and the notification's event through nested function calls, as three
-- statements, each event insert firing the event-queue trigger on its own. One
-- statement now writes all three rows; they, their order and their contents are as
-- before.
CREATE OR REPLACE FUNCTION payment_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
    event_kind text := CASE WHEN TG_OP = 'INSERT' THEN 'payment.created' ELSE 'payment.updated' END;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    -- Only a completed payment notifies the agent; otherwise `account` stays null.
    IF NEW.status = 'completed' THEN
        SELECT * INTO account FROM accounts WHERE id = NEW.account_id;
    END IF;
    WITH notified AS (
        INSERT INTO notifications (user_id, kind, title, data)
        SELECT account.assigned_agent_id, 'payment_received', 'Payment received from ' || account.debtor_name,
               jsonb_build_object('payment_id', NEW.id, 'account_id', NEW.account_id, 'amount', NEW.amount::text,
                                  'currency', NEW.currency, 'account_number', account.account_number)
        WHERE account.assigned_agent_id IS NOT NULL
        RETURNING *
    )
    INSERT INTO events (kind, user_id, topics, data)
    SELECT event_kind, NULL, ARRAY['payments', 'account:' || NEW.account_id], payment_json(NEW)
    UNION ALL
    SELECT 'notification.created', n.user_id, '{}',
           jsonb_build_object('id', n.id, 'kind', n.kind, 'title', n.title, 'data', n.data, 'read_at', NULL,
                              'created_at', n.created_at)
    FROM notified n;
    RETURN NULL;
END;
$$;

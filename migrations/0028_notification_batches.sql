-- Notifications come in batches and never for the reader's own action.
--
-- A bulk assignment of 102 accounts told their agent 102 times. Now `notify_user`
-- merges a notification into the unread one of the same kind for the same user made in
-- the same batch, and counts: the API shows "102 accounts assigned to you". A batch is
-- one transaction, or one job when its chunks set `arrears.batch` (imports and bulk
-- updates: a 20,000-row import assigned in four chunks is one notification). The live
-- event is `notification.created` once, and `notification.updated` once per later
-- transaction that adds to it (a job's next chunk), never one per row.
--
-- `actor` is who made the change: a user is not told of what they did themselves (the
-- agent who records a payment, a manager assigning an account to themself).

ALTER TABLE notifications
    ADD COLUMN batch text,
    ADD COLUMN count integer NOT NULL DEFAULT 1,
    -- The transaction whose live event last announced the notification.
    ADD COLUMN told_in xid8;
CREATE INDEX notifications_batch_idx ON notifications (user_id, kind, batch) WHERE read_at IS NULL;

CREATE FUNCTION notification_json(n notifications) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', n.id, 'kind', n.kind, 'title', n.title, 'data', n.data, 'count', n.count,
        'read_at', n.read_at, 'created_at', n.created_at);
$$;

DROP FUNCTION notify_user(uuid, text, text, jsonb);

CREATE FUNCTION notify_user(target uuid, note_kind text, note_title text, note_data jsonb, actor uuid DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(nullif(current_setting('arrears.batch', true), ''), pg_current_xact_id()::text);
    n notifications;
BEGIN
    IF target IS NULL OR target = actor THEN
        RETURN;
    END IF;
    UPDATE notifications SET count = count + 1
    WHERE user_id = target AND kind = note_kind AND batch = key AND read_at IS NULL
    RETURNING * INTO n;
    IF n.id IS NULL THEN
        INSERT INTO notifications (user_id, kind, title, data, batch, told_in)
        VALUES (target, note_kind, note_title, note_data, key, pg_current_xact_id())
        RETURNING * INTO n;
        PERFORM emit_event('notification.created', target, '{}', notification_json(n));
    ELSIF n.told_in IS DISTINCT FROM pg_current_xact_id() THEN
        UPDATE notifications SET told_in = pg_current_xact_id() WHERE id = n.id;
        PERFORM emit_event('notification.updated', target, '{}', notification_json(n));
    END IF;
END;
$$;

-- As in migration 0007, with the account's writer as the actor.
CREATE OR REPLACE FUNCTION account_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    importing boolean := TG_OP = 'INSERT' AND coalesce(current_setting('arrears.import', true), '') = 'on';
    actor uuid := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_by ELSE NEW.updated_by END;
    summary jsonb;
BEGIN
    IF importing AND NEW.assigned_agent_id IS NULL THEN
        RETURN NULL;
    END IF;
    summary := jsonb_build_object('id', NEW.id, 'account_number', NEW.account_number,
        'debtor_name', NEW.debtor_name, 'status', NEW.status, 'assigned_agent_id', NEW.assigned_agent_id);
    IF TG_OP = 'INSERT' AND NOT importing THEN
        PERFORM emit_event('account.created', NULL, ARRAY['accounts', 'account:' || NEW.id], summary);
    END IF;
    IF NEW.assigned_agent_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id) THEN
        PERFORM emit_event('account.assigned', NEW.assigned_agent_id, ARRAY['account:' || NEW.id], summary);
        PERFORM notify_user(NEW.assigned_agent_id, 'account_assigned',
            'Account ' || NEW.account_number || ' (' || NEW.debtor_name || ') assigned to you', summary, actor);
    END IF;
    RETURN NULL;
END;
$$;

-- As in migration 0011, through `notify_user` (which batches), with the payment's
-- recorder as the actor; a payment completed later (by the processor) tells the agent.
CREATE OR REPLACE FUNCTION payment_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    PERFORM emit_event(CASE WHEN TG_OP = 'INSERT' THEN 'payment.created' ELSE 'payment.updated' END, NULL,
        ARRAY['payments', 'account:' || NEW.account_id], payment_json(NEW));
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

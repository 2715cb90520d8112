-- Real-time events and the notification center.
--
-- Events are rows written by triggers in the transaction that made the change, so a
-- rolled-back write never emits one and every write path (API, import, psql) does. A
-- single relay (leader by advisory lock) publishes them in id order; ids of one account
-- grow in commit order because every change to an account's data holds its row lock.

CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    -- Set for events addressed to one user (assignment, their notifications, their jobs).
    user_id      uuid,
    topics       text[] NOT NULL DEFAULT '{}',
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);
CREATE INDEX events_unpublished_idx ON events (id) WHERE published_at IS NULL;
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    title      text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;

CREATE FUNCTION emit_event(kind text, target uuid, topics text[], data jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (kind, user_id, topics, data) VALUES (kind, target, topics, data);
    PERFORM pg_notify('events', '');
END;
$$;

-- Persists a notification and tells its user at once.
CREATE FUNCTION notify_user(target uuid, kind text, title text, data jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n notifications;
BEGIN
    IF target IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO notifications (user_id, kind, title, data) VALUES (target, kind, title, data) RETURNING * INTO n;
    PERFORM emit_event('notification.created', target, '{}',
        jsonb_build_object('id', n.id, 'kind', n.kind, 'title', n.title, 'data', n.data, 'read_at', NULL,
                           'created_at', n.created_at));
END;
$$;

CREATE FUNCTION payment_json(p payments) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', p.id, 'account_id', p.account_id, 'amount', p.amount::text, 'currency', p.currency,
        'method', p.method, 'status', p.status, 'reference', p.reference, 'received_at', p.received_at,
        'failure_reason', p.failure_reason, 'created_by', p.created_by, 'created_at', p.created_at,
        'updated_at', p.updated_at, 'search_version', p.search_version);
$$;

CREATE FUNCTION payment_events() RETURNS trigger LANGUAGE plpgsql AS $$
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
                               'currency', NEW.currency, 'account_number', account.account_number));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payments_events
    AFTER INSERT OR UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payment_events();

CREATE FUNCTION account_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    summary jsonb := jsonb_build_object('id', NEW.id, 'account_number', NEW.account_number,
        'debtor_name', NEW.debtor_name, 'status', NEW.status, 'assigned_agent_id', NEW.assigned_agent_id);
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM emit_event('account.created', NULL, ARRAY['accounts', 'account:' || NEW.id], summary);
    END IF;
    IF NEW.assigned_agent_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id) THEN
        PERFORM emit_event('account.assigned', NEW.assigned_agent_id, ARRAY['account:' || NEW.id], summary);
        PERFORM notify_user(NEW.assigned_agent_id, 'account_assigned',
            'Account ' || NEW.account_number || ' (' || NEW.debtor_name || ') assigned to you', summary);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_events_insert
    AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION account_events();

CREATE TRIGGER accounts_events_assign
    AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id)
    EXECUTE FUNCTION account_events();

CREATE FUNCTION activity_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM emit_event('activity.logged', NULL, ARRAY['accounts', 'account:' || NEW.account_id],
        jsonb_build_object('id', NEW.id, 'account_id', NEW.account_id, 'type', NEW.type, 'direction', NEW.direction,
            'outcome', NEW.outcome, 'notes', NEW.notes, 'occurred_at', NEW.occurred_at,
            'next_action_at', NEW.next_action_at, 'agent_id', NEW.agent_id, 'created_at', NEW.created_at));
    RETURN NULL;
END;
$$;

CREATE TRIGGER activities_events
    AFTER INSERT ON activities
    FOR EACH ROW EXECUTE FUNCTION activity_events();

-- A promise whose date passed is a payment overdue.
CREATE FUNCTION promise_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
    data jsonb;
BEGIN
    SELECT * INTO account FROM accounts WHERE id = NEW.account_id;
    data := jsonb_build_object('promise_id', NEW.id, 'account_id', NEW.account_id, 'amount', NEW.amount::text,
        'currency', account.currency, 'due_date', NEW.due_date, 'account_number', account.account_number);
    PERFORM emit_event('payment.overdue', NULL, ARRAY['payments', 'account:' || NEW.account_id], data);
    PERFORM notify_user(account.assigned_agent_id, 'payment_overdue',
        'Promise to pay of ' || account.debtor_name || ' due ' || NEW.due_date || ' was not kept', data);
    RETURN NULL;
END;
$$;

CREATE TRIGGER promises_events
    AFTER UPDATE ON promises
    FOR EACH ROW
    WHEN (OLD.status = 'open' AND NEW.status = 'broken')
    EXECUTE FUNCTION promise_events();

-- Changes reach open screens: an account edited by a person (`account.updated`, naming
-- the fields that changed), a promise cancelled (`promise.cancelled`) and a plan
-- cancelled (`plan.cancelled`, as `plan.broken` and `plan.completed` of migration 0017).
-- To the topics `accounts` and `account:{id}`, as the other account events: a screen of
-- that account reads it again. Changes a
-- job makes (a bulk update, an import, the overdue scheduler: `arrears.job` set) and
-- those other triggers make (a payment settling the status) send none: a job has its own
-- progress, and the payment its own event.

CREATE FUNCTION account_updated_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text[];
BEGIN
    IF coalesce(current_setting('arrears.job', true), '') <> '' OR pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO changed
    FROM jsonb_each(to_jsonb(NEW)) n
    WHERE n.key NOT IN ('current_balance', 'updated_at', 'updated_by', 'search_version', 'ordinal')
      AND n.value IS DISTINCT FROM to_jsonb(OLD) -> n.key;
    IF cardinality(changed) = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM emit_event('account.updated', NULL, ARRAY['accounts', 'account:' || NEW.id],
        jsonb_build_object('id', NEW.id, 'account_id', NEW.id, 'account_number', NEW.account_number,
            'debtor_name', NEW.debtor_name, 'status', NEW.status, 'assigned_agent_id', NEW.assigned_agent_id,
            'changed', to_jsonb(changed)));
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_events_update
    AFTER UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION account_updated_event();

CREATE FUNCTION promise_cancelled_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM emit_event('promise.cancelled', NULL, ARRAY['accounts', 'account:' || NEW.account_id],
        jsonb_build_object('promise_id', NEW.id, 'account_id', NEW.account_id, 'status', NEW.status));
    RETURN NULL;
END;
$$;

CREATE TRIGGER promises_events_cancelled
    AFTER UPDATE ON promises
    FOR EACH ROW
    WHEN (OLD.status = 'open' AND NEW.status = 'cancelled')
    EXECUTE FUNCTION promise_cancelled_event();

CREATE FUNCTION plan_cancelled_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
BEGIN
    SELECT * INTO account FROM accounts WHERE id = NEW.account_id;
    PERFORM emit_event('plan.cancelled', NULL, ARRAY['accounts', 'account:' || NEW.account_id],
        jsonb_build_object('plan_id', NEW.id, 'account_id', NEW.account_id, 'amount', NEW.total::text,
            'currency', account.currency, 'status', NEW.status, 'account_number', account.account_number));
    RETURN NULL;
END;
$$;

CREATE TRIGGER plans_events_cancelled
    AFTER UPDATE ON plans
    FOR EACH ROW
    WHEN (OLD.status = 'active' AND NEW.status = 'cancelled')
    EXECUTE FUNCTION plan_cancelled_event();

-- An import announces itself through its job's progress and completion events, not one
-- `account.created` per row: the chunk's transaction sets `arrears.import` and the
-- trigger skips that event (assignment events and notifications still fire per account).

CREATE OR REPLACE FUNCTION account_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    importing boolean := TG_OP = 'INSERT' AND coalesce(current_setting('arrears.import', true), '') = 'on';
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
            'Account ' || NEW.account_number || ' (' || NEW.debtor_name || ') assigned to you', summary);
    END IF;
    RETURN NULL;
END;
$$;

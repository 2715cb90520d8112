-- Writers stop calling pg_notify: a transaction that notifies takes a database-wide
-- lock at commit and holds it through its WAL flush, so every payment, account change
-- and event commit queued behind the others (no group commit). The sync worker and the
-- event relay poll on a short cadence instead (src/sync/worker.rs, src/events/relay.rs).

CREATE OR REPLACE FUNCTION enqueue_account_for_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO search_outbox (entity, entity_id, tombstone_version)
        VALUES ('account', OLD.id, nextval('search_version_seq'));
    ELSE
        INSERT INTO search_outbox (entity, entity_id) VALUES ('account', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION emit_event(kind text, target uuid, topics text[], data jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (kind, user_id, topics, data) VALUES (kind, target, topics, data);
END;
$$;

-- Keeps current_balance equal to what completed payments took off it, in the same
-- transaction as the payment change, whatever wrote it; queues the payment document.
CREATE OR REPLACE FUNCTION apply_payment_to_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_part numeric(20, 4) := 0;
    new_part numeric(20, 4) := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'completed' THEN
        old_part := OLD.amount;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'completed' THEN
        new_part := NEW.amount;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.account_id = NEW.account_id THEN
        -- A re-version for denormalised account fields changes nothing the account shows.
        IF (OLD.status, OLD.amount, OLD.received_at) IS DISTINCT FROM (NEW.status, NEW.amount, NEW.received_at) THEN
            PERFORM adjust_account_balance(NEW.account_id, new_part - old_part);
        END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN
            PERFORM adjust_account_balance(OLD.account_id, -old_part);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM adjust_account_balance(NEW.account_id, new_part);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO search_outbox (entity, entity_id, tombstone_version)
        VALUES ('payment', OLD.id, nextval('search_version_seq'));
    ELSE
        INSERT INTO search_outbox (entity, entity_id) VALUES ('payment', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

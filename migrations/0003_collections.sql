-- Payments, activities, promises to pay, and idempotent submissions.
--
-- The arithmetic lives in triggers so that every write path (API, import, psql)
-- keeps balances, promise states and the search index right (DESIGN.md invariant 1).

-- An overpayment, when explicitly allowed, leaves a credit (a negative balance).
ALTER TABLE accounts DROP CONSTRAINT accounts_current_balance_check;

CREATE TABLE payments (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id),
    amount            numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method            text NOT NULL CHECK (method IN
                          ('card', 'bank_transfer', 'ach', 'cash', 'check', 'digital_wallet')),
    status            text NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'refunded', 'reversed')),
    reference         text,
    received_at       timestamptz NOT NULL,
    failure_reason    text,
    allow_overpayment boolean NOT NULL DEFAULT false,
    created_by        uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    search_version    bigint NOT NULL DEFAULT nextval('search_version_seq')
);
CREATE INDEX payments_account_idx ON payments (account_id, received_at DESC, id DESC);

CREATE TRIGGER payments_search_version
    BEFORE INSERT OR UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION set_search_version();

CREATE TABLE activities (
    id             uuid PRIMARY KEY,
    account_id     uuid NOT NULL REFERENCES accounts (id),
    type           text NOT NULL CHECK (type IN ('call', 'sms', 'email', 'letter', 'visit', 'note')),
    direction      text CHECK (direction IN ('inbound', 'outbound')),
    outcome        text CHECK (outcome IN ('right_party', 'wrong_party', 'no_answer', 'left_message',
                                           'refused', 'promise_to_pay', 'dispute', 'paid')),
    notes          text,
    occurred_at    timestamptz NOT NULL,
    next_action_at timestamptz,
    agent_id       uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_account_idx ON activities (account_id, occurred_at DESC, id DESC);
CREATE INDEX activities_occurred_idx ON activities (occurred_at DESC, id DESC);
CREATE INDEX activities_agent_idx ON activities (agent_id, occurred_at DESC, id DESC);

CREATE TABLE promises (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    amount      numeric(20, 4) NOT NULL CHECK (amount > 0),
    due_date    date NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'kept', 'broken', 'cancelled')),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at timestamptz
);
CREATE INDEX promises_account_idx ON promises (account_id, created_at DESC, id DESC);
-- At most one open promise per account.
CREATE UNIQUE INDEX promises_one_open_key ON promises (account_id) WHERE status = 'open';
CREATE INDEX promises_open_due_idx ON promises (due_date) WHERE status = 'open';

-- A retried submission answers with the first result; the key is per user.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL,
    scope        text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);

-- Re-indexes an account whose denormalised data changed. Updating the row draws a new
-- version under its lock (set_search_version) and enqueues it (accounts_search_outbox).
CREATE FUNCTION touch_account(account uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE accounts SET search_version = 0 WHERE id = account;
$$;

-- Completed payments received at or after a promise was made keep it once they cover it.
CREATE FUNCTION settle_promises(account uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    kept integer;
BEGIN
    UPDATE promises p SET status = 'kept', resolved_at = now()
    WHERE p.account_id = account AND p.status = 'open'
      AND (SELECT coalesce(sum(amount), 0) FROM payments
           WHERE account_id = account AND status = 'completed' AND received_at >= p.created_at) >= p.amount;
    GET DIAGNOSTICS kept = ROW_COUNT;
    IF kept > 0 THEN
        UPDATE accounts SET status = CASE WHEN due_date < current_date THEN 'delinquent' ELSE 'active' END
        WHERE id = account AND status = 'promise_to_pay';
    END IF;
END;
$$;

-- Takes `delta` (completed money moved) off an account's balance; reaching zero sets it
-- `paid`, getting money back reopens it. With no money moved it still re-indexes the
-- account, whose document carries payment totals.
CREATE FUNCTION adjust_account_balance(account uuid, delta numeric) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF delta = 0 THEN
        PERFORM touch_account(account);
        RETURN;
    END IF;
    UPDATE accounts SET
        current_balance = current_balance - delta,
        status = CASE
            WHEN delta > 0 AND current_balance - delta <= 0 THEN 'paid'
            WHEN delta < 0 AND status = 'paid' AND current_balance - delta > 0 THEN
                CASE WHEN due_date < current_date THEN 'delinquent' ELSE 'active' END
            ELSE status END,
        updated_at = now()
    WHERE id = account;
    IF delta > 0 THEN
        PERFORM settle_promises(account);
    END IF;
END;
$$;

-- Keeps current_balance equal to what completed payments took off it, in the same
-- transaction as the payment change, whatever wrote it; queues the payment document.
CREATE FUNCTION apply_payment_to_account() RETURNS trigger LANGUAGE plpgsql AS $$
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
    PERFORM pg_notify('search_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER payments_apply
    AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION apply_payment_to_account();

-- Activities and promises are denormalised into the account document.
CREATE FUNCTION touch_account_of_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM touch_account(CASE WHEN TG_OP = 'DELETE' THEN OLD.account_id ELSE NEW.account_id END);
    RETURN NULL;
END;
$$;

CREATE TRIGGER activities_touch_account
    AFTER INSERT OR UPDATE OR DELETE ON activities
    FOR EACH ROW EXECUTE FUNCTION touch_account_of_row();

CREATE TRIGGER promises_touch_account
    AFTER INSERT OR UPDATE OR DELETE ON promises
    FOR EACH ROW EXECUTE FUNCTION touch_account_of_row();

-- Payment documents carry the debtor's name, account number and agent: when those
-- change, the account's payments get new versions (so the index takes the rebuilt
-- documents) and are queued by their own trigger.
CREATE FUNCTION reversion_payments_of_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payments SET search_version = 0 WHERE account_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_payments_outbox
    AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (OLD.debtor_name IS DISTINCT FROM NEW.debtor_name
          OR OLD.account_number IS DISTINCT FROM NEW.account_number
          OR OLD.assigned_agent_id IS DISTINCT FROM NEW.assigned_agent_id
          OR OLD.currency IS DISTINCT FROM NEW.currency)
    EXECUTE FUNCTION reversion_payments_of_account();

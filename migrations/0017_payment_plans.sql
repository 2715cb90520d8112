-- Payment plans: a total split into dated instalments that completed payments pay off,
-- oldest first.
--
-- As with promises (0003), the arithmetic lives in triggers, so the API, imports and a
-- manual psql edit all keep instalments, plan and account status and the index right.
-- Allocation is recomputed from the completed payments, never accumulated: a refund or
-- reversal takes its money back off the newest paid instalments the same way.

CREATE TABLE plans (
    id             uuid PRIMARY KEY,
    account_id     uuid NOT NULL REFERENCES accounts (id),
    total          numeric(20, 4) NOT NULL CHECK (total > 0),
    frequency      text NOT NULL CHECK (frequency IN ('weekly', 'biweekly', 'monthly')),
    -- Monthly plans fall on this day, or on the last day of a shorter month.
    day_of_month   smallint CHECK (day_of_month BETWEEN 1 AND 31),
    first_due_date date NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'broken', 'cancelled')),
    created_by     uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at    timestamptz,
    CHECK ((frequency = 'monthly') = (day_of_month IS NOT NULL))
);
CREATE INDEX plans_account_idx ON plans (account_id, created_at DESC, id DESC);
CREATE INDEX plans_created_idx ON plans (created_at DESC, id DESC);
-- At most one active plan per account.
CREATE UNIQUE INDEX plans_one_active_key ON plans (account_id) WHERE status = 'active';

CREATE TABLE plan_instalments (
    plan_id     uuid NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    seq         integer NOT NULL CHECK (seq > 0),
    due_date    date NOT NULL,
    amount      numeric(20, 4) NOT NULL CHECK (amount > 0),
    paid_amount numeric(20, 4) NOT NULL DEFAULT 0 CHECK (paid_amount >= 0 AND paid_amount <= amount),
    -- When the instalment was last paid in full; null while any of it is owed.
    paid_at     timestamptz,
    -- When the scheduler found it unpaid after the grace period; kept once set, so a
    -- late payment pays a missed instalment without forgetting the miss.
    missed_at   timestamptz,
    PRIMARY KEY (plan_id, seq)
);
CREATE INDEX plan_instalments_unpaid_idx ON plan_instalments (due_date) WHERE paid_amount < amount AND missed_at IS NULL;

-- Spreads the completed payments received since each live plan was made over its
-- instalments in order (partial payments leave one partly paid, the rest spills into
-- the next), then completes a plan with nothing owed, or reopens a completed one that a
-- refund left owing (unless another plan is active by then).
CREATE FUNCTION allocate_plan_payments(account uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p plans;
    received numeric(20, 4);
    owing boolean;
BEGIN
    FOR p IN SELECT * FROM plans WHERE account_id = account AND status IN ('active', 'completed') ORDER BY created_at LOOP
        SELECT coalesce(sum(amount), 0) INTO received FROM payments
        WHERE account_id = account AND status = 'completed' AND received_at >= p.created_at;
        UPDATE plan_instalments i
        SET paid_amount = share.paid,
            paid_at = CASE WHEN share.paid = i.amount THEN coalesce(i.paid_at, now()) END
        FROM (SELECT seq, least(amount, greatest(0, received - (sum(amount) OVER (ORDER BY seq) - amount))) AS paid
              FROM plan_instalments WHERE plan_id = p.id) share
        WHERE i.plan_id = p.id AND i.seq = share.seq AND i.paid_amount IS DISTINCT FROM share.paid;
        owing := EXISTS (SELECT 1 FROM plan_instalments WHERE plan_id = p.id AND paid_amount < amount);
        IF p.status = 'active' AND NOT owing THEN
            UPDATE plans SET status = 'completed', resolved_at = now() WHERE id = p.id;
        ELSIF p.status = 'completed' AND owing
              AND NOT EXISTS (SELECT 1 FROM plans WHERE account_id = account AND status = 'active') THEN
            UPDATE plans SET status = 'active', resolved_at = NULL WHERE id = p.id;
        END IF;
    END LOOP;
END;
$$;

-- Runs after the balance trigger (`payments_apply`, earlier by name), so an account the
-- payment paid off is already `paid` when its plan completes.
CREATE FUNCTION settle_plans_of_payment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.account_id = NEW.account_id
       AND (OLD.status, OLD.amount, OLD.received_at) IS NOT DISTINCT FROM (NEW.status, NEW.amount, NEW.received_at) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM allocate_plan_payments(OLD.account_id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.account_id <> NEW.account_id) THEN
        PERFORM allocate_plan_payments(NEW.account_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payments_settle_plans
    AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION settle_plans_of_payment();

-- The status an account returns to when its plan ends: as after a promise.
CREATE FUNCTION status_after_plan(a accounts) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM promises WHERE account_id = a.id AND status = 'open') THEN 'promise_to_pay'
        WHEN a.due_date < (now() AT TIME ZONE a.timezone)::date THEN 'delinquent'
        ELSE 'active' END;
$$;

-- The account follows its plan: `payment_plan` while one is active (unless its status
-- says something stronger: disputed, paid, settled, closed), back out when it ends.
-- Every change re-indexes the account, whose document shows the plan; a broken or
-- completed plan is an event, and a broken one tells the assigned agent.
CREATE FUNCTION plan_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account accounts;
    data jsonb;
BEGIN
    IF NEW.status = 'active' AND (TG_OP = 'INSERT' OR OLD.status <> 'active') THEN
        UPDATE accounts SET status = 'payment_plan', updated_at = now()
        WHERE id = NEW.account_id AND status IN ('active', 'delinquent', 'promise_to_pay');
    ELSIF TG_OP = 'UPDATE' AND OLD.status = 'active' AND NEW.status <> 'active' THEN
        UPDATE accounts a SET status = status_after_plan(a), updated_at = now()
        WHERE id = NEW.account_id AND status = 'payment_plan';
    END IF;
    PERFORM touch_account(NEW.account_id);
    IF TG_OP = 'UPDATE' AND OLD.status = 'active' AND NEW.status IN ('broken', 'completed') THEN
        SELECT * INTO account FROM accounts WHERE id = NEW.account_id;
        data := jsonb_build_object('plan_id', NEW.id, 'account_id', NEW.account_id, 'amount', NEW.total::text,
            'currency', account.currency, 'status', NEW.status, 'account_number', account.account_number);
        PERFORM emit_event('plan.' || NEW.status, NULL, ARRAY['accounts', 'account:' || NEW.account_id], data);
        IF NEW.status = 'broken' THEN
            PERFORM notify_user(account.assigned_agent_id, 'plan_broken',
                'Payment plan of ' || account.debtor_name || ' is broken', data);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER plans_changed
    AFTER INSERT OR UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION plan_changed();

-- An instalment change (paid, missed, or a psql edit) re-indexes its account; a newly
-- missed one is an event and tells the assigned agent.
CREATE FUNCTION plan_instalment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed plan_instalments := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    account accounts;
    data jsonb;
BEGIN
    SELECT a.* INTO account FROM accounts a JOIN plans p ON p.account_id = a.id WHERE p.id = changed.plan_id;
    IF account.id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM touch_account(account.id);
    IF TG_OP = 'UPDATE' AND OLD.missed_at IS NULL AND NEW.missed_at IS NOT NULL THEN
        data := jsonb_build_object('plan_id', NEW.plan_id, 'account_id', account.id, 'seq', NEW.seq,
            'due_date', NEW.due_date, 'amount', (NEW.amount - NEW.paid_amount)::text, 'currency', account.currency,
            'account_number', account.account_number);
        PERFORM emit_event('plan.instalment_missed', NULL, ARRAY['accounts', 'account:' || account.id], data);
        PERFORM notify_user(account.assigned_agent_id, 'plan_instalment_missed',
            'Plan instalment of ' || account.debtor_name || ' due ' || NEW.due_date || ' was missed', data);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER plan_instalments_changed
    AFTER INSERT OR UPDATE OR DELETE ON plan_instalments
    FOR EACH ROW EXECUTE FUNCTION plan_instalment_changed();

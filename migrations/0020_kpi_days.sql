-- KPI figures per UTC day, kept once the day is over, so that a request reads a few
-- rows per day and agent instead of every activity, promise and payment of its period.
-- A day is kept when its row is in kpi_days; its figures are the rows of the three
-- tables below. Any write to an event of a kept day (a backdated activity, a promise
-- kept or broken, a refunded payment, a snapshot row) drops that day, and the next
-- scheduler tick keeps it again; until then requests compute it from the events.
CREATE TABLE kpi_days (
    day         date PRIMARY KEY,
    computed_at timestamptz NOT NULL DEFAULT now()
);

-- Activities by the user who logged them and the account's bucket in the snapshot of
-- the activity's day: the distinct accounts worked, and the counts.
CREATE TABLE kpi_day_work (
    day                  date NOT NULL REFERENCES kpi_days ON DELETE CASCADE,
    agent_id             uuid,
    bucket               text,
    accounts             uuid[] NOT NULL,
    contact_attempts     bigint NOT NULL,
    right_party_contacts bigint NOT NULL
);
CREATE INDEX kpi_day_work_day_idx ON kpi_day_work (day);

-- Promises by the user who made them and the account's bucket on the day they were made.
CREATE TABLE kpi_day_promises (
    day      date NOT NULL REFERENCES kpi_days ON DELETE CASCADE,
    agent_id uuid,
    bucket   text,
    made     bigint NOT NULL,
    kept     bigint NOT NULL,
    broken   bigint NOT NULL
);
CREATE INDEX kpi_day_promises_day_idx ON kpi_day_promises (day);

-- Completed payments by the agent and the bucket of the account in the snapshot of the
-- day they were received, per currency.
CREATE TABLE kpi_day_collected (
    day      date NOT NULL REFERENCES kpi_days ON DELETE CASCADE,
    agent_id uuid,
    bucket   text,
    currency text NOT NULL,
    amount   numeric NOT NULL
);
CREATE INDEX kpi_day_collected_day_idx ON kpi_day_collected (day);

-- Drops the kept days of the changed rows; TG_ARGV[0] is the SQL expression of a row's
-- UTC day. The DELETE takes a ROW EXCLUSIVE lock on kpi_days that the keeper's SHARE
-- ROW EXCLUSIVE lock waits for (and blocks until it commits): a day is never kept from
-- a read that missed a write whose drop already ran.
CREATE FUNCTION kpi_days_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE format('DELETE FROM kpi_days WHERE day IN (SELECT %s FROM changed_new)', TG_ARGV[0]);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        EXECUTE format('DELETE FROM kpi_days WHERE day IN (SELECT %s FROM changed_old)', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION kpi_days_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM kpi_days;
    RETURN NULL;
END $$;

-- Each event table with the expression of its rows' UTC day: four statement triggers.
DO $$
DECLARE
    event record;
BEGIN
    FOR event IN SELECT * FROM (VALUES
        ('activities', '(occurred_at AT TIME ZONE ''UTC'')::date'),
        ('promises', '(created_at AT TIME ZONE ''UTC'')::date'),
        ('payments', '(received_at AT TIME ZONE ''UTC'')::date'),
        ('account_day_snapshots', 'day')) AS t(tab, day)
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed_new
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_inserted', event.tab, event.day);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_updated', event.tab, event.day);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed_old
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_deleted', event.tab, event.day);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget_all()', event.tab || '_kpi_truncated', event.tab);
    END LOOP;
END $$;

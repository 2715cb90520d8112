-- Kept months (docs/features/kpis.md, "Kept months"): once every day of a month that is
-- over is kept, its kept days are summed into one row per group, so that a request for a
-- year reads twelve rows per group instead of 365. The work rows hold the month's
-- distinct accounts (ordinals, 4 bytes each, ascending), the others the month's sums.
-- A kept month is a cache of its kept days: a day dropped or kept again drops its month,
-- and the scheduler keeps it again once the day is kept again.
CREATE TABLE kpi_months (
    month       date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    computed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kpi_month_work (
    month                date NOT NULL REFERENCES kpi_months ON DELETE CASCADE,
    agent_id             uuid,
    bucket               text,
    portfolio_id         uuid,
    accounts             bytea NOT NULL,
    contact_attempts     bigint NOT NULL,
    right_party_contacts bigint NOT NULL
);
CREATE INDEX kpi_month_work_month_idx ON kpi_month_work (month);

CREATE TABLE kpi_month_channels (
    month                date NOT NULL REFERENCES kpi_months ON DELETE CASCADE,
    agent_id             uuid,
    bucket               text,
    portfolio_id         uuid,
    channel              text NOT NULL,
    contact_attempts     bigint NOT NULL,
    right_party_contacts bigint NOT NULL
);
CREATE INDEX kpi_month_channels_month_idx ON kpi_month_channels (month);

CREATE TABLE kpi_month_promises (
    month        date NOT NULL REFERENCES kpi_months ON DELETE CASCADE,
    agent_id     uuid,
    bucket       text,
    portfolio_id uuid,
    made         bigint NOT NULL,
    kept         bigint NOT NULL,
    broken       bigint NOT NULL
);
CREATE INDEX kpi_month_promises_month_idx ON kpi_month_promises (month);

CREATE TABLE kpi_month_collected (
    month        date NOT NULL REFERENCES kpi_months ON DELETE CASCADE,
    agent_id     uuid,
    bucket       text,
    portfolio_id uuid,
    currency     text NOT NULL,
    amount       numeric NOT NULL
);
CREATE INDEX kpi_month_collected_month_idx ON kpi_month_collected (month);

-- The month of a day: its first day.
CREATE FUNCTION kpi_month_of(day date) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('month', day::timestamp)::date
$$;

-- A kept day dropped (a late write to its events) or kept again drops its month, in the
-- same transaction: the keeper of a month holds its days' rows locked (FOR SHARE), which
-- these writes wait for, so a month is never kept from days a write is dropping. A row
-- trigger: the statements that drop nothing (most event writes) cost nothing more.
CREATE FUNCTION kpi_months_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM kpi_months WHERE month = kpi_month_of(OLD.day);
    RETURN NULL;
END $$;

CREATE TRIGGER kpi_days_forget_month AFTER DELETE OR UPDATE ON kpi_days
    FOR EACH ROW EXECUTE FUNCTION kpi_months_forget();

-- Two changes to the kept KPI days (migration 0020), so that a request reads little
-- more than what it answers.
--
-- 1. Accounts worked is an exact distinct count over any run of days, so the kept days
-- hold each group's accounts. As uuids they were 16 bytes an account, sent element by
-- element and sorted per request (a 30-day request read about 400,000 of them). Each
-- account now has a dense ordinal, and a kept day holds its accounts as one bytea of
-- their ordinals, 4 bytes each, big-endian and ascending, which a request reads as one
-- value per row and unites as bitmaps. Ordinals come from an identity: never reused.
--
-- 2. Today is kept in part: kpi_days.kept_until says up to which instant a day's rows
-- count its events (the next midnight for a day that is over), and a request computes
-- only the events from there on. A write drops a kept day only when its event's instant
-- is before that day's kept_until, so today's ordinary writes, which come after it,
-- leave today's kept part alone; a backdated one drops it as before.
ALTER TABLE accounts ADD COLUMN ordinal integer GENERATED ALWAYS AS IDENTITY;
-- A day's snapshot row carries it, so keeping a day reads it from the row the figures
-- join anyway; looking it up in accounts cost an index probe per activity (about
-- 100 ms a day at 1,000,000 accounts). Rows taken before this migration have none.
ALTER TABLE account_day_snapshots ADD COLUMN ordinal integer;

-- The kept days are a cache of the events: drop them and keep them again in the new form.
DELETE FROM kpi_days;
ALTER TABLE kpi_days ADD COLUMN kept_until timestamptz NOT NULL;
ALTER TABLE kpi_day_work DROP COLUMN accounts;
ALTER TABLE kpi_day_work ADD COLUMN accounts bytea NOT NULL;

-- TG_ARGV[0] is now the SQL expression of a changed row's instant (its UTC day follows).
-- The DELETE still takes the ROW EXCLUSIVE lock the keeper's SHARE ROW EXCLUSIVE waits
-- for, whether or not it drops a row.
CREATE OR REPLACE FUNCTION kpi_days_forget() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    FOREACH changed IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY['changed_new']
                                        WHEN 'DELETE' THEN ARRAY['changed_old']
                                        ELSE ARRAY['changed_old', 'changed_new'] END
    LOOP
        EXECUTE format('DELETE FROM kpi_days k USING (SELECT %s AS at FROM %I) c
                        WHERE k.day = (c.at AT TIME ZONE ''UTC'')::date AND c.at < k.kept_until',
                       TG_ARGV[0], changed);
    END LOOP;
    RETURN NULL;
END $$;

DO $$
DECLARE
    event record;
BEGIN
    FOR event IN SELECT * FROM (VALUES
        ('activities', 'occurred_at'),
        ('promises', 'created_at'),
        ('payments', 'received_at'),
        ('account_day_snapshots', '(day::timestamp AT TIME ZONE ''UTC'')')) AS t(tab, at)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', event.tab || '_kpi_inserted', event.tab);
        EXECUTE format('DROP TRIGGER %I ON %I', event.tab || '_kpi_updated', event.tab);
        EXECUTE format('DROP TRIGGER %I ON %I', event.tab || '_kpi_deleted', event.tab);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed_new
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_inserted', event.tab, event.at);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_updated', event.tab, event.at);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed_old
                        FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_forget(%L)', event.tab || '_kpi_deleted', event.tab, event.at);
    END LOOP;
END $$;

-- Bucket moves between two snapshot days, kept once computed. Both snapshots are
-- complete when their days are in account_snapshot_days and are never changed, so
-- neither are the moves between them: a KPI request reads a few hundred rows instead
-- of joining two days of every account.
CREATE TABLE kpi_move_pairs (
    opening     date NOT NULL,
    closing     date NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (opening, closing)
);

CREATE TABLE kpi_moves (
    opening        date NOT NULL,
    closing        date NOT NULL,
    agent_id       uuid,
    opening_bucket text NOT NULL,
    closing_bucket text NOT NULL,
    accounts       bigint NOT NULL,
    cured          bigint NOT NULL,
    FOREIGN KEY (opening, closing) REFERENCES kpi_move_pairs ON DELETE CASCADE
);
CREATE INDEX kpi_moves_pair_idx ON kpi_moves (opening, closing);

-- Snapshot rows written or removed after their moves were kept (by hand, a restore)
-- drop the kept moves of their days, and an edit or a truncation drops all of them, so
-- they are computed again from what the snapshots now say.
CREATE FUNCTION kpi_moves_forget_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM kpi_move_pairs
    WHERE opening IN (SELECT day FROM changed) OR closing IN (SELECT day FROM changed);
    RETURN NULL;
END $$;

CREATE FUNCTION kpi_moves_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM kpi_move_pairs;
    RETURN NULL;
END $$;

CREATE TRIGGER account_day_snapshots_inserted AFTER INSERT ON account_day_snapshots
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION kpi_moves_forget_days();
CREATE TRIGGER account_day_snapshots_updated AFTER UPDATE ON account_day_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION kpi_moves_forget_all();
CREATE TRIGGER account_day_snapshots_deleted AFTER DELETE ON account_day_snapshots
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION kpi_moves_forget_days();
CREATE TRIGGER account_day_snapshots_truncated AFTER TRUNCATE ON account_day_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION kpi_moves_forget_all();

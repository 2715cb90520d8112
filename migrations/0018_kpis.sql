-- Manager KPIs: teams, the daily per-account bucket snapshot, and the indexes the
-- KPI figures read by time.

ALTER TABLE users ADD COLUMN team text
    CONSTRAINT users_team_check CHECK (team IS NULL OR length(team) BETWEEN 1 AND 100);

-- One row per account and UTC day: the account as the first scheduler run of that day
-- found it. No foreign key: a snapshot is history and outlives a purged account.
CREATE TABLE account_day_snapshots (
    day               date NOT NULL,
    account_id        uuid NOT NULL,
    bucket            text NOT NULL CHECK (bucket IN ('current', '1-29', '30-59', '60-89', '90-119', '120+')),
    assigned_agent_id uuid,
    status            text NOT NULL,
    current_balance   numeric(20, 4) NOT NULL,
    currency          text NOT NULL,
    PRIMARY KEY (day, account_id)
);

-- The days whose snapshot is complete: the first process to insert a day's row takes
-- that day's snapshot; another one waiting on the row finds it taken.
CREATE TABLE account_snapshot_days (
    day      date PRIMARY KEY,
    taken_at timestamptz NOT NULL DEFAULT now(),
    accounts bigint NOT NULL DEFAULT 0
);

CREATE INDEX promises_created_idx ON promises (created_at);
CREATE INDEX payments_completed_received_idx ON payments (received_at) WHERE status = 'completed';

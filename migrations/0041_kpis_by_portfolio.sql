-- KPIs by portfolio (docs/features/kpis.md): a day's snapshot row carries the account's
-- portfolio that day, and the kept day figures and bucket moves are split by it, so a
-- request can group by portfolio and count only the portfolios its caller sees.
--
-- No foreign key, as for the snapshot's other columns: a snapshot is history.
ALTER TABLE account_day_snapshots ADD COLUMN portfolio_id uuid;

-- Snapshots taken before this migration did not record the portfolio. Accounts have had
-- portfolios only since 0038, a short while; each old row takes its account's portfolio
-- as it is now (a row of an account moved between portfolios since counts for the one it
-- is in now; a purged account's rows stay in none). Only the accounts in a portfolio have
-- rows to write.
UPDATE account_day_snapshots s SET portfolio_id = a.portfolio_id
FROM accounts a
WHERE a.id = s.account_id AND a.portfolio_id IS NOT NULL;

-- The kept days and moves are a cache of the events and snapshots: drop them (the
-- update above already dropped those of the days it changed) and keep them again, split
-- by portfolio, on the scheduler's next ticks; until then a request computes them.
DELETE FROM kpi_days;
DELETE FROM kpi_move_pairs;
ALTER TABLE kpi_day_work ADD COLUMN portfolio_id uuid;
ALTER TABLE kpi_day_promises ADD COLUMN portfolio_id uuid;
ALTER TABLE kpi_day_collected ADD COLUMN portfolio_id uuid;
ALTER TABLE kpi_moves ADD COLUMN portfolio_id uuid;

-- A kept month's generation (docs/features/kpis.md, "Kept months"): a number no earlier
-- keeping of any month had. A server holds kept months' rows in memory and knows by it
-- that the rows it holds are those of the month kept now, not of a keeping dropped since.
ALTER TABLE kpi_months ADD COLUMN generation bigint GENERATED ALWAYS AS IDENTITY;

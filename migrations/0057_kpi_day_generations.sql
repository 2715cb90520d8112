-- A kept day's generation (docs/features/kpis.md, "Kept rows in memory"), as a kept
-- month's (migration 0056): a number no earlier keeping of any day had, new whenever the
-- day is kept again (in whole or, today, in a larger part). A server holds the rows of
-- days kept whole in memory and knows by it that they are those of the day kept now.
ALTER TABLE kpi_days ADD COLUMN generation bigint GENERATED ALWAYS AS IDENTITY;

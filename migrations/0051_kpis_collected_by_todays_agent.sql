-- The money collected on an account counts for the agent it was assigned to in the
-- snapshot of the payment's UTC day, and now, when that snapshot lacks the account (one
-- created after the day's snapshot), for the agent it is assigned to: it counted for no
-- agent before. The days kept with the old rule are dropped, to be kept again from the
-- events (their snapshots stay).

DELETE FROM kpi_days;

-- Imports: the uploaded rows are staged with their job, so any process can run (or
-- resume) the job; each row's outcome is written in the same transaction as the
-- accounts it creates or updates, so a resumed import never applies a row twice.

CREATE TABLE import_rows (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    -- The row number in the sheet, as the spreadsheet program shows it.
    line       integer NOT NULL,
    -- The row's cells as text, in the file's column order.
    cells      jsonb NOT NULL,
    outcome    text CHECK (outcome IN ('created', 'updated', 'failed')),
    -- [{"column", "message"}] when the row failed.
    errors     jsonb,
    account_id uuid,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX import_rows_failed_idx ON import_rows (job_id, seq) WHERE outcome = 'failed';

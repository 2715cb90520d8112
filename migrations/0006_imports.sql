-- Imports: the uploaded rows are staged with their job, so any process can run (or
-- resume) the job. Each chunk's accounts, its failed rows' errors and the import's
-- progress commit in one transaction, so a resumed import never applies a row twice.

CREATE TABLE import_rows (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    integer NOT NULL,
    -- The row number in the sheet, as the spreadsheet program shows it.
    line   integer NOT NULL,
    -- The row's cells as text, in the file's column order (json: stored as sent,
    -- cheaper to stage than jsonb).
    cells  json NOT NULL,
    -- [{"column", "message"}] once the row failed.
    errors jsonb,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX import_rows_failed_idx ON import_rows (job_id, seq) WHERE errors IS NOT NULL;

-- How far an import's chunks got (rows up to `settled_through` are done) and what they did.
CREATE TABLE import_progress (
    job_id          uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    settled_through integer NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0
);

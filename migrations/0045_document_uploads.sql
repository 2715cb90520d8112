-- Bulk uploads of documents: a zip whose files are named by account number (or listed
-- in a manifest), run as a durable job. The zip is kept in the document store under
-- `params.zip_key` until the job ends; each of its files is one entry, whose outcome
-- (and document) is written in the transaction that keeps the file, so a resumed job
-- skips what is done and no file is kept twice.

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('import', 'bulk_update', 'export', 'document_upload'));

CREATE TABLE document_upload_entries (
    job_id         uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq            integer NOT NULL,
    -- The file's place in the zip's directory, and its path there.
    zip_index      integer NOT NULL CHECK (zip_index >= 0),
    path           text NOT NULL,
    account_number text NOT NULL,
    name           text NOT NULL,
    outcome        text CHECK (outcome IN ('succeeded', 'failed')),
    error          text,
    document_id    uuid REFERENCES account_documents (id),
    PRIMARY KEY (job_id, seq),
    CHECK ((outcome = 'succeeded') = (document_id IS NOT NULL))
);

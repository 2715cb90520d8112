-- Processing of documents (docs/features/documents.md#processing): after an upload, a
-- worker in every API process reads the file in a child process under resource limits
-- and records its page count (PDF), a thumbnail (PNG, JPEG, TIFF) and its text (PDF,
-- DOCX, plain text, email), which the account's search document then holds. Documents
-- kept before this migration are pending too, so an upgrade processes them.

ALTER TABLE account_documents
    ADD COLUMN processing          text NOT NULL DEFAULT 'pending'
        CHECK (processing IN ('pending', 'processed', 'failed')),
    ADD COLUMN processing_attempts integer NOT NULL DEFAULT 0 CHECK (processing_attempts >= 0),
    -- When a pending document is next tried (a retry waits).
    ADD COLUMN process_after       timestamptz,
    ADD COLUMN processed_at        timestamptz,
    -- Why the last try failed, as the reader gave it.
    ADD COLUMN processing_error    text CHECK (length(processing_error) BETWEEN 1 AND 2000),
    ADD COLUMN page_count          integer CHECK (page_count >= 0),
    -- The thumbnail's key in the content store (a PNG of at most 256 x 256).
    ADD COLUMN thumbnail_key       text UNIQUE CHECK (length(thumbnail_key) BETWEEN 1 AND 200),
    ADD COLUMN thumbnail_size      integer CHECK (thumbnail_size > 0),
    -- The words of the file, whitespace collapsed, at most 100,000 characters.
    ADD COLUMN text_content        text CHECK (length(text_content) <= 100000),
    ADD CONSTRAINT account_documents_thumbnail CHECK ((thumbnail_key IS NULL) = (thumbnail_size IS NULL)),
    ADD CONSTRAINT account_documents_processed CHECK ((processing = 'pending') = (process_after IS NOT NULL)),
    ADD CONSTRAINT account_documents_processed_at CHECK ((processing = 'processed') = (processed_at IS NOT NULL));

UPDATE account_documents SET process_after = created_at WHERE processing = 'pending';
ALTER TABLE account_documents ALTER COLUMN process_after SET DEFAULT now();

-- What the worker looks at: live documents waiting for it.
CREATE INDEX account_documents_to_process ON account_documents (process_after)
    WHERE processing = 'pending' AND deleted_at IS NULL;

-- What processing records is the machine's, not a change anyone made: left out of the
-- audit trail (a document's text in every entry would copy it there).
DROP TRIGGER account_documents_audit_insert ON account_documents;
CREATE TRIGGER account_documents_audit_insert AFTER INSERT ON account_documents
    FOR EACH ROW EXECUTE FUNCTION audit_changes('document', 'account_id', 'uploaded_by',
        '{created_at,uploaded_by,processing,processing_attempts,process_after,processed_at,processing_error,page_count,thumbnail_key,thumbnail_size,text_content}', '{}');
SELECT audit_watch_updates('account_documents', 'document', 'account_id',
    '{processing,processing_attempts,process_after,processed_at,processing_error,page_count,thumbnail_key,thumbnail_size,text_content}', '{}');

-- The account's search document holds its live documents' kinds, names and text: a new,
-- deleted, renamed or processed document re-indexes the account; a new one wakes the
-- worker.
CREATE FUNCTION account_documents_reindex() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('arrears_documents', '');
        PERFORM touch_account(NEW.account_id);
    ELSIF NEW.deleted_at IS DISTINCT FROM OLD.deleted_at OR NEW.name IS DISTINCT FROM OLD.name
          OR NEW.processing IS DISTINCT FROM OLD.processing OR NEW.text_content IS DISTINCT FROM OLD.text_content THEN
        PERFORM touch_account(NEW.account_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER account_documents_search AFTER INSERT OR UPDATE ON account_documents
    FOR EACH ROW EXECUTE FUNCTION account_documents_reindex();

-- Accounts holding documents already are indexed again with them.
SELECT touch_account(account_id) FROM (SELECT DISTINCT account_id FROM account_documents WHERE deleted_at IS NULL) held;

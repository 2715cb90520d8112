-- Document retention: the bytes of a document are removed once its retention period is
-- over (DOCUMENT_RETENTION_DAYS after the document was deleted, or after its account was
-- deleted or last changed in a final status); its row stays, marked `purged_at`, so the
-- audit trail and the reports still name it.

ALTER TABLE account_documents ADD COLUMN purged_at timestamptz;
-- Retention deletes a live document with no user behind it.
ALTER TABLE account_documents DROP CONSTRAINT account_documents_check;
ALTER TABLE account_documents ADD CONSTRAINT account_documents_deleted_by
    CHECK (deleted_by IS NULL OR deleted_at IS NOT NULL);
ALTER TABLE account_documents ADD CONSTRAINT account_documents_purged_deleted
    CHECK (purged_at IS NULL OR deleted_at IS NOT NULL);

-- What a retention pass looks at: the documents whose bytes are still kept.
CREATE INDEX account_documents_kept ON account_documents (account_id) WHERE purged_at IS NULL;

-- The update trigger names every column it watches: made again to watch `purged_at`.
SELECT audit_watch_updates('account_documents', 'document', 'account_id', '{}', '{}');

-- When a document was last claimed for processing: the reader serves uploaders in turns,
-- and a document in hand counts as its uploader's turn (store::attachments::claim_pending).
ALTER TABLE account_documents ADD COLUMN processing_claimed_at timestamptz;

-- The claim is the machine's, like the rest of processing: left out of the audit trail.
DROP TRIGGER account_documents_audit_insert ON account_documents;
CREATE TRIGGER account_documents_audit_insert AFTER INSERT ON account_documents
    FOR EACH ROW EXECUTE FUNCTION audit_changes('document', 'account_id', 'uploaded_by',
        '{created_at,uploaded_by,processing,processing_attempts,process_after,processing_claimed_at,processed_at,processing_error,page_count,thumbnail_key,thumbnail_size,text_content}', '{}');
SELECT audit_watch_updates('account_documents', 'document', 'account_id',
    '{processing,processing_attempts,process_after,processing_claimed_at,processed_at,processing_error,page_count,thumbnail_key,thumbnail_size,text_content}', '{}');

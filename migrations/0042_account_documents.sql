-- Documents kept with an account (docs/features/documents.md): a proof of payment, a
-- dispute letter, a signed plan. The row describes the file; its bytes are kept by the
-- content store under the row's id (`storage_key`), never under a name a user gave.
-- The name is kept as uploaded (bounded) and only sanitised where it is shown. A deleted
-- document keeps its row and its bytes (deleted_at, deleted_by).

CREATE TABLE account_documents (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    -- Decided from the content, never from the name or the client's content type.
    kind         text NOT NULL CHECK (kind IN ('pdf', 'png', 'jpeg', 'heic', 'tiff', 'docx', 'xlsx', 'text', 'eml')),
    content_type text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 100),
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key  text NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 200),
    uploaded_by  uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    deleted_by   uuid REFERENCES users (id),
    CHECK ((deleted_at IS NULL) = (deleted_by IS NULL))
);
CREATE INDEX account_documents_of_account ON account_documents (account_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- One live copy of a content per account: an upload of the same bytes is answered with
-- the copy already there (the service checks first; this closes the race).
CREATE UNIQUE INDEX account_documents_live_content ON account_documents (account_id, sha256) WHERE deleted_at IS NULL;

CREATE TRIGGER account_documents_audit_insert AFTER INSERT ON account_documents
    FOR EACH ROW EXECUTE FUNCTION audit_changes('document', 'account_id', 'uploaded_by', '{created_at,uploaded_by}', '{}');
SELECT audit_watch_updates('account_documents', 'document', 'account_id', '{}', '{}');

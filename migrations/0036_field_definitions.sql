-- Custom field definitions (issue 49, docs/features/custom-fields.md): what a key of
-- `accounts.custom_fields` holds. The values stay in that column; a definition types and
-- validates them. A deleted definition keeps its row, so its key stays reserved and the
-- audit trail and history go on naming it.
CREATE TABLE field_definitions (
    key           text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label         text NOT NULL CHECK (length(label) BETWEEN 1 AND 80),
    type          text NOT NULL CHECK (type IN ('text', 'number', 'money', 'date', 'boolean', 'list', 'multi_list')),
    required      boolean NOT NULL DEFAULT false,
    -- The value accounts are created with when they have none; null for none.
    default_value jsonb,
    rules         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(rules) = 'object'),
    searchable    boolean NOT NULL DEFAULT false,
    filterable    boolean NOT NULL DEFAULT false,
    sortable      boolean NOT NULL DEFAULT false,
    exported      boolean NOT NULL DEFAULT true,
    shown         boolean NOT NULL DEFAULT true,
    -- The API's `position`, named apart from the SQL keyword POSITION.
    sort_position integer NOT NULL DEFAULT 0 CHECK (sort_position >= 0),
    -- The client portfolio the field belongs to; portfolios come later (issue 49), so
    -- no foreign key yet.
    portfolio_id  uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    uuid REFERENCES users (id),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    uuid REFERENCES users (id),
    deleted_at    timestamptz
);

-- The definitions as lists and the console read them: by position, then key.
CREATE INDEX field_definitions_position ON field_definitions (sort_position, key);

CREATE TRIGGER field_definitions_audit_insert AFTER INSERT ON field_definitions
    FOR EACH ROW EXECUTE FUNCTION audit_changes('field', '', 'created_by',
        '{created_at,created_by,updated_at,updated_by}', '{}', 'key');
CREATE TRIGGER field_definitions_audit_delete AFTER DELETE ON field_definitions
    FOR EACH ROW EXECUTE FUNCTION audit_changes('field', '', 'created_by',
        '{created_at,created_by,updated_at,updated_by}', '{}', 'key');
SELECT audit_watch_updates('field_definitions', 'field', '', '{updated_at,updated_by}', '{}', 'key');

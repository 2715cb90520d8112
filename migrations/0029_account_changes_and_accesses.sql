-- What changed on an account, field by field, and who opened an account that is not
-- theirs: both read by the account's timeline (docs/features/accounts.md#timeline).

-- One row per UPDATE of an account that changed a field people care about. Written by a
-- trigger, so the API, jobs, other tables' triggers and a psql edit are all recorded.
-- `actor` is the user the application named for the transaction (`arrears.actor`, set by
-- `store::begin_as`); null for the schedulers and for statements the application did not
-- issue, which `db_user` then tells apart. `by_rule` marks a change another table's trigger
-- made (a payment paid the account off, a plan ended).
CREATE TABLE account_changes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      uuid REFERENCES users (id),
    db_user    text NOT NULL DEFAULT current_user,
    by_rule    boolean NOT NULL,
    -- {"field": {"before": …, "after": …}} for each changed column.
    changes    jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object')
);
CREATE INDEX account_changes_account_idx ON account_changes (account_id, changed_at DESC, id DESC);

-- Columns that change with every write or that other timeline entries already show (a
-- balance moves with the payments listed beside it).
CREATE FUNCTION record_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    diff jsonb;
BEGIN
    SELECT jsonb_object_agg(n.key, jsonb_build_object('before', o.value, 'after', n.value))
    INTO diff
    FROM jsonb_each(to_jsonb(NEW)) n
    JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
    WHERE n.value IS DISTINCT FROM o.value
      AND n.key NOT IN ('search_version', 'updated_at', 'updated_by', 'created_at', 'created_by', 'current_balance');
    IF diff IS NOT NULL THEN
        INSERT INTO account_changes (account_id, actor, by_rule, changes)
        VALUES (NEW.id, nullif(current_setting('arrears.actor', true), '')::uuid, pg_trigger_depth() > 1, diff);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_record_changes
    AFTER UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION record_account_change();

-- An agent opened an account assigned to someone else (or to no one): the summary they
-- may read of it (docs/security.md#what-an-agent-reads).
CREATE TABLE account_accesses (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id),
    accessed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX account_accesses_account_idx ON account_accesses (account_id, accessed_at DESC, id DESC);
CREATE INDEX account_accesses_user_idx ON account_accesses (user_id, accessed_at DESC);

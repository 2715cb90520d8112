-- The audit trail for less (docs/features/audit.md, "What it costs"): the same entries,
-- sealed and watched more cheaply.
--
-- Seals move out of the rows into `audit_seal`. Writing each row's `position` and `hash`
-- back into `audit_log` made a second version of every row (rarely on the same page, so
-- all five indexes took a second entry) and ran the append-only check on each: sealing
-- cost as much as writing. Now a row is written once and never updated; the sealer adds
-- one `audit_seal` row per partition and pass, holding the ids of the rows it sealed in
-- chain order, each row's digest, and the block's hash chained to the block before it.
-- `audit verify` still names an edited row (its digest), a removed one (an id the seal
-- lists that is gone) and one slipped in behind the sealer (a row of a sealed
-- transaction that no seal lists).
--
-- Two more savings on every audited write: the entity index holds only the entries of
-- entities that belong to no account (users, jobs, sessions, policy: few), since an
-- account's entries are found through the account index; and a batch of payments (the
-- group commit writes one statement) records its entries with one INSERT … SELECT over
-- the statement's new rows instead of a trigger call and an insert per payment.
--
-- The rows sealed before this migration are sealed again, into blocks, from the start:
-- their per-row hashes go with the columns that held them.

CREATE TABLE audit_seal (
    partition text NOT NULL,
    -- The position in the partition's chain of the block's first row; its rows follow.
    position  bigint NOT NULL CHECK (position > 0),
    -- The transactions whose rows the block seals: xid_from <= xid < xid_below.
    xid_from  xid8 NOT NULL,
    xid_below xid8 NOT NULL,
    ids       bigint[] NOT NULL CHECK (cardinality(ids) > 0),
    -- One SHA-256 per row, in the order of `ids`.
    digests   bytea NOT NULL CHECK (length(digests) = 32 * cardinality(ids)),
    -- sha256(previous block's hash || position || xid range || every id and digest).
    hash      bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, position)
);

-- Seals are never changed; a partition's seals go only once retention dropped it.
CREATE FUNCTION audit_seal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND to_regclass(OLD.partition) IS NULL THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % of a seal refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_seal_append_only BEFORE UPDATE OR DELETE ON audit_seal
    FOR EACH ROW EXECUTE FUNCTION audit_seal_append_only();
CREATE TRIGGER audit_seal_no_truncate BEFORE TRUNCATE ON audit_seal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_seal_append_only();

-- Rows are written once: no UPDATE at all now, for any role.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
ALTER TABLE audit_log DROP COLUMN position, DROP COLUMN hash;
DELETE FROM audit_chain;
UPDATE audit_seal_horizon SET horizon = '0';

-- Pages are filled: no row grows a second version any more.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit_log'::regclass LOOP
        EXECUTE format('ALTER TABLE %s RESET (fillfactor)', part);
    END LOOP;
END;
$$;
CREATE OR REPLACE FUNCTION audit_ensure_partitions(first date, months integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    start timestamp := date_trunc('month', first::timestamp);
    made integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('audit_log_p%s', to_char(start + make_interval(months => i), 'YYYYMM'));
        -- A month whose rows already went to the default partition stays there.
        IF to_regclass(name) IS NULL AND NOT EXISTS (
            SELECT 1 FROM audit_log_default
            WHERE at >= (start + make_interval(months => i)) AT TIME ZONE 'UTC'
              AND at < (start + make_interval(months => i + 1)) AT TIME ZONE 'UTC') THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                           name, (start + make_interval(months => i)) AT TIME ZONE 'UTC',
                           (start + make_interval(months => i + 1)) AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I
                            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()', name);
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END;
$$;

-- The same JSON, without taking every row apart: the ignored keys removed by one
-- operator, the secret ones replaced by whether they are set.
CREATE OR REPLACE FUNCTION audit_shown(row_json jsonb, ignored text[], secret text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(secret) = 0 THEN row_json - ignored
           ELSE (row_json - ignored) || (SELECT coalesce(jsonb_object_agg(s, to_jsonb(row_json -> s <> 'null')), '{}')
                                         FROM unnest(secret) s WHERE row_json ? s AND NOT s = ANY (ignored)) END
$$;

-- (Re)creates `<table>_audit_update`, the update trigger of an audited table, and its
-- function `audit_update_<table>`, both written from the columns the table has now:
-- - a WHEN clause over every column but the ignored ones, so an update that changed only
--   those (a payment moving the balance, a job's progress, a login counter) does not even
--   call the function;
-- - a function that compares the recorded columns one by one and renders only those that
--   changed (before and after; a secret one only as changed). Rendering both whole rows
--   as JSON to diff them cost more than the update itself.
-- A migration that adds a column to an audited table calls this again
-- (tests/api/audit_log.rs fails until it does).
CREATE FUNCTION audit_watch_updates(tbl regclass, entity text, account_key text, ignored text[], secret text[],
                                    key text DEFAULT 'id') RETURNS void LANGUAGE plpgsql AS $watch$
DECLARE
    table_name text := (SELECT c.relname FROM pg_class c WHERE c.oid = tbl);
    fn text := 'audit_update_' || table_name;
    olds text;
    news text;
    diffs text;
BEGIN
    SELECT string_agg(format('OLD.%I', attname), ', ' ORDER BY attnum),
           string_agg(format('NEW.%I', attname), ', ' ORDER BY attnum),
           string_agg(format('IF OLD.%1$I IS DISTINCT FROM NEW.%1$I THEN changes := changes || jsonb_build_object(%2$L, %3$s); END IF;',
                             attname, attname,
                             CASE WHEN attname = ANY (secret) THEN '''{"changed": true}''::jsonb'
                                  ELSE format('jsonb_build_object(''before'', to_jsonb(OLD.%1$I), ''after'', to_jsonb(NEW.%1$I))', attname) END),
                      E'\n    ' ORDER BY attnum)
    INTO olds, news, diffs
    FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped AND NOT attname = ANY (ignored);
    EXECUTE format($f$CREATE OR REPLACE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    changes jsonb := '{}';
BEGIN
    %s
    IF changes = '{}' THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (actor, job, address, request_id, action, entity, entity_id, account_id, by_rule, details)
    VALUES (nullif(current_setting('arrears.actor', true), '')::uuid, nullif(current_setting('arrears.job', true), ''),
            nullif(current_setting('arrears.address', true), ''), nullif(current_setting('arrears.request_id', true), ''),
            %L, %L, NEW.%I::text, %s, pg_trigger_depth() > 1, jsonb_build_object('changes', changes));
    RETURN NULL;
END;
$body$$f$, fn, diffs, entity || '.update', entity, key,
        CASE WHEN account_key = '' THEN 'NULL' ELSE format('NEW.%I', account_key) END);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', table_name || '_audit_update', tbl);
    -- The ignored columns ride along as the trigger's argument (the function does not read
    -- it), so the catalog tells a column left out on purpose from one added since.
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (ROW(%s) IS DISTINCT FROM ROW(%s))
                    EXECUTE FUNCTION %I(%L)', table_name || '_audit_update', tbl, olds, news, fn, ignored);
END;
$watch$;

SELECT audit_watch_updates('accounts', 'account', 'id',
    '{search_version,updated_at,updated_by,created_at,created_by,current_balance}', '{}');
SELECT audit_watch_updates('payments', 'payment', 'account_id', '{search_version,updated_at}', '{}');
SELECT audit_watch_updates('users', 'user', '', '{created_at,updated_at,failed_logins,locked_until}', '{password_hash}');
SELECT audit_watch_updates('jobs', 'job', '',
    '{total,processed,succeeded,failed,heartbeat_at,result,started_at,finished_at,params}', '{}');
SELECT audit_watch_updates('second_factors', 'second_factor', '', '{created_at,last_used_step}', '{secret_sealed}', 'user_id');
SELECT audit_watch_updates('promises', 'promise', 'account_id', '{}', '{}');
SELECT audit_watch_updates('plans', 'plan', 'account_id', '{}', '{}');
DROP TRIGGER overrides_audit_update ON contact_overrides;
SELECT audit_watch_updates('contact_overrides', 'override', 'account_id', '{}', '{}');
SELECT audit_watch_updates('contact_policy', 'contact_policy', '', '{}', '{}');

DROP INDEX audit_log_entity_idx;
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, at DESC) WHERE account_id IS NULL;

-- `audit_changes` for the rows one INSERT statement made, over its transition table.
CREATE FUNCTION audit_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entity      text := TG_ARGV[0];
    account_key text := TG_ARGV[1];
    actor_key   text := TG_ARGV[2];
    ignored     text[] := TG_ARGV[3]::text[];
    secret      text[] := TG_ARGV[4]::text[];
    key         text := coalesce(TG_ARGV[5], 'id');
    who         uuid := nullif(current_setting('arrears.actor', true), '')::uuid;
BEGIN
    INSERT INTO audit_log (actor, job, address, request_id, action, entity, entity_id, account_id, by_rule, details)
    SELECT coalesce(who, (r.j ->> actor_key)::uuid), nullif(current_setting('arrears.job', true), ''),
           nullif(current_setting('arrears.address', true), ''), nullif(current_setting('arrears.request_id', true), ''),
           entity || '.create', entity, r.j ->> key, (r.j ->> account_key)::uuid, pg_trigger_depth() > 1,
           jsonb_build_object('row', audit_shown(r.j, ignored, secret))
    FROM (SELECT to_jsonb(n) AS j FROM inserted n) r;
    RETURN NULL;
END;
$$;
DROP TRIGGER payments_audit_insert ON payments;
CREATE TRIGGER payments_audit_insert AFTER INSERT ON payments REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION audit_inserted('payment', 'account_id', 'created_by',
        '{search_version,updated_at,created_at,created_by}', '{}');

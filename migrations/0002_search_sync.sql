-- Change-data capture for the search index (DESIGN.md, sync invariants 1-4).

-- Seeding with triggers disabled still draws versions from the one sequence.
ALTER TABLE accounts ALTER COLUMN search_version SET DEFAULT nextval('search_version_seq');

-- One row per changed entity. The worker rebuilds the document from SQL, so the row
-- only names what changed. `tombstone_version` is set when the row was hard-deleted.
CREATE TABLE search_outbox (
    id                bigserial PRIMARY KEY,
    entity            text NOT NULL,
    entity_id         uuid NOT NULL,
    tombstone_version bigint,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION enqueue_account_for_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO search_outbox (entity, entity_id, tombstone_version)
        VALUES ('account', OLD.id, nextval('search_version_seq'));
    ELSE
        INSERT INTO search_outbox (entity, entity_id) VALUES ('account', NEW.id);
    END IF;
    -- Identical notifications within one transaction are delivered once.
    PERFORM pg_notify('search_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_search_outbox
    AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION enqueue_account_for_search();

-- Sync workers announce the index they feed; a worker for a different embedded index
-- on the same database refuses to start (the outbox would be split between them).
CREATE TABLE sync_workers (
    id             uuid PRIMARY KEY,
    index_identity text NOT NULL,
    hostname       text NOT NULL,
    pid            integer NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now()
);

-- Work for the process that owns an embedded index, asked for by the CLI
-- (`arrears reindex` while a server runs); progress is read back from here.
CREATE TABLE search_tasks (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('reindex')),
    entity      text NOT NULL,
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    total       bigint NOT NULL DEFAULT 0,
    processed   bigint NOT NULL DEFAULT 0,
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);

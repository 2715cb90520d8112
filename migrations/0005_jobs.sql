-- Durable jobs (bulk updates, exports, imports): a SKIP LOCKED queue whose progress is
-- committed chunk by chunk, so a job whose process dies resumes where it stopped.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('import', 'bulk_update', 'export')),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN
                         ('queued', 'running', 'succeeded', 'partially_failed', 'failed', 'cancelled')),
    params           jsonb NOT NULL DEFAULT '{}',
    total            bigint NOT NULL DEFAULT 0,
    processed        bigint NOT NULL DEFAULT 0,
    succeeded        bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    result           jsonb,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_by       uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    heartbeat_at     timestamptz
);
CREATE INDEX jobs_created_by_idx ON jobs (created_by, created_at DESC, id DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_runnable_idx ON jobs (created_at) WHERE status IN ('queued', 'running');

-- The fixed set of rows a job works through, in order; `outcome` is written in the
-- same transaction as the row's change, so a resumed job skips what is done.
CREATE TABLE job_items (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    account_id uuid NOT NULL,
    outcome    text CHECK (outcome IN ('succeeded', 'failed')),
    error      text,
    PRIMARY KEY (job_id, seq)
);

-- Progress and completion reach the job's owner live (topic `jobs`, addressed to them).
CREATE FUNCTION job_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('id', NEW.id, 'kind', NEW.kind, 'status', NEW.status, 'total', NEW.total,
        'processed', NEW.processed, 'succeeded', NEW.succeeded, 'failed', NEW.failed,
        'started_at', NEW.started_at, 'finished_at', NEW.finished_at);
BEGIN
    IF NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL THEN
        PERFORM emit_event('job.finished', NEW.created_by, ARRAY['jobs'], data);
        PERFORM notify_user(NEW.created_by, 'job_finished',
            replace(NEW.kind, '_', ' ') || ' job ' || replace(NEW.status, '_', ' '), data);
    ELSIF NEW.processed IS DISTINCT FROM OLD.processed OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM emit_event('job.progress', NEW.created_by, ARRAY['jobs'], data);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_events
    AFTER UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION job_events();

-- A finished job's notification says what happened in words a person reads: "Import
-- dry run: 12 of 15 rows would be imported, 3 would be rejected", "Bulk update
-- finished: 40 done, 2 failed", rather than "import job partially failed". The
-- function is job_events() of migration 0005 with the title made by job_title().

CREATE FUNCTION job_title(job jobs) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN job.kind = 'import' AND job.params->>'mode' = 'dry_run' THEN
            'Import dry run: ' || job.succeeded || ' of ' || job.total || ' rows would be imported'
            || CASE WHEN job.failed > 0 THEN ', ' || job.failed || ' would be rejected' ELSE '' END
        ELSE
            CASE job.kind
                WHEN 'import' THEN 'Import'
                WHEN 'bulk_update' THEN 'Bulk update'
                WHEN 'export' THEN 'Export'
                WHEN 'document_upload' THEN 'Document upload'
                ELSE initcap(replace(job.kind, '_', ' '))
            END
            || CASE job.status
                WHEN 'succeeded' THEN ' finished'
                WHEN 'partially_failed' THEN ' finished: ' || job.succeeded || ' done, ' || job.failed || ' failed'
                WHEN 'failed' THEN ' failed'
                WHEN 'cancelled' THEN ' cancelled'
                ELSE ' ' || replace(job.status, '_', ' ')
            END
    END
$$;

CREATE OR REPLACE FUNCTION job_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('id', NEW.id, 'kind', NEW.kind, 'status', NEW.status, 'total', NEW.total,
        'processed', NEW.processed, 'succeeded', NEW.succeeded, 'failed', NEW.failed,
        'started_at', NEW.started_at, 'finished_at', NEW.finished_at);
BEGIN
    IF NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL THEN
        PERFORM emit_event('job.finished', NEW.created_by, ARRAY['jobs'], data);
        PERFORM notify_user(NEW.created_by, 'job_finished', job_title(NEW), data);
    ELSIF NEW.processed IS DISTINCT FROM OLD.processed OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM emit_event('job.progress', NEW.created_by, ARRAY['jobs'], data);
    END IF;
    RETURN NULL;
END;
$$;

-- The relay's work list moves out of `events` into a small queue table. Marking an
-- event published updated a row of a table that keeps a week of events, and the
-- partial index over unpublished rows filled with dead entries that every poll walked
-- through (milliseconds per poll, growing until a vacuum of the whole table). Now
-- `events` is insert-only and the relay deletes from `event_queue`, which stays small
-- and which it vacuums itself (as the sync worker does `search_outbox`), so neither
-- depends on autovacuum keeping up, or running at all.

CREATE TABLE event_queue (id bigint PRIMARY KEY);
INSERT INTO event_queue SELECT id FROM events WHERE published_at IS NULL;
DROP INDEX events_unpublished_idx;
ALTER TABLE events DROP COLUMN published_at;

-- Every committed event is queued, whoever inserted it (a trigger, a script, psql).
CREATE FUNCTION queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_queue SELECT id FROM inserted;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_queue
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION queue_events();

-- Both queues churn: where autovacuum runs, it should visit them often.
ALTER TABLE event_queue SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE search_outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

-- Documents Elasticsearch refused for good (a mapping error): kept for an operator
-- instead of blocking the outbox. `arrears verify` reports them as stale or missing,
-- and `verify --repair` re-enqueues them once the mapping is fixed.
CREATE TABLE search_dead_letters (
    id          bigserial PRIMARY KEY,
    entity      text NOT NULL,
    entity_id   uuid NOT NULL,
    version     bigint NOT NULL,
    target      text NOT NULL,
    error_type  text NOT NULL,
    reason      text NOT NULL,
    document    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_dead_letters_entity ON search_dead_letters (entity, entity_id);

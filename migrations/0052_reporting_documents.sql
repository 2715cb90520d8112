-- Activities (with their messages), promises and plans become documents of their own
-- for the reporting indices Kibana reads (docs/search.md, "Reporting indices"). They
-- carry the agent's name and team and the account's number and portfolio, so a change
-- to any of those queues the documents that show it.
--
-- A document's version lives here rather than on its row: bumping a version must not
-- fire the row's own triggers (audit, the account's re-index, the KPI days a change
-- forgets). Every change draws the version under this row's lock, in the transaction
-- that made the change, so a later commit always carries a larger version than what an
-- earlier one let a worker read (sync invariant 3, as for accounts).
CREATE TABLE report_versions (
    entity    text NOT NULL CHECK (entity IN ('activity', 'promise', 'plan')),
    entity_id uuid NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (entity, entity_id)
);

-- Draws new versions for the documents and queues them for the index.
CREATE FUNCTION queue_reports(kind text, ids uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_versions (entity, entity_id, version)
    SELECT kind, id, nextval('search_version_seq') FROM unnest(ids) AS id
    ON CONFLICT (entity, entity_id) DO UPDATE SET version = EXCLUDED.version;
    INSERT INTO search_outbox (entity, entity_id) SELECT kind, id FROM unnest(ids) AS id;
$$;

-- TG_ARGV[0] is the document kind; the row's own id is the document's.
CREATE FUNCTION queue_report_of_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM report_versions WHERE entity = TG_ARGV[0] AND entity_id = OLD.id;
        INSERT INTO search_outbox (entity, entity_id, tombstone_version)
        VALUES (TG_ARGV[0], OLD.id, nextval('search_version_seq'));
    ELSE
        PERFORM queue_reports(TG_ARGV[0], ARRAY[NEW.id]);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER activities_report AFTER INSERT OR UPDATE OR DELETE ON activities
    FOR EACH ROW EXECUTE FUNCTION queue_report_of_row('activity');
CREATE TRIGGER promises_report AFTER INSERT OR UPDATE OR DELETE ON promises
    FOR EACH ROW EXECUTE FUNCTION queue_report_of_row('promise');
CREATE TRIGGER plans_report AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH ROW EXECUTE FUNCTION queue_report_of_row('plan');

-- A message's channel and how its sending went are part of its activity's document.
CREATE FUNCTION queue_report_of_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports('activity', ARRAY[NEW.activity_id]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER account_messages_report AFTER INSERT OR UPDATE OF status, attempts, provider ON account_messages
    FOR EACH ROW EXECUTE FUNCTION queue_report_of_message();

-- Every document an agent's name or team shows: the activities they logged, the
-- promises and plans they made.
CREATE FUNCTION queue_reports_of_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports('activity', ARRAY(SELECT id FROM activities WHERE agent_id = NEW.id));
    PERFORM queue_reports('promise', ARRAY(SELECT id FROM promises WHERE created_by = NEW.id));
    PERFORM queue_reports('plan', ARRAY(SELECT id FROM plans WHERE created_by = NEW.id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_report AFTER UPDATE OF name, team ON users
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.team IS DISTINCT FROM NEW.team)
    EXECUTE FUNCTION queue_reports_of_user();

-- Every document an account's number, portfolio or deletion shows.
CREATE FUNCTION queue_reports_of_accounts(accounts uuid[]) RETURNS void LANGUAGE sql AS $$
    SELECT queue_reports('activity', ARRAY(SELECT id FROM activities WHERE account_id = ANY (accounts)));
    SELECT queue_reports('promise', ARRAY(SELECT id FROM promises WHERE account_id = ANY (accounts)));
    SELECT queue_reports('plan', ARRAY(SELECT id FROM plans WHERE account_id = ANY (accounts)));
$$;

CREATE FUNCTION queue_reports_of_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports_of_accounts(ARRAY[NEW.id]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_report AFTER UPDATE OF account_number, portfolio_id, deleted_at ON accounts
    FOR EACH ROW
    WHEN (OLD.account_number IS DISTINCT FROM NEW.account_number OR OLD.portfolio_id IS DISTINCT FROM NEW.portfolio_id
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION queue_reports_of_account();

CREATE FUNCTION queue_reports_of_portfolio() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports_of_accounts(ARRAY(SELECT id FROM accounts WHERE portfolio_id = NEW.id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER portfolios_report AFTER UPDATE OF name ON portfolios
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION queue_reports_of_portfolio();

-- The rows that exist now get versions; a reporting index created empty is built from
-- them (the sync's first backfill), so they are not queued.
INSERT INTO report_versions (entity, entity_id, version)
SELECT 'activity', id, nextval('search_version_seq') FROM activities;
INSERT INTO report_versions (entity, entity_id, version)
SELECT 'promise', id, nextval('search_version_seq') FROM promises;
INSERT INTO report_versions (entity, entity_id, version)
SELECT 'plan', id, nextval('search_version_seq') FROM plans;

-- The daily KPI figures as reporting documents (docs/search.md, "Reporting indices"):
-- per UTC day, agent and portfolio, the contact attempts, right-party contacts and
-- promises (kind `work`), the money collected per currency (`collected`), and the bucket
-- moves from the day before's snapshot (`moves`, the roll rates).
--
-- They are kept here as the sync indexes them, one row per document, refreshed from the
-- kept figures when a day is kept (and today every half minute), when the day's moves
-- are kept, and when an agent's name or team or a portfolio's name changes. A document
-- whose source changed draws a new version and is queued; one the figures no longer
-- hold (a refund took a day's last payment of a currency back) is deleted and queued as
-- a tombstone; an unchanged one is left alone.
CREATE TABLE kpi_documents (
    id      uuid PRIMARY KEY,
    day     date NOT NULL,
    version bigint NOT NULL,
    source  jsonb NOT NULL
);
CREATE INDEX kpi_documents_day ON kpi_documents (day);

-- The delinquency buckets from best to worst (domain::search::ALL_BUCKETS; a test holds
-- the two to the same order).
CREATE FUNCTION kpi_bucket_order() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['current', '1-29', '30-59', '60-89', '90-119', '120+']
$$;

-- The documents of day `d` as the kept figures and moves say now, with their ids.
CREATE FUNCTION kpi_day_documents(d date) RETURNS TABLE (id uuid, source jsonb) LANGUAGE sql STABLE AS $$
    WITH work AS (
        SELECT agent_id, portfolio_id, contact_attempts, right_party_contacts, 0 AS made, 0 AS kept, 0 AS broken
        FROM kpi_day_work WHERE day = d
        UNION ALL
        SELECT agent_id, portfolio_id, 0, 0, made, kept, broken
        FROM kpi_day_promises WHERE day = d
    ), facts AS (
        SELECT 'work' AS kind, agent_id, portfolio_id, NULL AS part,
               jsonb_build_object('contact_attempts', sum(contact_attempts),
                   'right_party_contacts', sum(right_party_contacts), 'promises_made', sum(made),
                   'promises_kept', sum(kept), 'promises_broken', sum(broken)) AS figures
        FROM work GROUP BY agent_id, portfolio_id
        UNION ALL
        SELECT 'collected', agent_id, portfolio_id, currency,
               jsonb_build_object('currency', currency, 'collected', sum(amount))
        FROM kpi_day_collected WHERE day = d
        GROUP BY agent_id, portfolio_id, currency
        HAVING sum(amount) <> 0
        UNION ALL
        SELECT 'moves', agent_id, portfolio_id, opening_bucket || '>' || closing_bucket,
               jsonb_build_object('opening_bucket', opening_bucket, 'closing_bucket', closing_bucket,
                   'roll', CASE sign(array_position(kpi_bucket_order(), closing_bucket)
                                     - array_position(kpi_bucket_order(), opening_bucket))
                           WHEN 1 THEN 'rolled' WHEN 0 THEN 'stayed' ELSE 'improved' END,
                   'accounts', sum(accounts), 'cured', sum(cured))
        FROM kpi_moves WHERE opening = d - 1 AND closing = d
        GROUP BY agent_id, portfolio_id, opening_bucket, closing_bucket
    )
    SELECT md5(concat_ws('|', 'kpi', d, f.kind, coalesce(f.agent_id::text, '-'),
                         coalesce(f.portfolio_id::text, '-'), coalesce(f.part, '-')))::uuid,
           jsonb_build_object('day', d, 'kind', f.kind,
               'agent', CASE WHEN u.id IS NULL THEN NULL
                        ELSE jsonb_build_object('id', u.id, 'name', u.name, 'team', u.team) END,
               'portfolio', CASE WHEN p.id IS NULL THEN NULL
                            ELSE jsonb_build_object('id', p.id, 'name', p.name) END) || f.figures
    FROM facts f
    LEFT JOIN users u ON u.id = f.agent_id
    LEFT JOIN portfolios p ON p.id = f.portfolio_id
$$;

-- Brings the documents of `days` in line with their figures, queueing what changed. It
-- takes the lock that keeping a day takes (and the keeping transaction holds already), so
-- a rename's refresh reads the figures a keeping under way is writing only once they are
-- committed, and the later refresh of a day always writes the later figures.
CREATE FUNCTION refresh_kpi_documents(days date[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(days) = 0 THEN
        RETURN;
    END IF;
    LOCK TABLE kpi_days IN SHARE ROW EXCLUSIVE MODE;
    WITH now_held AS (
        SELECT d.day, k.id, k.source FROM unnest(days) AS d(day), kpi_day_documents(d.day) AS k
    ), gone AS (
        DELETE FROM kpi_documents o
        WHERE o.day = ANY (days) AND NOT EXISTS (SELECT 1 FROM now_held n WHERE n.id = o.id)
        RETURNING o.id
    ), changed AS (
        INSERT INTO kpi_documents (id, day, version, source)
        SELECT n.id, n.day, nextval('search_version_seq'), n.source FROM now_held n
        ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source
        WHERE kpi_documents.source IS DISTINCT FROM EXCLUDED.source
        RETURNING kpi_documents.id
    )
    INSERT INTO search_outbox (entity, entity_id, tombstone_version)
    SELECT 'kpi_day', id, nextval('search_version_seq') FROM gone
    UNION ALL
    SELECT 'kpi_day', id, NULL FROM changed;
END;
$$;

-- Kept figures are written after their day's row in the keeping transaction, and moves
-- after their pair's row: the refresh runs at commit, when all of them are there.
CREATE FUNCTION refresh_kpi_documents_of_day() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_kpi_documents(ARRAY[NEW.day]);
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER kpi_days_documents AFTER INSERT OR UPDATE ON kpi_days
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION refresh_kpi_documents_of_day();

CREATE FUNCTION refresh_kpi_documents_of_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_kpi_documents(ARRAY[NEW.closing]);
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER kpi_move_pairs_documents AFTER INSERT ON kpi_move_pairs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.closing = NEW.opening + 1)
    EXECUTE FUNCTION refresh_kpi_documents_of_moves();

-- An agent's new name or team, a portfolio's new name: the days whose documents show it.
CREATE OR REPLACE FUNCTION queue_reports_of_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports('activity', ARRAY(SELECT id FROM activities WHERE agent_id = NEW.id));
    PERFORM queue_reports('promise', ARRAY(SELECT id FROM promises WHERE created_by = NEW.id));
    PERFORM queue_reports('plan', ARRAY(SELECT id FROM plans WHERE created_by = NEW.id));
    PERFORM refresh_kpi_documents(ARRAY(
        SELECT DISTINCT day FROM kpi_documents WHERE source -> 'agent' ->> 'id' = NEW.id::text));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION queue_reports_of_portfolio() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_reports_of_accounts(ARRAY(SELECT id FROM accounts WHERE portfolio_id = NEW.id));
    PERFORM refresh_kpi_documents(ARRAY(
        SELECT DISTINCT day FROM kpi_documents WHERE source -> 'portfolio' ->> 'id' = NEW.id::text));
    RETURN NULL;
END;
$$;

-- The days kept so far have their documents now; a reporting index created empty is
-- built from them.
INSERT INTO kpi_documents (id, day, version, source)
SELECT k.id, d.day, nextval('search_version_seq'), k.source
FROM kpi_days d, kpi_day_documents(d.day) k;

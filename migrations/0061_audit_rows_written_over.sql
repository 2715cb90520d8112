-- `arrears audit verify` also reads PostgreSQL's own counts of the rows updated and
-- deleted in each audit partition (pg_stat_user_tables): the append-only trigger refuses
-- both, so any count above what was seen before is a superuser who switched triggers
-- off, even in the transaction that wrote the row, before the sealer could seal it
-- (docs/features/audit.md, "What verify cannot tell").
--
-- The counts seen so far, per partition: a release before 0035 sealed by updating each
-- row, and a partition it sealed keeps those updates in its counts.
CREATE TABLE audit_write_counts (
    partition   text PRIMARY KEY,
    updated     bigint NOT NULL,
    deleted     bigint NOT NULL,
    counted_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO audit_write_counts (partition, updated, deleted)
SELECT c.relname, coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE i.inhparent = 'audit_log'::regclass;

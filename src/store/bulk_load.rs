//! Bulk loading for demo and benchmark data: CSV through COPY, and the outbox triggers
//! switched off where the role allows (the index is then rebuilt in one pass), and the
//! planner's statistics refreshed after.

use anyhow::Context;

/// Loads `data` (CSV) into `table`'s `columns`; both names are the program's own.
pub async fn copy_csv(conn: &mut sqlx::PgConnection, table: &'static str, columns: &'static str, data: &str) -> anyhow::Result<()> {
    let mut copy_in = conn
        .copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '')"))
        .await
        .context("starting COPY")?;
    copy_in.send(data.as_bytes()).await.context("sending rows")?;
    copy_in.finish().await.context("finishing COPY")?;
    Ok(())
}

/// Turns the per-row triggers off (`skip`) or back on for this session: whether the
/// database allowed it (a superuser only).
pub async fn skip_triggers(conn: &mut sqlx::PgConnection, skip: bool) -> bool {
    let statement = if skip {
        "SET session_replication_role = replica"
    } else {
        "SET session_replication_role = origin"
    };
    sqlx::query(statement).execute(conn).await.is_ok()
}

/// Refreshes the planner's statistics of `tables` (the program's own names) after a bulk
/// load: until autovacuum gets to them the planner takes the loaded tables for nearly
/// empty, and the first reindex of 20,000 seeded accounts took 72 s instead of 1.8 s.
pub async fn analyze(conn: &mut sqlx::PgConnection, tables: &[&'static str]) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {}", tables.join(", "))))
        .execute(conn)
        .await
        .context("analysing the loaded tables")?;
    Ok(())
}

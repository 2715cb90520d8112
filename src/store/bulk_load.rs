//! Bulk loading for demo and benchmark data: CSV through COPY, and the outbox triggers
//! switched off where the role allows (the index is then rebuilt in one pass).

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

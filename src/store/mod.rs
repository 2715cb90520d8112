//! PostgreSQL access. The only module with SQL.

pub mod accounts;
pub mod activities;
pub mod dead_letters;
pub mod documents;
pub mod events;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod notifications;
pub mod outbox;
pub mod payments;
pub mod promises;
pub mod search_tasks;
pub mod sessions;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Connects to the database named in `url`, creating it first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
    ensure_database(&options).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone().disable_statement_logging())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}:{}", options.get_host(), options.get_port()))
}

async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}:{} (is it running?)",
                options.get_host(),
                options.get_port()
            )
        })?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await;
        // Two processes starting together may race to create it; losing the race is fine.
        if let Err(err) = created {
            let duplicate = err
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !duplicate {
                return Err(err).context("creating the database");
            }
        }
        tracing::info!(database = %name, "created database");
    }
    admin.close().await.ok();
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations").run(pool).await.context("running migrations")
}

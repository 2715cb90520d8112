//! PostgreSQL access. The only module with SQL.

pub mod accounts;
pub mod activities;
pub mod attachments;
pub mod audit_log;
pub mod bulk_load;
pub mod calls;
pub mod compliance;
pub mod dead_letters;
pub mod document_uploads;
pub mod documents;
pub mod events;
pub mod fields;
pub mod idempotency;
pub mod imports;
pub mod inbound;
pub mod jobs;
pub mod keyset;
pub mod kpis;
pub mod login_failures;
pub mod messages;
pub mod notifications;
pub mod outbox;
pub mod password_resets;
pub mod payment_writer;
pub mod payments;
pub mod plans;
pub mod portfolios;
pub mod promises;
pub mod queue;
pub mod rebuild_locks;
pub mod reports;
pub mod search_tasks;
pub mod second_factors;
pub mod sessions;
pub mod sync_workers;
pub mod timeline;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A transaction whose changes the audit trail records as `actor`'s, with the address
/// and id of the request being served (migrations/0030_audit_log.sql); without it a
/// change shows as the database user's.
pub async fn begin_as(pool: &PgPool, actor: Uuid) -> crate::error::Result<Transaction<'static, Postgres>> {
    begin_recorded(pool, Some(actor), None).await
}

/// A transaction whose changes the audit trail records as the job or scheduler `job`'s
/// (`import:<id>`, `scheduler:promises`), run for `by` when a user started it.
pub async fn begin_for_job(pool: &PgPool, job: &str, by: Option<Uuid>) -> crate::error::Result<Transaction<'static, Postgres>> {
    begin_recorded(pool, by, Some(job)).await
}

/// A transaction recorded as [`record_as`] says.
pub async fn begin_recorded(pool: &PgPool, actor: Option<Uuid>, job: Option<&str>) -> crate::error::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    record_as(&mut tx, actor, job).await?;
    Ok(tx)
}

/// Names, for the rest of the transaction on `conn`, who its changes are recorded as in
/// the audit trail: `actor`, `job`, and the address and id of the request being served.
/// For a transaction that learns its actor as it goes (a reset token names its user).
pub async fn record_as(conn: &mut sqlx::PgConnection, actor: Option<Uuid>, job: Option<&str>) -> crate::error::Result<()> {
    let request = crate::telemetry::current_request();
    sqlx::query(
        "SELECT set_config('arrears.actor', coalesce($1, ''), true), set_config('arrears.job', coalesce($2, ''), true),
                set_config('arrears.address', coalesce($3, ''), true), set_config('arrears.request_id', coalesce($4, ''), true)",
    )
    .bind(actor.map(|a| a.to_string()))
    .bind(job)
    .bind(request.as_ref().map(|r| r.client.as_str()))
    .bind(request.as_ref().map(|r| r.id.as_str()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Connects to the database named in `url`, creating it first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = connect_options(url, std::env::var_os("PGSSLMODE").is_some())?;
    ensure_database(&options).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // Each acquire's wait, for `telemetry::queries` (an event only a listener formats).
        .acquire_time_level(log::LevelFilter::Trace)
        .connect_with(statements_reported(options.clone()))
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}:{}", options.get_host(), options.get_port()))
}

/// `options` with every statement reported as a `sqlx::query` event at TRACE, which
/// `telemetry::queries` times when `QUERY_TIMING` is on (sqlx formats the event only when
/// a subscriber listens), and no slow-statement warnings (the timing covers them).
fn statements_reported(options: PgConnectOptions) -> PgConnectOptions {
    options
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(1))
}

/// The options in `url`, except that a server on this machine is reached without TLS
/// unless the URL (or `PGSSLMODE`, `env_ssl_mode`) asks for a mode: the driver's default
/// ("prefer") encrypts loopback traffic, which protects nothing and cost a few percent
/// of both the server's and the service's CPU on every statement.
fn connect_options(url: &str, env_ssl_mode: bool) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
    let explicit = env_ssl_mode
        || url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("sslmode=") || p.starts_with("ssl-mode=")));
    let host = options.get_host().trim_start_matches('[').trim_end_matches(']');
    let local = options.get_socket().is_some() || host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Ok(if local && !explicit {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
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

/// A round trip to the database, for readiness.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// The schema's migrations, embedded when the crate compiles (`build.rs` rebuilds it when
/// `migrations/` changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("running migrations")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str, env: bool) -> PgSslMode {
        connect_options(url, env).unwrap().get_ssl_mode()
    }

    /// What the driver alone makes of `url` (its default, or `PGSSLMODE` when the
    /// environment running the tests sets it).
    fn driver_mode(url: &str) -> PgSslMode {
        PgConnectOptions::from_str(url).unwrap().get_ssl_mode()
    }

    #[test]
    fn loopback_servers_skip_tls_unless_asked() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/a",
            "postgres://u@localhost/a",
            "postgres://u@[::1]/a",
        ] {
            assert!(matches!(mode(url, false), PgSslMode::Disable), "{url}");
            assert_eq!(
                format!("{:?}", mode(url, true)),
                format!("{:?}", driver_mode(url)),
                "{url} with PGSSLMODE set"
            );
        }
        assert!(matches!(
            mode("postgres://u@127.0.0.1/a?sslmode=require", false),
            PgSslMode::Require
        ));
        assert!(matches!(mode("postgres://u@127.0.0.1/a?ssl-mode=prefer", false), PgSslMode::Prefer));
        for remote in ["postgres://u@db.internal/a", "postgres://u@10.0.0.5/a"] {
            assert_eq!(
                format!("{:?}", mode(remote, false)),
                format!("{:?}", driver_mode(remote)),
                "{remote}"
            );
        }
    }
}

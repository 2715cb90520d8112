//! Test databases: each test's is a copy of one migrated template (`CREATE DATABASE …
//! TEMPLATE`), not 57 migrations run again, and is dropped when the test's app is.
//!
//! The template's name carries a digest of the migrations (versions and checksums), so a
//! changed or added migration makes a new template and the old ones are dropped. Test
//! processes run in parallel (cargo-nextest runs each test in a process of its own):
//! the first to need the template builds it under an advisory lock while the others wait,
//! and it is marked `IS_TEMPLATE` only once fully migrated, so a process killed while
//! building it leaves nothing another would copy.

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::OnceCell;

/// The advisory lock (on the `postgres` database) held while a template is built.
const TEMPLATE_LOCK: i64 = 0x4172_7265_6172_7354; // "ArrearsT"

/// The template's name for this build's migrations, built at most once per process.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

fn options(url: &str) -> PgConnectOptions {
    url.parse::<PgConnectOptions>().expect("a PostgreSQL URL")
}

/// A connection to the server's `postgres` database, where databases are made and dropped.
async fn admin(url: &str) -> PgConnection {
    let options = options(url).database("postgres").log_statements(log::LevelFilter::Debug);
    PgConnection::connect_with(&options)
        .await
        .expect("PostgreSQL answers (bin/test starts it)")
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn template_name() -> String {
    let mut digest = Sha256::new();
    for migration in arrears::store::MIGRATOR.iter() {
        digest.update(migration.version.to_be_bytes());
        digest.update(&*migration.checksum);
    }
    format!("arrears_template_{}", &hex::encode(digest.finalize())[..16])
}

async fn template(url: &str) -> &'static str {
    TEMPLATE.get_or_init(|| build_template(url.to_owned())).await
}

async fn build_template(url: String) -> String {
    let name = template_name();
    let mut admin = admin(&url).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .unwrap();
    let ready: Option<bool> = sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if ready != Some(true) {
        let stale: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'arrears\\_template\\_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap();
        for old in stale {
            let unmark = format!("ALTER DATABASE {} IS_TEMPLATE false", quoted(&old));
            sqlx::raw_sql(sqlx::AssertSqlSafe(unmark)).execute(&mut admin).await.unwrap();
            let drop = format!("DROP DATABASE {} WITH (FORCE)", quoted(&old));
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.unwrap();
        }
        let create = format!("CREATE DATABASE {}", quoted(&name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.unwrap();
        let mut migrated = PgConnection::connect_with(&options(&url).database(&name))
            .await
            .expect("the template database accepts connections");
        arrears::store::MIGRATOR.run(&mut migrated).await.expect("the migrations run");
        migrated.close().await.unwrap();
        let mark = format!("ALTER DATABASE {} IS_TEMPLATE true", quoted(&name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(mark)).execute(&mut admin).await.unwrap();
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    name
}

/// Creates the database `url` names as a copy of the migrated template, unless it
/// exists; says whether it made it.
pub async fn create_migrated(url: &str) -> bool {
    let template = template(url).await;
    let name = options(url).get_database().expect("a database name").to_owned();
    let mut admin = admin(url).await;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    if !exists {
        let create = format!("CREATE DATABASE {} TEMPLATE {}", quoted(&name), quoted(template));
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("a copy of the template database");
    }
    admin.close().await.ok();
    !exists
}

/// Drops the database `url` names, ending its sessions; for `Drop`, so it blocks (on a
/// thread of its own, with a runtime of its own) and ignores failures: a database left
/// behind is dropped by the next `bin/test`.
pub fn drop_now(url: &str) {
    let url = url.to_owned();
    let dropping = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let name = options(&url).get_database()?.to_owned();
            let options = options(&url).database("postgres").log_statements(log::LevelFilter::Debug);
            let mut admin = PgConnection::connect_with(&options).await.ok()?;
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&name));
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.ok()?;
            admin.close().await.ok()
        })
    });
    let _ = dropping.join();
}

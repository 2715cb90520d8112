//! Migrations over existing data: for every earlier migration N, a database migrated to
//! N with rows in every table that exists at N (users, sessions, accounts, payments,
//! promises, activities, events, search tasks, plans, snapshots, kept KPI days) is
//! migrated to the latest, and each later migration's backfill is checked on those rows;
//! the result has the schema a fresh database gets.

use std::collections::BTreeMap;

use arrears::store::MIGRATOR;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::test_settings;

/// A database of its own with nothing in it, not even the migrations table.
async fn empty_pool() -> PgPool {
    arrears::store::connect(&test_settings().database_url, 4).await.unwrap()
}

/// The rows written at N that the checks look at again.
struct Seeded {
    at: i64,
    /// Assigned to the agent, with a payment, an open promise and a call from 0003 on.
    live: Uuid,
    /// Soft-deleted after its payment was recorded.
    deleted: Uuid,
    /// Disputed, never verified.
    disputed: Uuid,
    users: [(Uuid, &'static str); 2],
    session: Uuid,
    /// `(account, search_version)` of each account after seeding.
    account_versions: BTreeMap<Uuid, i64>,
    /// `(account, current_balance)` after seeding.
    balances: BTreeMap<Uuid, rust_decimal::Decimal>,
    /// The payments of the live and the deleted account, with their search versions.
    live_payment: Option<(Uuid, i64)>,
    deleted_payment: Option<(Uuid, i64)>,
    /// Events that were published / not yet published when the relay still marked them.
    published_events: Vec<i64>,
    unpublished_events: Vec<i64>,
    search_task: Option<Uuid>,
    plan: Option<Uuid>,
    snapshot_day: Option<chrono::NaiveDate>,
    kept_day: Option<chrono::NaiveDate>,
    /// From 0039 on: the live account's portfolio, and a day kept before 0041.
    portfolio: Option<Uuid>,
    kept_before_portfolios: Option<chrono::NaiveDate>,
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Writes representative rows into a database migrated to `at`, as that version's
/// application would have left them (its triggers run as they did then).
async fn seed(pool: &PgPool, at: i64) -> Seeded {
    let admin = Uuid::new_v4();
    let agent = Uuid::new_v4();
    for (id, role) in [(admin, "admin"), (agent, "agent")] {
        sqlx::query("INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, 'not-a-hash')")
            .bind(id)
            .bind(format!("{role}-{id}@example.com"))
            .bind(format!("The {role}"))
            .bind(role)
            .execute(pool)
            .await
            .unwrap();
    }
    let session = Uuid::new_v4();
    sqlx::query("INSERT INTO auth_sessions (id, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day')")
        .bind(session)
        .bind(agent)
        .execute(pool)
        .await
        .unwrap();
    let (live, deleted, disputed) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (n, (id, status, owner)) in [
        (live, "delinquent", Some(agent)),
        (deleted, "active", None),
        (disputed, "disputed", Some(agent)),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency,
                                   timezone, status, due_date, assigned_agent_id, created_by)
             VALUES ($1, $2, $3, 1000, 1000, 'USD', 'America/New_York', $4, '2026-01-15', $5, $6)",
        )
        .bind(id)
        .bind(format!("M{at}-{n}"))
        .bind(format!("Debtor {n}"))
        .bind(status)
        .bind(owner)
        .bind(admin)
        .execute(pool)
        .await
        .unwrap();
    }
    let mut seeded = Seeded {
        at,
        live,
        deleted,
        disputed,
        users: [(admin, "admin"), (agent, "agent")],
        session,
        account_versions: BTreeMap::new(),
        balances: BTreeMap::new(),
        live_payment: None,
        deleted_payment: None,
        published_events: Vec::new(),
        unpublished_events: Vec::new(),
        search_task: None,
        plan: None,
        snapshot_day: None,
        kept_day: None,
        portfolio: None,
        kept_before_portfolios: None,
    };
    if at >= 2 {
        let task = Uuid::new_v4();
        sqlx::query("INSERT INTO search_tasks (id, kind, entity, status) VALUES ($1, 'reindex', 'account', 'succeeded')")
            .bind(task)
            .execute(pool)
            .await
            .unwrap();
        seeded.search_task = Some(task);
    }
    if at >= 3 {
        let mut payments = Vec::new();
        for account in [live, deleted] {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at, created_by)
                 VALUES ($1, $2, 100, 'USD', 'card', 'completed', '2026-01-20T10:00:00Z', $3)",
            )
            .bind(id)
            .bind(account)
            .bind(admin)
            .execute(pool)
            .await
            .unwrap();
            payments.push(id);
        }
        sqlx::query("INSERT INTO promises (id, account_id, amount, due_date, created_by) VALUES ($1, $2, 50, '2026-02-01', $3)")
            .bind(Uuid::new_v4())
            .bind(live)
            .bind(agent)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id)
             VALUES ($1, $2, 'call', 'outbound', 'right_party', '2026-01-20T15:00:00Z', $3)",
        )
        .bind(Uuid::new_v4())
        .bind(live)
        .bind(agent)
        .execute(pool)
        .await
        .unwrap();
        let version = |id: Uuid| async move {
            sqlx::query_scalar::<_, i64>("SELECT search_version FROM payments WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap()
        };
        seeded.live_payment = Some((payments[0], version(payments[0]).await));
        seeded.deleted_payment = Some((payments[1], 0));
    }
    sqlx::query("UPDATE accounts SET deleted_at = '2026-01-25T00:00:00Z' WHERE id = $1")
        .bind(deleted)
        .execute(pool)
        .await
        .unwrap();
    if let Some((id, _)) = seeded.deleted_payment {
        let version: i64 = sqlx::query_scalar("SELECT search_version FROM payments WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
        seeded.deleted_payment = Some((id, version));
    }
    if at >= 4 {
        for (kind, done) in [("test.published", "now()"), ("test.waiting", "NULL")] {
            let sql = if at < 10 {
                format!("INSERT INTO events (kind, topics, data, published_at) VALUES ('{kind}', '{{accounts}}', '{{}}', {done})")
            } else {
                format!("INSERT INTO events (kind, topics, data) VALUES ('{kind}', '{{accounts}}', '{{}}')")
            };
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        }
        if at < 10 {
            seeded.published_events = sqlx::query_scalar("SELECT id FROM events WHERE published_at IS NOT NULL ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
            seeded.unpublished_events = sqlx::query_scalar("SELECT id FROM events WHERE published_at IS NULL ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        }
    }
    if at >= 17 {
        let plan = Uuid::new_v4();
        sqlx::query("INSERT INTO plans (id, account_id, total, frequency, first_due_date, created_by) VALUES ($1, $2, 200, 'weekly', '2026-02-01', $3)")
            .bind(plan)
            .bind(disputed)
            .bind(agent)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO plan_instalments (plan_id, seq, due_date, amount) VALUES ($1, 1, '2026-02-01', 100), ($1, 2, '2026-02-08', 100)",
        )
        .bind(plan)
        .execute(pool)
        .await
        .unwrap();
        seeded.plan = Some(plan);
    }
    if at >= 18 {
        exec(pool, "UPDATE users SET team = 'north' WHERE role = 'agent'").await;
        let day: chrono::NaiveDate = "2026-01-21".parse().unwrap();
        sqlx::query(
            "INSERT INTO account_day_snapshots (day, account_id, bucket, assigned_agent_id, status, current_balance, currency)
             SELECT $1, id, '1-29', assigned_agent_id, status, current_balance, currency FROM accounts WHERE deleted_at IS NULL",
        )
        .bind(day)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO account_snapshot_days (day, accounts) VALUES ($1, 2)")
            .bind(day)
            .execute(pool)
            .await
            .unwrap();
        seeded.snapshot_day = Some(day);
    }
    if (20..21).contains(&at) {
        // A day kept in 0020's form (uuid arrays), which 0021 cannot read.
        let day: chrono::NaiveDate = "2026-01-20".parse().unwrap();
        sqlx::query("INSERT INTO kpi_days (day) VALUES ($1)")
            .bind(day)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO kpi_day_work (day, agent_id, bucket, accounts, contact_attempts, right_party_contacts)
             VALUES ($1, $2, '1-29', ARRAY[$3]::uuid[], 1, 1)",
        )
        .bind(day)
        .bind(agent)
        .bind(live)
        .execute(pool)
        .await
        .unwrap();
        seeded.kept_day = Some(day);
    }
    // From 0039 on, whose backfill re-versions the payments of accounts in a portfolio.
    if at >= 39 {
        let portfolio = Uuid::new_v4();
        sqlx::query("INSERT INTO portfolios (id, name) VALUES ($1, 'Placement')")
            .bind(portfolio)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE accounts SET portfolio_id = $1 WHERE id = $2")
            .bind(portfolio)
            .bind(live)
            .execute(pool)
            .await
            .unwrap();
        seeded.portfolio = Some(portfolio);
        // Moving an account re-versions its payments (0039).
        if let Some((id, _)) = seeded.live_payment {
            let version: i64 = sqlx::query_scalar("SELECT search_version FROM payments WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
            seeded.live_payment = Some((id, version));
        }
        let day: chrono::NaiveDate = "2026-01-20".parse().unwrap();
        sqlx::query("INSERT INTO kpi_days (day, kept_until) VALUES ($1, '2026-01-21T00:00:00Z')")
            .bind(day)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO kpi_day_work (day, agent_id, bucket, accounts, contact_attempts, right_party_contacts)
             VALUES ($1, $2, '1-29', '\\x00000001'::bytea, 1, 1)",
        )
        .bind(day)
        .bind(agent)
        .execute(pool)
        .await
        .unwrap();
        seeded.kept_before_portfolios = Some(day);
    }
    if at >= 2 {
        // As if the sync worker had drained the outbox: what is in it after migrating,
        // the migrations put there.
        exec(pool, "DELETE FROM search_outbox").await;
    }
    let versions: Vec<(Uuid, i64, rust_decimal::Decimal)> = sqlx::query_as("SELECT id, search_version, current_balance FROM accounts")
        .fetch_all(pool)
        .await
        .unwrap();
    for (id, version, balance) in versions {
        seeded.account_versions.insert(id, version);
        seeded.balances.insert(id, balance);
    }
    seeded
}

async fn scalar<T>(pool: &PgPool, sql: &'static str, id: Uuid) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Checks, on the rows seeded at `s.at`, the data each later migration changes; returns
/// the migrations whose backfills were checked.
async fn check(pool: &PgPool, s: &Seeded) -> Vec<i64> {
    let at = s.at;
    let mut checked = Vec::new();
    let later = |n: i64| at < n;

    // Every row is still there, with what it said (accounts keep their versions and
    // balances: 0002 only gives search_version a default and 0003 only drops the
    // balance check; nothing re-versions an account whose payments did not change).
    let mut versions = s.account_versions.clone();
    if later(14) {
        versions.remove(&s.deleted);
    }
    for (id, version) in &versions {
        let now: i64 = scalar(pool, "SELECT search_version FROM accounts WHERE id = $1", *id).await;
        assert_eq!(now, *version, "account {id} kept its version (seeded at {at})");
    }
    for (id, balance) in &s.balances {
        let now: rust_decimal::Decimal = scalar(pool, "SELECT current_balance FROM accounts WHERE id = $1", *id).await;
        assert_eq!(now, *balance, "account {id} kept its balance (seeded at {at})");
    }
    if later(2) {
        let default: Option<String> = sqlx::query_scalar(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'search_version'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(default.as_deref(), Some("nextval('search_version_seq'::regclass)"));
        checked.push(2);
    }
    if later(3) {
        // A credit is allowed on an account that existed before.
        sqlx::query("UPDATE accounts SET current_balance = -5 WHERE id = $1")
            .bind(s.live)
            .execute(pool)
            .await
            .expect("0003 dropped the balance check");
        sqlx::query("UPDATE accounts SET current_balance = $2 WHERE id = $1")
            .bind(s.live)
            .bind(s.balances[&s.live])
            .execute(pool)
            .await
            .unwrap();
        exec(pool, "DELETE FROM search_outbox WHERE entity = 'account'").await;
        checked.push(3);
    }
    for (id, role) in s.users {
        let now: String = scalar(pool, "SELECT role FROM users WHERE id = $1", id).await;
        assert_eq!(now, role);
    }
    if later(15) {
        checked.push(15);
    }

    if let Some(task) = s.search_task {
        let phase: String = scalar(pool, "SELECT phase FROM search_tasks WHERE id = $1", task).await;
        assert_eq!(phase, "copying", "0012 gives tasks before it the first phase");
        if later(12) {
            checked.push(12);
        }
    }

    if !s.unpublished_events.is_empty() {
        let queued: Vec<i64> = sqlx::query_scalar("SELECT id FROM event_queue ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
        // Later migrations' writes (0014's) queue events of their own.
        let seeded: Vec<i64> = queued
            .into_iter()
            .filter(|id| s.published_events.contains(id) || s.unpublished_events.contains(id))
            .collect();
        assert_eq!(seeded, s.unpublished_events, "0010 queues exactly the events not yet published");
        assert!(!s.published_events.is_empty());
        checked.push(10);
    }

    if let (Some((live_payment, live_version)), Some((deleted_payment, deleted_version))) = (s.live_payment, s.deleted_payment) {
        let live_now: i64 = scalar(pool, "SELECT search_version FROM payments WHERE id = $1", live_payment).await;
        assert_eq!(live_now, live_version, "a live account's payment keeps its version");
        let deleted_now: i64 = scalar(pool, "SELECT search_version FROM payments WHERE id = $1", deleted_payment).await;
        let outboxed: Vec<Uuid> = sqlx::query_scalar("SELECT entity_id FROM search_outbox WHERE entity = 'payment' ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
        if later(14) {
            assert!(
                deleted_now > deleted_version,
                "0014 re-versions a deleted account's payment: {deleted_version} -> {deleted_now}"
            );
            assert_eq!(outboxed, [deleted_payment], "0014 sends exactly that payment to the index");
            checked.push(14);
        } else {
            assert_eq!(deleted_now, deleted_version);
            assert!(outboxed.is_empty(), "{outboxed:?}");
        }
    }

    if later(16) {
        let policy: (String, String, i32, i32, i32, i32) = sqlx::query_as(
            "SELECT window_start::text, window_end::text, call_attempt_limit, call_attempt_days, conversation_days, override_minutes
             FROM contact_policy",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(policy, ("08:00:00".into(), "21:00:00".into(), 7, 7, 7, 60), "0016's policy row");
        let fallback: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_zones WHERE country = '*'")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(fallback, 6, "0016's zones for debtors whose country is unknown");
        let verified: Option<chrono::DateTime<chrono::Utc>> =
            scalar(pool, "SELECT dispute_verified_at FROM accounts WHERE id = $1", s.disputed).await;
        assert_eq!(
            verified, None,
            "a dispute from before 0016 is not verified: it still blocks contact"
        );
        checked.push(16);
    }

    if let Some(plan) = s.plan {
        let instalments: i64 = scalar(pool, "SELECT count(*) FROM plan_instalments WHERE plan_id = $1", plan).await;
        assert_eq!(instalments, 2);
    }

    let teams: Vec<Option<String>> = sqlx::query_scalar("SELECT team FROM users WHERE id = ANY($1) ORDER BY role")
        .bind(s.users.map(|u| u.0).to_vec())
        .fetch_all(pool)
        .await
        .unwrap();
    if later(18) {
        assert_eq!(teams, [None, None], "users from before 0018 have no team");
        checked.push(18);
    } else {
        assert_eq!(teams, [None, Some("north".to_owned())]);
    }

    if later(21) {
        let (accounts, ordinals, distinct): (i64, i64, i64) =
            sqlx::query_as("SELECT count(*), count(ordinal), count(DISTINCT ordinal) FROM accounts")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(
            (ordinals, distinct),
            (accounts, accounts),
            "0021 numbers every account once, deleted ones too"
        );
        let next: i32 = sqlx::query_scalar(
            "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency)
             VALUES (gen_random_uuid(), 'after-0021', 'New', 1, 1, 'USD') RETURNING ordinal",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let highest: i32 = sqlx::query_scalar("SELECT max(ordinal) FROM accounts WHERE account_number <> 'after-0021'")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(next > highest, "a new account's ordinal follows the backfilled ones");
        if let Some(day) = s.snapshot_day {
            let unnumbered: i64 = sqlx::query_scalar("SELECT count(*) FROM account_day_snapshots WHERE day = $1 AND ordinal IS NULL")
                .bind(day)
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(unnumbered, 2, "snapshot rows from before 0021 carry no ordinal");
        }
        if let Some(day) = s.kept_day {
            let kept: (i64, i64) =
                sqlx::query_as("SELECT (SELECT count(*) FROM kpi_days WHERE day = $1), (SELECT count(*) FROM kpi_day_work WHERE day = $1)")
                    .bind(day)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(kept, (0, 0), "0021 drops the days kept in 0020's form, to keep them again");
        }
        checked.push(21);
    }

    if later(41) {
        if let Some(day) = s.snapshot_day {
            let portfolios: Vec<(Uuid, Option<Uuid>)> =
                sqlx::query_as("SELECT account_id, portfolio_id FROM account_day_snapshots WHERE day = $1 ORDER BY account_id")
                    .bind(day)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let mut expected = vec![(s.live, s.portfolio), (s.disputed, None)];
            expected.sort();
            assert_eq!(portfolios, expected, "0041 gives old snapshot rows their account's portfolio");
        }
        if let Some(day) = s.kept_before_portfolios {
            let kept: (i64, i64) =
                sqlx::query_as("SELECT (SELECT count(*) FROM kpi_days WHERE day = $1), (SELECT count(*) FROM kpi_day_work WHERE day = $1)")
                    .bind(day)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(kept, (0, 0), "0041 drops the days kept without portfolios, to keep them again");
        }
        checked.push(41);
    }

    let (sessions, addressed): (i64, i64) = sqlx::query_as("SELECT count(*), count(client_address) FROM auth_sessions WHERE id = $1")
        .bind(s.session)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!((sessions, addressed), (1, 0), "a session from before 0023 has no client address");
    if later(23) {
        checked.push(23);
    }
    for account in [s.live, s.deleted, s.disputed] {
        let exists: i64 = scalar(pool, "SELECT count(*) FROM accounts WHERE id = $1", account).await;
        assert_eq!(exists, 1);
    }
    checked
}

/// Every table's columns: name, type, nullability and default.
async fn columns(pool: &PgPool) -> Vec<(String, String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The migrations that change existing rows or add columns to tables that may have rows,
/// each of which the test must have checked at least once.
const BACKFILLS: &[i64] = &[2, 3, 10, 12, 14, 15, 16, 18, 21, 23, 41];

#[tokio::test]
async fn every_earlier_migration_with_rows_in_it_migrates_to_the_latest_with_its_backfills() {
    let versions: Vec<i64> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let latest = *versions.last().unwrap();
    let fresh = empty_pool().await;
    MIGRATOR.run(&fresh).await.unwrap();
    let fresh_columns = columns(&fresh).await;
    let mut checked: BTreeMap<i64, usize> = BTreeMap::new();
    for &at in &versions[..versions.len() - 1] {
        let pool = empty_pool().await;
        MIGRATOR
            .run_to(at, &pool)
            .await
            .unwrap_or_else(|e| panic!("migrating to {at}: {e}"));
        let seeded = seed(&pool, at).await;
        MIGRATOR
            .run(&pool)
            .await
            .unwrap_or_else(|e| panic!("migrating from {at} with rows to {latest}: {e}"));
        for n in check(&pool, &seeded).await {
            *checked.entry(n).or_default() += 1;
        }
        assert_eq!(
            columns(&pool).await,
            fresh_columns,
            "migrated from {at}: the schema a fresh database gets"
        );
        pool.close().await;
    }
    let missing: Vec<&i64> = BACKFILLS.iter().filter(|n| !checked.contains_key(n)).collect();
    assert!(missing.is_empty(), "backfills never checked: {missing:?}");
    println!(
        "migrations: {} earlier versions, each with rows, migrated to {latest}; {} backfills checked {} times: {checked:?}",
        versions.len() - 1,
        checked.len(),
        checked.values().sum::<usize>()
    );
}

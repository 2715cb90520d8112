//! Sync properties over real PostgreSQL (docs/ARCHITECTURE.md, sync invariants 1-4, 7).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrears::domain::document::Entity;
use arrears::domain::role::Role;
use arrears::domain::search::AccountQuery;
use arrears::search::SearchIndex;
use arrears::search::embedded::EmbeddedIndex;
use arrears::store::outbox;
use arrears::sync::SyncRuntime;
use arrears::sync::metrics::SyncMetrics;
use arrears::sync::reindex::Progress;
use arrears::sync::worker::{SyncWorker, rebuild_ops};
use arrears::sync::{reindex, verify};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::contract::text;
use crate::helpers::{eventually, fresh_pool, spawn_app, status_json};

/// An owned embedded index with no worker running: the test drives the worker.
fn manual_index() -> (Arc<EmbeddedIndex>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("arrears-sync-{}", Uuid::new_v4().simple()));
    (Arc::new(EmbeddedIndex::open_owner(&dir).unwrap()), dir)
}

async fn insert_account(pool: &PgPool, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency) VALUES ($1, $2, $3, 10, 10, 'USD')")
        .bind(id)
        .bind(format!("T-{}", &id.simple().to_string()[20..]))
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn sql_version(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT search_version FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_plain_sql_write_becomes_searchable() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    sqlx::query("UPDATE accounts SET debtor_name = 'Zebedee Quux' WHERE id = $1::uuid")
        .bind(account["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    eventually("the psql edit is searchable", || async {
        let (_, page) = status_json(app.get("/api/v1/accounts?q=zebedee", &manager.token).await).await;
        page["total"] == 1 && page["data"][0]["id"] == account["id"]
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_leave_the_last_committed_state_indexed() {
    let app = spawn_app().await;
    let pool = app.pool.clone();
    let id = insert_account(&pool, "Many Writers").await;
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    sqlx::query("UPDATE accounts SET debtor_name = $2 WHERE id = $1")
                        .bind(id)
                        .bind(format!("Writer{w} Round{i}"))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let final_version = sql_version(&pool, id).await;
    let final_name: String = sqlx::query_scalar("SELECT debtor_name FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let search = app.state.search().clone();
    eventually("the index holds the final version", || async {
        search.version_of(Entity::Account, id).await.unwrap() == Some(final_version)
    })
    .await;
    let page = search.search(text(&final_name)).await.unwrap();
    assert_eq!(page.hits[0].doc.id, id);
    assert_eq!(page.hits[0].doc.debtor_name, final_name);
}

#[tokio::test]
async fn racing_workers_never_regress_a_version() {
    let pool = fresh_pool().await;
    let (index, dir) = manual_index();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(insert_account(&pool, &format!("Race {i}")).await);
    }
    let metrics = Arc::new(SyncMetrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let worker = SyncWorker::new(pool.clone(), index.clone(), metrics.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    worker.process_batch().await.unwrap();
                }
            })
        })
        .collect();
    let watcher = {
        let (index, ids, stop) = (index.clone(), ids.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = vec![0i64; ids.len()];
            while !stop.load(Ordering::Relaxed) {
                for (i, id) in ids.iter().enumerate() {
                    let now = index.version_of(Entity::Account, *id).await.unwrap().unwrap_or(0);
                    assert!(now >= seen[i], "version of {id} went from {} to {now}", seen[i]);
                    seen[i] = now;
                }
            }
        })
    };
    for round in 0..40 {
        for id in &ids {
            sqlx::query("UPDATE accounts SET debtor_name = $2 WHERE id = $1")
                .bind(id)
                .bind(format!("Race round {round}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    let worker = SyncWorker::new(pool.clone(), index.clone(), metrics.clone());
    worker.drain().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for handle in workers {
        handle.await.unwrap();
    }
    watcher.await.unwrap();
    for id in &ids {
        assert_eq!(
            index.version_of(Entity::Account, *id).await.unwrap(),
            Some(sql_version(&pool, *id).await)
        );
    }
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_crash_between_apply_and_outbox_delete_replays_harmlessly() {
    let pool = fresh_pool().await;
    let (index, dir) = manual_index();
    let id = insert_account(&pool, "Crash Replay").await;
    // The worker's steps, up to and including the index write, then the process "dies":
    // its transaction rolls back and the claimed rows come back.
    let mut tx = pool.begin().await.unwrap();
    let batch = outbox::claim(&mut tx, 100, &[]).await.unwrap();
    assert_eq!(batch.len(), 1);
    let ops = rebuild_ops(&mut tx, &batch, index.entities()).await.unwrap();
    index.apply(ops.clone()).await.unwrap();
    drop(tx);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM search_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 1, "the outbox row survived the crash");

    sqlx::query("UPDATE accounts SET debtor_name = 'Crash Survivor' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let worker = SyncWorker::new(pool.clone(), index.clone(), Arc::new(SyncMetrics::default()));
    worker.drain().await.unwrap();
    let newest = sql_version(&pool, id).await;
    assert_eq!(index.version_of(Entity::Account, id).await.unwrap(), Some(newest));
    // A late replay of the pre-crash batch changes nothing.
    let replay = index.apply(ops).await.unwrap();
    assert_eq!((replay.applied, replay.stale), (0, 1));
    assert_eq!(index.search(text("survivor")).await.unwrap().hits[0].doc.id, id);
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_transaction_committing_after_later_ones_is_not_lost() {
    let pool = fresh_pool().await;
    let (index, dir) = manual_index();
    let slow = insert_account(&pool, "Slow Committer").await;
    let fast = insert_account(&pool, "Fast Committer").await;
    let worker = SyncWorker::new(pool.clone(), index.clone(), Arc::new(SyncMetrics::default()));
    worker.drain().await.unwrap();

    let mut open = pool.begin().await.unwrap();
    sqlx::query("UPDATE accounts SET debtor_name = 'Slow Finisher' WHERE id = $1")
        .bind(slow)
        .execute(&mut *open)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET debtor_name = 'Fast Finisher' WHERE id = $1")
        .bind(fast)
        .execute(&pool)
        .await
        .unwrap();
    worker.drain().await.unwrap();
    assert_eq!(index.search(text("fast finisher")).await.unwrap().total, 1);
    assert_eq!(
        index.search(text("slow finisher")).await.unwrap().total,
        0,
        "uncommitted work is invisible"
    );
    open.commit().await.unwrap();
    worker.drain().await.unwrap();
    assert_eq!(index.search(text("slow finisher")).await.unwrap().hits[0].doc.id, slow);
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_hard_delete_becomes_a_tombstone() {
    let pool = fresh_pool().await;
    let (index, dir) = manual_index();
    let id = insert_account(&pool, "Purged Person").await;
    let worker = SyncWorker::new(pool.clone(), index.clone(), Arc::new(SyncMetrics::default()));
    worker.drain().await.unwrap();
    let before = index.version_of(Entity::Account, id).await.unwrap().unwrap();
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    worker.drain().await.unwrap();
    assert!(index.version_of(Entity::Account, id).await.unwrap().unwrap() > before);
    assert_eq!(index.search(text("purged")).await.unwrap().total, 0);
    assert!(verify::verify(&pool, index.as_ref(), Entity::Account).await.unwrap().is_clean());
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_worker_for_another_embedded_index_refuses_to_start() {
    let pool = fresh_pool().await;
    let (first, first_dir) = manual_index();
    let (second, second_dir) = manual_index();
    let runtime = |index: Arc<EmbeddedIndex>| SyncRuntime {
        pool: pool.clone(),
        index,
        metrics: Arc::new(SyncMetrics::default()),
        workers: 1,
        initial_backfill: Vec::new(),
        rebuild_outdated: false,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = runtime(first.clone()).start(stopped.clone()).await.unwrap();
    let refused = runtime(second.clone()).start(stopped).await.unwrap_err().to_string();
    assert!(
        refused.contains("different search index") && refused.contains("Elasticsearch"),
        "{refused}"
    );
    stop.send(true).unwrap();
    while running.join_next().await.is_some() {}
    for dir in [first_dir, second_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn reindex_while_writes_continue_loses_nothing_and_searches_keep_answering() {
    let app = spawn_app().await;
    let pool = app.pool.clone();
    for i in 0..300 {
        insert_account(&pool, &format!("Backfill Person{i}")).await;
    }
    let search = app.state.search().clone();
    eventually("the seed is indexed", || async {
        search
            .search(AccountQuery::new(chrono::Utc::now().date_naive()))
            .await
            .unwrap()
            .total
            == 300
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                insert_account(&pool, &format!("During Reindex{n}")).await;
                sqlx::query(
                    "UPDATE accounts SET debtor_name = debtor_name || 'x' WHERE id = (SELECT id FROM accounts ORDER BY random() LIMIT 1)",
                )
                .execute(&pool)
                .await
                .unwrap();
                n += 1;
            }
            n
        })
    };
    let reader = {
        let (search, stop) = (search.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let page = search.search(text("backfill")).await.expect("searches never fail during a reindex");
                assert!(page.total >= 300, "searches never go empty: {}", page.total);
                answered += 1;
            }
            answered
        })
    };
    let mut reports = Vec::new();
    let report = reindex::rebuild(&pool, search.as_ref(), Entity::Account, |p| reports.push(p))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    // The copy reports climb to the rows copied, then the swap is announced once, last.
    assert_eq!(reports.last(), Some(&Progress::Swapping), "{reports:?}");
    let copied: Vec<u64> = reports
        .iter()
        .filter_map(|p| match p {
            Progress::Copying { done, .. } => Some(*done),
            Progress::Swapping => None,
        })
        .collect();
    assert_eq!(copied.len() + 1, reports.len(), "{reports:?}");
    assert!(copied.windows(2).all(|w| w[0] <= w[1]), "{copied:?}");
    assert_eq!(copied.first(), Some(&0));
    let written = writer.await.unwrap();
    let answered = reader.await.unwrap();
    assert!(written > 0 && answered > 0);
    assert!(report.documents >= 300);
    eventually("the outbox drains", || async { outbox::depth(&pool).await.unwrap().0 == 0 }).await;
    let audit = verify::verify(&pool, search.as_ref(), Entity::Account).await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
}

/// In a rolling upgrade an older release's workers write only to the generations of
/// their own mapping: a change one of them takes from the outbox during a rebuild's
/// backfill never reaches the new generation through the workers, and the copy may
/// have read the row before it changed. The backfill copies again what changed since
/// it began, so the promoted generation holds the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_taken_by_another_releases_worker_during_a_backfill_reaches_the_new_generation() {
    let app = spawn_app().await;
    let pool = app.pool.clone();
    let changed = insert_account(&pool, "Before Backfill").await;
    for i in 0..20 {
        insert_account(&pool, &format!("Backfill Person{i}")).await;
    }
    let search = app.state.search().clone();
    eventually("the accounts are indexed", || async {
        search
            .search(AccountQuery::new(chrono::Utc::now().date_naive()))
            .await
            .unwrap()
            .total
            == 21
    })
    .await;
    let mut changed_meanwhile = false;
    reindex::rebuild(&pool, search.as_ref(), Entity::Account, |progress| {
        if changed_meanwhile || !matches!(progress, Progress::Copying { done, .. } if done > 0) {
            return;
        }
        changed_meanwhile = true;
        // After the copy read the row: the change, and an older release's worker taking
        // it from the outbox (writing it only to the old generation), in one step.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("UPDATE accounts SET debtor_name = 'Changed During Backfill' WHERE id = $1")
                    .bind(changed)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM search_outbox WHERE entity_id = $1")
                    .bind(changed)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            })
        });
    })
    .await
    .unwrap();
    assert!(changed_meanwhile);
    let found = search.search(text("changed during backfill")).await.unwrap();
    assert_eq!(found.total, 1, "the promoted generation holds the change");
}

#[tokio::test]
async fn verify_finds_differences_and_repair_fixes_them() {
    let pool = fresh_pool().await;
    let (index, dir) = manual_index();
    let kept = insert_account(&pool, "Kept").await;
    let worker = SyncWorker::new(pool.clone(), index.clone(), Arc::new(SyncMetrics::default()));
    worker.drain().await.unwrap();
    // Changes made while nothing records them in the outbox: the index drifts.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET debtor_name = 'Drifted', search_version = nextval('search_version_seq') WHERE id = $1")
        .bind(kept)
        .execute(&mut *conn)
        .await
        .unwrap();
    let unseen = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency) VALUES ($1, 'UNSEEN-1', 'Unseen', 1, 1, 'USD')").bind(unseen).execute(&mut *conn).await.unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let report = verify::verify(&pool, index.as_ref(), Entity::Account).await.unwrap();
    assert_eq!(report.missing, [unseen]);
    assert_eq!(report.stale.iter().map(|s| s.0).collect::<Vec<_>>(), [kept]);
    assert!(!report.is_clean());
    assert_eq!(verify::repair(&pool, &report).await.unwrap(), 2);
    worker.drain().await.unwrap();
    assert!(verify::verify(&pool, index.as_ref(), Entity::Account).await.unwrap().is_clean());
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_api_without_sync_reads_the_index_another_process_feeds() {
    let mut owner = spawn_app().await;
    let manager = owner.user(Role::Manager).await;
    // The owner's database and index: the embedded one in its data dir, or its indices
    // on the test cluster.
    let reader = crate::helpers::spawn_app_with(|s| {
        s.database_url = owner.settings.database_url.clone();
        s.data_dir = owner.settings.data_dir.clone();
        s.elasticsearch_index_prefix = owner.settings.elasticsearch_index_prefix.clone();
        s.sync_worker = false;
        // The write below that no worker indexes answers 504 after this; the first one is
        // not bounded by it, as the owner's worker may take longer on a loaded machine.
        s.wait_for_indexed_timeout_ms = 2000;
    })
    .await;
    let created = reader
        .post(
            "/api/v1/accounts",
            Some(&manager.token),
            &json!({"debtor_name": "Shared Index", "original_balance": "1.00", "currency": "USD"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    eventually(
        "the owner's worker indexes a write made through the reader, and the reader sees it",
        || async {
            let (_, page) = status_json(reader.get("/api/v1/accounts?q=shared", &manager.token).await).await;
            page["total"] == 1
        },
    )
    .await;
    owner.stop().await;
    let pool = reader.pool.clone();
    eventually("the owner's sync worker stopped", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_workers")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 0
    })
    .await;
    let stalled = reader
        .post(
            "/api/v1/accounts?wait_for=indexed",
            Some(&manager.token),
            &json!({"debtor_name": "Never Indexed", "original_balance": "1.00", "currency": "USD"}),
        )
        .await;
    crate::helpers::assert_problem(stalled, StatusCode::GATEWAY_TIMEOUT, "index_timeout").await;
    let (status, page) = status_json(reader.get("/api/v1/accounts?q=shared", &manager.token).await).await;
    assert_eq!(
        (status, page["total"].as_i64()),
        (StatusCode::OK, Some(1)),
        "reads still work without a worker"
    );
}

#[tokio::test]
async fn reindex_asked_of_a_running_server_is_done_by_it() {
    let app = spawn_app().await;
    for i in 0..50 {
        insert_account(&app.pool, &format!("Delegated {i}")).await;
    }
    let search = app.state.search().clone();
    eventually("the rows are indexed", || async {
        search.search(text("delegated")).await.unwrap().total == 50
    })
    .await;
    let task = arrears::store::search_tasks::submit(&app.pool, "accounts").await.unwrap();
    let pool = app.pool.clone();
    eventually("the server ran the rebuild", || async {
        let task = arrears::store::search_tasks::get(&pool, task).await.unwrap().unwrap();
        assert_ne!(task.status, "failed", "{:?}", task.message);
        task.status == "succeeded" && task.processed == 50
    })
    .await;
    let finished = arrears::store::search_tasks::get(&app.pool, task).await.unwrap().unwrap();
    assert_eq!(finished.phase, "swapping", "the task reported the swap after the copy");
    assert_eq!(search.search(text("delegated")).await.unwrap().total, 50);
    assert!(
        verify::verify(&app.pool, search.as_ref(), Entity::Account)
            .await
            .unwrap()
            .is_clean()
    );
}

async fn insert_payment(pool: &PgPool, account: Uuid, cents: i64, status: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, account_id, amount, currency, method, status, received_at) VALUES ($1, $2, $3::numeric / 100, 'USD', 'cash', $4, now())",
    )
    .bind(id)
    .bind(account)
    .bind(cents)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn balance(pool: &PgPool, account: Uuid) -> String {
    sqlx::query_scalar("SELECT current_balance::numeric(20,2)::text FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn payments_written_in_plain_sql_keep_balances_and_reach_both_indexes() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({"debtor_name": "Ottilie Brandvold"})).await;
    let id: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    let payment = insert_payment(&app.pool, id, 25_000, "completed").await;
    assert_eq!(balance(&app.pool, id).await, "1000.00", "the trigger lowered the balance");
    eventually("the payment and the account's totals are searchable", || async {
        let (_, payments) = status_json(app.get("/api/v1/payments?q=brandvold", &manager.token).await).await;
        let (_, accounts) = status_json(app.get("/api/v1/accounts?q=brandvold", &manager.token).await).await;
        payments["total"] == 1 && payments["data"][0]["id"] == payment.to_string() && accounts["data"][0]["total_paid"] == "250.00"
    })
    .await;

    sqlx::query("UPDATE payments SET status = 'refunded' WHERE id = $1")
        .bind(payment)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(balance(&app.pool, id).await, "1250.00", "a refund restores the balance");
    sqlx::query("UPDATE accounts SET debtor_name = 'Ottilie Sandvik' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    eventually("renaming the account re-indexes its payments", || async {
        let (_, page) = status_json(app.get("/api/v1/payments?q=sandvik&status=refunded", &manager.token).await).await;
        page["total"] == 1
    })
    .await;

    sqlx::query("DELETE FROM payments WHERE id = $1")
        .bind(payment)
        .execute(&app.pool)
        .await
        .unwrap();
    eventually("a purged payment leaves the index", || async {
        let (_, page) = status_json(app.get("/api/v1/payments?q=sandvik", &manager.token).await).await;
        page["total"] == 0
    })
    .await;
    assert_eq!(balance(&app.pool, id).await, "1250.00");
    let search = app.state.search().clone();
    for entity in search.entities().iter().copied() {
        let audit = verify::verify(&app.pool, search.as_ref(), entity).await.unwrap();
        assert!(audit.is_clean(), "{audit:?}");
    }
}

#[tokio::test]
async fn reindex_of_payments_while_payments_arrive_loses_nothing() {
    let app = spawn_app().await;
    let pool = app.pool.clone();
    let account = insert_account(&pool, "Payment Backfill").await;
    sqlx::query("UPDATE accounts SET original_balance = 1000000, current_balance = 1000000 WHERE id = $1")
        .bind(account)
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..200 {
        insert_payment(&pool, account, 100, "completed").await;
    }
    let search = app.state.search().clone();
    eventually("the payments are indexed", || async {
        search.versions(Entity::Payment).await.unwrap().len() == 200
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                insert_payment(&pool, account, 1, "pending").await;
                n += 1;
            }
            n
        })
    };
    let report = reindex::rebuild(&pool, search.as_ref(), Entity::Payment, |_| {}).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0 && report.documents >= 200);
    eventually("the outbox drains", || async { outbox::depth(&pool).await.unwrap().0 == 0 }).await;
    for entity in search.entities().iter().copied() {
        let audit = verify::verify(&pool, search.as_ref(), entity).await.unwrap();
        assert!(audit.is_clean(), "{audit:?}");
    }
    let indexed = search.versions(Entity::Payment).await.unwrap().len();
    assert_eq!(indexed, 200 + written);
}

/// Whether a sync worker of process `pid` is registered (it beats while it runs).
async fn worker_of(pool: &PgPool, pid: u32) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_workers WHERE pid = $1")
        .bind(pid as i32)
        .fetch_one(pool)
        .await
        .unwrap()
        > 0
}

/// Two `arrears sync` processes on one embedded index: the second stands by while the
/// first owns it and takes over when the first is killed; an API without a worker
/// searches what either indexed.
#[tokio::test]
async fn arrears_sync_stands_by_and_takes_over_the_embedded_index() {
    let settings = crate::helpers::migrated_settings().await;
    let pool = arrears::store::connect(&settings.database_url, 4).await.unwrap();
    let mut owner = crate::helpers::Arrears::start(&["sync"], &settings, &[]);
    eventually("the first sync process owns the index", || worker_of(&pool, owner.pid())).await;
    let mut standby = crate::helpers::Arrears::start(&["sync"], &settings, &[]);
    let reader = crate::helpers::spawn_app_with(|s| {
        s.database_url = settings.database_url.clone();
        s.data_dir = settings.data_dir.clone();
        s.sync_worker = false;
    })
    .await;
    let manager = reader.user(Role::Manager).await;
    let searchable = |name: &'static str| {
        let (reader, token) = (&reader, manager.token.clone());
        async move {
            let (_, page) = status_json(reader.get(&format!("/api/v1/accounts?q={name}"), &token).await).await;
            page["total"] == 1
        }
    };
    let body = |name: &str| json!({"debtor_name": name, "original_balance": "1.00", "currency": "USD"});
    reader.create(&manager.token, "/api/v1/accounts", &body("Ownerindexed")).await;
    eventually("the owner indexes", || searchable("ownerindexed")).await;
    assert!(standby.running(), "the second process stands by instead of exiting");
    assert!(!worker_of(&pool, standby.pid()).await, "and runs no worker meanwhile");

    owner.kill();
    reader.create(&manager.token, "/api/v1/accounts", &body("Standbyindexed")).await;
    eventually("the standby takes over", || worker_of(&pool, standby.pid())).await;
    eventually("the standby indexes what was written meanwhile", || searchable("standbyindexed")).await;
    let (_, page) = status_json(reader.get("/api/v1/accounts?q=ownerindexed", &manager.token).await).await;
    assert_eq!(page["total"], 1, "what the first process indexed stays");
}

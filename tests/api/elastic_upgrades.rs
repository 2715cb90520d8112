//! The Elasticsearch backend through the second week of production, against a scripted
//! cluster that answers as Elastic documents: an upgrade whose mapping adds a field, a
//! cluster restart that refuses credentials for a while, a rebuild that dies or whose
//! index creation answers late, and a scan that crosses a rebuild's swap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrears::config::SearchBackend;
use arrears::domain::document::Entity;
use arrears::search::elastic::templates;
use arrears::search::elastic::{ElasticIndex, dsl};
use arrears::search::{OutdatedMapping, SearchIndex};
use arrears::store::dead_letters::SqlDeadLetters;
use arrears::store::rebuild_locks;
use arrears::sync::metrics::SyncMetrics;
use arrears::sync::reindex;
use arrears::sync::worker::SyncWorker;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::elastic::{LIVE_ACCOUNTS, alias_cluster, answer_as_cluster, as_cluster, config, docs, uuid};
use crate::helpers::{eventually, fresh_pool, spawn_app_with};
use crate::scripted_es::{Indices, Received, ScriptedEs, error};

const LIVE_PAYMENTS: &[&str] = &[
    "arrears-payments",
    "arrears-payments-reporting",
    "arrears-payments-targets",
    "arrears-payments-g1-write",
];

/// The field the previous release did not map (this build's documents carry it).
const NEW_FIELD: &str = "queue_rank";

/// The accounts mapping of an older release: without [`NEW_FIELD`] under `derived`, and
/// with its own digest.
fn older_accounts_mapping() -> Value {
    let mut mappings = templates::mappings(Entity::Account);
    mappings["properties"]["derived"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove(NEW_FIELD)
        .expect("this build maps the field");
    mappings["_meta"]["digest"] = json!("digest-of-an-older-release");
    mappings
}

/// A cluster as [`as_cluster`], whose `arrears-accounts-g1` was created by an older
/// release: its mapping is [`older_accounts_mapping`], and as `dynamic: strict` makes it,
/// a document with [`NEW_FIELD`] is refused there (`strict_dynamic_mapping_exception`).
async fn upgraded_cluster() -> ScriptedEs {
    let mut cluster = as_cluster();
    ScriptedEs::with_indices(
        &[("arrears-accounts-g1", LIVE_ACCOUNTS), ("arrears-payments-g1", LIVE_PAYMENTS)],
        move |r: &Received, indices: &mut Indices| match r.api() {
            "indices.get_mapping" => {
                let (status, mut answer) = cluster(r, indices);
                if let Some(old) = answer.get_mut("arrears-accounts-g1") {
                    old["mappings"] = older_accounts_mapping();
                }
                (status, answer)
            }
            "bulk" => (200, bulk_response_for(r, strict_on_the_old_generation)),
            _ => cluster(r, indices),
        },
    )
    .await
}

/// A `_bulk` answer shaped as the bulk API documents it, each item judged by `judge`
/// from its target and source.
fn bulk_response_for(r: &Received, judge: impl Fn(&str, &Value) -> (u16, Option<(&'static str, String)>)) -> Value {
    let lines = r.lines();
    let items: Vec<Value> = lines
        .chunks(2)
        .map(|pair| {
            let target = pair[0]["index"]["_index"].as_str().unwrap_or_default();
            let (status, refusal) = judge(target, &pair[1]);
            let mut item = json!({ "_index": target, "_id": pair[0]["index"]["_id"], "status": status });
            if let Some((kind, reason)) = refusal {
                item["error"] = json!({ "type": kind, "reason": reason });
            }
            json!({ "index": item })
        })
        .collect();
    let errors = items.iter().any(|i| i["index"]["status"].as_u64().unwrap_or(0) >= 300);
    json!({ "took": 2, "errors": errors, "items": items })
}

/// What the old generation answers for a document: 400 when it carries the field its
/// strict mapping lacks.
fn strict_on_the_old_generation(target: &str, source: &Value) -> (u16, Option<(&'static str, String)>) {
    if target == "arrears-accounts-g1-write" && source.pointer(&format!("/derived/{NEW_FIELD}")).is_some() {
        let reason = format!("[1:402] mapping set to strict, dynamic introduction of [{NEW_FIELD}] within [derived] is not allowed");
        (400, Some(("strict_dynamic_mapping_exception", reason)))
    } else {
        (201, None)
    }
}

async fn insert_account(pool: &PgPool, number: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency)
         VALUES ($1, $2, 'Upgraded Person', 10, 10, 'USD')",
    )
    .bind(id)
    .bind(number)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Changes waiting in the outbox.
pub(crate) async fn queued(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM search_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Documents the index refused for good.
pub(crate) async fn dead_letters(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM search_dead_letters")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn bulk_targets(server: &ScriptedEs) -> Vec<String> {
    server
        .bulks()
        .iter()
        .flat_map(|b| b.lines())
        .filter_map(|l| l.pointer("/index/_index").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_upgrade_that_maps_a_new_field_holds_the_changes_instead_of_dead_lettering_them() {
    let server = upgraded_cluster().await;
    let pool = fresh_pool().await;
    insert_account(&pool, "UPG-1").await;
    let index = Arc::new(ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap());
    // The new release applies its templates at start; existing generations keep theirs
    // (the reporting indices that release lacked are created).
    assert!(index.prepare().await.unwrap().iter().all(|e| e.is_reporting()));

    let checks = index.doctor().await;
    let mapping = checks.iter().find(|c| c.name == "accounts mapping").unwrap();
    assert!(
        !mapping.ok,
        "the doctor compares the live mapping, read from the cluster: {checks:#?}"
    );
    assert!(
        mapping.detail.contains("arrears-accounts-g1") && mapping.detail.contains(&format!("derived.{NEW_FIELD}")),
        "it names the generation and the field it lacks: {}",
        mapping.detail
    );
    assert!(mapping.fix.as_deref().unwrap().contains("arrears reindex accounts"), "{mapping:?}");
    assert!(!mapping.blocking, "the fix must be able to run");
    let payments = checks.iter().find(|c| c.name == "payments mapping").unwrap();
    assert!(payments.ok, "{payments:?}");
    assert_eq!(index.outdated().await.unwrap(), [Entity::Account]);

    let err = index.apply(docs(1)).await.unwrap_err();
    assert_eq!(OutdatedMapping::of(&err), Some(Entity::Account), "{err}");

    let metrics = Arc::new(SyncMetrics::default());
    let worker = SyncWorker::new(pool.clone(), index.clone(), metrics.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    eventually("the worker says why it holds accounts", || async { !metrics.held().is_empty() }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let held = metrics.held();
    assert!(held["accounts"].contains("another release's mapping"), "{held:?}");
    assert!(metrics.trouble().is_none(), "the sync goes on for payments");
    assert_eq!(queued(&pool).await, 1, "the change waits in the outbox");
    assert_eq!(dead_letters(&pool).await, 0, "nothing is dead-lettered");
    assert!(bulk_targets(&server).is_empty(), "nothing was sent to the old generation");

    // The doctor's fix runs: the rebuild makes a generation from this build's template,
    // and the held change reaches it once it is swapped in.
    let report = reindex::rebuild(&pool, index.as_ref(), Entity::Account, |_| {}).await.unwrap();
    assert_eq!(report.generation, "arrears-accounts-g2");
    assert!(!server.indices().contains_key("arrears-accounts-g1"));
    SyncWorker::new(pool.clone(), index.clone(), metrics.clone()).drain().await.unwrap();
    assert_eq!(queued(&pool).await, 0);
    let targets = bulk_targets(&server);
    assert!(
        !targets.is_empty() && targets.iter().all(|t| t == "arrears-accounts-g2-write"),
        "the backfill and the held change went to the new generation only: {targets:?}"
    );
    assert_eq!(dead_letters(&pool).await, 0);
    assert!(index.doctor().await.iter().all(|c| c.ok), "{:#?}", index.doctor().await);
    assert!(server.refused().is_empty(), "{:#?}", server.refused());
}

#[tokio::test]
async fn a_server_of_the_new_release_starts_and_rebuilds_an_outdated_index_by_itself() {
    let server = upgraded_cluster().await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
    })
    .await;
    eventually("the accounts index is rebuilt with this build's mapping", || async {
        let indices = server.indices();
        !indices.contains_key("arrears-accounts-g1")
            && indices
                .get("arrears-accounts-g2")
                .is_some_and(|aliases| aliases.contains("arrears-accounts"))
    })
    .await;
    assert!(server.indices().contains_key("arrears-payments-g1"), "payments were current");
    let manager = app.user(arrears::domain::role::Role::Manager).await;
    let account = app.account(&manager.token, json!({ "debtor_name": "After Upgrade" })).await;
    let id = account["id"].as_str().unwrap().to_owned();
    eventually("the new account reaches the new generation", || {
        let server = &server;
        let id = id.clone();
        async move { server.bulks().iter().any(|b| b.bulk_ids().contains(&id)) }
    })
    .await;
    assert!(!bulk_targets(&server).contains(&"arrears-accounts-g1-write".to_owned()));
    assert_eq!(dead_letters(&app.pool).await, 0);
}

/// A cluster as [`as_cluster`] that answers the first `refusals` calls with the 401 a
/// restarting cluster gives while its security index is unavailable.
async fn restarting_cluster(refusals: usize) -> ScriptedEs {
    let mut cluster = as_cluster();
    let mut left = refusals;
    ScriptedEs::with_indices(
        &[("arrears-accounts-g1", LIVE_ACCOUNTS), ("arrears-payments-g1", LIVE_PAYMENTS)],
        move |r, indices| {
            if left > 0 {
                left -= 1;
                let reason = format!("unable to authenticate user [arrears] for REST request [{}]", r.route());
                return (401, error("security_exception", &reason, 401));
            }
            cluster(r, indices)
        },
    )
    .await
}

#[tokio::test]
async fn a_401_while_the_cluster_restarts_is_retried_until_the_credentials_work_again() {
    let server = restarting_cluster(3).await;
    let pool = fresh_pool().await;
    insert_account(&pool, "RST-1").await;
    let mut settings = config(&server.url);
    settings.client.auth_grace = Duration::from_secs(60);
    let index = Arc::new(ElasticIndex::new(&settings, SqlDeadLetters::shared(pool.clone())).unwrap());
    let metrics = Arc::new(SyncMetrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(SyncWorker::new(pool.clone(), index.clone(), metrics.clone()).run(stopped));
    eventually("the change is indexed once the cluster is back", || async {
        queued(&pool).await == 0
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap();
    assert!(
        metrics.trouble().is_none(),
        "a 401 within the grace passes: the batches went through after"
    );
    assert!(metrics.snapshot().errors >= 1, "the refused batches were retried");
    assert_eq!(bulk_targets(&server), ["arrears-accounts-g1-write"]);
}

#[tokio::test]
async fn a_401_that_persists_past_the_grace_holds_the_sync_and_readiness_says_why() {
    let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refuse = refusing.clone();
    let mut cluster = as_cluster();
    let server = ScriptedEs::start(move |r, indices| {
        if refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return (401, error("security_exception", "unable to authenticate user [arrears]", 401));
        }
        cluster(r, indices)
    })
    .await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
        s.elasticsearch_auth_grace_s = 1;
    })
    .await;
    let manager = app.user(arrears::domain::role::Role::Manager).await;
    refusing.store(true, std::sync::atomic::Ordering::SeqCst);
    app.account(&manager.token, json!({ "debtor_name": "Written During The Outage" }))
        .await;
    eventually("the sync is refused once 401s outlast the grace", || async {
        app.state.sync_metrics().trouble().is_some_and(|t| t.refused)
    })
    .await;
    let ready = app.get("/health/ready", &manager.token).await;
    assert_eq!(ready.status(), 503);
    let problem: Value = ready.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("401") && detail.contains("credentials refused for"), "{detail}");
    assert!(detail.contains("tried again every 30 s"), "{detail}");
    assert!(queued(&app.pool).await >= 1, "the change waits in the outbox");
}

#[tokio::test]
async fn a_rebuild_whose_index_creation_answers_late_is_waited_for() {
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS)]).await;
    // The master takes longer than the configured request timeout to acknowledge.
    server.delay("indices.create", Duration::from_millis(1500));
    let mut settings = config(&server.url);
    settings.client.timeout = Duration::from_millis(500);
    let index = ElasticIndex::new(&settings, SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(generation, "arrears-accounts-g2");
    assert!(server.indices()["arrears-accounts-g2"].contains("arrears-accounts-targets"));
}

#[tokio::test]
async fn a_creation_that_fails_after_the_cluster_made_the_index_leaves_no_write_target() {
    // The cluster creates the index, then the answer is lost (a 504 from a proxy).
    let mut cluster = as_cluster();
    let server = ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], move |r, indices| {
        let answer = cluster(r, indices);
        if r.api() == "indices.create" {
            return (504, error("timeout_exception", "the proxy gave up waiting", 504));
        }
        answer
    })
    .await;
    let pool = fresh_pool().await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap();
    let err = reindex::rebuild(&pool, &index, Entity::Account, |_| {}).await.unwrap_err();
    assert_eq!(err.code(), arrears::error::Code::ServiceUnavailable, "{err}");
    let indices = server.indices();
    assert!(
        !indices.contains_key("arrears-accounts-g2"),
        "the half-made generation is dropped: {indices:?}"
    );
    assert!(index.rebuilds(Entity::Account).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_generation_left_by_a_rebuild_that_died_is_reported_and_dropped() {
    let orphan: &[&str] = &["arrears-accounts-targets", "arrears-accounts-g2-write"];
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS), ("arrears-accounts-g2", orphan)]).await;
    let pool = fresh_pool().await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap();
    assert_eq!(index.rebuilds(Entity::Account).await.unwrap(), ["arrears-accounts-g2"]);

    // While a rebuild holds the lock, g2 is its generation: not an orphan, and a second
    // rebuild waits its turn instead of dropping it.
    let running = rebuild_locks::try_lock(&pool, Entity::Account).await.unwrap().unwrap();
    let checks = reindex::rebuild_checks(&pool, &index, true).await.unwrap();
    assert!(checks[0].ok && checks[0].detail.contains("in progress"), "{checks:#?}");
    let err = reindex::rebuild(&pool, &index, Entity::Account, |_| {}).await.unwrap_err();
    assert_eq!(err.code(), arrears::error::Code::Conflict);
    assert!(server.indices().contains_key("arrears-accounts-g2"));
    running.release().await;

    // The rebuild died with its session: g2 is an orphan.
    let checks = reindex::rebuild_checks(&pool, &index, false).await.unwrap();
    assert!(!checks[0].ok && checks[0].detail.contains("arrears-accounts-g2"), "{checks:#?}");
    assert!(checks[0].fix.as_deref().unwrap().contains("doctor --fix"));
    let fixed = reindex::rebuild_checks(&pool, &index, true).await.unwrap();
    assert!(fixed[0].ok && fixed[0].detail.contains("dropped arrears-accounts-g2"), "{fixed:#?}");
    assert!(!server.indices().contains_key("arrears-accounts-g2"));

    // The next rebuild drops an orphan first as well.
    let left: &[&str] = &["arrears-accounts-targets", "arrears-accounts-g7-write"];
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS), ("arrears-accounts-g7", left)]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap();
    let report = reindex::rebuild(&pool, &index, Entity::Account, |_| {}).await.unwrap();
    // Named after the highest generation that is left.
    assert_eq!(report.generation, "arrears-accounts-g2");
    let indices = server.indices();
    assert_eq!(indices.keys().collect::<Vec<_>>(), ["arrears-accounts-g2"], "{indices:?}");
}

#[tokio::test]
async fn abandoning_never_drops_what_searches_read() {
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS)]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let err = index.abandon(Entity::Account, "arrears-accounts-g1".into()).await.unwrap_err();
    assert_eq!(err.code(), arrears::error::Code::Conflict);
    assert!(server.indices().contains_key("arrears-accounts-g1"));
}

/// A cluster holding `ids` in both generations, answering point-in-time scans over
/// them in id order; after the first page it does what a rebuild's promote does (reads
/// move to g2, g1 is deleted), so the next page of the open point in time fails as a
/// real node fails it (`scripted_es::pit_index_gone`).
async fn cluster_swapping_mid_scan(ids: Vec<String>) -> ScriptedEs {
    let rebuild: &[&str] = &["arrears-accounts-targets", "arrears-accounts-g2-write"];
    let pits: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut pages = 0;
    ScriptedEs::with_indices(
        &[("arrears-accounts-g1", LIVE_ACCOUNTS), ("arrears-accounts-g2", rebuild)],
        move |r, indices| match r.api() {
            "open_point_in_time" => {
                let alias = r.route().trim_start_matches('/').split('/').next().unwrap().to_owned();
                let index = indices.iter().find(|(_, a)| a.contains(&alias)).unwrap().0.clone();
                let id = format!("pit-{}", pits.lock().unwrap().len());
                pits.lock().unwrap().push((id.clone(), index));
                (
                    200,
                    json!({ "id": id, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 } }),
                )
            }
            "search" => {
                let body = r.json();
                let pit = body["pit"]["id"].as_str().unwrap().to_owned();
                let index = pits.lock().unwrap().iter().find(|(id, _)| *id == pit).unwrap().1.clone();
                if !indices.contains_key(&index) {
                    return crate::scripted_es::pit_index_gone(&index);
                }
                let after = body["search_after"][0].as_str().map(str::to_owned);
                let size = body["size"].as_u64().unwrap() as usize;
                let hits: Vec<Value> = ids
                    .iter()
                    .filter(|id| after.as_ref().is_none_or(|after| *id > after))
                    .take(size)
                    .enumerate()
                    .map(|(n, id)| json!({ "_index": index, "_id": id, "_version": 3, "_score": null, "sort": [id, n] }))
                    .collect();
                pages += 1;
                if pages == 1 {
                    let g1 = indices.remove("arrears-accounts-g1").unwrap();
                    let g2 = indices.get_mut("arrears-accounts-g2").unwrap();
                    g2.extend(g1.into_iter().filter(|a| !a.ends_with("-g1-write")));
                }
                (
                    200,
                    json!({
                        "pit_id": pit, "took": 1, "timed_out": false,
                        "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
                        "hits": { "total": { "value": 0, "relation": "gte" }, "max_score": null, "hits": hits }
                    }),
                )
            }
            "close_point_in_time" => (200, json!({ "succeeded": true, "num_freed": 1 })),
            _ => answer_as_cluster(r, indices),
        },
    )
    .await
}

#[tokio::test]
async fn a_scan_that_crosses_a_promote_goes_on_in_the_new_generation() {
    // Exports, bulk updates and verify read every id through this scan.
    let mut ids: Vec<String> = (0..dsl::SCAN_PAGE as u128 + 5).map(|n| uuid(n).to_string()).collect();
    ids.sort();
    let server = cluster_swapping_mid_scan(ids.clone()).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let versions = index.versions(Entity::Account).await.unwrap();
    assert_eq!(versions.len(), ids.len(), "every id once, none twice");
    let opened: Vec<String> = server
        .received()
        .iter()
        .filter(|r| r.api() == "open_point_in_time")
        .map(|r| r.route().to_owned())
        .collect();
    assert_eq!(
        opened,
        ["/arrears-accounts/_pit", "/arrears-accounts/_pit"],
        "reopened on the read alias"
    );
}

#[tokio::test]
async fn waiting_for_indexed_reads_versions_as_searches_see_them() {
    // The translog already holds version 5; the last refresh made version 4 searchable.
    let server = ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], |r, indices| match r.api() {
        "get" => {
            let realtime = !r.params().contains(&("realtime".to_owned(), "false".to_owned()));
            let version = if realtime { 5 } else { 4 };
            (
                200,
                json!({ "_index": "arrears-accounts-g1", "_id": uuid(1).to_string(), "_version": version, "_seq_no": 1, "_primary_term": 1, "found": true }),
            )
        }
        _ => answer_as_cluster(r, indices),
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    assert_eq!(
        index.version_of(Entity::Account, uuid(1)).await.unwrap(),
        Some(4),
        "`wait_for=indexed` answers once a search can find the write, not before"
    );
}

#[tokio::test]
async fn relevance_pages_of_one_search_share_a_preference() {
    let server = ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], |r, indices| match r.api() {
        "search" => (200, crate::elastic::search_response(0, &[])),
        _ => answer_as_cluster(r, indices),
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let first = crate::contract::text("maria");
    let mut second = first.clone();
    second.after = Some(arrears::domain::search::After {
        key: arrears::domain::search::SortKey::Score(1.5),
        id: uuid(9),
    });
    let other = crate::contract::text("oconnor");
    let by_balance = crate::contract::query();
    for query in [first, second, other, by_balance] {
        index.search(query).await.unwrap();
    }
    let preferences: Vec<Option<String>> = server
        .received()
        .iter()
        .filter(|r| r.api() == "search")
        .map(|r| r.params().into_iter().find(|(k, _)| k == "preference").map(|(_, v)| v))
        .collect();
    assert!(preferences[0].is_some());
    assert_eq!(preferences[0], preferences[1], "every page of one search goes to the same copies");
    assert_ne!(preferences[0], preferences[2], "another search may go elsewhere");
    assert_eq!(preferences[3], None, "a sort by value is the same on every copy");
    assert!(server.refused().is_empty(), "{:#?}", server.refused());
}

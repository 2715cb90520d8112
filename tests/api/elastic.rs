//! The Elasticsearch backend without a cluster: golden request fixtures, behaviour
//! against a scripted server, and the shipped templates, compose file and Kibana
//! objects checked for consistency. The contract suite runs on a real cluster when
//! ELASTICSEARCH_URL is set (`contract.rs`).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrears::config::SearchBackend;
use arrears::domain::account::{AccountStatus, Address, Bucket};
use arrears::domain::payment::{Method, PaymentStatus};
use arrears::domain::role::Role;
use arrears::domain::search::{
    AccountQuery, After, AgentFilter, Facet, PaymentFacet, PaymentQuery, PaymentSort, PaymentSortField, Sort, SortField, SortKey,
    StatsQuery,
};
use arrears::error::Code;
use arrears::search::SearchIndex;
use arrears::search::document::{AccountDoc, AccountSummary, Entity, IndexOp, OpenPromise, PaymentDoc};
use arrears::search::elastic::bulk::{self, Item, Retry};
use arrears::search::elastic::client::{ClientConfig, Request};
use arrears::search::elastic::dsl;
use arrears::search::elastic::templates::{self, Names};
use arrears::search::elastic::{ElasticConfig, ElasticIndex, source};
use arrears::sync::metrics::SyncMetrics;
use arrears::sync::worker::SyncWorker;
use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{eventually, fresh_pool, spawn_app_with};
use crate::scripted_es::{ScriptedEs, alias_of, bulk_response, error};

const REFERENCE: &str = "https://www.elastic.co/guide/en/elasticsearch/reference/8.19/";

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn at(day: u32, hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn account() -> AccountDoc {
    let mut custom = serde_json::Map::new();
    custom.insert("region_code".into(), json!("NW-4"));
    AccountDoc {
        id: uuid(1),
        account_number: "ACC-000123".into(),
        external_ref: Some("CRM-99".into()),
        debtor_name: "María O'Brien".into(),
        email: Some("Maria.OBrien@Example.com".into()),
        phone: Some("+1 (555) 010-0134".into()),
        address: Address {
            line1: Some("12 Rue de l'Église".into()),
            line2: Some("Apt 4".into()),
            city: Some("Montréal".into()),
            region: Some("QC".into()),
            postal_code: Some("H2X 1Y4".into()),
            country: Some("CA".into()),
        },
        timezone: "America/Toronto".into(),
        status: AccountStatus::PromiseToPay,
        original_balance: Decimal::new(125_050, 2),
        current_balance: Decimal::new(75_025, 2),
        currency: "CAD".into(),
        due_date: NaiveDate::from_ymd_opt(2026, 9, 30),
        assigned_agent_id: Some(uuid(7)),
        next_action_at: Some(at(23, 15)),
        tags: vec!["vip".into(), "hardship".into()],
        custom_fields: custom,
        do_not_call: false,
        do_not_email: true,
        cease_communication: false,
        created_by: Some(uuid(8)),
        updated_by: Some(uuid(8)),
        created_at: at(1, 9),
        updated_at: at(20, 10),
        deleted_at: Some(at(20, 11)),
        search_version: 42,
        summary: AccountSummary {
            total_paid: Decimal::new(50_025, 2),
            payment_count: 2,
            last_payment_at: Some(at(19, 12)),
            last_payment_amount: Some(Decimal::new(25_000, 2)),
            last_contact_at: Some(at(20, 9)),
            last_outcome: Some("promise_to_pay".into()),
            open_promise: Some(OpenPromise {
                id: uuid(9),
                amount: Decimal::new(30_000, 2),
                due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            }),
        },
    }
}

fn payment() -> PaymentDoc {
    PaymentDoc {
        id: uuid(2),
        account_id: uuid(1),
        amount: Decimal::new(25_000, 2),
        currency: "CAD".into(),
        method: Method::BankTransfer,
        status: PaymentStatus::Failed,
        reference: Some("TX-77".into()),
        received_at: at(19, 12),
        failure_reason: Some("insufficient funds".into()),
        created_by: Some(uuid(8)),
        created_at: at(19, 12),
        updated_at: at(19, 13),
        search_version: 43,
        account_number: "ACC-000123".into(),
        debtor_name: "María O'Brien".into(),
        assigned_agent_id: Some(uuid(7)),
    }
}

fn full_account_query() -> AccountQuery {
    AccountQuery {
        text: None,
        statuses: vec![AccountStatus::Active, AccountStatus::Delinquent],
        agent: Some(AgentFilter::Agent(uuid(7))),
        tags: vec!["vip".into()],
        min_balance: Some(Decimal::new(10_050, 2)),
        max_balance: Some(Decimal::new(500_000, 2)),
        due_from: NaiveDate::from_ymd_opt(2026, 1, 1),
        due_to: NaiveDate::from_ymd_opt(2026, 10, 31),
        next_action_before: Some(at(30, 0)),
        next_action_after: Some(at(1, 0)),
        buckets: Vec::new(),
        do_not_call: Some(false),
        do_not_email: None,
        cease_communication: Some(false),
        include_deleted: false,
        has_open_promise: Some(true),
        sort: Sort {
            field: SortField::Balance,
            descending: true,
        },
        page_size: 25,
        after: Some(After {
            key: SortKey::Int(12_345_678),
            id: uuid(3),
        }),
        facets: Vec::new(),
        today: today(),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elastic")
}

/// Compares a request with its checked-in fixture. The fixture's name ends with the
/// page of the Elasticsearch 8 reference it was reviewed against; `UPDATE_GOLDEN=1`
/// rewrites it (review the diff before committing).
fn golden(name: &str, reference: &str, request: Request) {
    let path = fixtures().join(format!("{name}.{reference}.json"));
    let actual = json!({ "reference": format!("{REFERENCE}{reference}.html"), "request": request.to_json() });
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(fixtures()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display())),
    )
    .unwrap();
    assert_eq!(
        actual,
        expected,
        "{} differs from what the backend sends:\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

/// The mappings a generation of `entity` gets.
fn mappings(entity: Entity) -> Value {
    templates::index_template(&Names::new("arrears"), entity)["template"]["mappings"].clone()
}

fn search(entity: &str, body: Value) -> Request {
    Request::post(format!("/arrears-{entity}/_search"), body)
}

#[test]
fn golden_account_text_search() {
    let query = AccountQuery {
        text: Some("Maria OBrian 555-0134".into()),
        sort: Sort {
            field: SortField::Relevance,
            descending: true,
        },
        page_size: 20,
        after: Some(After {
            key: SortKey::Score(2.5),
            id: uuid(3),
        }),
        ..AccountQuery::new(today())
    };
    golden(
        "account-text-search",
        "query-dsl-bool-query",
        search("accounts", dsl::account_search(&query)),
    );
}

#[test]
fn golden_account_filters_and_search_after() {
    let query = full_account_query();
    golden(
        "account-filters-search-after",
        "paginate-search-results",
        search("accounts", dsl::account_search(&query)),
    );
}

#[test]
fn golden_account_buckets_as_date_math() {
    let query = AccountQuery {
        buckets: vec![Bucket::Current, Bucket::Days1To29, Bucket::Days120Plus],
        include_deleted: true,
        ..AccountQuery::new(today())
    };
    golden(
        "account-buckets",
        "query-dsl-range-query",
        search("accounts", dsl::account_search(&query)),
    );
}

#[test]
fn golden_account_facets() {
    let query = AccountQuery {
        facets: vec![Facet::Status, Facet::Bucket, Facet::AssignedAgent, Facet::Tags],
        sort: Sort {
            field: SortField::Name,
            descending: false,
        },
        after: Some(After {
            key: SortKey::Int((i128::from(-5_i64) << 64) + 77),
            id: uuid(4),
        }),
        ..AccountQuery::new(today())
    };
    golden(
        "account-facets",
        "search-aggregations-bucket-terms-aggregation",
        search("accounts", dsl::account_search(&query)),
    );
}

#[test]
fn golden_payment_search() {
    let query = PaymentQuery {
        text: Some("acc-0001".into()),
        statuses: vec![PaymentStatus::Completed],
        methods: vec![Method::Card, Method::Ach],
        min_amount: Some(Decimal::new(1_000, 2)),
        max_amount: None,
        from: Some(at(1, 0)),
        to: Some(at(21, 0)),
        account_id: None,
        agent: Some(AgentFilter::Unassigned),
        sort: PaymentSort {
            field: PaymentSortField::Amount,
            descending: false,
        },
        page_size: 50,
        after: Some(After {
            key: SortKey::Missing,
            id: uuid(5),
        }),
        facets: vec![PaymentFacet::Status, PaymentFacet::Method],
    };
    golden(
        "payment-search",
        "query-dsl-bool-query",
        search("payments", dsl::payment_search(&query)),
    );
}

#[test]
fn golden_payment_stats() {
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let query = StatsQuery::new(
        tz,
        NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        today(),
    );
    golden(
        "payment-stats",
        "search-aggregations-bucket-range-aggregation",
        search("payments", dsl::stats_body(&query)),
    );
}

#[test]
fn golden_id_scan() {
    let body = dsl::scan_body(dsl::live_documents(), Some(uuid(6)), dsl::SCAN_PAGE);
    golden("version-scan", "search-search", search("accounts", body));
}

#[test]
fn golden_versioned_bulk() {
    let mut items = Vec::new();
    for op in [
        IndexOp::upsert(account()),
        IndexOp::upsert(payment()),
        IndexOp::tombstone(Entity::Account, uuid(10), 44),
    ] {
        let target = match op.entity {
            Entity::Account => "arrears-accounts-g2-write",
            Entity::Payment => "arrears-payments-g1-write",
        };
        items.push(Item {
            target: target.into(),
            entity: op.entity.as_str(),
            id: op.id,
            version: op.version,
            source: source::of(&op).unwrap(),
        });
    }
    golden("bulk-external-versions", "docs-bulk", bulk::request(&items));
}

#[test]
fn golden_generations_and_alias_swap() {
    let names = Names::new("arrears");
    golden(
        "create-first-generation",
        "indices-create-index",
        templates::create_generation(&names, Entity::Account, "arrears-accounts-g1", true),
    );
    golden(
        "create-rebuild-generation",
        "indices-create-index",
        templates::create_generation(&names, Entity::Account, "arrears-accounts-g2", false),
    );
    golden(
        "restore-settings",
        "indices-update-settings",
        templates::restore_settings("arrears-accounts-g2", 1),
    );
    golden(
        "alias-swap",
        "indices-aliases",
        templates::swap_aliases(&names, Entity::Account, "arrears-accounts-g2", &["arrears-accounts-g1".into()]),
    );
}

#[test]
fn golden_templates() {
    let requests = templates::apply_requests(&Names::new("arrears"), 1);
    let [analysis, settings, accounts, payments] = requests.try_into().unwrap();
    golden("component-template-analysis", "indices-component-template", analysis);
    golden("component-template-settings", "indices-component-template", settings);
    golden("index-template-accounts", "index-templates", accounts);
    golden("index-template-payments", "index-templates", payments);
}

/// Leaf field paths of a document (`custom_fields` is one `flattened` field).
fn leaves(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if prefix != "custom_fields" => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        Value::Null => {}
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

/// Leaf field paths of a mapping, and the analyzers and normalizers it names.
fn mapped(properties: &Value, prefix: &str, out: &mut BTreeSet<String>, analysis: &mut BTreeSet<String>) {
    for (key, field) in properties.as_object().unwrap() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        for name in ["analyzer", "search_analyzer", "normalizer"] {
            if let Some(a) = field.get(name).and_then(Value::as_str) {
                analysis.insert(a.to_owned());
            }
        }
        if let Some(subfields) = field.get("fields") {
            let mut ignored = BTreeSet::new();
            mapped(subfields, &path, &mut ignored, analysis);
        }
        match field.get("properties") {
            Some(children) => mapped(children, &path, out, analysis),
            None => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn templates_map_every_field_the_documents_produce_and_nothing_else() {
    let analysis_settings: Value = serde_json::from_str(templates::ANALYSIS).unwrap();
    let defined: HashSet<String> = ["analyzer", "normalizer"]
        .iter()
        .flat_map(|kind| {
            analysis_settings["template"]["settings"]["index"]["analysis"][kind]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    let settings: Value = serde_json::from_str(templates::SETTINGS).unwrap();
    assert_eq!(settings["template"]["settings"]["index"]["number_of_shards"], 1);
    let cases = [
        (Entity::Account, vec![source::account(&account()).unwrap()]),
        (Entity::Payment, vec![source::payment(&payment()).unwrap()]),
    ];
    for (entity, documents) in cases {
        let mappings = mappings(entity);
        assert_eq!(mappings["dynamic"], "strict", "{entity:?}");
        let mut fields = BTreeSet::new();
        let mut analysis = BTreeSet::new();
        mapped(&mappings["properties"], "", &mut fields, &mut analysis);
        for name in &analysis {
            assert!(
                defined.contains(name),
                "{entity:?} mapping uses {name}, which the analysis template lacks"
            );
        }
        let mut produced = BTreeSet::new();
        for document in documents {
            leaves(&document, "", &mut produced);
        }
        let tombstone = source::of(&IndexOp::tombstone(entity, uuid(11), 3)).unwrap();
        leaves(&tombstone, "", &mut produced);
        let unmapped: Vec<_> = produced.difference(&fields).collect();
        assert!(
            unmapped.is_empty(),
            "{entity:?} documents have fields the mapping lacks: {unmapped:?}"
        );
        // Only copy_to targets are mapped without a document producing them.
        let unused: Vec<_> = fields.difference(&produced).filter(|f| *f != "derived.address").collect();
        assert!(unused.is_empty(), "{entity:?} mapping has fields no document produces: {unused:?}");
    }
}

#[test]
fn every_template_and_kibana_object_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("index-templates");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    let saved = std::fs::read_to_string(root.join("kibana/saved-objects.ndjson")).unwrap();
    let objects: Vec<Value> = saved.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: HashSet<(String, String)> = objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap().to_owned(), o["id"].as_str().unwrap().to_owned()))
        .collect();
    let titles: HashSet<&str> = objects
        .iter()
        .filter(|o| o["type"] == "index-pattern")
        .map(|o| o["attributes"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        HashSet::from(["arrears-accounts", "arrears-payments"]),
        "data views read the aliases"
    );
    for object in &objects {
        for reference in object["references"].as_array().into_iter().flatten() {
            let target = (
                reference["type"].as_str().unwrap().to_owned(),
                reference["id"].as_str().unwrap().to_owned(),
            );
            assert!(ids.contains(&target), "{} refers to missing {target:?}", object["id"]);
        }
    }
    let dashboard = objects.iter().find(|o| o["type"] == "dashboard").expect("a dashboard");
    let panels: Vec<Value> = serde_json::from_str(dashboard["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(panels.len(), 4, "balance by status, buckets, payments per day, method split");
    let account_fields = {
        let mut f = BTreeSet::new();
        mapped(&mappings(Entity::Account)["properties"], "", &mut f, &mut BTreeSet::new());
        f
    };
    let payment_fields = {
        let mut f = BTreeSet::new();
        mapped(&mappings(Entity::Payment)["properties"], "", &mut f, &mut BTreeSet::new());
        f
    };
    for object in objects.iter().filter(|o| o["type"] == "visualization") {
        let state: Value = serde_json::from_str(object["attributes"]["visState"].as_str().unwrap()).unwrap();
        let view = &object["references"][0]["id"];
        let fields = if view == "arrears-payments" {
            &payment_fields
        } else {
            &account_fields
        };
        for agg in state["aggs"].as_array().unwrap() {
            if let Some(field) = agg.pointer("/params/field").and_then(Value::as_str) {
                assert!(
                    fields.contains(field),
                    "{} aggregates on {field}, which is not mapped",
                    object["id"]
                );
            }
        }
    }
}

#[test]
fn compose_file_starts_everything_in_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for name in ["postgres", "redis", "elasticsearch", "kibana", "app", "kibana-setup"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    // One-shot setup containers run to completion; everything else reports health.
    let one_shot = |name: &str| name.ends_with("-setup");
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if !one_shot(name) {
            assert!(service.get("healthcheck").is_some(), "{name} has no health check");
        }
        if let Some(depends) = service.get("depends_on").and_then(|d| d.as_mapping()) {
            for (dependency, condition) in depends {
                let dependency = dependency.as_str().unwrap();
                assert!(services.contains_key(dependency), "{name} depends on unknown {dependency}");
                let wanted = if one_shot(dependency) {
                    "service_completed_successfully"
                } else {
                    "service_healthy"
                };
                assert_eq!(condition["condition"].as_str(), Some(wanted), "{name} must wait for {dependency}");
            }
        }
    }
    let app = &services["app"];
    assert_eq!(app["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    let env = app["environment"].as_mapping().unwrap();
    assert_eq!(env["SEARCH_BACKEND"].as_str(), Some("elasticsearch"));
    assert!(env["ELASTICSEARCH_URL"].as_str().unwrap().contains("elasticsearch:9200"));
    let setup = &services["kibana-setup"];
    let mounts: Vec<&str> = setup["volumes"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(mounts.iter().any(|m| m.starts_with("./index-templates/kibana")), "{mounts:?}");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    assert!(
        dockerfile.lines().any(|l| l.starts_with("USER ") && !l.contains("root")),
        "runs as non-root"
    );
}

fn config(url: &str) -> ElasticConfig {
    ElasticConfig {
        client: ClientConfig {
            url: url.parse().unwrap(),
            username: Some("arrears".into()),
            password: Some("secret".into()),
            api_key: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
        },
        prefix: "arrears".into(),
        replicas: 0,
        keep_old: false,
    }
}

const FAST_RETRY: Retry = Retry {
    attempts: 4,
    base_delay: Duration::from_millis(100),
    batch: 100,
};

/// A server that knows one write target and answers bulks with `bulks` in turn.
async fn bulk_server(mut bulks: Vec<(u16, Value)>) -> ScriptedEs {
    bulks.reverse();
    ScriptedEs::start(move |r| {
        if r.path.starts_with("/_alias/arrears-accounts-targets") {
            (200, alias_of("arrears-accounts-g1", "arrears-accounts-targets"))
        } else if r.path.starts_with("/_bulk") {
            bulks.pop().expect("no more bulk requests expected")
        } else if r.path.ends_with("/_refresh") {
            (200, json!({ "_shards": { "total": 1, "successful": 1, "failed": 0 } }))
        } else {
            (404, error("resource_not_found_exception", "unexpected request", 404))
        }
    })
    .await
}

fn docs(n: u128) -> Vec<IndexOp> {
    (0..n)
        .map(|i| {
            let mut doc = account();
            doc.id = uuid(100 + i);
            doc.search_version = 50 + i as i64;
            IndexOp::upsert(doc)
        })
        .collect()
}

#[tokio::test]
async fn partial_bulk_failure_retries_only_the_failed_items() {
    let server = bulk_server(vec![(200, bulk_response(&[201, 429, 201])), (200, bulk_response(&[201]))]).await;
    let index = ElasticIndex::new(&config(&server.url), fresh_pool().await)
        .unwrap()
        .with_retry(FAST_RETRY);
    let report = index.apply(docs(3)).await.unwrap();
    assert_eq!((report.applied, report.stale, report.rejected), (3, 0, 0));
    let bulks = server.bulks();
    assert_eq!(bulks.len(), 2);
    assert_eq!(bulks[0].method, "POST");
    assert_eq!(bulks[0].bulk_ids().len(), 3);
    assert_eq!(
        bulks[1].bulk_ids(),
        vec![uuid(101).to_string()],
        "only the rejected item is sent again"
    );
    let action = &bulks[0].lines()[0]["index"];
    assert_eq!(action["version_type"], "external");
    assert_eq!(action["version"], 50);
    assert_eq!(action["_index"], "arrears-accounts-g1-write");
    assert!(bulks[0].authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")));
}

#[tokio::test]
async fn version_conflicts_count_as_already_applied() {
    let server = bulk_server(vec![(200, bulk_response(&[409, 201]))]).await;
    let index = ElasticIndex::new(&config(&server.url), fresh_pool().await)
        .unwrap()
        .with_retry(FAST_RETRY);
    let report = index.apply(docs(2)).await.unwrap();
    assert_eq!((report.applied, report.stale), (1, 1));
    assert_eq!(server.bulks().len(), 1, "a 409 is not retried");
}

#[tokio::test]
async fn too_many_requests_backs_off_and_shrinks_the_batch() {
    let rejected = error(
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation",
        429,
    );
    let server = bulk_server(vec![
        (429, rejected.clone()),
        (429, rejected),
        (200, bulk_response(&[201])),
        (200, bulk_response(&[201])),
    ])
    .await;
    let retry = Retry { batch: 2, ..FAST_RETRY };
    let index = ElasticIndex::new(&config(&server.url), fresh_pool().await)
        .unwrap()
        .with_retry(retry);
    let report = index.apply(docs(2)).await.unwrap();
    assert_eq!(report.applied, 2);
    let bulks = server.bulks();
    assert_eq!(bulks.len(), 4);
    // Round 1: both documents, rejected. Round 2: one request each (the batch was
    // halved); the first is rejected again. Round 3: that one alone.
    assert_eq!(bulks[0].bulk_ids().len(), 2);
    assert_eq!(bulks[1].bulk_ids().len(), 1, "after a rejected request the batch is halved");
    assert_eq!(bulks[3].bulk_ids(), bulks[1].bulk_ids());
    let first_pause = bulks[1].at - bulks[0].at;
    let second_pause = bulks[3].at - bulks[2].at;
    assert!(first_pause >= Duration::from_millis(50), "backed off {first_pause:?}");
    assert!(second_pause >= Duration::from_millis(100), "the pause grows: {second_pause:?}");
}

#[tokio::test]
async fn mapping_errors_become_dead_letters_without_blocking_the_batch() {
    let server = bulk_server(vec![(200, bulk_response(&[201, 400]))]).await;
    let pool = fresh_pool().await;
    let index = ElasticIndex::new(&config(&server.url), pool.clone())
        .unwrap()
        .with_retry(FAST_RETRY);
    let report = index.apply(docs(2)).await.unwrap();
    assert_eq!((report.applied, report.rejected), (1, 1));
    let letters = arrears::store::dead_letters::recent(&pool, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entity_id, uuid(101));
    assert_eq!(letters[0].error_type, "document_parsing_exception");
    assert_eq!(letters[0].document["account_number"], "ACC-000123");
    assert_eq!(server.bulks().len(), 1);
}

#[tokio::test]
async fn unauthorized_stops_the_sync_worker_and_keeps_the_outbox() {
    let server = ScriptedEs::start(|_| {
        (
            401,
            error(
                "security_exception",
                "unable to authenticate user [arrears] for REST request [/_alias]",
                401,
            ),
        )
    })
    .await;
    let pool = fresh_pool().await;
    sqlx::query(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency)
         VALUES ($1, 'ES-401', 'Refused Person', 10, 10, 'USD')",
    )
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await
    .unwrap();
    let index: Arc<dyn SearchIndex> = Arc::new(ElasticIndex::new(&config(&server.url), pool.clone()).unwrap());
    let metrics = Arc::new(SyncMetrics::default());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let worker = SyncWorker::new(pool.clone(), index, metrics.clone());
    tokio::time::timeout(Duration::from_secs(10), worker.run(stopped))
        .await
        .expect("the worker stops by itself instead of retrying forever");
    let reason = metrics.stopped().expect("the stop is recorded");
    assert!(reason.contains("401") && reason.contains("security_exception"), "{reason}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM search_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 1, "the change waits in the outbox for a fixed worker");
    assert_eq!(server.received().len(), 1, "no retries against refused credentials");
}

fn search_response(failed: u64, sources: &[Value]) -> Value {
    let hits: Vec<Value> = sources
        .iter()
        .map(|s| json!({ "_index": "arrears-accounts-g1", "_id": s["id"], "_score": null, "_source": s, "sort": [75_025_000, s["id"]] }))
        .collect();
    let mut shards = json!({ "total": 2, "successful": 2 - failed, "skipped": 0, "failed": failed });
    if failed > 0 {
        shards["failures"] = json!([{ "shard": 1, "index": "arrears-accounts-g1", "reason": { "type": "node_not_connected_exception", "reason": "node disconnected" } }]);
    }
    json!({
        "took": 2, "timed_out": false, "_shards": shards,
        "hits": { "total": { "value": sources.len(), "relation": "eq" }, "max_score": null, "hits": hits }
    })
}

#[tokio::test]
async fn failed_shards_are_reported_over_http_not_hidden() {
    let mut document = source::account(&account()).unwrap();
    document["deleted_at"] = Value::Null;
    let shards_failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = shards_failed.clone();
    let server = ScriptedEs::start(move |r| {
        if r.path.starts_with("/arrears-accounts/_search") {
            (
                200,
                search_response(failed.load(std::sync::atomic::Ordering::SeqCst), std::slice::from_ref(&document)),
            )
        } else {
            (404, error("index_not_found_exception", "no such index", 404))
        }
    })
    .await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
        s.sync_worker = false;
    })
    .await;
    let manager = app.user(Role::Manager).await;
    let response = app.get("/api/v1/accounts?sort=-balance", &manager.token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["account_number"], "ACC-000123");
    assert_eq!(body["total"], 1);
    let sent = server.received().last().unwrap().json();
    assert_eq!(sent["sort"][0]["derived.balance_units"]["order"], "desc");

    shards_failed.store(1, std::sync::atomic::Ordering::SeqCst);
    let response = app.get("/api/v1/accounts?sort=-balance", &manager.token).await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("1 of 2 shards"), "{problem}");

    let direct = ElasticIndex::new(&config(&server.url), fresh_pool().await).unwrap();
    let err = direct.search(AccountQuery::new(today())).await.unwrap_err();
    assert_eq!(err.code(), Code::ServiceUnavailable);
}

/// A scripted cluster that keeps indices and aliases the way the index and alias APIs
/// document them (enough for a rebuild's orchestration).
async fn alias_cluster(
    indices: &[(&str, &[&str])],
) -> (
    ScriptedEs,
    Arc<std::sync::Mutex<std::collections::BTreeMap<String, BTreeSet<String>>>>,
) {
    let state: Arc<std::sync::Mutex<std::collections::BTreeMap<String, BTreeSet<String>>>> = Arc::new(std::sync::Mutex::new(
        indices
            .iter()
            .map(|(index, aliases)| (index.to_string(), aliases.iter().map(|a| a.to_string()).collect()))
            .collect(),
    ));
    let cluster = state.clone();
    let server = ScriptedEs::start(move |r| {
        let mut cluster = cluster.lock().unwrap();
        let path = r.path.split('?').next().unwrap().to_owned();
        let listing = |names: Vec<(&String, &BTreeSet<String>)>| -> Value {
            names
                .into_iter()
                .map(|(index, aliases)| {
                    let aliases: serde_json::Map<String, Value> = aliases.iter().map(|a| (a.clone(), json!({}))).collect();
                    (index.clone(), json!({ "aliases": aliases }))
                })
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        let ack = json!({ "acknowledged": true });
        match (r.method.as_str(), path.as_str()) {
            ("GET", p) if p.starts_with("/_alias/") => {
                let alias = &p["/_alias/".len()..];
                let found: Vec<_> = cluster.iter().filter(|(_, a)| a.contains(alias)).collect();
                if found.is_empty() {
                    (404, json!({ "error": format!("alias [{alias}] missing"), "status": 404 }))
                } else {
                    (200, listing(found))
                }
            }
            ("GET", p) if p.ends_with("/_alias") => {
                let prefix = p.trim_start_matches('/').trim_end_matches("/_alias").trim_end_matches('*');
                (200, listing(cluster.iter().filter(|(i, _)| i.starts_with(prefix)).collect()))
            }
            ("POST", "/_aliases") => {
                for action in r.json()["actions"].as_array().unwrap() {
                    let (kind, spec) = action.as_object().unwrap().iter().next().unwrap();
                    let index = spec["index"].as_str().unwrap().to_owned();
                    let alias = spec["alias"].as_str().unwrap().to_owned();
                    let Some(aliases) = cluster.get_mut(&index) else {
                        return (404, error("index_not_found_exception", &format!("no such index [{index}]"), 404));
                    };
                    if kind == "add" {
                        aliases.insert(alias);
                    } else {
                        aliases.remove(&alias);
                    }
                }
                (200, ack)
            }
            ("PUT", p) if p.ends_with("/_settings") || p.starts_with("/_component_template/") || p.starts_with("/_index_template/") => {
                (200, ack)
            }
            ("POST", "/_bulk") => (200, bulk_response(&vec![201; r.lines().len() / 2])),
            ("POST", p) if p.ends_with("/_refresh") => {
                let name = p.trim_start_matches('/').trim_end_matches("/_refresh");
                if cluster.iter().any(|(index, aliases)| index == name || aliases.contains(name)) {
                    (200, json!({ "_shards": { "total": 1, "successful": 1, "failed": 0 } }))
                } else {
                    (404, error("index_not_found_exception", &format!("no such index [{name}]"), 404))
                }
            }
            ("PUT", p) => {
                let index = p.trim_start_matches('/').to_owned();
                if cluster.contains_key(&index) {
                    return (
                        400,
                        error("resource_already_exists_exception", &format!("index [{index}] already exists"), 400),
                    );
                }
                let aliases = r.json()["aliases"].as_object().unwrap().keys().cloned().collect();
                cluster.insert(index.clone(), aliases);
                (200, json!({ "acknowledged": true, "shards_acknowledged": true, "index": index }))
            }
            ("DELETE", p) => match cluster.remove(p.trim_start_matches('/')) {
                Some(_) => (200, ack),
                None => (404, error("index_not_found_exception", "no such index", 404)),
            },
            _ => (
                400,
                error("illegal_argument_exception", &format!("unexpected {} {}", r.method, r.path), 400),
            ),
        }
    })
    .await;
    (server, state)
}

#[tokio::test]
async fn rebuild_swaps_aliases_atomically_and_drops_the_old_generation() {
    let live: &[&str] = &["arrears-accounts", "arrears-accounts-targets", "arrears-accounts-g1-write"];
    let (server, cluster) = alias_cluster(&[("arrears-accounts-g1", live)]).await;
    let index = ElasticIndex::new(&config(&server.url), fresh_pool().await).unwrap();
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(generation, "arrears-accounts-g2");
    let created = server.received().into_iter().find(|r| r.method == "PUT").unwrap().json();
    assert_eq!(
        created["settings"]["index"]["refresh_interval"], "-1",
        "the backfill runs with refresh off"
    );
    assert_eq!(created["settings"]["index"]["number_of_replicas"], 0);
    {
        let cluster = cluster.lock().unwrap();
        let targets: Vec<_> = cluster
            .iter()
            .filter(|(_, a)| a.contains("arrears-accounts-targets"))
            .map(|(i, _)| i.clone())
            .collect();
        assert_eq!(
            targets,
            ["arrears-accounts-g1", "arrears-accounts-g2"],
            "both generations are written during the rebuild"
        );
        assert!(!cluster["arrears-accounts-g2"].contains("arrears-accounts"), "reads stay on g1");
    }

    index.promote(Entity::Account, generation.clone()).await.unwrap();
    let swaps: Vec<_> = server.received().into_iter().filter(|r| r.path == "/_aliases").collect();
    assert_eq!(swaps.len(), 1, "one atomic _aliases call");
    assert_eq!(swaps[0].json()["actions"].as_array().unwrap().len(), 4);
    let settings = server.received().into_iter().find(|r| r.path.ends_with("/_settings")).unwrap();
    assert_eq!(
        settings.json()["index"]["refresh_interval"],
        "1s",
        "refresh is restored before the swap"
    );
    assert!(settings.at <= swaps[0].at);
    {
        let cluster = cluster.lock().unwrap();
        assert!(!cluster.contains_key("arrears-accounts-g1"), "the old generation is deleted");
        let aliases: Vec<_> = cluster["arrears-accounts-g2"].iter().cloned().collect();
        assert_eq!(
            aliases,
            ["arrears-accounts", "arrears-accounts-g2-write", "arrears-accounts-targets"]
        );
    }
    let again = index.promote(Entity::Account, generation).await.unwrap_err();
    assert_eq!(again.code(), Code::Conflict, "a generation is promoted once");

    let abandoned = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(abandoned, "arrears-accounts-g3");
    index.abandon(Entity::Account, abandoned.clone()).await.unwrap();
    assert!(index.count(Entity::Account, abandoned).await.is_err());
    assert_eq!(cluster.lock().unwrap().keys().cloned().collect::<Vec<_>>(), ["arrears-accounts-g2"]);
}

#[tokio::test]
async fn keep_old_keeps_the_previous_generation_out_of_reads_and_writes() {
    let live: &[&str] = &["arrears-payments", "arrears-payments-targets", "arrears-payments-g4-write"];
    let (server, cluster) = alias_cluster(&[("arrears-payments-g4", live)]).await;
    let keep = ElasticConfig {
        keep_old: true,
        ..config(&server.url)
    };
    let index = ElasticIndex::new(&keep, fresh_pool().await).unwrap();
    let generation = index.begin_rebuild(Entity::Payment).await.unwrap();
    assert_eq!(generation, "arrears-payments-g5");
    index.promote(Entity::Payment, generation).await.unwrap();
    let cluster = cluster.lock().unwrap();
    assert!(cluster["arrears-payments-g4"].is_empty(), "kept, but neither read nor written");
    assert!(cluster["arrears-payments-g5"].contains("arrears-payments"));
}

#[tokio::test]
async fn the_app_applies_templates_on_start_and_syncs_writes_to_elasticsearch() {
    let (server, cluster) = alias_cluster(&[]).await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
    })
    .await;
    let templates: Vec<_> = server
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/_component_template/") || r.path.starts_with("/_index_template/"))
        .collect();
    assert_eq!(templates.len(), 4);
    assert_eq!(templates[2].path, "/_index_template/arrears-accounts");
    assert_eq!(
        templates[2].json(),
        templates::index_template(&Names::new("arrears"), Entity::Account)
    );
    {
        let cluster = cluster.lock().unwrap();
        let accounts: Vec<_> = cluster["arrears-accounts-g1"].iter().cloned().collect();
        assert_eq!(
            accounts,
            ["arrears-accounts", "arrears-accounts-g1-write", "arrears-accounts-targets"]
        );
        assert!(cluster.contains_key("arrears-payments-g1"));
    }

    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({ "debtor_name": "Elastic Person" })).await;
    let id = account["id"].as_str().unwrap().to_owned();
    eventually("the account reaches the cluster", || {
        let server = &server;
        let id = id.clone();
        async move { server.bulks().iter().any(|b| b.bulk_ids().contains(&id)) }
    })
    .await;
    let bulk = server.bulks().into_iter().find(|b| b.bulk_ids().contains(&id)).unwrap();
    let lines = bulk.lines();
    let position = lines.iter().position(|l| l.pointer("/index/_id") == Some(&json!(id))).unwrap();
    assert_eq!(lines[position]["index"]["_index"], "arrears-accounts-g1-write");
    assert_eq!(lines[position]["index"]["version_type"], "external");
    assert_eq!(lines[position + 1]["debtor_name"], "Elastic Person");
    assert!(lines[position + 1]["derived"]["balance_units"].is_i64());
    // The refresh follows the bulk's answer, so it may arrive a moment after it.
    eventually("the batch is made searchable", || async {
        server
            .received()
            .iter()
            .any(|r| r.path == "/arrears-accounts-targets/_refresh" && r.at >= bulk.at)
    })
    .await;
}

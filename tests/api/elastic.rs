//! The Elasticsearch backend without a cluster: golden request fixtures, behaviour
//! against a scripted server, and the shipped templates, compose file and Kibana
//! objects checked for consistency. The contract suite runs on a real cluster when
//! ELASTICSEARCH_URL is set (`contract.rs`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrears::config::SearchBackend;
use arrears::domain::account::{AccountStatus, Address, Bucket};
use arrears::domain::attachment::Kind;
use arrears::domain::compliance::{Channel, ContactInputs, UtcWindow};
use arrears::domain::document::{
    AccountDoc, AccountSummary, CustomValue, Entity, FileFacts, IndexOp, OpenPromise, PaymentDoc, PlanSummary, Typed, WorkInputs,
};
use arrears::domain::payment::{Method, PaymentStatus};
use arrears::domain::plan::PlanStatus;
use arrears::domain::queue::Reason;
use arrears::domain::role::Role;
use arrears::domain::search::{
    AccountQuery, After, AgentFilter, Contactable, Counted, CustomField, CustomFilter, CustomKind, CustomTest, Facet, FieldKey, FileReach,
    PaymentFacet, PaymentQuery, PaymentSort, PaymentSortField, Sort, SortField, SortKey, StatsQuery,
};
use arrears::error::Code;
use arrears::search::SearchIndex;
use arrears::search::elastic::bulk::{self, Item, Retry};
use arrears::search::elastic::client::{Call, ClientConfig};
use arrears::search::elastic::dsl;
use arrears::search::elastic::templates::{self, Names};
use arrears::search::elastic::{ElasticConfig, ElasticIndex, source};
use arrears::search::words;
use arrears::store::dead_letters::SqlDeadLetters;
use arrears::sync::metrics::SyncMetrics;
use arrears::sync::worker::SyncWorker;
use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{eventually, fresh_pool, spawn_app_with};
use crate::scripted_es::{Indices, ScriptedEs, bulk_response, error};
use crate::scripted_search::{self, Doc};

const REFERENCE: &str = "https://www.elastic.co/guide/en/elasticsearch/reference/8.19/";

pub(crate) fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
}

pub(crate) fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

pub(crate) fn at(day: u32, hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

pub(crate) fn account() -> AccountDoc {
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
        portfolio_id: Some(uuid(9)),
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
            plan: Some(PlanSummary {
                id: uuid(10),
                status: PlanStatus::Active,
                next_due_date: NaiveDate::from_ymd_opt(2026, 12, 15),
                next_amount: Some(Decimal::new(8_334, 2)),
                missed_count: 1,
                last_missed_on: NaiveDate::from_ymd_opt(2026, 11, 15),
            }),
        },
        work: WorkInputs {
            contact: ContactInputs {
                blocked: vec![Channel::Email],
                windowed: vec![Channel::Call, Channel::Sms, Channel::Email, Channel::Visit],
                calls_open_at: Some(at(21, 9)),
                window: Some(UtcWindow {
                    start_min: 780,
                    end_min: 1560,
                }),
            },
            broken_promise_due: Some(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
            plan_missed_due: NaiveDate::from_ymd_opt(2026, 11, 15),
            custom: [
                ("product", Typed::Keywords(vec!["Card".into()])),
                ("channels", Typed::Keywords(vec!["mail".into(), "phone".into()])),
                ("secured", Typed::Boolean(true)),
                ("risk_score", Typed::Number(6_125_000)),
                ("credit_limit", Typed::Money(15_000_000)),
                ("charged_off", Typed::Date(20_150)),
                (
                    "note",
                    Typed::Text {
                        text: "Moved from Quixotic Lending".into(),
                        searchable: true,
                        filterable: true,
                    },
                ),
            ]
            .into_iter()
            .map(|(key, value)| CustomValue { key: key.into(), value })
            .collect(),
            portfolio_name: Some("Acme Bank".into()),
            files: vec![
                FileFacts {
                    kind: Kind::Pdf,
                    name: "dispute-letter.pdf".into(),
                    text: Some("I dispute the balance of account ACC-000123".into()),
                },
                FileFacts {
                    kind: Kind::Png,
                    name: "receipt.png".into(),
                    text: None,
                },
            ],
        },
        zone: None,
    }
}

pub(crate) fn payment() -> PaymentDoc {
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
        account_deleted: false,
        portfolio_id: Some(uuid(12)),
    }
}

pub(crate) fn full_account_query() -> AccountQuery {
    AccountQuery {
        text: None,
        statuses: vec![AccountStatus::Active, AccountStatus::Delinquent],
        agent: Some(AgentFilter::Agent(uuid(7))),
        tags: vec!["vip".into()],
        document_kinds: vec![Kind::Pdf, Kind::Eml],
        file_reach: FileReach::All,
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
        contactable: None,
        tier: None,
        has_plan: Some(true),
        plan_statuses: vec![PlanStatus::Active, PlanStatus::Broken],
        plan_next_before: NaiveDate::from_ymd_opt(2026, 12, 1),
        portfolios: Vec::new(),
        portfolio_scope: None,
        custom: Vec::new(),
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
        counted: Counted::LIST,
        today: today(),
    }
}

/// Every custom field test on every kind, custom facets, a portfolio filter with
/// accounts without one, the portfolio scope, sorted by a custom date after a value.
pub(crate) fn custom_account_query() -> AccountQuery {
    let field = |key: &str, kind: CustomKind| CustomField {
        key: FieldKey::new(key),
        kind,
    };
    let filter = |key: &str, kind: CustomKind, test: CustomTest| CustomFilter {
        field: field(key, kind),
        test,
    };
    AccountQuery {
        portfolios: vec![Some(uuid(12)), None],
        portfolio_scope: Some(vec![uuid(12), uuid(13)]),
        custom: vec![
            filter(
                "product",
                CustomKind::Keyword,
                CustomTest::OneOf(vec!["Card".into(), "Loan".into()]),
            ),
            filter("secured", CustomKind::Boolean, CustomTest::OneOf(vec!["true".into()])),
            filter(
                "risk_score",
                CustomKind::Number,
                CustomTest::Range {
                    lo: Some(6_000_000),
                    hi: Some(7_500_000),
                },
            ),
            filter(
                "credit_limit",
                CustomKind::Money,
                CustomTest::Range {
                    lo: None,
                    hi: Some(25_005_000),
                },
            ),
            filter(
                "charged_off",
                CustomKind::Date,
                CustomTest::Range {
                    lo: Some(20_000),
                    hi: None,
                },
            ),
            filter("branch", CustomKind::Keyword, CustomTest::Exists(true)),
            filter("closed_on", CustomKind::Date, CustomTest::Exists(false)),
        ],
        facets: vec![
            Facet::Portfolio,
            Facet::Custom(field("product", CustomKind::Keyword)),
            Facet::Custom(field("secured", CustomKind::Boolean)),
        ],
        sort: Sort {
            field: SortField::Custom(field("charged_off", CustomKind::Date)),
            descending: true,
        },
        after: Some(After {
            key: SortKey::Int(1_767_225_600_000),
            id: uuid(3),
        }),
        ..AccountQuery::new(today())
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elastic")
}

/// With `UPDATE_GOLDEN` set, writes a golden file and fails the test: a rewritten
/// fixture proves nothing until someone has read its diff, so a run that rewrites
/// fixtures (a CI run with the variable set among them) cannot pass.
fn rewrite_golden(path: &Path, content: &Value) {
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(content).unwrap() + "\n").unwrap();
    panic!(
        "UPDATE_GOLDEN is set: rewrote {}; review the diff (git diff) against the reference page it names, \
         then run the tests again without UPDATE_GOLDEN",
        path.display()
    );
}

/// Compares a request with its checked-in fixture. The fixture's name ends with the
/// page of the Elasticsearch 8 reference it was reviewed against; `UPDATE_GOLDEN=1`
/// rewrites it and fails (review the diff, then run again without it).
fn golden(name: &str, reference: &str, request: Call) {
    let path = fixtures().join(format!("{name}.{reference}.json"));
    let actual = json!({ "reference": format!("{REFERENCE}{reference}.html"), "request": request.to_json() });
    rewrite_golden(&path, &actual);
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
pub(crate) fn mappings(entity: Entity) -> Value {
    templates::index_template(&Names::new("arrears"), entity)["template"]["mappings"].clone()
}

/// A search of an entity's read alias as the backend sends it (relevance-sorted ones,
/// those sorted by `_score`, with their preference).
pub(crate) fn search(entity: &str, body: Value) -> Call {
    let by_relevance = body.pointer("/sort/0/_score").is_some();
    Call::search(format!("arrears-{entity}"), body, by_relevance)
}

#[test]
fn golden_account_text_search() {
    let query = AccountQuery {
        text: Some("Maria OBrian 555-0134".into()),
        // The words may also be found in the documents of the agent's own accounts.
        file_reach: FileReach::Assigned(uuid(7)),
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

/// Words with combining marks reach the cluster whole, as its `arrears_words`
/// tokenizer (the same word definition) indexes them.
#[test]
fn golden_account_text_search_with_combining_marks() {
    let query = AccountQuery {
        text: Some("प्रिया शर्मा".into()),
        ..AccountQuery::new(today())
    };
    let body = dsl::account_search(&query);
    assert!(body.to_string().contains("\"शर्मा\""), "{body}");
    golden("account-text-search-marks", "analysis-pattern-tokenizer", search("accounts", body));
}

/// A page of none (`page_size=0`) is `size: 0`, the requests the shard request cache
/// keeps, and carries no cursor: the total and aggregations count every match anyway.
#[test]
fn a_page_of_none_asks_for_no_hits_and_no_cursor() {
    let query = AccountQuery {
        page_size: 0,
        after: Some(After {
            key: SortKey::Int(42),
            id: Uuid::nil(),
        }),
        facets: vec![Facet::Status],
        ..AccountQuery::new(today())
    };
    let body = dsl::account_search(&query);
    assert_eq!(body["size"], 0, "{body}");
    assert!(body.get("search_after").is_none(), "{body}");
    assert!(body["aggs"].get("status").is_some(), "{body}");
    let body = dsl::account_search(&AccountQuery { page_size: 1, ..query });
    assert_eq!((&body["size"], body.get("search_after").is_some()), (&json!(2), true));
}

#[test]
fn elasticsearch_splits_words_where_the_embedded_backend_does() {
    let patterns: Vec<Value> = templates::apply_requests(&Names::new("arrears"), 0)
        .iter()
        .filter_map(|call| {
            call.body()?
                .pointer("/template/settings/index/analysis/tokenizer/arrears_words/pattern")
                .cloned()
        })
        .collect();
    assert_eq!(patterns, [json!(arrears::search::words::separator_pattern())]);
    assert_eq!(
        patterns[0], r"[^\p{L}\p{M}\p{N}]+",
        "Java reads these categories as Rust's regex does"
    );
}

/// A name word longer than the edge n-grams is asked as a `prefix` of the word field.
#[test]
fn golden_account_text_search_longer_than_the_name_ngrams() {
    let query = AccountQuery {
        text: Some("Wolfeschlegelsteinhausenb".into()),
        ..AccountQuery::new(today())
    };
    golden(
        "account-text-search-long-word",
        "query-dsl-prefix-query",
        search("accounts", dsl::account_search(&query)),
    );
}

/// Queries of `kind` (`term`, `prefix`...) in a request body, as (field, value).
fn queries_of(kind: &str, body: &Value, out: &mut Vec<(String, String)>) {
    match body {
        Value::Object(map) => {
            for (key, child) in map {
                match (key == kind, child.as_object()) {
                    (true, Some(fields)) => {
                        for (field, spec) in fields {
                            let value = spec.get("value").unwrap_or(spec);
                            out.push((field.clone(), value.as_str().unwrap_or_default().to_owned()));
                        }
                    }
                    _ => queries_of(kind, child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries_of(kind, item, out)),
        _ => {}
    }
}

/// The edge n-gram field holds a name's word prefixes up to `max_gram` characters: a
/// longer word looked up there as a term matches nothing on a real cluster, where the
/// embedded backend matches every word it begins. Longer words are asked as a `prefix`
/// of the word field instead.
#[test]
fn name_words_longer_than_the_edge_ngrams_are_asked_as_prefixes_of_the_word_field() {
    let analysis: Value = serde_json::from_str(templates::ANALYSIS).unwrap();
    let edge = &analysis["template"]["settings"]["index"]["analysis"]["filter"]["arrears_edge_ngrams"];
    assert_eq!(edge["type"], "edge_ngram");
    let max_gram = edge["max_gram"].as_u64().unwrap() as usize;
    assert_eq!(max_gram, dsl::NAME_EDGE_GRAMS);
    for entity in [Entity::Account, Entity::Payment] {
        let name = &mappings(entity)["properties"]["debtor_name"];
        assert_eq!(name["fields"]["prefix"]["analyzer"], "arrears_edge", "{entity:?}");
        assert_eq!(name["analyzer"], "arrears_folded", "{entity:?}");
    }
    let word = "wolfeschlegelsteinhausenbergerdorff";
    for length in [1, max_gram - 1, max_gram, max_gram + 1, 25, word.len()] {
        let typed = &word[..length];
        let bodies = [
            dsl::account_search(&AccountQuery {
                text: Some(typed.to_uppercase()),
                ..AccountQuery::new(today())
            }),
            dsl::payment_search(&PaymentQuery {
                text: Some(typed.to_owned()),
                ..PaymentQuery::default()
            }),
        ];
        for body in bodies {
            let (mut terms, mut prefixes) = (Vec::new(), Vec::new());
            queries_of("term", &body, &mut terms);
            queries_of("prefix", &body, &mut prefixes);
            let edge_terms: Vec<&String> = terms.iter().filter(|(f, _)| f == "debtor_name.prefix").map(|(_, v)| v).collect();
            let word_prefixes: Vec<&String> = prefixes.iter().filter(|(f, _)| f == "debtor_name").map(|(_, v)| v).collect();
            if length <= max_gram {
                assert_eq!((edge_terms, word_prefixes), (vec![&typed.to_owned()], vec![]), "{length}: {body}");
            } else {
                assert_eq!((edge_terms, word_prefixes), (vec![], vec![&typed.to_owned()]), "{length}: {body}");
            }
        }
    }
}

/// Both backends index a name's adjacent words joined, two or three at a time, and an
/// email's and external reference's words: the template's shingle filter joins as
/// `words::joined_words` does, and its fields are the ones the queries name.
#[test]
fn joined_names_and_identifier_parts_are_analysed_as_the_embedded_index_does() {
    let analysis: Value = serde_json::from_str(templates::ANALYSIS).unwrap();
    let analysis = &analysis["template"]["settings"]["index"]["analysis"];
    let shingle = &analysis["filter"]["arrears_joined_words"];
    assert_eq!(shingle["type"], "shingle");
    assert_eq!(shingle["min_shingle_size"], 2);
    assert_eq!(shingle["max_shingle_size"], words::JOIN_MAX);
    assert_eq!(shingle["output_unigrams"], false);
    assert_eq!(shingle["token_separator"], "");
    let folded = &analysis["analyzer"]["arrears_folded"];
    let joined = &analysis["analyzer"]["arrears_joined"];
    assert_eq!(joined["tokenizer"], folded["tokenizer"]);
    let mut filters = folded["filter"].as_array().unwrap().clone();
    filters.push(json!("arrears_joined_words"));
    assert_eq!(joined["filter"], json!(filters), "the folded words, then joined");

    let accounts = mappings(Entity::Account);
    let properties = &accounts["properties"];
    assert_eq!(properties["debtor_name"]["fields"]["joined"]["analyzer"], "arrears_joined");
    assert_eq!(properties["derived"]["properties"]["ident_parts"]["analyzer"], "arrears_folded");
    // The external reference is hidden from agents on others' accounts: it has a field
    // of its own, so a search can leave it out (issue 75, item 4).
    for (field, target) in [("email", "derived.ident_parts"), ("external_ref", "derived.reference_parts")] {
        assert_eq!(properties[field]["copy_to"], target, "{field}");
    }
    assert!(
        properties["account_number"].get("copy_to").is_none(),
        "account numbers match whole or as a prefix"
    );

    let body = dsl::account_search(&AccountQuery {
        text: Some("Mc Donald".into()),
        ..AccountQuery::new(today())
    });
    let mut terms = Vec::new();
    queries_of("term", &body, &mut terms);
    for asked in [
        ("debtor_name", "mcdonald"),
        ("debtor_name.joined", "donald"),
        ("derived.ident_parts", "mc"),
    ] {
        assert!(terms.contains(&(asked.0.to_owned(), asked.1.to_owned())), "{asked:?} in {body}");
    }
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
fn golden_account_queue_tier_and_contact_filter() {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 30, 0).unwrap();
    let query = AccountQuery {
        contactable: Some(Contactable {
            channel: Channel::Call,
            now,
        }),
        tier: Some(Reason::PlanInstalmentMissed.tier(today(), now)),
        sort: Sort {
            field: SortField::Queue,
            descending: true,
        },
        ..AccountQuery::new(today())
    };
    golden(
        "account-queue-tier",
        "query-dsl-bool-query",
        search("accounts", dsl::account_search(&query)),
    );
}

#[test]
fn golden_queue_claim_candidates_as_ids() {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 30, 0).unwrap();
    let query = AccountQuery {
        agent: Some(AgentFilter::Unassigned),
        contactable: Some(Contactable {
            channel: Channel::Call,
            now,
        }),
        tier: Some(Reason::Score.tier(today(), now)),
        sort: Sort {
            field: SortField::Queue,
            descending: true,
        },
        page_size: 10,
        after: Some(After {
            key: SortKey::Int(-1_234_567),
            id: Uuid::from_u128(7),
        }),
        ..AccountQuery::new(today())
    };
    golden("account-ranked-ids", "search-fields", search("accounts", dsl::ranked_ids(&query)));
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
        facets: vec![
            Facet::Status,
            Facet::Bucket,
            Facet::AssignedAgent,
            Facet::Tags,
            Facet::DocumentKind,
            Facet::DocumentName,
        ],
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
fn golden_account_custom_fields_and_portfolios() {
    golden(
        "account-custom-fields",
        "dynamic-templates",
        search("accounts", dsl::account_search(&custom_account_query())),
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
        portfolio_scope: Some(vec![uuid(12)]),
        include_deleted: false,
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
        counted: Counted::Exact,
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
    let query = StatsQuery {
        portfolio_scope: Some(vec![uuid(12), uuid(13)]),
        ..StatsQuery::new(
            tz,
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            today(),
        )
    };
    golden(
        "payment-stats",
        "search-aggregations-bucket-range-aggregation",
        search("payments", dsl::stats_body(&query)),
    );
}

#[test]
fn golden_id_scan() {
    let after = json!([uuid(6).to_string(), 4_294_967_303_u64]);
    let body = dsl::scan_body(dsl::live_documents(), "46ToAwMDaWR5BXV1aWQy", Some(after), dsl::SCAN_PAGE);
    golden("version-scan", "point-in-time-api", Call::SearchPit { body });
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
            _ => "arrears-payments-g1-write",
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

/// A change to what a generation is built with (mappings, analysis, shards) raises the
/// entity's mapping schema number: in a rolling upgrade the older release tells the newer
/// release's generation by it and leaves it alone instead of rebuilding it back.
/// `index-templates/mapping-schemas.txt` records the digest of every number.
#[test]
fn every_mapping_change_raises_its_schema_number() {
    let recorded = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("index-templates/mapping-schemas.txt")).unwrap();
    for entity in Entity::ALL {
        let schema = templates::mapping_schema(entity);
        let line = format!("{} {schema} {}", entity.plural(), templates::mapping_digest(entity));
        let of_schema: Vec<&str> = recorded
            .lines()
            .filter(|l| l.starts_with(&format!("{} {schema} ", entity.plural())))
            .collect();
        assert_eq!(
            of_schema,
            [line.as_str()],
            "{} mapping schema {schema}: what a generation is built with changed; raise _meta.schema in index-templates/ and add `{line}` to index-templates/mapping-schemas.txt",
            entity.plural()
        );
    }
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
        templates::swap_aliases(
            &names,
            Entity::Account,
            "arrears-accounts-g2",
            &["arrears-accounts-g1".into()],
            &["arrears-accounts-g1".into()],
        ),
    );
}

#[test]
fn golden_templates() {
    let requests = templates::apply_requests(&Names::new("arrears"), 1);
    let [analysis, settings, accounts, payments, activities, promises, plans, kpi_days] = requests.try_into().unwrap();
    golden("component-template-analysis", "indices-component-template", analysis);
    golden("component-template-settings", "indices-component-template", settings);
    golden("index-template-accounts", "index-templates", accounts);
    golden("index-template-payments", "index-templates", payments);
    golden("index-template-activities", "index-templates", activities);
    golden("index-template-promises", "index-templates", promises);
    golden("index-template-plans", "index-templates", plans);
    golden("index-template-kpi-days", "index-templates", kpi_days);
}

/// Leaf field paths of a document (`custom_fields` is one `flattened` field).
pub(crate) fn leaves(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
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
pub(crate) fn mapped(properties: &Value, prefix: &str, out: &mut BTreeSet<String>, analysis: &mut BTreeSet<String>) {
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
        // Fields a dynamic template maps (custom fields by kind) are mapped once a
        // document holds them.
        let unmapped: Vec<_> = produced
            .difference(&fields)
            .filter(|f| scripted_search::dynamic_type(&mappings, f).is_none())
            .collect();
        assert!(
            unmapped.is_empty(),
            "{entity:?} documents have fields the mapping lacks: {unmapped:?}"
        );
        // Only copy_to targets, and the objects dynamic templates fill, are mapped
        // without a document producing them.
        let unused: Vec<_> = fields
            .difference(&produced)
            .filter(|f| !["derived.address", "derived.ident_parts", "derived.reference_parts"].contains(&f.as_str()))
            .filter(|f| !produced.iter().any(|p| p.starts_with(&format!("{f}."))))
            .collect();
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
    let views: Vec<&Value> = objects.iter().filter(|o| o["type"] == "index-pattern").collect();
    let titles: HashSet<String> = views
        .iter()
        .map(|o| o["attributes"]["title"].as_str().unwrap().to_owned())
        .collect();
    let names = Names::new("arrears");
    assert_eq!(
        titles,
        Entity::ALL.iter().map(|e| names.reporting_alias(*e)).collect::<HashSet<_>>(),
        "data views read the reporting aliases, which leave out tombstones"
    );
    for view in &views {
        let hidden: Vec<Value> = serde_json::from_str(view["attributes"]["sourceFilters"].as_str().unwrap()).unwrap();
        assert_eq!(
            hidden,
            [json!({ "value": "derived.*" })],
            "{} shows the app's derived keys",
            view["id"]
        );
    }
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
    let visualizations = objects.iter().filter(|o| o["type"] == "visualization").count();
    assert_eq!(panels.len(), visualizations, "the dashboard shows every visualization");
    let fields_of = |view: &Value| {
        let entity = Entity::ALL
            .into_iter()
            .find(|e| *view == json!(names.reporting_alias(*e)))
            .unwrap_or_else(|| panic!("{view} is not a reporting alias"));
        let mut f = BTreeSet::new();
        mapped(&mappings(entity)["properties"], "", &mut f, &mut BTreeSet::new());
        (entity, f)
    };
    let mut read = HashSet::new();
    for object in objects.iter().filter(|o| o["type"] == "visualization") {
        let state: Value = serde_json::from_str(object["attributes"]["visState"].as_str().unwrap()).unwrap();
        let (entity, fields) = fields_of(&object["references"][0]["id"]);
        read.insert(entity);
        let aggs = state["aggs"].as_array().unwrap();
        for agg in aggs {
            if agg["schema"] == "metric" {
                let label = agg.pointer("/params/customLabel").and_then(Value::as_str).unwrap_or_default();
                assert!(!label.is_empty(), "{}: the series needs a label", object["id"]);
                let field = agg.pointer("/params/field").and_then(Value::as_str).unwrap_or_default();
                let typed = field.split('.').fold(mappings(entity), |m, part| m["properties"][part].clone());
                if agg["type"] == "sum" && typed["type"] == "scaled_float" {
                    // Amounts of different currencies are never added together.
                    assert!(
                        label.ends_with("(per currency)")
                            && aggs
                                .iter()
                                .any(|a| a["schema"] == "group" && a.pointer("/params/field") == Some(&json!("currency"))),
                        "{}: a sum of money must be split by currency and say so: {label:?}",
                        object["id"]
                    );
                }
            }
            if let Some(field) = agg.pointer("/params/field").and_then(Value::as_str) {
                assert!(
                    fields.contains(field),
                    "{} aggregates on {field}, which the {} mapping lacks",
                    object["id"],
                    entity.plural()
                );
            }
        }
    }
    assert_eq!(
        read,
        Entity::ALL.into_iter().collect::<HashSet<_>>(),
        "the dashboard charts every reporting index"
    );
}

/// The role an operator applies is the one `arrears doctor` checks for
/// (`UPDATE_GOLDEN=1` rewrites the file and fails). Whether the role grants what the
/// backend's requests need is the scripted cluster's to check: it allows each request
/// only what this file grants (`scripted_es::role_allows`).
#[test]
fn the_role_file_grants_what_the_doctor_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("index-templates/elasticsearch-role.json");
    let role = arrears::search::elastic::doctor::role(&Names::new("arrears"));
    rewrite_golden(&path, &role);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file, role, "{} differs from doctor::role", path.display());
}

#[test]
fn compose_file_starts_everything_in_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "redis",
        "elasticsearch",
        "kibana",
        "minio",
        "minio-setup",
        "app",
        "kibana-setup",
    ] {
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
    assert_eq!(env["DOCUMENT_STORE"].as_str(), Some("s3"));
    assert_eq!(
        env["S3_ACCESS_KEY_ID"].as_str(),
        Some("arrears-app"),
        "the app signs in to MinIO as its own user, never as the root user"
    );
    let setup = &services["kibana-setup"];
    let mounts: Vec<&str> = setup["volumes"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(mounts.iter().any(|m| m.starts_with("./index-templates/kibana")), "{mounts:?}");
    assert_eq!(
        env["ELASTICSEARCH_USERNAME"].as_str(),
        Some("arrears_app"),
        "the app signs in as its own user, never as the elastic superuser"
    );
    for (name, service) in services {
        for port in service.get("ports").and_then(|p| p.as_sequence()).into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:") || port.starts_with("${APP_BIND:-127.0.0.1}:"),
                "{} publishes {port} on every interface",
                name.as_str().unwrap()
            );
        }
    }
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    // `$${…}` is the container's own variable, read by its shell.
    for (at, _) in text.match_indices("${").filter(|(at, _)| !text[..*at].ends_with('$')) {
        let variable = &text[at..at + text[at..].find('}').unwrap()];
        if variable.contains("PASSWORD") || variable.contains("SECRET") {
            assert!(variable.contains(":?"), "{variable}}} must be required, with no default");
        }
    }
    let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    for secret in [
        "POSTGRES_PASSWORD",
        "ELASTIC_PASSWORD",
        "KIBANA_PASSWORD",
        "ARREARS_ES_PASSWORD",
        "JWT_SECRET",
        "MINIO_ROOT_PASSWORD",
        "ARREARS_S3_SECRET",
    ] {
        assert!(text.contains(secret) && example.contains(&format!("\n{secret}=\n")), "{secret}");
    }
    let setup = &services["elasticsearch-setup"];
    let mounts: Vec<&str> = setup["volumes"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("./index-templates/elasticsearch-role.json:")),
        "{mounts:?}"
    );
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    assert!(
        dockerfile.lines().any(|l| l.starts_with("USER ") && !l.contains("root")),
        "runs as non-root"
    );
}

pub(crate) fn config(url: &str) -> ElasticConfig {
    ElasticConfig {
        client: ClientConfig {
            url: url.parse().unwrap(),
            username: Some("arrears".into()),
            password: Some("secret".into()),
            api_key: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
            auth_grace: Duration::ZERO,
        },
        prefix: "arrears".into(),
        replicas: 0,
        keep_old: false,
        refresh_after_write: false,
    }
}

pub(crate) const FAST_RETRY: Retry = Retry {
    attempts: 4,
    base_delay: Duration::from_millis(100),
    batch: 100,
    whole_requests: true,
};

/// The aliases of a live first generation of accounts.
pub(crate) const LIVE_ACCOUNTS: &[&str] = &[
    "arrears-accounts",
    "arrears-accounts-reporting",
    "arrears-accounts-targets",
    "arrears-accounts-g1-write",
];

/// A cluster with one live account generation that answers bulks with `bulks` in turn.
async fn bulk_server(mut bulks: Vec<(u16, Value)>) -> ScriptedEs {
    bulks.reverse();
    ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], move |r, indices| match r.api() {
        "bulk" => bulks.pop().expect("no more bulk requests expected"),
        _ => answer_as_cluster(r, indices),
    })
    .await
}

pub(crate) fn docs(n: u128) -> Vec<IndexOp> {
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
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
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
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
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
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
        .unwrap()
        .with_retry(retry);
    // A rebuild's backfill retries whole requests (the worker's writes do not:
    // `the_sync_workers_writes_give_up_on_a_cluster_in_trouble_at_once`).
    let report = index
        .apply_to(Entity::Account, "arrears-accounts-g1".into(), docs(2))
        .await
        .unwrap();
    assert_eq!(report.applied, 2);
    let bulks = server.bulks();
    assert_eq!(bulks.len(), 4);
    // Round 1: both documents, rejected. Round 2: one document (the batch was halved),
    // rejected again, and the pass stops there. Round 3: one request each.
    assert_eq!(bulks[0].bulk_ids().len(), 2);
    assert_eq!(bulks[1].bulk_ids().len(), 1, "after a rejected request the batch is halved");
    assert_eq!(bulks[2].bulk_ids(), bulks[1].bulk_ids());
    assert_ne!(bulks[3].bulk_ids(), bulks[1].bulk_ids());
    let first_pause = bulks[1].at - bulks[0].at;
    let second_pause = bulks[2].at - bulks[1].at;
    assert!(first_pause >= Duration::from_millis(50), "backed off {first_pause:?}");
    assert!(second_pause >= Duration::from_millis(100), "the pause grows: {second_pause:?}");
}

/// A cluster in trouble (here not recovered yet: 503 with the state block) fails whole
/// requests. Each attempt sends one request and stops there, at the same size: the rest
/// waits with it. (Every failure used to halve the batch and the pass went on with the
/// other requests, so that 2,000 documents drained one per request, each bounded by the
/// request timeout, inside the sync worker's outbox transaction.)
#[tokio::test]
async fn a_cluster_in_trouble_gets_one_request_per_attempt_and_no_smaller_ones() {
    let unavailable = error(
        "cluster_block_exception",
        "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        503,
    );
    let server = bulk_server(vec![
        (503, unavailable.clone()),
        (503, unavailable.clone()),
        (503, unavailable),
        (200, bulk_response(&[201, 201])),
        (200, bulk_response(&[201, 201])),
        (200, bulk_response(&[201, 201])),
        (200, bulk_response(&[201, 201])),
    ])
    .await;
    let retry = Retry { batch: 2, ..FAST_RETRY };
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
        .unwrap()
        .with_retry(retry);
    let report = index
        .apply_to(Entity::Account, "arrears-accounts-g1".into(), docs(8))
        .await
        .unwrap();
    assert_eq!(report.applied, 8);
    let sizes: Vec<usize> = server.bulks().iter().map(|b| b.bulk_ids().len()).collect();
    assert_eq!(sizes, [2, 2, 2, 2, 2, 2, 2], "one request per failed attempt, none smaller");
}

/// The sync worker writes inside its outbox transaction: a request that fails whole
/// ends its write at once (the worker rolls back and tries the batch again after its
/// own back-off), so a cluster that does not answer never holds the transaction's row
/// locks and the database's xmin horizon through a series of retries. Items the cluster
/// answered one by one are still retried (it is answering).
#[tokio::test]
async fn the_sync_workers_writes_give_up_on_a_cluster_in_trouble_at_once() {
    let unavailable = error(
        "cluster_block_exception",
        "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        503,
    );
    let server = bulk_server(vec![(503, unavailable), (200, bulk_response(&[201, 201]))]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
        .unwrap()
        .with_retry(Retry { batch: 2, ..FAST_RETRY });
    let err = index.apply(docs(2)).await.unwrap_err();
    assert!(err.for_operators().contains("state not recovered"), "{}", err.for_operators());
    assert_eq!(server.bulks().len(), 1, "one request, no retry inside the write");
}

#[tokio::test]
async fn mapping_errors_become_dead_letters_without_blocking_the_batch() {
    let server = bulk_server(vec![(200, bulk_response(&[201, 400]))]).await;
    let pool = fresh_pool().await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone()))
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

/// Credentials refused past their grace do not end the sync inside a live process that
/// no restart policy would restart: the worker keeps the change in the outbox, says why
/// (readiness reads it), tries again only every 30 s (no storm against a cluster that
/// refuses it), and stops when the process does.
#[tokio::test]
async fn refused_credentials_keep_the_sync_worker_waiting_with_the_outbox() {
    let server = ScriptedEs::start(|_, _| {
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
    let index: Arc<dyn SearchIndex> = Arc::new(ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap());
    let metrics = Arc::new(SyncMetrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(SyncWorker::new(pool.clone(), index, metrics.clone()).run(stopped));
    eventually("the refusal is recorded", || async { metrics.trouble().is_some() }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!worker.is_finished(), "the worker waits instead of stopping for good");
    let trouble = metrics.trouble().unwrap();
    assert!(trouble.refused, "{trouble:?}");
    assert!(
        trouble.reason.contains("401") && trouble.reason.contains("security_exception"),
        "{trouble:?}"
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM search_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 1, "the change waits in the outbox");
    assert_eq!(
        server.received().len(),
        1,
        "no retry within {:?} against refused credentials",
        arrears::sync::worker::REFUSED_RETRY
    );
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("a waiting worker stops with the process")
        .unwrap();
}

pub(crate) fn search_response(failed: u64, sources: &[Value]) -> Value {
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
    let server = ScriptedEs::start(move |r, _| {
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

    let direct = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let err = direct.search(AccountQuery::new(today())).await.unwrap_err();
    assert_eq!(err.code(), Code::ServiceUnavailable);
}

/// An index on a scripted cluster that answers every account search with `body`.
async fn answering_account_searches(body: Value) -> (ScriptedEs, ElasticIndex) {
    let server = ScriptedEs::start(move |r, _| match r.path.starts_with("/arrears-accounts/_search") {
        true => (200, body.clone()),
        false => (404, error("index_not_found_exception", "no such index", 404)),
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    (server, index)
}

/// With `_source: false`, as `ranked_ids` asks, a hit is its `_id` and sort values.
#[tokio::test]
async fn ranked_ids_are_read_from_hit_ids_and_sort_values() {
    let ids: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
    let hits: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| json!({ "_index": "arrears-accounts-g1", "_id": id, "_score": null, "sort": [900 - n as i64, id] }))
        .collect();
    let (server, index) = answering_account_searches(json!({
        "took": 1, "timed_out": false, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "max_score": null, "hits": hits }
    }))
    .await;
    let query = AccountQuery {
        sort: Sort {
            field: SortField::Queue,
            descending: true,
        },
        page_size: 2,
        ..AccountQuery::new(today())
    };
    let page = index.ranked_ids(query.clone()).await.unwrap();
    assert_eq!(page.ids, ids[..2]);
    assert_eq!(
        page.next,
        Some(After {
            key: SortKey::Int(899),
            id: ids[1]
        })
    );
    let sent = server.received().last().unwrap().json();
    assert_eq!(
        (sent["_source"].clone(), sent["track_total_hits"].clone(), sent["size"].clone()),
        (json!(false), json!(false), json!(3))
    );
    let all = index.ranked_ids(AccountQuery { page_size: 3, ..query }).await.unwrap();
    assert_eq!((all.ids, all.next), (ids, None), "no cursor after the last page");
}

/// Terms and filters buckets carry a `currencies` terms sub-aggregation, whose buckets
/// carry the `units_hi` and `units_lo` sums (the response shapes of Elastic's terms, filters and sum
/// aggregation references): each facet value gets its sums per currency.
#[tokio::test]
async fn facet_sums_are_read_per_currency_from_the_currencies_sub_buckets() {
    let currencies = |pairs: &[(&str, u64, i64)]| {
        let buckets: Vec<Value> = pairs
            .iter()
            .map(|(key, count, units)| {
                let (hi, lo) = source::split_units(*units);
                json!({ "key": key, "doc_count": count, "units_hi": sum_answer(hi.into()), "units_lo": sum_answer(lo.into()) })
            })
            .collect();
        json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": buckets })
    };
    let empty = currencies(&[]);
    let (_server, index) = answering_account_searches(json!({
        "took": 1, "timed_out": false, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "total": { "value": 3, "relation": "eq" }, "max_score": null, "hits": [] },
        "aggregations": {
            "status": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
                { "key": "active", "doc_count": 3,
                  "currencies": currencies(&[("USD", 2, 201_100), ("EUR", 1, 100_800)]) }
            ] },
            "bucket": { "buckets": {
                "current": { "doc_count": 0, "currencies": empty.clone() },
                "1-29": { "doc_count": 0, "currencies": empty.clone() },
                "30-59": { "doc_count": 3, "currencies": currencies(&[("JPY", 1, 900_000), ("USD", 2, 201_100)]) },
                "60-89": { "doc_count": 0, "currencies": empty.clone() },
                "90-119": { "doc_count": 0, "currencies": empty.clone() },
                "120+": { "doc_count": 0, "currencies": empty }
            } }
        }
    }))
    .await;
    let query = AccountQuery {
        facets: vec![Facet::Status, Facet::Bucket],
        ..AccountQuery::new(today())
    };
    let page = index.search(query).await.unwrap();
    let facet = |name: &str| page.facets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let active = &facet("status")[0];
    assert_eq!(
        (active.value.as_str(), active.count, active.sums.clone()),
        (
            "active",
            3,
            Some(vec![
                ("EUR".to_owned(), Decimal::new(1008, 2)),
                ("USD".to_owned(), Decimal::new(2011, 2))
            ])
        ),
        "by currency code"
    );
    let overdue = facet("bucket").into_iter().find(|v| v.value == "30-59").unwrap();
    assert_eq!(
        (overdue.count, overdue.sums),
        (
            3,
            Some(vec![
                ("JPY".to_owned(), Decimal::new(90, 0)),
                ("USD".to_owned(), Decimal::new(2011, 2))
            ])
        )
    );
    let current = facet("bucket").into_iter().find(|v| v.value == "current").unwrap();
    assert_eq!((current.count, current.sums), (0, Some(vec![])));
}

/// Units are indexed as `hi * 2^24 + lo` (see `source::UNITS_LOW_BITS`).
const LOW: i128 = 1 << 24;

#[test]
fn units_split_at_2_to_the_24() {
    assert_eq!(1 << source::UNITS_LOW_BITS, LOW);
    for units in [0, 1, LOW as i64 - 1, LOW as i64, -1, -(LOW as i64) - 1, i64::MAX, i64::MIN] {
        let (hi, lo) = source::split_units(units);
        assert!((0..LOW).contains(&i128::from(lo)), "{units}");
        assert_eq!(source::join_units(hi.into(), lo.into()), i128::from(units));
    }
}

/// A sum aggregation's answer: a double, as Elasticsearch renders it.
fn sum_answer(value: i128) -> Value {
    json!({ "value": value as f64 })
}

/// Sums of money come back as two sums of parts that each stay below 2^53, and are put
/// together exactly: here 2^53 + 1 units, which no double holds (a single `sum` of the
/// units would answer 2^53).
#[tokio::test]
async fn money_sums_are_put_together_exactly_from_their_two_parts() {
    let total: i128 = (1 << 53) + 1;
    let (hi, lo) = ((1 << 29) - 1, LOW + 1);
    assert_eq!(hi * LOW + lo, total);
    let parts = json!({ "units_hi": sum_answer(hi), "units_lo": sum_answer(lo) });
    let currency = |key: &str, count: u64| {
        let mut bucket = json!({ "key": key, "doc_count": count });
        bucket.as_object_mut().unwrap().extend(parts.as_object().unwrap().clone());
        json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [bucket] })
    };
    let empty = json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [] });
    let (server, index) = answering_account_searches(json!({
        "took": 1, "timed_out": false, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "total": { "value": 2, "relation": "eq" }, "max_score": null, "hits": [] },
        "aggregations": {
            "status": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
                { "key": "active", "doc_count": 2, "currencies": currency("IDR", 2) }
            ] },
            "bucket": { "buckets": {
                "current": { "doc_count": 2, "currencies": currency("IDR", 2) },
                "1-29": { "doc_count": 0, "currencies": empty.clone() },
                "30-59": { "doc_count": 0, "currencies": empty.clone() },
                "60-89": { "doc_count": 0, "currencies": empty.clone() },
                "90-119": { "doc_count": 0, "currencies": empty.clone() },
                "120+": { "doc_count": 0, "currencies": empty.clone() }
            } }
        }
    }))
    .await;
    let exact = Decimal::from_i128_with_scale(total, 4);
    let query = AccountQuery {
        facets: vec![Facet::Status, Facet::Bucket],
        ..AccountQuery::new(today())
    };
    let page = index.search(query).await.unwrap();
    let facet = |name: &str| page.facets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(facet("status")[0].sums, Some(vec![("IDR".to_owned(), exact)]));
    let current = facet("bucket").into_iter().find(|v| v.value == "current").unwrap();
    assert_eq!(current.sums, Some(vec![("IDR".to_owned(), exact)]));
    let sent = server.received().last().unwrap().json();
    assert_eq!(
        sent["aggs"]["status"]["aggs"]["currencies"]["aggs"],
        json!({
            "units_hi": { "sum": { "field": "derived.balance_units_hi" } },
            "units_lo": { "sum": { "field": "derived.balance_units_lo" } }
        })
    );

    // Payment statistics: the windows, the days and the groups.
    let mut completed = json!({ "doc_count": 2 });
    for window in ["today", "this_week", "this_month"] {
        let mut tally = parts.clone();
        tally["doc_count"] = json!(2);
        completed[window] = tally;
    }
    let mut day = parts.clone();
    day.as_object_mut().unwrap().extend(
        json!({ "key": "day", "from": 0.0, "to": 1.0, "doc_count": 2 })
            .as_object()
            .unwrap()
            .clone(),
    );
    completed["series"] = json!({ "buckets": [day] });
    let group = |key: &str| {
        let mut bucket = parts.clone();
        bucket["key"] = json!(key);
        bucket["doc_count"] = json!(2);
        json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [bucket] })
    };
    let stats_answer = json!({
        "took": 1, "timed_out": false, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "max_score": null, "hits": [] },
        "aggregations": { "currencies": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [{
            "key": "IDR", "doc_count": 2, "completed": completed,
            "in_range": { "doc_count": 2, "by_status": group("completed"), "by_method": group("card") }
        }] } }
    });
    let server = ScriptedEs::start(move |r, _| match r.path.starts_with("/arrears-payments/_search") {
        true => (200, stats_answer.clone()),
        false => (404, error("index_not_found_exception", "no such index", 404)),
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let tz: chrono_tz::Tz = "UTC".parse().unwrap();
    let stats = index.payment_stats(StatsQuery::new(tz, today(), today(), today())).await.unwrap();
    let idr = &stats[0];
    let tally = arrears::search::Tally { count: 2, amount: exact };
    assert_eq!((&idr.today, &idr.this_week, &idr.this_month), (&tally, &tally, &tally));
    assert_eq!(idr.series, [tally]);
    assert_eq!((idr.by_status[0].sum, idr.by_method[0].sum), (exact, exact));
    let sent = server.received().last().unwrap().json();
    let summed = &sent["aggs"]["currencies"]["aggs"]["completed"]["aggs"]["today"]["aggs"];
    assert_eq!(summed["units_hi"]["sum"]["field"], "derived.amount_units_hi");
    assert_eq!(summed["units_lo"]["sum"]["field"], "derived.amount_units_lo");
}

/// Each document carries its money units split into the two parts the sums add up:
/// `lo` in [0, 2^24), `hi` the rest, so each sum stays exact as a double.
#[test]
fn documents_carry_their_money_units_in_two_exact_parts() {
    let mut account = account();
    let mut payment = payment();
    for amount in [Decimal::new(75_025, 2), Decimal::new(9_007_199_254_740_997, 2), Decimal::ZERO] {
        account.current_balance = amount;
        payment.amount = amount;
        for (derived, field) in [
            (source::account(&account).unwrap()["derived"].clone(), "balance_units"),
            (source::payment(&payment).unwrap()["derived"].clone(), "amount_units"),
        ] {
            let units = i128::from(derived[field].as_i64().unwrap());
            assert_eq!(
                units,
                i128::from(arrears::search::embedded::schema::money_units(amount)),
                "{field} of {amount}"
            );
            let hi = i128::from(
                derived[format!("{field}_hi")]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{field}_hi: {derived}")),
            );
            let lo = i128::from(
                derived[format!("{field}_lo")]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{field}_lo: {derived}")),
            );
            assert!((0..LOW).contains(&lo), "{field}_lo of {amount}: {lo}");
            assert_eq!(hi * LOW + lo, units, "{field} of {amount}");
        }
    }
}

/// The listing `GET /_alias` answers for these indices.
fn alias_listing(names: Vec<(&String, &BTreeSet<String>)>) -> Value {
    names
        .into_iter()
        .map(|(index, aliases)| {
            let aliases: serde_json::Map<String, Value> = aliases.iter().map(|a| (a.clone(), json!({}))).collect();
            (index.clone(), json!({ "aliases": aliases }))
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

/// Answers a call the way the index, alias, bulk, search and point-in-time APIs
/// document it, over the cluster's indices and the documents it was sent (searches
/// are answered by `scripted_search`).
pub(crate) fn answer_as_cluster(r: &crate::scripted_es::Received, cluster: &mut Indices) -> (u16, Value) {
    let path = r.route().to_owned();
    let ack = json!({ "acknowledged": true });
    let name_of = |p: &str| p.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
    let resolves = |cluster: &Indices, name: &str| cluster.iter().any(|(index, aliases)| index == name || aliases.contains(name));
    let missing = |name: &str| (404, error("index_not_found_exception", &format!("no such index [{name}]"), 404));
    let shards = json!({ "total": 1, "successful": 1, "failed": 0 });
    // The indices the path's name stands for; a name that is no pattern must name some.
    let resolved = |cluster: &Indices| {
        let name = name_of(&path);
        let found = cluster.resolve(&name);
        if found.is_empty() && !name.contains('*') {
            Err(missing(&name))
        } else {
            Ok(found)
        }
    };
    match r.api() {
        "indices.get_alias" if path.starts_with("/_alias/") => {
            let alias = &path["/_alias/".len()..];
            let found: Vec<_> = cluster.iter().filter(|(_, a)| a.contains(alias)).collect();
            if found.is_empty() {
                (404, json!({ "error": format!("alias [{alias}] missing"), "status": 404 }))
            } else {
                (200, alias_listing(found))
            }
        }
        "indices.get_alias" => {
            let prefix = name_of(&path);
            let prefix = prefix.trim_end_matches('*');
            (200, alias_listing(cluster.iter().filter(|(i, _)| i.starts_with(prefix)).collect()))
        }
        "indices.update_aliases" => {
            for action in r.json()["actions"].as_array().unwrap() {
                let (kind, spec) = action.as_object().unwrap().iter().next().unwrap();
                let index = spec["index"].as_str().unwrap().to_owned();
                let alias = spec["alias"].as_str().unwrap().to_owned();
                let Some(aliases) = cluster.get_mut(&index) else {
                    return missing(&index);
                };
                if kind == "add" {
                    aliases.insert(alias);
                } else {
                    aliases.remove(&alias);
                }
            }
            (200, ack)
        }
        "info" => (
            200,
            json!({ "name": "scripted", "cluster_name": "scripted", "version": { "number": "8.19.0" }, "tagline": "You Know, for Search" }),
        ),
        "security.has_privileges" => (200, crate::scripted_es::Role::shipped().has_privileges(&r.json())),
        "indices.put_settings" => (200, ack),
        "cluster.health" => (200, cluster_health("green", 0)),
        // Every index this scripted cluster holds was made by this build's templates
        // (scripts that stand for an older release answer this call themselves).
        "indices.get_mapping" => {
            let found = match resolved(cluster) {
                Ok(found) => found,
                Err(missing) => return missing,
            };
            let answer: serde_json::Map<String, Value> = found
                .into_iter()
                .map(|index| {
                    let entity = Names::new("arrears").entity_of(&index).unwrap_or(Entity::Account);
                    (index, json!({ "mappings": templates::mappings(entity) }))
                })
                .collect();
            (200, Value::Object(answer))
        }
        // No index is blocked: the filtered settings of each are empty. An index's uuid
        // is asked for by name (`index.uuid`); this cluster's stands for its name.
        "indices.get_settings" => {
            let found = match resolved(cluster) {
                Ok(found) => found,
                Err(missing) => return missing,
            };
            let answer: serde_json::Map<String, Value> = found
                .into_iter()
                .map(|index| {
                    let settings = if path.ends_with("/_settings/index.uuid") {
                        json!({ "index": { "uuid": format!("uuid-of-{index}") } })
                    } else {
                        json!({})
                    };
                    (index, json!({ "settings": settings }))
                })
                .collect();
            (200, Value::Object(answer))
        }
        "cluster.get_settings" => (200, cluster_settings(&[])),
        "nodes.stats" => (200, node_disk(100 << 30, 60 << 30)),
        // The server stores each item it accepts and refuses stale external versions
        // (`scripted_es::apply_bulk_items`).
        "bulk" => (200, bulk_response(&vec![201; r.lines().len() / 2])),
        "indices.refresh" | "open_point_in_time" => {
            let name = name_of(&path);
            if !resolves(cluster, &name) {
                return missing(&name);
            }
            match r.api() {
                "indices.refresh" => (200, json!({ "_shards": shards })),
                _ => (
                    200,
                    json!({ "id": format!("pit-of-{name}"), "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 } }),
                ),
            }
        }
        "search" | "count" => {
            let body = r.json();
            let pit = body.pointer("/pit/id").and_then(Value::as_str);
            let name = match pit {
                Some(pit) => pit.trim_start_matches("pit-of-").to_owned(),
                None => name_of(&path),
            };
            let found = cluster.resolve(&name);
            if found.is_empty() && !name.contains('*') {
                return match pit {
                    Some(_) => crate::scripted_es::pit_index_gone(&name),
                    None => missing(&name),
                };
            }
            let docs: Vec<Doc> = found
                .iter()
                .flat_map(|index| {
                    cluster.docs.get(index).into_iter().flatten().map(move |(id, stored)| Doc {
                        index,
                        id,
                        version: stored.version,
                        source: &stored.source,
                    })
                })
                .collect();
            let entity = found
                .first()
                .and_then(|i| Names::new("arrears").entity_of(i))
                .unwrap_or(Entity::Account);
            let mappings = templates::mappings(entity);
            if r.api() == "count" {
                let body = json!({ "query": body.get("query").cloned().unwrap_or(json!({ "match_all": {} })), "size": 0, "track_total_hits": true });
                return match scripted_search::search(&body, &docs, &mappings) {
                    Ok(answer) => (
                        200,
                        json!({ "count": answer["hits"]["total"]["value"], "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 } }),
                    ),
                    Err(refused) => refused,
                };
            }
            match scripted_search::search(&body, &docs, &mappings) {
                Ok(answer) => (200, answer),
                Err(refused) => refused,
            }
        }
        // `docs-get`: the version of a document, or `found: false`.
        "get" => {
            let mut parts = path.trim_start_matches('/').split('/');
            let (name, id) = (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
            let Some(index) = cluster.write_index(name) else {
                return missing(name);
            };
            match cluster.docs.get(&index).and_then(|docs| docs.get(id)) {
                Some(stored) => (
                    200,
                    json!({ "_index": index, "_id": id, "_version": stored.version, "_seq_no": 0, "_primary_term": 1, "found": true }),
                ),
                None => (404, json!({ "_index": index, "_id": id, "found": false })),
            }
        }
        "close_point_in_time" => (200, json!({ "succeeded": true, "num_freed": 1 })),
        "indices.create" => {
            let index = name_of(&path);
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
        "indices.delete" => match cluster.drop_index(&name_of(&path)) {
            Some(_) => (200, ack),
            None => missing(&name_of(&path)),
        },
        // `IndicesStatsResponse` cut to the metrics asked for: each index's primaries
        // (a kilobyte a document, one segment a hundred documents).
        "indices.stats" => {
            let found = match resolved(cluster) {
                Ok(found) => found,
                Err(missing) => return missing,
            };
            let indices: serde_json::Map<String, Value> = found
                .into_iter()
                .map(|index| {
                    let docs = cluster.docs.get(&index).map_or(0, |d| d.len() as u64);
                    let stats = json!({
                        "docs": { "count": docs, "deleted": 0 },
                        "store": { "size_in_bytes": docs * 1024, "reserved_in_bytes": 0 },
                        "segments": { "count": docs.div_ceil(100) },
                    });
                    (index, json!({ "uuid": "scripted", "primaries": stats, "total": stats }))
                })
                .collect();
            (200, json!({ "_shards": shards, "_all": {}, "indices": indices }))
        }
        // `ForceMergeResponse`: the shards merged.
        "indices.forcemerge" => {
            let name = name_of(&path);
            if !resolves(cluster, &name) {
                return missing(&name);
            }
            (200, json!({ "_shards": shards }))
        }
        _ => (
            400,
            error("illegal_argument_exception", &format!("unexpected {} {}", r.method, r.path), 400),
        ),
    }
}

/// `cluster.health` as the reference documents its answer.
pub(crate) fn cluster_health(status: &str, unassigned: u64) -> Value {
    json!({
        "cluster_name": "scripted", "status": status, "timed_out": false,
        "number_of_nodes": 1, "number_of_data_nodes": 1,
        "active_primary_shards": 2, "active_shards": 2, "relocating_shards": 0, "initializing_shards": 0,
        "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0
    })
}

/// `cluster.get_settings?include_defaults&flat_settings`: Elasticsearch 8's default disk
/// watermarks (85%, 90%, 95% with their max headrooms), under `persistent` overrides.
pub(crate) fn cluster_settings(persistent: &[(&str, &str)]) -> Value {
    let persistent: serde_json::Map<String, Value> = persistent.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    json!({
        "persistent": persistent,
        "transient": {},
        "defaults": {
            "cluster.routing.allocation.disk.threshold_enabled": "true",
            "cluster.routing.allocation.disk.watermark.low": "85%",
            "cluster.routing.allocation.disk.watermark.low.max_headroom": "200GB",
            "cluster.routing.allocation.disk.watermark.high": "90%",
            "cluster.routing.allocation.disk.watermark.high.max_headroom": "150GB",
            "cluster.routing.allocation.disk.watermark.flood_stage": "95%",
            "cluster.routing.allocation.disk.watermark.flood_stage.max_headroom": "100GB",
            "cluster.info.update.interval": "30s"
        }
    })
}

/// `nodes.stats/fs` cut down to the doctor's filter: one node's disk.
pub(crate) fn node_disk(total: u64, available: u64) -> Value {
    json!({ "nodes": { "n1": { "name": "scripted-node", "fs": { "total": {
        "total_in_bytes": total, "free_in_bytes": available, "available_in_bytes": available
    } } } } })
}

/// A script answering as [`answer_as_cluster`] and keeping the templates it is given,
/// as the template APIs do.
pub(crate) fn as_cluster() -> impl FnMut(&crate::scripted_es::Received, &mut Indices) -> (u16, Value) + Send + 'static {
    let mut templates: BTreeMap<String, Value> = BTreeMap::new();
    move |r, cluster| {
        let name = r.route().rsplit('/').next().unwrap_or_default().to_owned();
        match r.api() {
            "cluster.put_component_template" | "indices.put_index_template" => {
                templates.insert(format!("{}/{name}", r.api()), r.json());
                (200, json!({ "acknowledged": true }))
            }
            "cluster.get_component_template" | "indices.get_index_template" => {
                let (put, list, item) = if r.api() == "cluster.get_component_template" {
                    ("cluster.put_component_template", "component_templates", "component_template")
                } else {
                    ("indices.put_index_template", "index_templates", "index_template")
                };
                match templates.get(&format!("{put}/{name}")) {
                    Some(body) => (200, json!({ list: [{ "name": name, item: body }] })),
                    None => (
                        404,
                        error(
                            "resource_not_found_exception",
                            &format!("index template matching [{name}] not found"),
                            404,
                        ),
                    ),
                }
            }
            _ => answer_as_cluster(r, cluster),
        }
    }
}

/// A scripted cluster holding these indices, answering [`as_cluster`].
pub(crate) async fn alias_cluster(indices: &[(&str, &[&str])]) -> ScriptedEs {
    ScriptedEs::with_indices(indices, as_cluster()).await
}

#[tokio::test]
async fn rebuild_swaps_aliases_atomically_and_drops_the_old_generation() {
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS)]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(generation, "arrears-accounts-g2");
    let created = server.received().into_iter().find(|r| r.api() == "indices.create").unwrap().json();
    assert_eq!(
        created["settings"]["index"]["refresh_interval"], "-1",
        "the backfill runs with refresh off"
    );
    assert_eq!(created["settings"]["index"]["number_of_replicas"], 0);
    {
        let cluster = server.indices();
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
    let swaps: Vec<_> = server
        .received()
        .into_iter()
        .filter(|r| r.api() == "indices.update_aliases")
        .collect();
    assert_eq!(swaps.len(), 1, "one atomic _aliases call");
    assert_eq!(
        swaps[0].json()["actions"].as_array().unwrap().len(),
        6,
        "read and reporting aliases move, the old generation leaves every alias"
    );
    let merge = server.received().into_iter().find(|r| r.api() == "indices.forcemerge").unwrap();
    assert_eq!(
        merge.path, "/arrears-accounts-g2/_forcemerge?max_num_segments=1",
        "the new generation is merged into a segment a shard"
    );
    let settings = server.received().into_iter().find(|r| r.api() == "indices.put_settings").unwrap();
    assert_eq!(
        settings.json()["index"]["refresh_interval"],
        "1s",
        "refresh is restored before the swap"
    );
    assert!(merge.at <= settings.at, "merged before its replicas copy it");
    assert!(settings.at <= swaps[0].at);
    {
        let cluster = server.indices();
        assert!(!cluster.contains_key("arrears-accounts-g1"), "the old generation is deleted");
        let aliases: Vec<_> = cluster["arrears-accounts-g2"].iter().cloned().collect();
        assert_eq!(
            aliases,
            [
                "arrears-accounts",
                "arrears-accounts-g2-write",
                "arrears-accounts-reporting",
                "arrears-accounts-targets"
            ]
        );
    }
    let again = index.promote(Entity::Account, generation).await.unwrap_err();
    assert_eq!(again.code(), Code::Conflict, "a generation is promoted once");

    let abandoned = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(abandoned, "arrears-accounts-g3");
    index.abandon(Entity::Account, abandoned.clone()).await.unwrap();
    assert!(index.count(Entity::Account, abandoned).await.is_err());
    assert_eq!(server.indices().keys().cloned().collect::<Vec<_>>(), ["arrears-accounts-g2"]);
}

/// A force merge only speeds searches up: when the node rejects it (429, as a node with
/// a full queue answers), the rebuild still swaps its complete generation in.
#[tokio::test]
async fn a_rejected_merge_still_promotes_the_complete_generation() {
    let mut cluster = as_cluster();
    let server = ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], move |r, indices| match r.api() {
        "indices.forcemerge" => (
            429,
            error("es_rejected_execution_exception", "rejected execution of force merge", 429),
        ),
        _ => cluster(r, indices),
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    index.promote(Entity::Account, generation.clone()).await.unwrap();
    assert!(
        server.received().iter().any(|r| r.api() == "indices.forcemerge"),
        "the merge was asked for"
    );
    let cluster = server.indices();
    assert!(!cluster.contains_key("arrears-accounts-g1"), "the old generation is deleted");
    assert!(
        cluster[&generation].contains("arrears-accounts"),
        "reads moved to the new generation"
    );
}

#[tokio::test]
async fn keep_old_keeps_the_previous_generation_out_of_reads_and_writes() {
    let live: &[&str] = &[
        "arrears-payments",
        "arrears-payments-reporting",
        "arrears-payments-targets",
        "arrears-payments-g4-write",
    ];
    let server = alias_cluster(&[("arrears-payments-g4", live)]).await;
    let keep = ElasticConfig {
        keep_old: true,
        ..config(&server.url)
    };
    let index = ElasticIndex::new(&keep, SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let generation = index.begin_rebuild(Entity::Payment).await.unwrap();
    assert_eq!(generation, "arrears-payments-g5");
    index.promote(Entity::Payment, generation).await.unwrap();
    let cluster = server.indices();
    assert_eq!(
        cluster["arrears-payments-g4"].iter().collect::<Vec<_>>(),
        ["arrears-payments-kept"],
        "kept, neither read nor written, and marked as kept (not a leftover for the doctor)"
    );
    assert!(cluster["arrears-payments-g5"].contains("arrears-payments"));
    assert!(index.leftovers(Entity::Payment).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_app_applies_templates_on_start_and_syncs_writes_to_elasticsearch() {
    let server = alias_cluster(&[]).await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
    })
    .await;
    let templates: Vec<_> = server
        .received()
        .into_iter()
        .filter(|r| r.api() == "cluster.put_component_template" || r.api() == "indices.put_index_template")
        .collect();
    assert_eq!(templates.len(), 2 + Entity::ALL.len(), "two components, a template per entity");
    assert_eq!(templates[2].path, "/_index_template/arrears-accounts");
    assert_eq!(
        Some(templates[2].json()),
        templates::apply_requests(&Names::new("arrears"), 0)[2].body(),
        "the template, with the digest the doctor compares"
    );
    {
        let cluster = server.indices();
        let accounts: Vec<_> = cluster["arrears-accounts-g1"].iter().cloned().collect();
        assert_eq!(
            accounts,
            [
                "arrears-accounts",
                "arrears-accounts-g1-write",
                "arrears-accounts-reporting",
                "arrears-accounts-targets"
            ]
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
    let refreshes: Vec<String> = server
        .received()
        .iter()
        .filter(|r| r.api() == "indices.refresh")
        .map(|r| r.path.clone())
        .collect();
    assert!(
        refreshes.is_empty(),
        "the index's refresh interval makes batches searchable, no explicit refresh: {refreshes:?}"
    );
    let refused = server.refused();
    assert!(refused.is_empty(), "a real cluster would refuse: {refused:#?}");
}

#[test]
fn cluster_blocks_are_retried_only_when_elasticsearch_lifts_them_itself() {
    use arrears::search::elastic::client::{EsError, classify};
    let block = |status: u16, block: &str| {
        let reason = format!("index [arrears-accounts-g1] blocked by: [{block}];");
        classify(status, &error("cluster_block_exception", &reason, status))
    };
    let transient = [
        (503, "SERVICE_UNAVAILABLE/1/state not recovered / initialized"),
        (503, "SERVICE_UNAVAILABLE/2/no master"),
        (
            429,
            "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block",
        ),
    ];
    for (status, name) in transient {
        assert!(
            matches!(block(status, name), EsError::Transient(_)),
            "{name} passes by itself: retry"
        );
    }
    let fatal = [(403, "FORBIDDEN/8/index write (api)"), (403, "FORBIDDEN/5/index read-only (api)")];
    for (status, name) in fatal {
        assert!(
            matches!(block(status, name), EsError::Fatal(_)),
            "{name} waits for an operator: stop"
        );
    }
    let refused = classify(401, &error("security_exception", "unable to authenticate user", 401));
    assert!(matches!(refused, EsError::Fatal(_)));
}

#[tokio::test]
async fn a_flood_stage_block_on_a_bulk_item_is_retried_until_lifted() {
    let mut blocked = bulk_response(&[201, 429]);
    blocked["items"][1]["index"]["error"] = json!({
        "type": "cluster_block_exception",
        "reason": "index [arrears-accounts-g1] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"
    });
    let server = bulk_server(vec![(200, blocked), (200, bulk_response(&[201]))]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await))
        .unwrap()
        .with_retry(FAST_RETRY);
    let report = index.apply(docs(2)).await.unwrap();
    assert_eq!(report.applied, 2, "the blocked document is written once the block is lifted");
    assert_eq!(server.bulks()[1].bulk_ids(), vec![uuid(101).to_string()]);
}

#[tokio::test]
async fn two_processes_starting_together_put_each_read_alias_on_one_generation() {
    // The second process looks for the read aliases before the first created them
    // (modelled by answering its first look-up of each as missing), then creates.
    let mut looked = HashSet::new();
    let mut cluster = as_cluster();
    let server = ScriptedEs::start(move |r, indices| {
        let second = r.authorization.as_deref() == Some(&basic("second"));
        if second && r.api() == "indices.get_alias" && r.route().starts_with("/_alias/") && looked.insert(r.route().to_owned()) {
            return (404, json!({ "error": "alias missing", "status": 404 }));
        }
        cluster(r, indices)
    })
    .await;
    let pool = fresh_pool().await;
    let first = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(pool.clone())).unwrap();
    let mut second_config = config(&server.url);
    second_config.client.username = Some("second".into());
    let second = ElasticIndex::new(&second_config, SqlDeadLetters::shared(pool)).unwrap();
    assert_eq!(first.prepare().await.unwrap(), Entity::ALL.to_vec());
    assert!(second.prepare().await.unwrap().is_empty(), "the second process backfills nothing");
    let (a, b) = tokio::join!(first.prepare(), second.prepare());
    a.unwrap();
    b.unwrap();
    for alias in ["arrears-accounts", "arrears-payments"] {
        let behind: Vec<_> = server
            .indices()
            .into_iter()
            .filter(|(_, a)| a.contains(alias))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(behind.len(), 1, "{alias} is on {behind:?}");
    }
    assert!(server.refused().is_empty(), "{:#?}", server.refused());
}

/// The `Authorization` header of basic credentials with the test password.
fn basic(user: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret"))
    )
}

#[tokio::test]
async fn prepare_refuses_a_read_alias_on_two_generations_and_names_the_fix() {
    let server = alias_cluster(&[
        ("arrears-accounts-g1", &["arrears-accounts"]),
        ("arrears-accounts-g2", &["arrears-accounts"]),
    ])
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let err = index.prepare().await.unwrap_err().to_string();
    assert!(err.contains("points at 2 indices") && err.contains("arrears doctor"), "{err}");
}

#[tokio::test]
async fn the_reporting_alias_follows_reads_and_leaves_out_tombstones() {
    // A deployment from before the reporting alias existed.
    let server = alias_cluster(&[
        (
            "arrears-accounts-g1",
            &["arrears-accounts", "arrears-accounts-targets", "arrears-accounts-g1-write"],
        ),
        (
            "arrears-payments-g3",
            &["arrears-payments", "arrears-payments-targets", "arrears-payments-g3-write"],
        ),
    ])
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    assert_eq!(
        index.prepare().await.unwrap(),
        Entity::REPORTING,
        "only the reporting indices it did not have are new (and backfilled)"
    );
    let cluster = server.indices();
    assert!(cluster["arrears-accounts-g1"].contains("arrears-accounts-reporting"));
    assert!(cluster["arrears-payments-g3"].contains("arrears-payments-reporting"));
    let added: Vec<Value> = server
        .received()
        .iter()
        .filter(|r| r.api() == "indices.update_aliases")
        .flat_map(|r| r.json()["actions"].as_array().unwrap().clone())
        .collect();
    let accounts = added.iter().find(|a| a["add"]["alias"] == "arrears-accounts-reporting").unwrap();
    let filter = accounts["add"]["filter"].to_string();
    assert!(filter.contains("tombstone") && filter.contains("deleted_at"), "{filter}");
    assert!(index.doctor().await.iter().all(|c| c.ok), "{:#?}", index.doctor().await);
}

#[tokio::test]
async fn sync_batches_leave_searchability_to_the_refresh_interval() {
    let server = alias_cluster(&[("arrears-accounts-g1", LIVE_ACCOUNTS)]).await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    let report = index.apply(docs(2)).await.unwrap();
    assert_eq!(report.applied, 2);
    let bulk = &server.bulks()[0];
    let targets: BTreeSet<String> = bulk
        .lines()
        .iter()
        .filter_map(|l| l.pointer("/index/_index").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["arrears-accounts-g1-write".to_owned(), format!("{generation}-write")]),
        "both generations are written"
    );
    let refreshed: Vec<String> = server
        .received()
        .iter()
        .filter(|r| r.api() == "indices.refresh")
        .map(|r| r.route().to_owned())
        .collect();
    assert!(
        refreshed.is_empty(),
        "Elastic calls a refresh after every write resource-intensive; the refresh interval does it: {refreshed:?}"
    );
    assert!(server.refused().is_empty(), "{:#?}", server.refused());
}

#[tokio::test]
async fn scans_read_every_page_from_one_point_in_time_and_close_it() {
    let pages = Arc::new(std::sync::Mutex::new(0));
    let seen = pages.clone();
    let server = ScriptedEs::with_indices(&[("arrears-accounts-g1", LIVE_ACCOUNTS)], move |r, indices| {
        if r.api() != "search" {
            return answer_as_cluster(r, indices);
        }
        let mut page = seen.lock().unwrap();
        *page += 1;
        let (first, count) = if *page == 1 { (0, dsl::SCAN_PAGE) } else { (dsl::SCAN_PAGE, 1) };
        let hits: Vec<Value> = (first..first + count)
            .map(|n| {
                let id = uuid(n as u128).to_string();
                json!({ "_index": "arrears-accounts-g1", "_id": id, "_version": 7, "_score": null, "sort": [id, n] })
            })
            .collect();
        let answer = json!({
            "pit_id": format!("pit-after-page-{page}"),
            "took": 1, "timed_out": false,
            "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
            "hits": { "total": { "value": 0, "relation": "gte" }, "max_score": null, "hits": hits }
        });
        (200, answer)
    })
    .await;
    let index = ElasticIndex::new(&config(&server.url), SqlDeadLetters::shared(fresh_pool().await)).unwrap();
    let versions = index.versions(Entity::Account).await.unwrap();
    assert_eq!(versions.len(), dsl::SCAN_PAGE + 1);
    let calls: Vec<_> = server.received();
    let apis: Vec<&str> = calls.iter().map(|r| r.api()).collect();
    assert_eq!(apis, ["open_point_in_time", "search", "search", "close_point_in_time"]);
    assert_eq!(calls[0].path, "/arrears-accounts/_pit?keep_alive=1m");
    let (one, two) = (calls[1].json(), calls[2].json());
    assert_eq!(calls[1].route(), "/_search", "a search through a point in time names no index");
    assert_eq!(one["pit"]["id"], "pit-of-arrears-accounts");
    assert_eq!(two["pit"]["id"], "pit-after-page-1", "the newest point-in-time id is used");
    assert_eq!(
        two["search_after"],
        json!([uuid(dsl::SCAN_PAGE as u128 - 1).to_string(), dsl::SCAN_PAGE - 1])
    );
    assert_eq!(calls[3].json(), json!({ "id": "pit-after-page-2" }));
    assert!(server.refused().is_empty(), "{:#?}", server.refused());
}

#[test]
fn every_keyword_field_ignores_values_lucene_could_not_index() {
    fn keywords(properties: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
        for (name, field) in properties.as_object().into_iter().flatten() {
            let path = format!("{prefix}{name}");
            if field["type"] == "keyword" {
                out.push((path.clone(), field["ignore_above"].clone()));
            }
            keywords(&field["properties"], &format!("{path}."), out);
            keywords(&field["fields"], &format!("{path}."), out);
        }
    }
    for entity in Entity::ALL {
        let mut found = Vec::new();
        keywords(&mappings(entity)["properties"], "", &mut found);
        assert!(found.len() > 5);
        for (field, ignore_above) in found {
            // Lucene refuses a term over 32,766 bytes: 8,191 characters of four bytes.
            let limit = ignore_above
                .as_u64()
                .unwrap_or_else(|| panic!("{entity:?} {field} has no ignore_above"));
            assert!((500..=8191).contains(&limit), "{entity:?} {field}: ignore_above {limit}");
        }
    }
}

#[test]
fn an_index_prefix_elasticsearch_would_refuse_is_refused_at_start() {
    for bad in ["-arrears", "_arrears", "Arrears", "arr ears", ""] {
        let mut settings = crate::helpers::test_settings();
        settings.elasticsearch_url = Some("http://127.0.0.1:9200".into());
        settings.elasticsearch_index_prefix = bad.into();
        let err = ElasticConfig::from_settings(&settings).unwrap_err().to_string();
        assert!(err.contains("ELASTICSEARCH_INDEX_PREFIX"), "{bad:?}: {err}");
    }
}

#[test]
fn the_image_build_copies_every_file_the_binary_includes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();
    let mut included = BTreeSet::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for rest in text.split(macro_name).skip(1) {
                    let relative = rest.split('"').next().unwrap();
                    let file = path.parent().unwrap().join(relative).canonicalize().unwrap();
                    let top = file
                        .strip_prefix(root.canonicalize().unwrap())
                        .unwrap()
                        .components()
                        .next()
                        .unwrap();
                    included.insert(top.as_os_str().to_string_lossy().into_owned());
                }
            }
        }
    }
    assert!(included.contains("console"), "{included:?}");
    for top in included {
        assert!(
            copied.iter().any(|c| c.trim_end_matches('/') == top),
            "the binary includes files from {top}/, which the Dockerfile does not copy ({copied:?})"
        );
    }
}

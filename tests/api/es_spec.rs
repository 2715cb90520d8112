//! Every request the Elasticsearch backend can build, type-checked against Elastic's own
//! request types: the TypeScript client's `typesWithBodyKey` is generated from the
//! elasticsearch-specification, the same source as the crate's typed endpoints, but
//! it also types the bodies. Requests are rendered through the functions the backend
//! sends them with, written as TypeScript object literals assigned to the request
//! type of their API (`tests/es-spec/generated/requests.ts`), and `tsc` checks them:
//! an unknown field, a misspelt option or a value of the wrong kind fails the test.
//! `bin/test` installs the pinned packages (`npm ci` in `tests/es-spec`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrears::domain::account::AccountStatus;
use arrears::domain::document::{Entity, IndexOp};
use arrears::domain::payment::{Method, PaymentStatus};
use arrears::domain::search::{
    ALL_BUCKETS, AccountQuery, After, AgentFilter, CustomField, CustomKind, Facet, FieldKey, FileReach, PaymentFacet, PaymentQuery,
    PaymentSort, PaymentSortField, Sort, SortField, SortKey, StatsQuery,
};
use arrears::search::elastic::bulk::{self, Item};
use arrears::search::elastic::client::Call;
use arrears::search::elastic::templates::{self, Names, write_alias};
use arrears::search::elastic::{doctor, dsl, source};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::elastic::{account, at, custom_account_query, full_account_query, payment, search, today, uuid};

/// Fewer rendered bodies than this means a request kind was dropped from the check.
const AT_LEAST_BODIES: usize = 100;

/// A point-in-time id as Elasticsearch hands them out.
const PIT: &str = "46ToAwMDaWR5BXV1aWQy";

fn es_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/es-spec")
}

/// One request to check: what it is, its API and the request object (path parts and
/// parameters by their specification names, and `body`).
struct Request {
    label: String,
    api: &'static str,
    /// The [`Call`] variant it was rendered from (`None` for what the backend does not send).
    variant: Option<&'static str>,
    object: Value,
}

impl Request {
    fn of(label: impl Into<String>, call: &Call) -> Self {
        let mut object = call.to_json();
        let map = object.as_object_mut().expect("a call renders as an object");
        map.remove("api");
        // The request types hold a bulk body's lines as the array `body`.
        if let Some(lines) = map.remove("ndjson") {
            map.insert("body".into(), lines);
        }
        Self {
            label: label.into(),
            api: call.api(),
            variant: Some(variant(call)),
            object,
        }
    }

    fn has_body(&self) -> bool {
        self.object.get("body").is_some()
    }

    /// The specification's request type: `security.has_privileges` is
    /// `SecurityHasPrivilegesRequest`. Bulk documents are ours, typed as anything but an
    /// action (the client's default, `unknown`, would let a wrong action line through).
    fn request_type(&self) -> String {
        if self.api == "bulk" {
            return "T.BulkRequest<Source, never>".to_owned();
        }
        let mut name = String::from("T.");
        for word in self.api.split(['.', '_']) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                name.extend(first.to_uppercase());
                name.push_str(chars.as_str());
            }
        }
        name + "Request"
    }
}

/// Names every variant of [`Call`] and lists them: the match has no catch-all, so a new
/// call stops this file compiling until it is named here, and then the test fails until
/// it is rendered.
macro_rules! call_variants {
    ($($variant:ident),* $(,)?) => {
        fn variant(call: &Call) -> &'static str {
            match call {
                $(Call::$variant { .. } => stringify!($variant),)*
            }
        }

        const VARIANTS: &[&str] = &[$(stringify!($variant)),*];
    };
}

call_variants!(
    Info,
    ClusterHealth,
    HasPrivileges,
    PutComponentTemplate,
    GetComponentTemplate,
    PutIndexTemplate,
    GetIndexTemplate,
    CreateIndex,
    DeleteIndex,
    PutSettings,
    UpdateAliases,
    GetAlias,
    IndexAliases,
    Refresh,
    ForceMerge,
    Bulk,
    Search,
    SearchPit,
    Count,
    OpenPit,
    ClosePit,
    GetDocVersion,
    GetMapping,
    GetBlocks,
    GetUuids,
    GetWatermarks,
    NodesFs,
    IndexStats,
);

/// Search-after keys that can follow a sort: a score after relevance, a value or a
/// missing value after a column.
fn account_afters(field: SortField) -> Vec<Option<After>> {
    let after = |key| Some(After { key, id: uuid(3) });
    match field {
        SortField::Relevance => vec![None, after(SortKey::Score(2.5))],
        SortField::Name => vec![None, after(SortKey::Int((i128::from(-5_i64) << 64) + 77)), after(SortKey::Missing)],
        _ => vec![None, after(SortKey::Int(12_345_678)), after(SortKey::Missing)],
    }
}

fn account_searches() -> Vec<(String, AccountQuery)> {
    let base = || AccountQuery::new(today());
    let mut out = vec![
        (
            "text, by relevance, after a score".to_owned(),
            AccountQuery {
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
                ..base()
            },
        ),
        (
            "text with combining marks".to_owned(),
            AccountQuery {
                text: Some("प्रिया शर्मा".into()),
                ..base()
            },
        ),
        (
            "text that is only digits (a phone)".to_owned(),
            AccountQuery {
                text: Some("5550134".into()),
                ..base()
            },
        ),
        (
            "text without words (an identifier only)".to_owned(),
            AccountQuery {
                text: Some("#-#".into()),
                ..base()
            },
        ),
        (
            "a name word longer than the name's edge n-grams".to_owned(),
            AccountQuery {
                text: Some("Wolfeschlegelsteinhausenb".into()),
                ..base()
            },
        ),
        (
            "text longer than the prefix n-grams".to_owned(),
            AccountQuery {
                text: Some("x".repeat(60)),
                ..base()
            },
        ),
        ("every filter, after a value".to_owned(), full_account_query()),
        (
            "unassigned, no open promise, deleted included".to_owned(),
            AccountQuery {
                statuses: AccountStatus::ALL.to_vec(),
                agent: Some(AgentFilter::Unassigned),
                min_balance: Some(Decimal::new(1, 2)),
                due_to: NaiveDate::from_ymd_opt(2026, 10, 31),
                next_action_before: Some(at(30, 0)),
                do_not_email: Some(true),
                include_deleted: true,
                has_open_promise: Some(false),
                has_plan: Some(false),
                ..base()
            },
        ),
        (
            "every bucket".to_owned(),
            AccountQuery {
                buckets: ALL_BUCKETS.to_vec(),
                ..base()
            },
        ),
        (
            "every facet".to_owned(),
            AccountQuery {
                facets: Facet::ALL.iter().map(|(_, f)| *f).collect(),
                ..base()
            },
        ),
        (
            "text, filters, buckets and facets together".to_owned(),
            AccountQuery {
                text: Some("O'Brien".into()),
                buckets: vec![ALL_BUCKETS[0], ALL_BUCKETS[5]],
                facets: Facet::ALL.iter().map(|(_, f)| *f).collect(),
                ..full_account_query()
            },
        ),
    ];
    out.push(("custom fields and portfolios".to_owned(), custom_account_query()));
    // An agent's search: what the summary hides counts only in their own accounts
    // (issue 75, item 4).
    let tagged_list = CustomField {
        key: FieldKey::new("segment"),
        kind: CustomKind::Keyword,
    };
    out.push((
        "an agent's text, tag filter and facets over hidden fields".to_owned(),
        AccountQuery {
            file_reach: FileReach::Assigned(uuid(7)),
            text: Some("Peachtree 30328".into()),
            tags: vec!["bankruptcy".into()],
            facets: vec![Facet::Tags, Facet::Custom(tagged_list), Facet::Status],
            ..custom_account_query()
        },
    ));
    out.push((
        "an agent's search sorted by a custom field".to_owned(),
        AccountQuery {
            file_reach: FileReach::Assigned(uuid(7)),
            sort: Sort {
                field: SortField::Custom(CustomField {
                    key: FieldKey::new("score"),
                    kind: CustomKind::Number,
                }),
                descending: true,
            },
            ..base()
        },
    ));
    out.push((
        "only accounts without a portfolio, scoped to none".to_owned(),
        AccountQuery {
            portfolios: vec![None],
            portfolio_scope: Some(Vec::new()),
            ..base()
        },
    ));
    let custom_sorts = [CustomKind::Number, CustomKind::Money, CustomKind::Date].map(|kind| {
        SortField::Custom(CustomField {
            key: FieldKey::new("sorted_by"),
            kind,
        })
    });
    let fields = std::iter::once(SortField::Relevance)
        .chain(SortField::NAMES.iter().map(|(_, f)| *f))
        .chain(custom_sorts);
    for field in fields {
        for descending in [false, true] {
            for after in account_afters(field) {
                let label = format!(
                    "sorted by {} {}{}",
                    field.name(),
                    if descending { "desc" } else { "asc" },
                    after.map_or(String::new(), |a| format!(", after {:?}", a.key))
                );
                out.push((
                    label,
                    AccountQuery {
                        sort: Sort { field, descending },
                        after,
                        ..base()
                    },
                ));
            }
        }
    }
    out
}

fn filtered_payments() -> PaymentQuery {
    PaymentQuery {
        text: Some("acc-0001".into()),
        statuses: vec![PaymentStatus::Completed],
        methods: vec![Method::Card, Method::Ach],
        min_amount: Some(Decimal::new(1_000, 2)),
        from: Some(at(1, 0)),
        to: Some(at(21, 0)),
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
        facets: PaymentFacet::ALL.iter().map(|(_, f)| *f).collect(),
        ..PaymentQuery::default()
    }
}

fn payment_searches() -> Vec<(String, PaymentQuery)> {
    let mut out = vec![
        ("everything, default order".to_owned(), PaymentQuery::default()),
        ("text, filters and facets, after a missing value".to_owned(), filtered_payments()),
        (
            "one account and one agent, every status and method, deleted accounts included".to_owned(),
            PaymentQuery {
                include_deleted: true,
                statuses: PaymentStatus::ALL.to_vec(),
                methods: Method::ALL.to_vec(),
                max_amount: Some(Decimal::new(99_999, 2)),
                account_id: Some(uuid(1)),
                agent: Some(AgentFilter::Agent(uuid(7))),
                ..PaymentQuery::default()
            },
        ),
    ];
    let fields = std::iter::once(PaymentSortField::Relevance).chain(PaymentSortField::NAMES.iter().map(|(_, f)| *f));
    for field in fields {
        for descending in [false, true] {
            let afters = match field {
                PaymentSortField::Relevance => vec![None, Some(SortKey::Score(0.75))],
                _ => vec![None, Some(SortKey::Int(-42)), Some(SortKey::Missing)],
            };
            for key in afters {
                out.push((
                    format!(
                        "sorted by {} {}{}",
                        field.name(),
                        if descending { "desc" } else { "asc" },
                        key.map_or(String::new(), |k| format!(", after {k:?}"))
                    ),
                    PaymentQuery {
                        text: (field == PaymentSortField::Relevance).then(|| "TX-77".to_owned()),
                        sort: PaymentSort { field, descending },
                        after: key.map(|key| After { key, id: uuid(6) }),
                        ..PaymentQuery::default()
                    },
                ));
            }
        }
    }
    out
}

/// Every request, rendered through the functions the backend uses. Calls the backend
/// builds inline (in `elastic/mod.rs` and `doctor.rs`) are built here the same way.
fn requests() -> Vec<Request> {
    let names = Names::new("arrears");
    let mut out = Vec::new();

    for (label, query) in account_searches() {
        out.push(Request::of(
            format!("account search: {label}"),
            &search("accounts", dsl::account_search(&query)),
        ));
    }
    for (label, query) in payment_searches() {
        out.push(Request::of(
            format!("payment search: {label}"),
            &search("payments", dsl::payment_search(&query)),
        ));
    }
    let new_york: chrono_tz::Tz = "America/New_York".parse().unwrap();
    for (label, query) in [
        (
            "three days in New York",
            StatsQuery::new(
                new_york,
                NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
                today(),
            ),
        ),
        ("one day in UTC", StatsQuery::new(chrono_tz::UTC, today(), today(), today())),
        (
            "no days (from after to)",
            StatsQuery::new(chrono_tz::UTC, today(), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), today()),
        ),
    ] {
        out.push(Request::of(
            format!("payment stats: {label}"),
            &search("payments", dsl::stats_body(&query)),
        ));
    }

    // Scans: open a point in time on the read alias, page through it, close it.
    for (label, query) in [
        ("account ids", dsl::account_query(&full_account_query())),
        ("payment ids", dsl::payment_query(&filtered_payments())),
        ("versions", dsl::live_documents()),
    ] {
        for after in [None, Some(json!([uuid(6).to_string(), 4_294_967_303_u64]))] {
            let page = if after.is_some() { "a later page" } else { "the first page" };
            let body = dsl::scan_body(query.clone(), PIT, after, dsl::SCAN_PAGE);
            out.push(Request::of(format!("scan of {label}: {page}"), &Call::SearchPit { body }));
        }
    }
    for entity in Entity::ALL {
        out.push(Request::of(
            format!("open a point in time on the {} read alias", entity.plural()),
            &Call::OpenPit {
                index: names.read_alias(entity),
                keep_alive: dsl::PIT_KEEP_ALIVE,
            },
        ));
    }
    out.push(Request::of("close a point in time", &Call::ClosePit { id: PIT.to_owned() }));

    // Versioned writes: every operation to every write target.
    let mut items = Vec::new();
    for op in [
        IndexOp::upsert(account()),
        IndexOp::upsert(payment()),
        IndexOp::tombstone(Entity::Account, uuid(10), 44),
        IndexOp::tombstone(Entity::Payment, uuid(11), 45),
    ] {
        for n in [1, 2] {
            items.push(Item {
                target: write_alias(&names.generation(op.entity, n)),
                entity: op.entity.as_str(),
                id: op.id,
                version: op.version,
                source: source::of(&op).unwrap(),
            });
        }
    }
    out.push(Request::of(
        "bulk: documents and tombstones, external versions",
        &bulk::request(&items),
    ));

    for call in templates::apply_requests(&names, 1) {
        let name = call.target().map(|(_, name)| name.to_owned()).unwrap_or_default();
        out.push(Request::of(format!("template {name}"), &call));
    }
    for entity in Entity::ALL {
        let (g1, g2, g3) = (
            names.generation(entity, 1),
            names.generation(entity, 2),
            names.generation(entity, 3),
        );
        let plural = entity.plural();
        out.push(Request::of(
            format!("create the first {plural} generation"),
            &templates::create_generation(&names, entity, &g1, true),
        ));
        out.push(Request::of(
            format!("create a rebuild generation of {plural}"),
            &templates::create_generation(&names, entity, &g2, false),
        ));
        out.push(Request::of(
            format!("merge a backfilled {plural} generation"),
            &templates::merge_generation(&g2, 12 << 30),
        ));
        out.push(Request::of(
            format!("restore {plural} settings after a backfill"),
            &templates::restore_settings(&g2, 1),
        ));
        out.push(Request::of(
            format!("swap the {plural} aliases"),
            &templates::swap_aliases(&names, entity, &g2, std::slice::from_ref(&g1), std::slice::from_ref(&g1)),
        ));
        out.push(Request::of(
            format!("swap the {plural} aliases from two old generations, no reporting alias yet"),
            &templates::swap_aliases(&names, entity, &g3, &[g1.clone(), g2.clone()], &[]),
        ));
        out.push(Request::of(
            format!("move the {plural} reporting alias to the read generation"),
            &templates::follow_reads(&names, entity, &g2, &[g1.clone(), g3.clone()]),
        ));
        out.push(Request::of(
            format!("count live {plural} in a rebuild generation"),
            &Call::Count {
                index: g2.clone(),
                body: json!({ "query": dsl::live_documents() }),
            },
        ));
        out.push(Request::of(
            format!("refresh the {plural} read alias"),
            &Call::Refresh {
                index: names.read_alias(entity),
            },
        ));
        out.push(Request::of(
            format!("refresh a {plural} generation"),
            &Call::Refresh { index: g2.clone() },
        ));
        out.push(Request::of(
            format!("delete an old {plural} generation"),
            &Call::DeleteIndex { index: g1 },
        ));
        out.push(Request::of(
            format!("indices behind the {plural} read alias"),
            &Call::GetAlias {
                name: names.read_alias(entity),
            },
        ));
        out.push(Request::of(
            format!("the {plural} generations written to, with their uuids"),
            &Call::GetUuids {
                index: names.targets_alias(entity),
            },
        ));
        out.push(Request::of(
            format!("aliases of every {plural} generation"),
            &Call::IndexAliases {
                index: names.pattern(entity),
            },
        ));
        out.push(Request::of(
            format!("the version of one {} document", entity.as_str()),
            &Call::GetDocVersion {
                index: names.read_alias(entity),
                id: uuid(1).hyphenated().to_string(),
            },
        ));
    }

    // The doctor.
    out.push(Request::of("cluster info", &Call::Info));
    out.push(Request::of("cluster health", &Call::ClusterHealth { index: "arrears-*".into() }));
    out.push(Request::of("blocks of every index", &Call::GetBlocks { index: names.family() }));
    out.push(Request::of("the disk watermarks", &Call::GetWatermarks));
    out.push(Request::of("every node's disk", &Call::NodesFs));
    // The operator's view.
    for entity in Entity::ALL {
        out.push(Request::of(
            format!("the size of the {} behind the read alias", entity.plural()),
            &Call::IndexStats {
                index: names.read_alias(entity),
            },
        ));
    }
    for entity in Entity::ALL {
        out.push(Request::of(
            format!("the mappings of every {} generation", entity.plural()),
            &Call::GetMapping {
                index: names.pattern(entity),
            },
        ));
    }
    out.push(Request::of(
        "the privileges the backend uses",
        &Call::HasPrivileges {
            body: doctor::required_privileges(&names),
        },
    ));
    for call in templates::apply_requests(&names, 1) {
        let (name, get) = match &call {
            Call::PutComponentTemplate { name, .. } => (name.clone(), Call::GetComponentTemplate { name: name.clone() }),
            Call::PutIndexTemplate { name, .. } => (name.clone(), Call::GetIndexTemplate { name: name.clone() }),
            other => panic!("apply_requests made a {} call", other.api()),
        };
        out.push(Request::of(format!("the stored template {name}"), &get));
    }
    // Not sent by the backend: docker-compose.yml applies it from
    // index-templates/elasticsearch-role.json, which a test keeps equal to this.
    out.push(Request {
        label: "the app's role (PUT /_security/role/arrears_app)".to_owned(),
        api: "security.put_role",
        variant: None,
        object: json!({ "name": "arrears_app", "body": doctor::role(&names) }),
    });
    out
}

/// Where a value sits, for what the rendering adds to it.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Plain,
    /// The fields of a `term` query.
    TermFields,
    /// A search's `sort` array, and one of its clauses.
    Sort,
    SortClause,
    /// Index settings (and their `index` object).
    Settings,
    /// A bulk body: action lines, each followed by its source when it has one.
    BulkLines,
    /// A document (ours; only its place in the bulk body is checked).
    Document,
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n("  ", depth));
}

/// Where a member sits, and Elastic's type it is also checked against with `satisfies`
/// where the request type is open (so a misspelt member would pass):
/// - a term query's value is `QueryDslTermQuery | FieldValue`, and `FieldValue`
///   includes `any`: checked as `QueryDslTermQuery`;
/// - a sort clause's value may be a `GeoDistanceSort`, whose index signature takes
///   any string: a field's checked as `FieldSort`, `_score`'s as `ScoreSort`;
/// - index settings are the named settings `&` an index signature of `any` (room for
///   plugins' settings): checked as `IndicesIndexSettingsKeys`, the named ones alone.
///   Elasticsearch itself refuses an unknown setting.
fn member(place: Place, key: &str, child: &Value) -> (Place, Option<&'static str>) {
    let object = child.is_object();
    match place {
        Place::Document | Place::BulkLines => (Place::Document, None),
        Place::TermFields if object => (Place::Plain, Some("T.QueryDslTermQuery")),
        Place::SortClause if object && (key == "_score" || key == "_doc") => (Place::Plain, Some("T.ScoreSort")),
        Place::SortClause if object && !key.starts_with('_') => (Place::Plain, Some("T.FieldSort")),
        Place::Settings if object && key == "index" => (Place::Settings, Some("T.IndicesIndexSettingsKeys")),
        _ if object && key == "settings" => (Place::Settings, Some("T.IndicesIndexSettingsKeys")),
        _ if object && key == "term" => (Place::TermFields, None),
        _ if key == "sort" && child.is_array() => (Place::Sort, None),
        _ => (Place::Plain, None),
    }
}

/// A JSON value as a TypeScript literal, one member per line (so tsc's line numbers
/// point at the member), with the [`member`] checks. Bulk action lines are checked with
/// `satisfies BulkOperationContainer`, so a line out of place fails too.
fn literal(value: &Value, place: Place, depth: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (key, child) in map {
                indent(out, depth + 1);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                let (child_place, narrower) = member(place, key, child);
                literal(child, child_place, depth + 1, out);
                if let Some(type_name) = narrower {
                    write!(out, " satisfies {type_name}").unwrap();
                }
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            let mut source_next = false;
            for item in items {
                indent(out, depth + 1);
                match place {
                    Place::BulkLines if source_next => {
                        literal(item, Place::Document, depth + 1, out);
                        source_next = false;
                    }
                    Place::BulkLines => {
                        literal(item, Place::Plain, depth + 1, out);
                        out.push_str(" satisfies T.BulkOperationContainer");
                        source_next = ["index", "create", "update"].iter().any(|action| item.get(action).is_some());
                    }
                    Place::Document => literal(item, Place::Document, depth + 1, out),
                    Place::Sort => literal(item, Place::SortClause, depth + 1, out),
                    _ => literal(item, Place::Plain, depth + 1, out),
                }
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The TypeScript file, and the first line of each request in it.
fn typescript(requests: &[Request]) -> (String, Vec<usize>) {
    let mut out = String::from(
        "// Generated by tests/api/es_spec.rs; every request the Elasticsearch backend builds.\n\
         import type * as T from '@elastic/elasticsearch/lib/api/typesWithBodyKey';\n\
         \n\
         /** A bulk source line: any document of ours, but never an action. */\n\
         type Source = { index?: never; create?: never; update?: never; delete?: never; [field: string]: unknown };\n",
    );
    let mut starts = Vec::with_capacity(requests.len());
    for (n, request) in requests.iter().enumerate() {
        out.push('\n');
        starts.push(out.lines().count() + 1);
        writeln!(out, "// r{n}: {} ({})", request.label.replace('\n', " "), request.api).unwrap();
        write!(out, "export const r{n}: {} = ", request.request_type()).unwrap();
        // Path parts and parameters, and the body with what its API needs.
        out.push_str("{\n");
        for (key, value) in request.object.as_object().expect("a request is an object") {
            indent(&mut out, 1);
            write!(out, "{}: ", Value::String(key.clone())).unwrap();
            let place = match (request.api, key.as_str()) {
                ("bulk", "body") => Place::BulkLines,
                ("indices.put_settings", "body") => Place::Settings,
                _ => Place::Plain,
            };
            literal(value, place, 1, &mut out);
            if place == Place::Settings {
                out.push_str(" satisfies T.IndicesIndexSettingsKeys");
            }
            out.push_str(",\n");
        }
        out.push('}');
        out.push_str(";\n");
    }
    (out, starts)
}

fn installed_version(package: &str) -> Option<String> {
    let path = es_spec().join("node_modules").join(package).join("package.json");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    manifest["version"].as_str().map(str::to_owned)
}

/// tsc's diagnostics with the request each one is about.
fn explain(output: &str, file: &str, requests: &[Request], starts: &[usize]) -> String {
    let lines: Vec<&str> = file.lines().collect();
    let mut out = String::new();
    for diagnostic in output.lines().filter(|l| l.starts_with("generated/requests.ts(")) {
        let Some(line) = diagnostic["generated/requests.ts(".len()..]
            .split(',')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let n = starts.partition_point(|start| *start <= line).saturating_sub(1);
        let text = lines.get(line - 1).map_or("", |l| l.trim());
        writeln!(out, "  r{n} {} ({}), line {line}: {text}", requests[n].label, requests[n].api).unwrap();
    }
    out
}

#[test]
fn every_request_body_matches_elastics_request_types() {
    let dir = es_spec();
    let tsc = dir.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run bin/test, which installs tests/es-spec with `npm ci` (Node.js 20 or later)",
        tsc.display()
    );
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    for package in ["@elastic/elasticsearch", "typescript"] {
        let pinned = manifest["devDependencies"][package].as_str().unwrap();
        assert_eq!(
            installed_version(package).as_deref(),
            Some(pinned),
            "tests/es-spec/node_modules holds another {package} than package.json pins: run bin/test (it runs `npm ci` there)"
        );
    }

    let requests = requests();
    let rendered: BTreeSet<&str> = requests.iter().filter_map(|r| r.variant).collect();
    let missing: Vec<&&str> = VARIANTS.iter().filter(|v| !rendered.contains(**v)).collect();
    assert!(
        missing.is_empty(),
        "calls the backend can build but this test does not render: {missing:?}"
    );
    let bodies = requests.iter().filter(|r| r.has_body()).count();
    assert!(
        bodies >= AT_LEAST_BODIES,
        "only {bodies} request bodies rendered; {AT_LEAST_BODIES} were checked before"
    );

    let (file, starts) = typescript(&requests);
    let generated = dir.join("generated");
    std::fs::create_dir_all(&generated).unwrap();
    // Written whole, then moved into place: another test run may be reading it.
    let partial = generated.join(format!(".requests.{}.partial", std::process::id()));
    std::fs::write(&partial, &file).unwrap();
    std::fs::rename(&partial, generated.join("requests.ts")).unwrap();

    let checked = Command::new(&tsc)
        .args(["--noEmit", "--pretty", "false", "-p"])
        .arg(&dir)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (is node on PATH?)", tsc.display()));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success(),
        "tsc refuses request bodies the backend builds ({}):\n{output}\nby request:\n{}",
        generated.join("requests.ts").display(),
        explain(&output, &file, &requests, &starts)
    );
    println!(
        "es-spec: {bodies} request bodies checked against @elastic/elasticsearch {} ({} requests over {} APIs, TypeScript {})",
        installed_version("@elastic/elasticsearch").unwrap(),
        requests.len(),
        requests.iter().map(|r| r.api).collect::<BTreeSet<_>>().len(),
        installed_version("typescript").unwrap()
    );
}

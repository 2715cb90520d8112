//! The query AST as Elasticsearch query DSL. The semantics follow the embedded backend
//! (`embedded/query.rs`) clause for clause, so both answer the contract suite alike.

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::source::{EXCLUDED, custom_path, day};
use crate::domain::account::{AccountStatus, Bucket};
use crate::domain::compliance::Channel;
use crate::domain::plan::PlanStatus;
use crate::domain::queue::{FieldRange, QueueField};
use crate::domain::search::{
    ALL_BUCKETS, AccountQuery, After, AgentFilter, Counted, CustomFilter, CustomKind, CustomTest, FACET_SIZE, Facet, FileReach,
    NO_PORTFOLIO, PaymentFacet, PaymentQuery, PaymentSortField, SortField, SortKey, StatsQuery, bucket_days,
};
use crate::search::embedded::schema::{EDGE_MAX, money_units, phone_runs};
use crate::search::words::{
    JOINED_QUERY_WORDS, PART_PREFIX_MIN, TYPO_EXPANSIONS, folded_tokens, folded_words, fuzziness, join_windows, lucene_lowercase,
};

/// Page size of id and version scans.
pub const SCAN_PAGE: usize = 10_000;
/// How long a scan's point in time stays open between two pages.
pub const PIT_KEEP_ALIVE: &str = "1m";

fn term(field: &str, value: impl Into<Value>) -> Value {
    json!({ "term": { field: value.into() } })
}

fn boosted_term(field: &str, value: &str, boost: f32) -> Value {
    json!({ "term": { field: { "value": value, "boost": boost } } })
}

fn terms(field: &str, values: impl IntoIterator<Item = impl Into<Value>>) -> Value {
    json!({ "terms": { field: values.into_iter().map(Into::into).collect::<Vec<Value>>() } })
}

fn exists(field: &str) -> Value {
    json!({ "exists": { "field": field } })
}

fn not(query: Value) -> Value {
    json!({ "bool": { "must_not": [query] } })
}

fn any_of(queries: Vec<Value>) -> Value {
    json!({ "bool": { "should": queries, "minimum_should_match": 1 } })
}

/// A range with the bounds given; `None` when it has none.
fn range(field: &str, bounds: &[(&str, Option<Value>)]) -> Option<Value> {
    let limits: Map<String, Value> = bounds
        .iter()
        .filter_map(|(op, v)| v.clone().map(|v| ((*op).to_owned(), v)))
        .collect();
    (!limits.is_empty()).then(|| json!({ "range": { field: limits } }))
}

fn not_tombstone() -> Value {
    term("tombstone", true)
}

/// The longest word prefix a name's edge n-gram subfield holds: `max_gram` of
/// `arrears_edge_ngrams` in `index-templates/component-analysis.json` (a test holds
/// them equal), in characters (Lucene counts code points, as `chars` does).
pub const NAME_EDGE_GRAMS: usize = 20;

/// Where full text looks: names (with their edge n-gram subfield, if any), joined names
/// and identifier parts, identifier fields (lowercased keywords), and optionally phone
/// digits; apart, the fields holding what an agent's summary hides (addresses among
/// them).
struct TextFields<'a> {
    /// Matched exactly, as a prefix (through the edge field when there is one and the
    /// word is no longer than [`NAME_EDGE_GRAMS`]), or within the typo budget.
    names: &'a [(&'a str, Option<&'a str>)],
    /// Joined names and identifier parts: matched whole or, from [`PART_PREFIX_MIN`]
    /// characters, as a prefix, and only where the word matches nothing above (the
    /// word scores the best of them, a `dis_max`), as on the embedded backend.
    parts: &'a [&'a str],
    idents: &'a [&'a str],
    phone_digits: Option<&'a str>,
    hidden: Option<Hidden<'a>>,
}

/// The fields holding what an agent's summary of an account hides (the address, the
/// words of custom text, the external reference), matched only in the accounts of the
/// query's hidden owner when it has one
/// ([`crate::domain::search::AccountQuery::hidden_owner`]), as on the embedded backend.
struct Hidden<'a> {
    /// Matched exactly or as a prefix.
    words: &'a [&'a str],
    /// Matched as [`TextFields::parts`] are.
    parts: &'a [&'a str],
    /// Matched as [`TextFields::idents`] are.
    idents: &'a [&'a str],
}

const ACCOUNT_TEXT: TextFields<'static> = TextFields {
    names: &[("debtor_name", Some("debtor_name.prefix"))],
    parts: &["debtor_name.joined", "derived.ident_parts"],
    idents: &["account_number.lower", "email.lower"],
    phone_digits: Some("derived.phone_digits"),
    hidden: Some(Hidden {
        words: &["derived.address", "derived.custom_words"],
        parts: &["derived.reference_parts"],
        idents: &["external_ref.lower"],
    }),
};

const PAYMENT_TEXT: TextFields<'static> = TextFields {
    names: &[("debtor_name", Some("debtor_name.prefix"))],
    parts: &[],
    idents: &["account_number.lower", "reference.lower"],
    phone_digits: None,
    hidden: None,
};

/// The accounts assigned to `agent`.
fn assigned_to(agent: Uuid) -> Value {
    term("assigned_agent_id", agent.hyphenated().to_string())
}

/// Ways of matching a hidden field, as the caller may use them: each as it is, or any
/// of them only in the accounts of `owner` (a filter: an owner's account scores as it
/// would without it).
fn limited(options: Vec<Value>, owner: Option<&Value>) -> Vec<Value> {
    match owner {
        Some(owner) if !options.is_empty() => vec![json!({ "bool": { "must": [any_of(options)], "filter": [owner] } })],
        _ => options,
    }
}

/// A word in `field`: the word itself, the words it begins (through `edge` when there is
/// one and the word is no longer than [`NAME_EDGE_GRAMS`]) and, with `typos`, the words
/// within its typo budget.
fn word_options(field: &str, edge: Option<&str>, typos: bool, word: &str) -> Vec<Value> {
    let mut options = vec![boosted_term(field, word, 3.0)];
    options.push(match edge {
        Some(edge) if word.chars().count() <= NAME_EDGE_GRAMS => boosted_term(edge, word, 1.5),
        // A longer word is no term of the edge field: the word field is
        // asked for the words it begins (a term range to Lucene), which
        // is what the embedded backend does for a word of any length.
        _ => prefix(field, word),
    });
    let distance = fuzziness(word);
    if typos && distance > 0 {
        options.push(json!({
            "fuzzy": { field: {
                "value": word,
                "fuzziness": distance,
                "transpositions": true,
                "max_expansions": TYPO_EXPANSIONS
            } }
        }));
    }
    options
}

fn prefix(field: &str, word: &str) -> Value {
    json!({ "prefix": { field: { "value": word, "boost": 1.5 } } })
}

/// A joined name or identifier part: the word whole and, from [`PART_PREFIX_MIN`]
/// characters, as a prefix.
fn part_options(field: &str, word: &str) -> Vec<Value> {
    let mut options = vec![boosted_term(field, word, 3.0)];
    if word.chars().count() >= PART_PREFIX_MIN {
        options.push(prefix(field, word));
    }
    options
}

/// What one word must match: a name or another word field, summed; or else, scored on
/// their own, a joined name or an identifier part. A hidden field matches only in the
/// accounts of `owner` when there is one.
fn word_query(fields: &TextFields<'_>, word: &str, owner: Option<&Value>) -> Value {
    let mut options = Vec::new();
    for (field, edge) in fields.names {
        options.extend(word_options(field, *edge, true, word));
    }
    if let Some(hidden) = &fields.hidden {
        let found = hidden.words.iter().flat_map(|field| word_options(field, None, false, word));
        options.extend(limited(found.collect(), owner));
    }
    let mut best_of = vec![any_of(options)];
    for field in fields.parts {
        best_of.push(any_of(part_options(field, word)));
    }
    for field in fields.hidden.iter().flat_map(|hidden| hidden.parts) {
        best_of.push(any_of(limited(part_options(field, word), owner)));
    }
    match best_of.len() {
        1 => best_of.remove(0),
        _ => json!({ "dis_max": { "queries": best_of } }),
    }
}

/// Every word must match a name exactly, as a prefix, or within the typo budget, or
/// another word field exactly or as a prefix, or a joined name or identifier part; or a
/// run of adjacent words, joined, matches a name exactly or as a prefix; or the whole text
/// matches an identifier (exactly or as a prefix); or a run of it that reads as a phone
/// number (`phone_runs`) matches a phone and every other word matches as above. A hidden field matches
/// only in the accounts of `owner` when there is one.
fn text_query(fields: &TextFields<'_>, text: &str, owner: Option<Uuid>, also: Option<Value>) -> Option<Value> {
    let owner = owner.map(assigned_to);
    let owner = owner.as_ref();
    let mut alternatives = Vec::new();
    let located = folded_words(text);
    let words: Vec<String> = located.iter().map(|(_, word)| word.clone()).collect();
    if !words.is_empty() {
        let per_word: Vec<Value> = words.iter().map(|word| word_query(fields, word, owner)).collect();
        if let Some(field) = fields.phone_digits {
            for run in phone_runs(text) {
                let mut must: Vec<Value> = located
                    .iter()
                    .zip(&per_word)
                    .filter(|((at, _), _)| !run.covers(at))
                    .map(|(_, q)| q.clone())
                    .collect();
                must.push(boosted_term(field, &run.digits, 2.0));
                alternatives.push(json!({ "bool": { "must": must } }));
            }
        }
        if words.len() <= JOINED_QUERY_WORDS {
            for window in join_windows(words.len()) {
                let joined = words[window.clone()].concat();
                let options = fields
                    .names
                    .iter()
                    .flat_map(|(field, edge)| word_options(field, *edge, false, &joined))
                    .collect();
                let mut must = per_word[..window.start].to_vec();
                must.push(any_of(options));
                must.extend_from_slice(&per_word[window.end..]);
                alternatives.push(json!({ "bool": { "must": must } }));
            }
        }
        alternatives.push(json!({ "bool": { "must": per_word } }));
    }
    // As the `arrears_lowercase` normalizer lowercased the identifiers.
    let whole = lucene_lowercase(text.trim());
    if !whole.is_empty() {
        alternatives.extend(ident_options(fields.idents, &whole));
        if let Some(hidden) = &fields.hidden {
            alternatives.extend(limited(ident_options(hidden.idents, &whole), owner));
        }
    }
    alternatives.extend(also);
    (!alternatives.is_empty()).then(|| any_of(alternatives))
}

/// The identifiers of `idents` that are `whole` (lowercased) or begin with it.
fn ident_options(idents: &[&str], whole: &str) -> Vec<Value> {
    let mut options: Vec<Value> = idents.iter().map(|field| boosted_term(field, whole, 5.0)).collect();
    if whole.chars().count() <= EDGE_MAX {
        options.extend(
            idents
                .iter()
                .map(|field| json!({ "prefix": { *field: { "value": whole, "boost": 2.0 } } })),
        );
    }
    options
}

fn agent_filter(agent: Option<AgentFilter>) -> Option<Value> {
    match agent {
        Some(AgentFilter::Agent(id)) => Some(assigned_to(id)),
        Some(AgentFilter::Unassigned) => Some(not(exists("assigned_agent_id"))),
        None => None,
    }
}

fn resolved() -> Value {
    terms(
        "status",
        AccountStatus::ALL.into_iter().filter(|s| s.is_resolved()).map(|s| s.as_str()),
    )
}

/// A bucket as a date-math range on the due date, anchored to the query's day.
fn bucket(bucket: Bucket, today: NaiveDate) -> Value {
    let days_before = |days: i64| json!(format!("{today}||-{days}d"));
    let overdue = || {
        json!({ "bool": {
            "filter": [{ "range": { "due_date": { "lte": days_before(1) } } }],
            "must_not": [resolved()]
        } })
    };
    match bucket_days(bucket) {
        (_, Some(0)) => not(overdue()),
        (min, max) => {
            let mut limits = Map::new();
            if let Some(max) = max {
                limits.insert("gte".into(), days_before(max));
            }
            limits.insert("lte".into(), days_before(min));
            json!({ "bool": { "filter": [{ "range": { "due_date": limits } }], "must_not": [resolved()] } })
        }
    }
}

/// Filters of an account query (everything but the text).
fn account_filters(query: &AccountQuery) -> (Vec<Value>, Vec<Value>) {
    let mut filter = Vec::new();
    let mut must_not = vec![not_tombstone()];
    if !query.include_deleted {
        must_not.push(exists("deleted_at"));
    }
    if !query.statuses.is_empty() {
        filter.push(terms("status", query.statuses.iter().map(|s| s.as_str())));
    }
    filter.extend(agent_filter(query.agent));
    filter.extend(query.owner_limit().map(assigned_to));
    if !query.document_kinds.is_empty() {
        filter.push(terms("document_kinds", query.document_kinds.iter().map(|k| k.as_str())));
    }
    if !query.tags.is_empty() {
        filter.push(terms("tags", query.tags.iter().map(String::as_str)));
    }
    filter.extend(range(
        "derived.balance_units",
        &[
            ("gte", query.min_balance.map(|v| json!(money_units(v)))),
            ("lte", query.max_balance.map(|v| json!(money_units(v)))),
        ],
    ));
    filter.extend(range(
        "due_date",
        &[
            ("gte", query.due_from.map(|d| json!(d.to_string()))),
            ("lte", query.due_to.map(|d| json!(d.to_string()))),
        ],
    ));
    filter.extend(range(
        "derived.next_action_micros",
        &[
            ("gt", query.next_action_after.map(|t| json!(t.timestamp_micros()))),
            ("lt", query.next_action_before.map(|t| json!(t.timestamp_micros()))),
        ],
    ));
    if !query.buckets.is_empty() {
        filter.push(any_of(query.buckets.iter().map(|b| bucket(*b, query.today)).collect()));
    }
    for (field, wanted) in [
        ("do_not_call", query.do_not_call),
        ("do_not_email", query.do_not_email),
        ("cease_communication", query.cease_communication),
    ] {
        if let Some(value) = wanted {
            filter.push(term(field, value));
        }
    }
    match query.has_open_promise {
        Some(true) => filter.push(exists("summary.open_promise.id")),
        Some(false) => must_not.push(exists("summary.open_promise.id")),
        None => {}
    }
    if let Some(contactable) = &query.contactable {
        must_not.push(term("derived.contact_blocked", contactable.channel.as_str()));
        if contactable.channel == Channel::Call {
            filter.extend(range(
                "derived.calls_open_micros",
                &[("lte", Some(json!(contactable.now.timestamp_micros())))],
            ));
        }
        let inside = |minute: i32| {
            json!({ "bool": { "filter": [
                { "range": { "derived.window_start_min": { "lte": minute } } },
                { "range": { "derived.window_end_min": { "gt": minute } } }
            ] } })
        };
        let mut ways = vec![not(term("derived.contact_windowed", contactable.channel.as_str()))];
        ways.extend(contactable.minutes().into_iter().map(inside));
        filter.push(any_of(ways));
    }
    if let Some(tier) = &query.tier {
        filter.extend(tier.within.map(queue_range));
        must_not.extend(tier.outside.iter().map(|r| queue_range(*r)));
    }
    match query.has_plan {
        Some(true) => filter.push(term("summary.plan.status", PlanStatus::Active.as_str())),
        Some(false) => must_not.push(term("summary.plan.status", PlanStatus::Active.as_str())),
        None => {}
    }
    if !query.plan_statuses.is_empty() {
        filter.push(terms("summary.plan.status", query.plan_statuses.iter().map(|s| s.as_str())));
    }
    filter.extend(range(
        "summary.plan.next_due_date",
        &[("lt", query.plan_next_before.map(|d| json!(d.to_string())))],
    ));
    if !query.portfolios.is_empty() {
        let ids: Vec<String> = query.portfolios.iter().flatten().map(|id| id.hyphenated().to_string()).collect();
        let mut ways = Vec::new();
        if !ids.is_empty() {
            ways.push(terms("portfolio_id", ids));
        }
        if query.portfolios.contains(&None) {
            ways.push(not(exists("portfolio_id")));
        }
        filter.push(if ways.len() == 1 { ways.remove(0) } else { any_of(ways) });
    }
    filter.extend(query.portfolio_scope.as_deref().map(portfolio_scope));
    for custom in &query.custom {
        match custom_filter(custom) {
            (query, true) => filter.push(query),
            (query, false) => must_not.push(query),
        }
    }
    (filter, must_not)
}

/// Documents in no portfolio or in one of `scope` (a user's access scope).
fn portfolio_scope(scope: &[Uuid]) -> Value {
    let granted = terms("portfolio_id", scope.iter().map(|id| id.hyphenated().to_string()));
    any_of(vec![granted, not(exists("portfolio_id"))])
}

/// A custom field filter on its typed field, and whether documents must match it
/// (`false`: must not).
fn custom_filter(custom: &CustomFilter) -> (Value, bool) {
    let path = custom_path(custom.field);
    let kind = custom.field.kind;
    match &custom.test {
        CustomTest::OneOf(values) if kind == CustomKind::Boolean => (terms(path, values.iter().map(|v| Value::Bool(v == "true"))), true),
        CustomTest::OneOf(values) => (terms(path, values.iter().map(String::as_str)), true),
        CustomTest::Range { lo, hi } => {
            let bound = |v: &Option<i64>| v.map(|v| if kind == CustomKind::Date { json!(day(v)) } else { json!(v) });
            let query = range(path, &[("gte", bound(lo)), ("lte", bound(hi))]).unwrap_or_else(|| exists(path));
            (query, true)
        }
        CustomTest::Exists(wanted) => (exists(path), *wanted),
    }
}

/// A work-queue tier's range on its derived column.
fn queue_range(range: FieldRange) -> Value {
    let field = match range.field {
        QueueField::BrokenPromiseDue => "derived.broken_promise_days",
        QueueField::PromiseDue => "derived.promise_due_days",
        QueueField::NextAction => "derived.next_action_micros",
        QueueField::PlanMissedDue => "derived.plan_missed_days",
    };
    json!({ "range": { field: { "gte": range.lo, "lte": range.hi } } })
}

fn bool_query(text: Option<Value>, filter: Vec<Value>, must_not: Vec<Value>) -> Value {
    let mut query = Map::new();
    if let Some(text) = text {
        query.insert("must".into(), json!([text]));
    }
    query.insert("filter".into(), Value::Array(filter));
    query.insert("must_not".into(), Value::Array(must_not));
    json!({ "bool": query })
}

pub fn account_query(query: &AccountQuery) -> Value {
    let (filter, must_not) = account_filters(query);
    let text = query
        .text
        .as_deref()
        .and_then(|t| text_query(&ACCOUNT_TEXT, t, query.hidden_owner(), file_text_query(t, query.file_reach)));
    bool_query(text, filter, must_not)
}

/// The words processing read from an account's documents (files).
const DOCUMENT_WORDS: &str = "derived.document_words";

/// The accounts whose documents' words hold every word of `text` (each exactly or as a
/// prefix), among those `reach` lets the caller find that way, as on the embedded
/// backend.
fn file_text_query(text: &str, reach: FileReach) -> Option<Value> {
    let owner = match reach {
        FileReach::None => return None,
        FileReach::All => None,
        FileReach::Assigned(agent) => Some(assigned_to(agent)),
    };
    let words = folded_tokens(text);
    if words.is_empty() {
        return None;
    }
    let mut must: Vec<Value> = words
        .iter()
        .map(|word| any_of(word_options(DOCUMENT_WORDS, None, false, word)))
        .collect();
    must.extend(owner);
    Some(json!({ "bool": { "must": must } }))
}

pub fn payment_query(query: &PaymentQuery) -> Value {
    let mut filter = Vec::new();
    if !query.statuses.is_empty() {
        filter.push(terms("status", query.statuses.iter().map(|s| s.as_str())));
    }
    if !query.methods.is_empty() {
        filter.push(terms("method", query.methods.iter().map(|m| m.as_str())));
    }
    filter.extend(range(
        "derived.amount_units",
        &[
            ("gte", query.min_amount.map(|v| json!(money_units(v)))),
            ("lte", query.max_amount.map(|v| json!(money_units(v)))),
        ],
    ));
    filter.extend(range(
        "derived.received_micros",
        &[
            ("gte", query.from.map(|t| json!(t.timestamp_micros()))),
            ("lt", query.to.map(|t| json!(t.timestamp_micros()))),
        ],
    ));
    if let Some(account) = query.account_id {
        filter.push(term("account_id", account.hyphenated().to_string()));
    }
    filter.extend(agent_filter(query.agent));
    filter.extend(query.portfolio_scope.as_deref().map(portfolio_scope));
    let mut must_not = vec![not_tombstone()];
    if !query.include_deleted {
        must_not.push(term("account_deleted", true));
    }
    bool_query(
        query.text.as_deref().and_then(|t| text_query(&PAYMENT_TEXT, t, None, None)),
        filter,
        must_not,
    )
}

/// How hits are ordered: by score or by long columns, then by id. Missing values
/// sort last in both directions, as in the embedded backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Score,
    Column(&'static str, bool),
    /// The name key, split over two long columns.
    Name(bool),
    /// A custom field (a long, or a date sorted by its epoch milliseconds), which no
    /// document may have mapped yet: the sort names the type it would have.
    Custom(&'static str, &'static str, bool),
}

impl Order {
    pub fn of_accounts(query: &AccountQuery) -> Self {
        let desc = query.sort.descending;
        match query.sort.field {
            SortField::Relevance => Order::Score,
            SortField::Balance => Order::Column("derived.balance_units", desc),
            SortField::DueDate => Order::Column("derived.due_days", desc),
            SortField::NextAction => Order::Column("derived.next_action_micros", desc),
            SortField::Updated => Order::Column("derived.updated_micros", desc),
            SortField::Name => Order::Name(desc),
            SortField::Queue => Order::Column("derived.queue_rank", desc),
            SortField::Custom(field) => {
                let unmapped = if field.kind == CustomKind::Date { "date" } else { "long" };
                Order::Custom(custom_path(field), unmapped, desc)
            }
        }
    }

    pub fn of_payments(query: &PaymentQuery) -> Self {
        let desc = query.sort.descending;
        match query.sort.field {
            PaymentSortField::Relevance => Order::Score,
            PaymentSortField::ReceivedAt => Order::Column("derived.received_micros", desc),
            PaymentSortField::Amount => Order::Column("derived.amount_units", desc),
            PaymentSortField::Updated => Order::Column("derived.updated_micros", desc),
        }
    }

    fn descending(self) -> bool {
        match self {
            Order::Score => true,
            Order::Column(_, d) | Order::Name(d) | Order::Custom(_, _, d) => d,
        }
    }

    /// The value Elasticsearch puts in a hit's sort array for a missing long when
    /// missing values go last.
    fn missing(self) -> i64 {
        if self.descending() { i64::MIN } else { i64::MAX }
    }

    pub fn sort(self) -> Value {
        let dir = |d: bool| if d { "desc" } else { "asc" };
        let column = |field: &str, d: bool| json!({ field: { "order": dir(d), "missing": "_last" } });
        let mut sort = match self {
            Order::Score => vec![json!({ "_score": { "order": "desc" } })],
            Order::Column(field, d) => vec![column(field, d)],
            Order::Name(d) => vec![column("derived.name_hi", d), column("derived.name_lo", d)],
            Order::Custom(field, unmapped, d) => {
                vec![json!({ field: { "order": dir(d), "missing": "_last", "unmapped_type": unmapped } })]
            }
        };
        sort.push(json!({ "id": { "order": "asc" } }));
        Value::Array(sort)
    }

    pub fn search_after(self, after: &After) -> Value {
        let id = json!(after.id.hyphenated().to_string());
        match (self, after.key) {
            (Order::Name(_), SortKey::Int(v)) => {
                let hi = (v >> 64) as i64;
                let lo = (v - (i128::from(hi) << 64)) as i64;
                json!([hi, lo, id])
            }
            (Order::Name(_), _) => json!([self.missing(), self.missing(), id]),
            (_, SortKey::Score(s)) => json!([s, id]),
            (_, SortKey::Int(v)) => json!([v as i64, id]),
            (_, SortKey::Missing) => json!([self.missing(), id]),
        }
    }

    /// The sort key of a hit, from its sort array.
    pub fn key(self, sort: &[Value]) -> SortKey {
        let long = |i: usize| sort.get(i).and_then(Value::as_i64);
        match self {
            Order::Score => SortKey::Score(sort.first().and_then(Value::as_f64).unwrap_or(0.0) as f32),
            Order::Column(..) | Order::Custom(..) => match long(0) {
                Some(v) if v != self.missing() => SortKey::Int(i128::from(v)),
                _ => SortKey::Missing,
            },
            Order::Name(_) => match (long(0), long(1)) {
                (Some(hi), Some(lo)) if hi != self.missing() => SortKey::Int((i128::from(hi) << 64) + i128::from(lo)),
                _ => SortKey::Missing,
            },
        }
    }
}

/// The sub-aggregations summing the money of `units` (`derived.balance_units`...): one
/// `sum` per part, each exact as a double (see [`super::source::UNITS_LOW_BITS`]).
fn sum_units(units: &str) -> Value {
    json!({
        UNITS_HI: { "sum": { "field": format!("{units}_hi") } },
        UNITS_LO: { "sum": { "field": format!("{units}_lo") } },
    })
}

/// Names of the two sub-aggregations that sum money, one per part.
pub const UNITS_HI: &str = "units_hi";
pub const UNITS_LO: &str = "units_lo";

fn terms_agg(field: &str, size: usize, sum: Option<&str>) -> Value {
    let mut agg = json!({ "terms": { "field": field, "size": size } });
    if let Some(sum) = sum {
        agg["aggs"] = sum_units(sum);
    }
    agg
}

/// The currencies a money facet's value is split into, at most: more than ISO 4217 has.
pub const CURRENCIES: usize = 300;

/// Terms of `field`, each with the sum of `units` per currency: amounts of different
/// currencies never add up.
fn money_terms_agg(field: &str, units: &str) -> Value {
    json!({ "terms": { "field": field, "size": FACET_SIZE }, "aggs": per_currency(units) })
}

/// The sub-aggregation `currencies`: the sum of `units` per currency.
fn per_currency(units: &str) -> Value {
    json!({ "currencies": { "terms": { "field": "currency", "size": CURRENCIES }, "aggs": sum_units(units) } })
}

/// The sub-aggregation a facet counted only in one agent's accounts holds its values
/// in: `{"filter": <the owner's accounts>, "aggs": {"values": <the facet>}}`.
pub const OWNED_VALUES: &str = "values";

/// The aggregations of `query`'s facets; a facet over hidden fields counts only the
/// accounts of its owner ([`AccountQuery::facet_owner`]).
pub fn account_facets(query: &AccountQuery) -> Map<String, Value> {
    let today = query.today;
    query
        .facets
        .iter()
        .map(|facet| {
            let agg = match facet {
                Facet::Status => money_terms_agg("status", "derived.balance_units"),
                Facet::Bucket => {
                    let filters: Map<String, Value> = ALL_BUCKETS.iter().map(|b| (b.as_str().to_owned(), bucket(*b, today))).collect();
                    json!({ "filters": { "filters": filters }, "aggs": per_currency("derived.balance_units") })
                }
                Facet::AssignedAgent => {
                    let mut agg = terms_agg("assigned_agent_id", FACET_SIZE, None);
                    agg["terms"]["missing"] = json!("unassigned");
                    agg
                }
                Facet::Tags => terms_agg("tags", FACET_SIZE, None),
                Facet::DocumentKind => terms_agg("document_kinds", FACET_SIZE, None),
                Facet::DocumentName => terms_agg("document_names", FACET_SIZE, None),
                Facet::Portfolio => {
                    let mut agg = terms_agg("portfolio_id", FACET_SIZE, None);
                    agg["terms"]["missing"] = json!(NO_PORTFOLIO);
                    agg
                }
                Facet::Custom(field) => terms_agg(custom_path(*field), FACET_SIZE, None),
            };
            let agg = match query.facet_owner(*facet) {
                Some(owner) => json!({ "filter": assigned_to(owner), "aggs": { OWNED_VALUES: agg } }),
                None => agg,
            };
            (facet.name().to_owned(), agg)
        })
        .collect()
}

pub fn payment_facets(facets: &[PaymentFacet]) -> Map<String, Value> {
    facets
        .iter()
        .map(|facet| {
            let field = match facet {
                PaymentFacet::Status => "status",
                PaymentFacet::Method => "method",
                PaymentFacet::FailureReason => "failure_reason",
            };
            (facet.name().to_owned(), money_terms_agg(field, "derived.amount_units"))
        })
        .collect()
}

/// How far the node counts a search's matches (`track_total_hits`): to the bound
/// `counted` gives where the order is a column's, so Lucene can skip the matches that
/// cannot enter the page once it has counted that far (a list sorted by balance over a
/// million accounts: 2–3 ms of the node's time instead of 7–16), and every match where
/// the order is the score, as the reader of the answer bounds it the same way
/// ([`Counted::total`]). Nothing in a text search can be skipped (prefixes and typos
/// score each match alike, and ties go by id), and a bound only puts Lucene on its
/// slower path for the best scores: 1–2 ms more of the node's time for each of the
/// mix's text searches at a million accounts (docs/benchmarks.md).
fn tracked(order: Order, counted: Counted) -> Value {
    match counted {
        Counted::UpTo(bound) if order != Order::Score => json!(bound),
        Counted::UpTo(_) | Counted::Exact => json!(true),
    }
}

/// A page of hits: one more than asked for, so the caller knows whether more follow.
/// A page of none asks for no hits (`size: 0`, without a cursor: the total and the
/// aggregations count every match either way), the requests each shard's request cache
/// keeps. The total counts as far as [`tracked`] says.
fn search_body(
    query: Value,
    order: Order,
    (page_size, after, counted): (usize, Option<&After>, Counted),
    aggs: Map<String, Value>,
) -> Value {
    let mut body = json!({
        "query": query,
        "size": if page_size == 0 { 0 } else { page_size + 1 },
        "sort": order.sort(),
        "track_total_hits": tracked(order, counted),
        "_source": { "excludes": EXCLUDED },
    });
    if let Some(after) = after.filter(|_| page_size > 0) {
        body["search_after"] = order.search_after(after);
    }
    if !aggs.is_empty() {
        body["aggs"] = Value::Object(aggs);
    }
    body
}

/// The request body of an account search, as the backend sends it.
pub fn account_search(query: &AccountQuery) -> Value {
    search_body(
        account_query(query),
        Order::of_accounts(query),
        (query.page_size, query.after.as_ref(), query.counted),
        account_facets(query),
    )
}

/// The request body of `SearchIndex::ranked_ids`: an account search's page as ids and
/// sort values, without documents, a total or facets, so each shard stops collecting
/// once it has the page.
pub fn ranked_ids(query: &AccountQuery) -> Value {
    let mut body = search_body(
        account_query(query),
        Order::of_accounts(query),
        (query.page_size, query.after.as_ref(), Counted::Exact),
        Map::new(),
    );
    body["track_total_hits"] = json!(false);
    body["_source"] = json!(false);
    body
}

/// The request body of a payment search, as the backend sends it.
pub fn payment_search(query: &PaymentQuery) -> Value {
    search_body(
        payment_query(query),
        Order::of_payments(query),
        (query.page_size, query.after.as_ref(), query.counted),
        payment_facets(&query.facets),
    )
}

/// One page of an id scan through a point in time, in id order; `after` is the last
/// hit's sort values (the id and the point in time's `_shard_doc` tiebreaker).
/// The `preference` of a relevance-sorted search: the same for every page of one search
/// (its query, filters and sort; not its page size or cursor), so each page is scored by
/// the same shard copies. Copies score alike only when their segments match; without
/// it, replicas could repeat or skip hits between `search_after` pages.
pub fn preference(body: &Value) -> String {
    let mut search = body.clone();
    if let Some(fields) = search.as_object_mut() {
        fields.remove("search_after");
        fields.remove("size");
    }
    let digest = Sha256::digest(search.to_string().as_bytes());
    format!("arrears-{}", hex::encode(&digest[..8]))
}

pub fn scan_body(query: Value, pit: &str, after: Option<Value>, size: usize) -> Value {
    let mut body = json!({
        "query": query,
        "pit": { "id": pit, "keep_alive": PIT_KEEP_ALIVE },
        "size": size,
        "sort": [{ "id": { "order": "asc" } }],
        "_source": false,
        "version": true,
        "track_total_hits": false,
    });
    if let Some(after) = after {
        body["search_after"] = after;
    }
    body
}

/// Live documents (tombstones excluded).
pub fn live_documents() -> Value {
    json!({ "bool": { "must_not": [not_tombstone()] } })
}

/// Payment statistics for every currency in one request: completed payments in the
/// day, week and month windows and per local day, and every payment of the range by
/// status and method. Sums are over exact money units.
pub fn stats_body(query: &StatsQuery) -> Value {
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    let within = |(from, to): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)| json!({ "range": { "derived.received_micros": { "gte": micros(from), "lt": micros(to) } } });
    let (from, to) = query.span();
    let starts = &query.day_starts;
    let mut completed = json!({
        "today": { "filter": within(query.today), "aggs": sum_units("derived.amount_units") },
        "this_week": { "filter": within(query.this_week), "aggs": sum_units("derived.amount_units") },
        "this_month": { "filter": within(query.this_month), "aggs": sum_units("derived.amount_units") },
    });
    let mut per_currency = json!({
        "completed": { "filter": term("status", "completed"), "aggs": {} },
    });
    if starts.len() > 1 {
        let ranges: Vec<Value> = starts
            .windows(2)
            .map(|w| json!({ "from": micros(w[0]), "to": micros(w[1]) }))
            .collect();
        completed["series"] = json!({
            "range": { "field": "derived.received_micros", "keyed": false, "ranges": ranges },
            "aggs": sum_units("derived.amount_units"),
        });
        per_currency["in_range"] = json!({
            "filter": within((starts[0], starts[starts.len() - 1])),
            "aggs": {
                "by_status": terms_agg("status", FACET_SIZE, Some("derived.amount_units")),
                "by_method": terms_agg("method", FACET_SIZE, Some("derived.amount_units")),
            }
        });
    }
    per_currency["completed"]["aggs"] = completed;
    let mut filter = vec![within((from, to))];
    filter.extend(query.portfolio_scope.as_deref().map(portfolio_scope));
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": { "bool": { "filter": filter, "must_not": [not_tombstone()] } },
        "aggs": {
            "currencies": {
                "terms": { "field": "currency", "size": FACET_SIZE },
                "aggs": per_currency,
            }
        }
    })
}

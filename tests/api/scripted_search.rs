//! How the scripted cluster answers a search: from the documents it was sent, with the
//! semantics Elastic's reference gives each query, sort and aggregation the backend
//! uses, and in the shapes of the specification's `SearchResponse`
//! (`specification/_global/search/SearchResponse.ts`: `hits.total` as
//! `{value, relation}`, `hits.hits[]` with `_index`, `_id`, `_score`, `_source`, `sort`,
//! aggregation results as `TermsAggregate`, `FiltersAggregate`, `RangeAggregate`,
//! `SingleBucketAggregate` and `SumAggregate`).
//!
//! Full-text term, prefix and fuzzy queries it answers by analysing each document's text
//! with the shipped analysis (`index-templates/component-analysis.json`, read as
//! `analysis-analyzers`, `analysis-tokenizers` and `analysis-tokenfilters` describe each
//! kind it uses), including multi-fields and `copy_to` targets; it keeps no index, so a
//! `fuzzy` query's `max_expansions` does not bound what it matches. What it cannot
//! evaluate (relevance, other queries) it refuses with a 400 naming the query, so a test
//! relying on it fails rather than passes on an empty answer.

use std::cmp::Ordering;
use std::sync::LazyLock;

use arrears::search::elastic::templates;
use arrears::search::words::edits;
use chrono::{DateTime, Duration, NaiveDate};
use regex::Regex;
use serde_json::{Map, Value, json};
use tantivy::tokenizer::{AsciiFoldingFilter, RawTokenizer, TextAnalyzer};

use crate::scripted_es::error;

/// A stored document as a search sees it.
pub struct Doc<'a> {
    pub index: &'a str,
    pub id: &'a str,
    pub version: i64,
    pub source: &'a Value,
}

/// A field's value as its mapped type orders it (the doc values a sort, range or
/// terms aggregation reads).
#[derive(Clone, Debug)]
enum Key {
    Int(i128),
    Float(f64),
    Str(String),
}

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(Ordering::Equal),
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            Key::Int(i) => *i as f64,
            Key::Float(f) => *f,
            Key::Str(_) => f64::NAN,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Key::Int(i) => json!(*i as i64),
            Key::Float(f) => json!(f),
            Key::Str(s) => json!(s),
        }
    }
}

/// The refusal for what this cluster does not evaluate.
fn unsupported(what: &str) -> (u16, Value) {
    let reason = format!("the scripted cluster does not evaluate {what}; run this case against a real cluster (bin/test-elastic)");
    (400, error("scripted_cluster_unsupported", &reason, 400))
}

/// The mapped type of a dotted field path (`properties` of the index's mappings), or
/// for a path they do not map, the type the first dynamic template whose `path_match`
/// matches it gives (the field as a document holding it maps it).
fn field_type<'m>(mappings: &'m Value, field: &str) -> Option<&'m str> {
    let mut node = mappings;
    for part in field.split('.') {
        let Some(child) = node.get("properties").and_then(|p| p.get(part)) else {
            return dynamic_type(mappings, field);
        };
        node = child;
        if node.get("type").and_then(Value::as_str) == Some("flattened") {
            return Some("keyword");
        }
    }
    node.get("type").and_then(Value::as_str)
}

/// The type of the first of the mappings' `dynamic_templates` whose `path_match` (a
/// pattern with `*` wildcards) matches the full dotted path.
pub fn dynamic_type<'m>(mappings: &'m Value, path: &str) -> Option<&'m str> {
    mappings["dynamic_templates"]
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|named| named.values())
        .find(|template| template["path_match"].as_str().is_some_and(|p| wildcard(p, path)))
        .and_then(|template| template["mapping"]["type"].as_str())
}

/// Whether `text` matches `pattern`, whose `*` stands for any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|at| after.is_char_boundary(*at))
                .any(|at| wildcard(rest, &after[at..]))
        }
    }
}

/// Every non-null value a document holds at a dotted path, arrays flattened.
fn values<'d>(source: &'d Value, field: &str) -> Vec<&'d Value> {
    let mut nodes = vec![source];
    for part in field.split('.') {
        nodes = nodes
            .into_iter()
            .flat_map(|n| match n {
                Value::Array(items) => items.iter().filter_map(|i| i.get(part)).collect::<Vec<_>>(),
                _ => n.get(part).into_iter().collect(),
            })
            .collect();
    }
    nodes
        .into_iter()
        .flat_map(|n| match n {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Milliseconds since the epoch of a date (`strict_date_optional_time`), an epoch
/// number, or date math (`2026-11-21||-29d`, units `d`, `h`, `m`, `s`; the reference's
/// "Date math" section of `common-options`).
fn date_millis(value: &Value) -> Option<i128> {
    if let Some(n) = value.as_i64() {
        return Some(n.into());
    }
    let text = value.as_str()?;
    let (base, math) = text.split_once("||").unwrap_or((text, ""));
    let mut millis: i128 = if let Ok(day) = NaiveDate::parse_from_str(base, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis().into()
    } else {
        DateTime::parse_from_rfc3339(base).ok()?.timestamp_millis().into()
    };
    let mut rest = math;
    while !rest.is_empty() {
        let sign: i64 = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
        let amount: i64 = digits.parse().ok()?;
        let unit = rest[1 + digits.len()..].chars().next()?;
        let step = match unit {
            'd' => Duration::days(amount),
            'h' => Duration::hours(amount),
            'm' => Duration::minutes(amount),
            's' => Duration::seconds(amount),
            _ => return None,
        };
        millis += i128::from(sign * step.num_milliseconds());
        rest = &rest[2 + digits.len()..];
    }
    Some(millis)
}

/// A value as the field's type holds it (`None`: not a value of that type, which a
/// real cluster would have refused at index time or answers with a parse error).
fn key(value: &Value, ty: Option<&str>) -> Option<Key> {
    match ty {
        Some("long" | "integer" | "short" | "byte") => match value {
            Value::Number(n) => n.as_i64().map(|i| Key::Int(i.into())).or_else(|| n.as_f64().map(Key::Float)),
            Value::String(s) => s.parse::<i128>().ok().map(Key::Int),
            _ => None,
        },
        Some("scaled_float" | "double" | "float") => match value {
            Value::Number(n) => n.as_f64().map(Key::Float),
            Value::String(s) => s.parse().ok().map(Key::Float),
            _ => None,
        },
        Some("date") => date_millis(value).map(Key::Int),
        // Booleans are doc values 0 and 1: they sort and aggregate as such.
        Some("boolean") => match value {
            Value::Bool(b) => Some(Key::Int(i128::from(*b))),
            Value::String(s) if s == "true" || s == "false" => Some(Key::Int(i128::from(s == "true"))),
            _ => None,
        },
        _ => match value {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Number(n) => Some(Key::Str(n.to_string())),
            Value::Bool(b) => Some(Key::Str(b.to_string())),
            _ => None,
        },
    }
}

fn keys(source: &Value, field: &str, ty: Option<&str>) -> Vec<Key> {
    values(source, field).into_iter().filter_map(|v| key(v, ty)).collect()
}

/// The one `{field: spec}` entry of a leaf query.
/// The shipped analysis settings (`analysis` of the analysis component template).
static ANALYSIS: LazyLock<Value> = LazyLock::new(|| {
    let template: Value = serde_json::from_str(templates::ANALYSIS).expect("the analysis template is JSON");
    template["template"]["settings"]["index"]["analysis"].clone()
});

/// A mapped field: its mapping and the source path its values come from (a multi-field's
/// parent), with the fields that copy into it (`copy_to`).
struct Mapped<'m> {
    node: &'m Value,
    sources: Vec<String>,
}

/// The mapping of a dotted path, multi-fields (`debtor_name.prefix`) included.
fn mapped<'m>(mappings: &'m Value, field: &str) -> Option<Mapped<'m>> {
    let mut node = mappings;
    let mut source = Vec::new();
    for part in field.split('.') {
        match node.get("properties").and_then(|p| p.get(part)) {
            Some(child) => {
                node = child;
                source.push(part);
            }
            None => node = node.get("fields")?.get(part)?,
        }
    }
    let mut sources = vec![source.join(".")];
    copied_into(&mappings["properties"], "", field, &mut sources);
    Some(Mapped { node, sources })
}

/// The fields whose mapping copies them into `target`.
fn copied_into(properties: &Value, prefix: &str, target: &str, out: &mut Vec<String>) {
    for (name, field) in properties.as_object().into_iter().flatten() {
        let path = format!("{prefix}{name}");
        let copies = match &field["copy_to"] {
            Value::String(one) => one == target,
            Value::Array(many) => many.iter().any(|t| t == target),
            _ => false,
        };
        if copies {
            out.push(path.clone());
        }
        copied_into(&field["properties"], &format!("{path}."), target, out);
    }
}

fn unknown_analysis(kind: &str, name: &str) -> (u16, Value) {
    unsupported(&format!("the {kind} [{name}]"))
}

/// A pattern of the analysis, compiled once per thread.
fn compiled(pattern: &str) -> Regex {
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Regex>> = Default::default();
    }
    COMPILED.with_borrow_mut(|compiled| {
        compiled
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).expect("the analysis holds valid patterns"))
            .clone()
    })
}

/// Lucene's `ASCIIFoldingFilter`, of which tantivy's is a port.
fn ascii_folded(token: &str) -> String {
    thread_local! {
        static FOLDING: std::cell::RefCell<TextAnalyzer> =
            std::cell::RefCell::new(TextAnalyzer::builder(RawTokenizer::default()).filter(AsciiFoldingFilter).build());
    }
    FOLDING.with_borrow_mut(|analyzer| {
        let mut stream = analyzer.token_stream(token);
        let mut out = String::new();
        stream.process(&mut |t| out.push_str(&t.text));
        out
    })
}

fn number(spec: &Value, key: &str, default: usize) -> usize {
    spec.get(key).and_then(Value::as_u64).map_or(default, |n| n as usize)
}

/// The tokens `analyzer` makes of `text`, as the shipped analysis defines it.
fn analyze(analyzer: &str, text: &str) -> Result<Vec<String>, (u16, Value)> {
    let definition = ANALYSIS["analyzer"]
        .get(analyzer)
        .ok_or_else(|| unknown_analysis("analyzer", analyzer))?;
    let mut text = text.to_owned();
    for name in definition["char_filter"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        let spec = &ANALYSIS["char_filter"][name];
        if spec["type"] != "pattern_replace" {
            return Err(unknown_analysis("char filter", name));
        }
        let pattern = compiled(spec["pattern"].as_str().unwrap_or_default());
        text = pattern
            .replace_all(&text, spec["replacement"].as_str().unwrap_or_default())
            .into_owned();
    }
    let tokenizer = definition["tokenizer"].as_str().unwrap_or_default();
    let spec = &ANALYSIS["tokenizer"][tokenizer];
    let mut tokens: Vec<String> = match (tokenizer, spec["type"].as_str()) {
        ("keyword", _) => vec![text],
        (_, Some("pattern")) => {
            let pattern = compiled(spec["pattern"].as_str().unwrap_or_default());
            pattern.split(&text).filter(|t| !t.is_empty()).map(str::to_owned).collect()
        }
        (_, Some("ngram")) if spec["token_chars"] == json!(["digit"]) => {
            let (min, max) = (number(spec, "min_gram", 1), number(spec, "max_gram", 2));
            let mut grams = Vec::new();
            for run in text.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()) {
                for start in 0..run.len() {
                    for length in min..=max.min(run.len() - start) {
                        grams.push(run[start..start + length].to_owned());
                    }
                }
            }
            grams
        }
        _ => return Err(unknown_analysis("tokenizer", tokenizer)),
    };
    for name in definition["filter"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        tokens = match (name, ANALYSIS["filter"][name]["type"].as_str()) {
            ("lowercase", _) => tokens.iter().map(|t| t.to_lowercase()).collect(),
            ("asciifolding", _) => tokens.iter().map(|t| ascii_folded(t)).collect(),
            (_, Some("edge_ngram")) => {
                let spec = &ANALYSIS["filter"][name];
                let (min, max) = (number(spec, "min_gram", 1), number(spec, "max_gram", 2));
                tokens
                    .iter()
                    .flat_map(|t| {
                        let chars: Vec<char> = t.chars().collect();
                        (min..=max.min(chars.len())).map(move |n| chars[..n].iter().collect::<String>())
                    })
                    .collect()
            }
            (_, Some("shingle")) => {
                let spec = &ANALYSIS["filter"][name];
                let (min, max) = (number(spec, "min_shingle_size", 2), number(spec, "max_shingle_size", 2));
                let separator = spec.get("token_separator").and_then(Value::as_str).unwrap_or(" ");
                let mut shingles = Vec::new();
                if spec.get("output_unigrams") != Some(&json!(false)) {
                    shingles.extend(tokens.iter().cloned());
                }
                for start in 0..tokens.len() {
                    for size in min..=max.min(tokens.len() - start) {
                        shingles.push(tokens[start..start + size].join(separator));
                    }
                }
                shingles
            }
            _ => return Err(unknown_analysis("token filter", name)),
        };
    }
    Ok(tokens)
}

/// What a full-text or keyword-prefix query on `field` compares with: the analysed
/// tokens of a text field, the (normalised) values of a keyword; `None` for another type.
fn indexed_terms(doc: &Doc, mappings: &Value, field: &str) -> Result<Option<Vec<String>>, (u16, Value)> {
    let Some(mapped) = mapped(mappings, field) else {
        return Ok(None);
    };
    let texts: Vec<String> = mapped
        .sources
        .iter()
        .flat_map(|source| values(doc.source, source))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    match mapped.node["type"].as_str() {
        Some("text") => {
            let analyzer = mapped.node["analyzer"].as_str().unwrap_or("standard");
            let mut terms = Vec::new();
            for text in &texts {
                terms.extend(analyze(analyzer, text)?);
            }
            Ok(Some(terms))
        }
        Some("keyword") => match mapped.node["normalizer"].as_str() {
            None => Ok(Some(texts)),
            Some("arrears_lowercase") => Ok(Some(texts.iter().map(|t| t.to_lowercase()).collect())),
            Some(other) => Err(unknown_analysis("normalizer", other)),
        },
        _ => Ok(None),
    }
}

/// A term, prefix or fuzzy query on a text field or a multi-field, answered from the
/// document's analysed text; `None` when the field is neither (a plain keyword, number
/// or date, which [`matches`] compares as doc values).
fn text_match(kind: &str, params: &Value, doc: &Doc, mappings: &Value) -> Result<Option<bool>, (u16, Value)> {
    let (field, spec) = single(params)?;
    let analysed = mapped(mappings, field).is_some_and(|m| m.node["type"] == "text" || m.node.get("normalizer").is_some());
    if !analysed && kind == "term" {
        return Ok(None);
    }
    let Some(terms) = indexed_terms(doc, mappings, field)? else {
        return Err(unsupported(&format!("a {kind} query on [{field}]")));
    };
    let value = spec.get("value").unwrap_or(spec).as_str().unwrap_or_default();
    Ok(Some(match kind {
        "term" => terms.iter().any(|t| t == value),
        "prefix" => terms.iter().any(|t| t.starts_with(value)),
        _ => {
            let distance = spec["fuzziness"].as_u64().unwrap_or(2) as usize;
            terms.iter().any(|t| edits(t, value) <= distance)
        }
    }))
}

fn single(params: &Value) -> Result<(&String, &Value), (u16, Value)> {
    params
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name"))
        .ok_or_else(|| (400, error("parsing_exception", "query malformed, no field", 400)))
}

/// Whether a document matches a query (query-dsl-term-query, -terms-query,
/// -range-query, -exists-query, -ids-query, -bool-query, -match-all-query).
fn matches(query: &Value, doc: &Doc, mappings: &Value) -> Result<bool, (u16, Value)> {
    let Some((kind, params)) = query.as_object().and_then(|o| o.iter().next()) else {
        return Err((400, error("parsing_exception", "query malformed, empty clause found", 400)));
    };
    match kind.as_str() {
        "match_all" => Ok(true),
        "match_none" => Ok(false),
        "ids" => Ok(params["values"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.as_str() == Some(doc.id))),
        "exists" => {
            let field = params["field"].as_str().unwrap_or_default();
            Ok(!values(doc.source, field).is_empty())
        }
        "prefix" | "fuzzy" => Ok(text_match(kind, params, doc, mappings)?.unwrap_or(false)),
        "dis_max" => {
            for q in params["queries"].as_array().into_iter().flatten() {
                if matches(q, doc, mappings)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "term" | "terms" => {
            if kind == "term"
                && let Some(matched) = text_match(kind, params, doc, mappings)?
            {
                return Ok(matched);
            }
            let (field, spec) = single(params)?;
            let ty = field_type(mappings, field);
            if ty == Some("text") {
                return Err(unsupported(&format!("a {kind} query on the text field [{field}]")));
            }
            let asked: Vec<&Value> = match (kind.as_str(), spec) {
                ("terms", Value::Array(items)) => items.iter().collect(),
                ("term", Value::Object(o)) => o.get("value").into_iter().collect(),
                ("term", v) => vec![v],
                _ => return Err((400, error("parsing_exception", &format!("[{kind}] query malformed"), 400))),
            };
            let held = keys(doc.source, field, ty);
            Ok(asked
                .into_iter()
                .filter_map(|v| key(v, ty))
                .any(|k| held.iter().any(|h| h.cmp(&k) == Ordering::Equal)))
        }
        "range" => {
            let (field, bounds) = single(params)?;
            let ty = field_type(mappings, field);
            let held = keys(doc.source, field, ty);
            let bound = |name: &str| bounds.get(name).filter(|v| !v.is_null()).map(|v| key(v, ty));
            // Each bound with the orderings of a value against it that it admits.
            let mut tests: Vec<(Key, &[Ordering])> = Vec::new();
            for (name, admitted) in [
                ("gt", &[Ordering::Greater][..]),
                ("gte", &[Ordering::Greater, Ordering::Equal][..]),
                ("lt", &[Ordering::Less][..]),
                ("lte", &[Ordering::Less, Ordering::Equal][..]),
            ] {
                match bound(name) {
                    Some(Some(k)) => tests.push((k, admitted)),
                    Some(None) => {
                        let reason = format!("failed to parse [{name}] of the range on [{field}]");
                        return Err((400, error("parse_exception", &reason, 400)));
                    }
                    None => {}
                }
            }
            Ok(held.iter().any(|h| tests.iter().all(|(k, admitted)| admitted.contains(&h.cmp(k)))))
        }
        "bool" => {
            let clauses = |name: &str| -> Vec<&Value> {
                match params.get(name) {
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(one @ Value::Object(_)) => vec![one],
                    _ => Vec::new(),
                }
            };
            for q in clauses("must").into_iter().chain(clauses("filter")) {
                if !matches(q, doc, mappings)? {
                    return Ok(false);
                }
            }
            for q in clauses("must_not") {
                if matches(q, doc, mappings)? {
                    return Ok(false);
                }
            }
            let should = clauses("should");
            // With no must or filter clause, at least one should clause must match.
            let required = match params.get("minimum_should_match") {
                Some(n) => n.as_u64().or_else(|| n.as_str().and_then(|s| s.parse().ok())).unwrap_or(1) as usize,
                None if clauses("must").is_empty() && clauses("filter").is_empty() && !should.is_empty() => 1,
                None => 0,
            };
            let mut matched = 0;
            for q in should {
                if matches(q, doc, mappings)? {
                    matched += 1;
                }
            }
            Ok(matched >= required)
        }
        other => Err(unsupported(&format!("[{other}] queries"))),
    }
}

/// One sort clause: a field, its order and where documents without it go.
struct SortBy {
    field: String,
    descending: bool,
    missing_last: bool,
    ty: Option<String>,
}

fn sort_clauses(body: &Value, mappings: &Value) -> Result<Vec<SortBy>, (u16, Value)> {
    let clauses: Vec<Value> = match body.get("sort") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
    };
    clauses
        .iter()
        .map(|clause| {
            let (field, spec) = match clause {
                Value::String(field) => (field.clone(), Value::Null),
                Value::Object(o) => {
                    let (field, spec) = o.iter().next().ok_or_else(|| unsupported("an empty sort clause"))?;
                    (field.clone(), spec.clone())
                }
                _ => return Err(unsupported("a sort clause that is neither a field nor an object")),
            };
            if field.starts_with('_') {
                return Err(unsupported(&format!("sorting by [{field}]")));
            }
            // A field only a dynamic template maps is unmapped until a document holding
            // it arrives; sorting on it then needs `unmapped_type` (`sort-search-results`,
            // "Ignoring unmapped fields"). Stricter than the cluster: refused whether or
            // not a document holds it yet.
            let statically = field
                .split('.')
                .try_fold(mappings, |node, part| node.get("properties")?.get(part))
                .is_some();
            if !statically && spec.get("unmapped_type").is_none() {
                let reason = format!("No mapping found for [{field}] in order to sort on");
                return Err((400, error("query_shard_exception", &reason, 400)));
            }
            let order = spec.get("order").and_then(Value::as_str).or(spec.as_str()).unwrap_or("asc");
            let missing = spec.get("missing").and_then(Value::as_str).unwrap_or("_last");
            Ok(SortBy {
                ty: field_type(mappings, &field).map(str::to_owned),
                descending: order == "desc",
                missing_last: missing == "_last",
                field,
            })
        })
        .collect()
}

/// A document's sort value for a clause as the search answers it in `hits[].sort`:
/// the least value ascending and the greatest descending; a document without the field
/// sorts with the type's extreme (`Long.MAX_VALUE`/`MIN_VALUE` for numbers and dates,
/// `null` for keywords), as the reference's "Missing values" section of `sort-search-results` says.
fn sort_value(doc: &Doc, by: &SortBy) -> Option<Key> {
    let held = keys(doc.source, &by.field, by.ty.as_deref());
    let chosen = if by.descending {
        held.into_iter().max_by(|a, b| a.cmp(b))
    } else {
        held.into_iter().min_by(|a, b| a.cmp(b))
    };
    match (chosen, by.ty.as_deref()) {
        (Some(k), _) => Some(k),
        (None, Some("keyword") | None) => None,
        (None, _) => Some(Key::Int(if by.missing_last != by.descending {
            i64::MAX.into()
        } else {
            i64::MIN.into()
        })),
    }
}

fn compare(a: &[Option<Key>], b: &[Option<Key>], sort: &[SortBy]) -> Ordering {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let by = sort.get(i);
        let ordering = match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.cmp(y);
                if by.is_some_and(|b| b.descending) { o.reverse() } else { o }
            }
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if by.is_none_or(|b| b.missing_last) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(_), None) => {
                if by.is_none_or(|b| b.missing_last) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// `_source` filtering (`search-fields`, "Source filtering"): `false`, a list of
/// paths, or `{includes, excludes}`.
fn filtered_source(source: &Value, spec: Option<&Value>) -> Option<Value> {
    let (includes, excludes): (Vec<&str>, Vec<&str>) = match spec {
        None | Some(Value::Bool(true)) => (Vec::new(), Vec::new()),
        Some(Value::Bool(false)) => return None,
        Some(Value::String(one)) => (vec![one.as_str()], Vec::new()),
        Some(Value::Array(list)) => (list.iter().filter_map(Value::as_str).collect(), Vec::new()),
        Some(spec) => {
            let list = |name: &str| -> Vec<&str> {
                spec.get(name)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            };
            (list("includes"), list("excludes"))
        }
    };
    let mut out = source.clone();
    if let Some(object) = out.as_object_mut() {
        if !includes.is_empty() {
            object.retain(|k, _| includes.iter().any(|i| *i == k || i.starts_with(&format!("{k}."))));
        }
        object.retain(|k, _| !excludes.contains(&k.as_str()));
    }
    Some(out)
}

/// Answers a search body over `docs` (all of the indices the search names).
pub fn search(body: &Value, docs: &[Doc], mappings: &Value) -> Result<Value, (u16, Value)> {
    let query = body.get("query").cloned().unwrap_or(json!({ "match_all": {} }));
    let mut hits = Vec::new();
    for doc in docs {
        if matches(&query, doc, mappings)? {
            hits.push(doc);
        }
    }
    let sort = sort_clauses(body, mappings)?;
    // A point-in-time search breaks ties by the implicit `_shard_doc`, whose value each
    // hit's `sort` array carries last (`point-in-time-api`, "search_after"), unless its
    // `search_after` has only the explicit sort's values: then there is no tiebreaker
    // (as an 8.19 node answers; `elastic_faults::a_promote_in_the_middle_of_an_export_…`
    // relies on it).
    let after_values = body.get("search_after").and_then(Value::as_array).map(Vec::len);
    let pit = body.get("pit").is_some() && after_values != Some(sort.len());
    let mut keyed: Vec<(Vec<Option<Key>>, &Doc)> = hits
        .iter()
        .map(|doc| {
            let mut values: Vec<Option<Key>> = sort.iter().map(|by| sort_value(doc, by)).collect();
            if pit {
                let ordinal = docs.iter().position(|d| std::ptr::eq(d, *doc)).unwrap_or_default();
                values.push(Some(Key::Int(ordinal as i128)));
            }
            (values, *doc)
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare(a, b, &sort));
    if let Some(after) = body.get("search_after").and_then(Value::as_array) {
        if after.len() != keyed.first().map_or(after.len(), |(k, _)| k.len()) {
            let reason = format!(
                "search_after has {} value(s) but sort has {}",
                after.len(),
                sort.len() + usize::from(pit)
            );
            return Err((400, error("illegal_argument_exception", &reason, 400)));
        }
        let after: Vec<Option<Key>> = after
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_null() {
                    None
                } else {
                    key(v, sort.get(i).and_then(|s| s.ty.as_deref()))
                }
            })
            .collect();
        keyed.retain(|(k, _)| compare(k, &after, &sort) == Ordering::Greater);
    }
    let total = hits.len();
    let from = body.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
    let size = body.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
    let with_version = body.get("version") == Some(&json!(true));
    let page: Vec<Value> = keyed
        .iter()
        .skip(from)
        .take(size)
        .map(|(values, doc)| {
            // Hits sorted by a field have no score (`sort-search-results`, "Track scores").
            let score = if sort.is_empty() { json!(1.0) } else { Value::Null };
            let mut hit = json!({ "_index": doc.index, "_id": doc.id, "_score": score });
            if let Some(source) = filtered_source(doc.source, body.get("_source")) {
                hit["_source"] = source;
            }
            if with_version {
                hit["_version"] = json!(doc.version);
            }
            if !values.is_empty() {
                hit["sort"] = values.iter().map(|v| v.as_ref().map_or(Value::Null, Key::to_json)).collect();
            }
            hit
        })
        .collect();
    let max_score = if sort.is_empty() && total > 0 { json!(1.0) } else { Value::Null };
    let mut answer = json!({
        "took": 1,
        "timed_out": false,
        "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "max_score": max_score, "hits": page }
    });
    // track_total_hits (search-your-data "Track total hits"): true counts exactly; an
    // integer N up to N (-1: not at all, as false; below -1 refused, as SearchSourceBuilder does);
    // absent, up to 10,000; false, not at all.
    let bound = match body.get("track_total_hits") {
        Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(usize::MAX),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(-1) => None,
            Some(n) if n >= 0 => Some(n as usize),
            _ => {
                let reason = "[track_total_hits] parameter must be positive or equals to -1, got ".to_owned() + &n.to_string();
                return Err((400, error("illegal_argument_exception", &reason, 400)));
            }
        },
        _ => Some(10_000),
    };
    if let Some(bound) = bound {
        let relation = if total > bound { "gte" } else { "eq" };
        answer["hits"]["total"] = json!({ "value": total.min(bound), "relation": relation });
    }
    if let Some(aggs) = body.get("aggs").or_else(|| body.get("aggregations")) {
        answer["aggregations"] = aggregate(aggs, &hits, mappings)?;
    }
    if let Some(pit) = body.get("pit") {
        answer["pit_id"] = pit["id"].clone();
    }
    Ok(answer)
}

/// The results of the aggregations `aggs` over `docs` (search-aggregations-bucket-terms-,
/// -filters-, -filter-, -range-aggregation and search-aggregations-metrics-sum-aggregation).
fn aggregate(aggs: &Value, docs: &[&Doc], mappings: &Value) -> Result<Value, (u16, Value)> {
    let mut out = Map::new();
    for (name, spec) in aggs.as_object().into_iter().flatten() {
        let sub = spec.get("aggs").or_else(|| spec.get("aggregations"));
        let (kind, params) = spec
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.as_str() != "aggs" && k.as_str() != "aggregations" && k.as_str() != "meta")
            })
            .ok_or_else(|| {
                (
                    400,
                    error("parsing_exception", &format!("Missing definition for aggregation [{name}]"), 400),
                )
            })?;
        let bucket = |members: Vec<&Doc>, mut shape: Value| -> Result<Value, (u16, Value)> {
            shape["doc_count"] = json!(members.len());
            if let Some(sub) = sub {
                for (k, v) in aggregate(sub, &members, mappings)?.as_object().unwrap() {
                    shape[k] = v.clone();
                }
            }
            Ok(shape)
        };
        let result = match kind.as_str() {
            "sum" => {
                let field = params["field"].as_str().unwrap_or_default();
                let ty = field_type(mappings, field);
                let sum: f64 = docs.iter().flat_map(|d| keys(d.source, field, ty)).map(|k| k.as_f64()).sum();
                json!({ "value": sum })
            }
            "filter" => {
                let mut members = Vec::new();
                for doc in docs {
                    if matches(params, doc, mappings)? {
                        members.push(*doc);
                    }
                }
                bucket(members, json!({}))?
            }
            "filters" => {
                let filters = &params["filters"];
                if let Some(keyed) = filters.as_object() {
                    let mut buckets = Map::new();
                    for (key, query) in keyed {
                        let mut members = Vec::new();
                        for doc in docs {
                            if matches(query, doc, mappings)? {
                                members.push(*doc);
                            }
                        }
                        buckets.insert(key.clone(), bucket(members, json!({}))?);
                    }
                    json!({ "buckets": buckets })
                } else {
                    return Err(unsupported("anonymous filters aggregations"));
                }
            }
            "terms" => {
                let field = params["field"].as_str().unwrap_or_default();
                let ty = field_type(mappings, field);
                let size = params.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
                let missing = params.get("missing").and_then(|m| key(m, ty));
                let mut groups: Vec<(Key, Vec<&Doc>)> = Vec::new();
                for doc in docs {
                    let mut held = keys(doc.source, field, ty);
                    if held.is_empty() {
                        held.extend(missing.clone());
                    }
                    held.sort_by(|a, b| a.cmp(b));
                    held.dedup_by(|a, b| a.cmp(b) == Ordering::Equal);
                    for k in held {
                        match groups.iter_mut().find(|(g, _)| g.cmp(&k) == Ordering::Equal) {
                            Some((_, members)) => members.push(*doc),
                            None => groups.push((k, vec![*doc])),
                        }
                    }
                }
                // Buckets by document count, most first, ties by key (the default
                // order `{"_count": "desc", "_key": "asc"}`).
                groups.sort_by(|(ka, a), (kb, b)| b.len().cmp(&a.len()).then_with(|| ka.cmp(kb)));
                let other: usize = groups.iter().skip(size).map(|(_, m)| m.len()).sum();
                let mut buckets = Vec::new();
                for (k, members) in groups.into_iter().take(size) {
                    let mut shape = json!({ "key": k.to_json() });
                    match ty {
                        Some("boolean") => shape["key_as_string"] = json!(matches!(k, Key::Int(1)).to_string()),
                        Some("date") => {
                            if let Key::Int(ms) = k {
                                let at = DateTime::from_timestamp_millis(ms as i64).unwrap_or_default();
                                shape["key_as_string"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
                            }
                        }
                        _ => {}
                    }
                    buckets.push(bucket(members, shape)?);
                }
                json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets })
            }
            "range" => {
                let field = params["field"].as_str().unwrap_or_default();
                let ty = field_type(mappings, field);
                let mut buckets = Vec::new();
                for range in params["ranges"].as_array().into_iter().flatten() {
                    let from = range.get("from").and_then(|v| key(v, ty));
                    let to = range.get("to").and_then(|v| key(v, ty));
                    let members: Vec<&Doc> = docs
                        .iter()
                        .copied()
                        .filter(|d| {
                            keys(d.source, field, ty).iter().any(|h| {
                                from.as_ref().is_none_or(|f| h.cmp(f) != Ordering::Less)
                                    && to.as_ref().is_none_or(|t| h.cmp(t) == Ordering::Less)
                            })
                        })
                        .collect();
                    let bound = |k: &Option<Key>| k.as_ref().map(|k| k.as_f64());
                    let label = |b: Option<f64>| b.map_or("*".to_owned(), |b| format!("{b:?}"));
                    let mut shape = json!({
                        "key": range.get("key").cloned().unwrap_or_else(|| json!(format!("{}-{}", label(bound(&from)), label(bound(&to))))),
                    });
                    if let Some(f) = bound(&from) {
                        shape["from"] = json!(f);
                    }
                    if let Some(t) = bound(&to) {
                        shape["to"] = json!(t);
                    }
                    buckets.push(bucket(members, shape)?);
                }
                if params.get("keyed") == Some(&json!(true)) {
                    return Err(unsupported("keyed range aggregations"));
                }
                json!({ "buckets": buckets })
            }
            other => return Err(unsupported(&format!("[{other}] aggregations"))),
        };
        out.insert(name.clone(), result);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings() -> Value {
        json!({ "properties": {
            "id": { "type": "keyword" }, "tags": { "type": "keyword" },
            "due_date": { "type": "date" }, "rank": { "type": "long" }, "flag": { "type": "boolean" },
            "name": { "type": "text" }
        } })
    }

    #[test]
    fn queries_sorts_cursors_and_terms_follow_the_reference() {
        let sources = [
            json!({ "id": "a", "tags": ["x", "y"], "due_date": "2026-01-10", "rank": 5, "flag": true }),
            json!({ "id": "b", "tags": ["x"], "rank": 7, "flag": false }),
            json!({ "id": "c", "tags": [], "due_date": "2026-01-01", "rank": 5 }),
        ];
        let docs: Vec<Doc> = sources
            .iter()
            .map(|s| Doc {
                index: "i",
                id: s["id"].as_str().unwrap(),
                version: 1,
                source: s,
            })
            .collect();
        let ids = |body: Value| -> Vec<String> {
            search(&body, &docs, &mappings()).unwrap()["hits"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let sort = json!([{ "rank": { "order": "desc" } }, { "id": { "order": "asc" } }]);
        assert_eq!(ids(json!({ "sort": sort })), ["b", "a", "c"]);
        assert_eq!(ids(json!({ "sort": sort, "search_after": [5, "a"] })), ["c"]);
        assert_eq!(ids(json!({ "query": { "terms": { "tags": ["y", "z"] } } })), ["a"]);
        assert_eq!(ids(json!({ "query": { "term": { "flag": false } } })), ["b"]);
        let range = json!({ "range": { "due_date": { "gte": "2026-01-11||-1d" } } });
        assert_eq!(ids(json!({ "query": range })), ["a"]);
        let bool_query =
            json!({ "bool": { "must_not": [{ "exists": { "field": "due_date" } }], "should": [{ "ids": { "values": ["b"] } }] } });
        assert_eq!(ids(json!({ "query": bool_query })), ["b"]);
        let by_date = json!({ "sort": [{ "due_date": { "order": "asc", "missing": "_last" } }] });
        let answer = search(&by_date, &docs, &mappings()).unwrap();
        let sorts: Vec<&Value> = answer["hits"]["hits"].as_array().unwrap().iter().map(|h| &h["sort"][0]).collect();
        assert_eq!(
            sorts,
            [&json!(1_767_225_600_000_i64), &json!(1_768_003_200_000_i64), &json!(i64::MAX)]
        );
        let aggs = json!({ "aggs": { "t": { "terms": { "field": "tags", "missing": "none", "size": 1 } } } });
        let answer = search(&aggs, &docs, &mappings()).unwrap();
        assert_eq!(
            answer["aggregations"]["t"],
            json!({ "doc_count_error_upper_bound": 0, "sum_other_doc_count": 2, "buckets": [{ "key": "x", "doc_count": 2 }] })
        );
        let (status, refused) = search(&json!({ "query": { "match": { "name": "x" } } }), &docs, &mappings()).unwrap_err();
        assert_eq!(status, 400);
        assert!(refused.to_string().contains("[match] queries"), "{refused}");
        // track_total_hits, as a node answers it (checked against Elasticsearch 8.19).
        let total = |bound: Value| search(&json!({ "track_total_hits": bound }), &docs, &mappings()).map(|a| a["hits"]["total"].clone());
        assert_eq!(total(json!(2)).unwrap(), json!({ "value": 2, "relation": "gte" }));
        assert_eq!(total(json!(3)).unwrap(), json!({ "value": 3, "relation": "eq" }));
        assert_eq!(total(json!(true)).unwrap(), json!({ "value": 3, "relation": "eq" }));
        assert_eq!(total(json!(-1)).unwrap(), Value::Null);
        assert_eq!(total(json!(false)).unwrap(), Value::Null);
        let (status, refused) = total(json!(-5)).unwrap_err();
        assert_eq!(status, 400);
        assert!(
            refused.to_string().contains("must be positive or equals to -1, got -5"),
            "{refused}"
        );
    }
}

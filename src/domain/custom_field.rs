//! Custom field definitions: what a key of an account's `custom_fields` holds, and the
//! checks its values pass. A key with a live definition is typed and validated; a key
//! without one is free JSON, as it always was (docs/features/custom-fields.md).
//!
//! Wire forms of values: text a string; number a JSON number (at most 4 decimal places,
//! |v| < 10^11); money a decimal string in the account's currency with that currency's
//! minor digits; date `"YYYY-MM-DD"` (1900 to 2999); boolean a JSON bool; list one
//! allowed string; multi_list an array of distinct allowed strings.

use chrono::{DateTime, NaiveDate, Utc};
use regex::{Regex, RegexBuilder};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::dates::iso_date;
use super::money::{Currency, parse_decimal};
use super::patch::nullable;
use super::refusal::FieldError;

mod conversion;

pub use conversion::Conversion;

/// At most this many definitions are live at once: each takes up to two fields of the
/// search index, whose mapping Elasticsearch limits to 1000 fields by default.
pub const MAX_LIVE_DEFINITIONS: usize = 200;
pub const MAX_LABEL_CHARS: usize = 80;
/// The longest text a text field holds when its rules name no `max_length`.
pub const DEFAULT_MAX_LENGTH: u32 = 500;
/// The largest `max_length` a text field may have.
pub const MAX_TEXT_LENGTH: u32 = 2000;
pub const MAX_PATTERN_CHARS: usize = 200;
/// How large a pattern's compiled program and lazy DFA may grow: the `regex` crate runs
/// in time linear in the text, and these bounds keep its memory small too.
pub const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
pub const MAX_ALLOWED_VALUES: usize = 200;
pub const MAX_ALLOWED_CHARS: usize = 100;
/// The most values one multi_list value holds.
pub const MAX_CHOSEN: usize = 50;
/// Decimal places of a number (and of money bounds): the index keeps ten-thousandths.
pub const NUMBER_PLACES: u32 = 4;
/// Numbers are smaller than this in magnitude, so their ten-thousandths fit a double exactly.
pub const NUMBER_LIMIT: i64 = 100_000_000_000;
pub const MAX_POSITION: i32 = 1_000_000;

/// What a field holds. Stored as its name in `field_definitions.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Money,
    Date,
    Boolean,
    List,
    MultiList,
}

impl FieldType {
    pub const ALL: [FieldType; 7] = [
        Self::Text,
        Self::Number,
        Self::Money,
        Self::Date,
        Self::Boolean,
        Self::List,
        Self::MultiList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Money => "money",
            Self::Date => "date",
            Self::Boolean => "boolean",
            Self::List => "list",
            Self::MultiList => "multi_list",
        }
    }

    /// Whether values can be ordered: `min`/`max` rules and sorting.
    pub fn is_ordered(self) -> bool {
        matches!(self, Self::Number | Self::Money | Self::Date)
    }

    pub fn is_list(self) -> bool {
        matches!(self, Self::List | Self::MultiList)
    }
}

/// The checks a value passes, each allowed for some types only: `min`/`max` (inclusive)
/// for number (a JSON number), money (a decimal string) and date (`"YYYY-MM-DD"`);
/// `min_length`, `max_length` (characters) and `pattern` (the whole value must match)
/// for text; `allowed` (required, 1 to 200 values of 1 to 100 characters) for list and
/// multi_list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub min: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub max: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// A regular expression (the `regex` crate's syntax, linear time), at most 200
    /// characters; the whole value must match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// Where a field shows and what lists may do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flags {
    /// `q` finds accounts by its words (text only).
    pub searchable: bool,
    /// Lists filter (and facet) on it.
    pub filterable: bool,
    /// Lists sort by it (number, money and date only).
    pub sortable: bool,
    /// Exports carry it as a column.
    pub exported: bool,
    /// The console shows it on the account.
    pub shown: bool,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            searchable: false,
            filterable: false,
            sortable: false,
            exported: true,
            shown: true,
        }
    }
}

/// A custom field definition.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Definition {
    /// `^[a-z][a-z0-9_]{0,39}$`; the key in `custom_fields`. Never changes, and stays
    /// reserved after the definition is deleted.
    pub key: String,
    /// 1 to 80 characters.
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// An account must have a value (the default counts) when created, and when a
    /// change sends `custom_fields`.
    pub required: bool,
    /// Filled in on accounts created without a value; in the field's wire form (money:
    /// at most 4 decimal places, formatted in each account's currency).
    #[schema(value_type = Option<Value>)]
    pub default: Option<Value>,
    pub rules: Rules,
    #[serde(flatten)]
    pub flags: Flags,
    /// Where the console and exports place it: ascending, then by key.
    pub position: i32,
    /// The client portfolio the field belongs to; null for every account.
    pub portfolio_id: Option<Uuid>,
    /// When it was deleted; its key stays reserved and its values stay on accounts.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Body of `POST /fields`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "risk_score", "label": "Risk score", "type": "number",
    "rules": {"min": 0, "max": 999}, "filterable": true, "sortable": true}))]
pub struct CreateField {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub default: Option<Value>,
    #[serde(default)]
    pub rules: Rules,
    /// Default false.
    pub searchable: Option<bool>,
    /// Default false.
    pub filterable: Option<bool>,
    /// Default false.
    pub sortable: Option<bool>,
    /// Default true.
    pub exported: Option<bool>,
    /// Default true.
    pub shown: Option<bool>,
    /// 0 to 1000000; after the last field when absent.
    pub position: Option<i32>,
    pub portfolio_id: Option<Uuid>,
}

/// Body of `PATCH /fields/{key}`: absent fields stay; `rules` replaces the rules whole;
/// `default: null` removes the default. A new `type` converts the values accounts hold
/// (docs/features/custom-fields.md, "Changing a field's type"), and the kept default.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchField {
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: Option<FieldType>,
    pub required: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Value>)]
    pub default: Option<Option<Value>>,
    pub rules: Option<Rules>,
    pub searchable: Option<bool>,
    pub filterable: Option<bool>,
    pub sortable: Option<bool>,
    pub exported: Option<bool>,
    pub shown: Option<bool>,
    pub position: Option<i32>,
}

/// Whether `text` is a field key: a lowercase letter, then up to 39 lowercase letters,
/// digits or `_`.
pub fn key(text: &str) -> Result<String, String> {
    let ok = (1..=40).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("must be a lowercase letter followed by at most 39 lowercase letters, digits or `_`".to_owned())
    }
}

fn label(text: &str) -> Result<String, String> {
    let label = text.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(format!("must be 1 to {MAX_LABEL_CHARS} printable characters"));
    }
    Ok(label.to_owned())
}

/// A pattern compiled to match whole values, within [`PATTERN_SIZE_LIMIT`]. The pattern
/// is compiled alone first: only a whole, valid expression may be wrapped in the anchors
/// (`a)|(b` would otherwise escape them).
fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("must be at most {MAX_PATTERN_CHARS} characters"));
    }
    let build = |text: &str| {
        RegexBuilder::new(text)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|err| match err {
                regex::Error::CompiledTooBig(_) => "is too complex: it compiles to more than the allowed size".to_owned(),
                other => {
                    let text = other.to_string();
                    let why = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim();
                    format!("is not a valid regular expression ({})", why.trim_start_matches("error: "))
                }
            })
    };
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

/// A JSON number as an exact decimal, when it has one.
fn decimal_of(number: &Number) -> Option<Decimal> {
    if let Some(i) = number.as_i64() {
        return Some(Decimal::from(i));
    }
    if let Some(u) = number.as_u64() {
        return Some(Decimal::from(u));
    }
    let text = number.to_string();
    Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
}

/// A number value's decimal: at most [`NUMBER_PLACES`] places, below [`NUMBER_LIMIT`].
fn number(value: &Value) -> Result<Decimal, String> {
    let Value::Number(n) = value else {
        return Err("must be a JSON number, such as 12.5".to_owned());
    };
    let d = decimal_of(n).filter(|d| d.abs() < Decimal::from(NUMBER_LIMIT));
    let d = d.ok_or_else(|| format!("must be between -{NUMBER_LIMIT} and {NUMBER_LIMIT} (exclusive)"))?;
    if d.normalize().scale() > NUMBER_PLACES {
        return Err(format!("may have at most {NUMBER_PLACES} decimal places"));
    }
    Ok(d)
}

fn date(value: &Value) -> Result<NaiveDate, String> {
    value
        .as_str()
        .and_then(iso_date)
        .ok_or_else(|| "must be a date written YYYY-MM-DD between 1900 and 2999".to_owned())
}

/// A money bound or default: any currency's amount, so at most [`NUMBER_PLACES`] places.
fn amount(value: &Value) -> Result<Decimal, String> {
    let text = value.as_str().ok_or("must be a decimal string, such as \"1250.00\"")?;
    parse_decimal(text, NUMBER_PLACES, || format!("may have at most {NUMBER_PLACES} decimal places"))
}

/// A bound of an ordered type, comparable with the others of its type.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Bound {
    Decimal(Decimal),
    Date(NaiveDate),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Decimal(d) => write!(f, "{}", d.normalize()),
            Bound::Date(d) => write!(f, "{d}"),
        }
    }
}

fn bound(field_type: FieldType, value: &Value) -> Result<Bound, String> {
    match field_type {
        FieldType::Number => number(value).map(Bound::Decimal),
        FieldType::Money => amount(value).map(Bound::Decimal),
        _ => date(value).map(Bound::Date),
    }
}

/// What a definition's rules come to once checked: the bounds parsed, the pattern
/// compiled, the allowed values as given.
#[derive(Clone, Debug)]
struct Checks {
    min: Option<Bound>,
    max: Option<Bound>,
    min_length: u32,
    max_length: u32,
    pattern: Option<Regex>,
    allowed: Vec<String>,
}

impl Checks {
    /// The checks of `rules` for `field_type`, or every rule that is wrong, named
    /// `rules.<rule>`.
    fn of(field_type: FieldType, rules: &Rules) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut refuse = |rule: &str, message: String| errors.push(FieldError::new(format!("rules.{rule}"), message));
        let for_type = format!("does not apply to {} fields", field_type.as_str());
        let mut checks = Checks {
            min: None,
            max: None,
            min_length: 0,
            max_length: DEFAULT_MAX_LENGTH,
            pattern: None,
            allowed: Vec::new(),
        };
        for (rule, given, slot) in [("min", &rules.min, &mut checks.min), ("max", &rules.max, &mut checks.max)] {
            match given {
                Some(_) if !field_type.is_ordered() => refuse(rule, for_type.clone()),
                Some(value) => match bound(field_type, value) {
                    Ok(b) => *slot = Some(b),
                    Err(m) => refuse(rule, m),
                },
                None => {}
            }
        }
        if let (Some(min), Some(max)) = (checks.min, checks.max)
            && min > max
        {
            refuse("min", format!("must not be greater than max ({max})"));
        }
        let text = field_type == FieldType::Text;
        for (rule, given) in [("min_length", rules.min_length), ("max_length", rules.max_length)] {
            match given {
                Some(_) if !text => refuse(rule, for_type.clone()),
                Some(n) if n > MAX_TEXT_LENGTH => refuse(rule, format!("must be at most {MAX_TEXT_LENGTH}")),
                Some(0) if rule == "max_length" => refuse(rule, "must be at least 1".to_owned()),
                _ => {}
            }
        }
        if text {
            checks.min_length = rules.min_length.unwrap_or(0);
            checks.max_length = rules.max_length.unwrap_or(DEFAULT_MAX_LENGTH);
            if checks.min_length > checks.max_length {
                refuse("min_length", format!("must not be greater than max_length ({})", checks.max_length));
            }
        }
        match &rules.pattern {
            Some(_) if !text => refuse("pattern", for_type.clone()),
            Some(pattern) => match compile(pattern) {
                Ok(regex) => checks.pattern = Some(regex),
                Err(m) => refuse("pattern", m),
            },
            None => {}
        }
        match &rules.allowed {
            Some(_) if !field_type.is_list() => refuse("allowed", for_type),
            Some(values) => match allowed(values) {
                Ok(values) => checks.allowed = values,
                Err(m) => refuse("allowed", m),
            },
            None if field_type.is_list() => refuse("allowed", "is required for list and multi_list fields".to_owned()),
            None => {}
        }
        if errors.is_empty() { Ok(checks) } else { Err(errors) }
    }

    /// The canonical form of `value` for a field of `field_type`, or why it is refused;
    /// `None` when it holds nothing (null, blank text, an empty multi_list). Money is
    /// formatted in `currency`, or checked against [`NUMBER_PLACES`] without one.
    fn value(&self, field_type: FieldType, value: &Value, currency: Option<Currency>) -> Result<Option<Value>, String> {
        if value.is_null() {
            return Ok(None);
        }
        let canonical = match field_type {
            FieldType::Text => {
                let text = value.as_str().ok_or("must be a string")?.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
                if chars < self.min_length || chars > self.max_length {
                    return Err(format!("must be {} to {} characters", self.min_length, self.max_length));
                }
                if let Some(pattern) = &self.pattern
                    && !pattern.is_match(text)
                {
                    return Err("does not match the field's pattern".to_owned());
                }
                Value::from(text)
            }
            FieldType::Number => {
                self.in_bounds(Bound::Decimal(number(value)?))?;
                value.clone()
            }
            FieldType::Money => match currency {
                Some(currency) => {
                    let text = value
                        .as_str()
                        .ok_or("must be a decimal string in the account's currency, such as \"1250.00\"")?;
                    let amount = currency.parse_amount(text)?;
                    self.in_bounds(Bound::Decimal(amount))?;
                    Value::from(currency.format(amount))
                }
                None => {
                    let amount = amount(value)?;
                    self.in_bounds(Bound::Decimal(amount))?;
                    Value::from(amount.to_string())
                }
            },
            FieldType::Date => {
                let day = date(value)?;
                self.in_bounds(Bound::Date(day))?;
                Value::from(day.to_string())
            }
            FieldType::Boolean => Value::Bool(value.as_bool().ok_or("must be true or false")?),
            FieldType::List => Value::from(self.choice(value)?),
            FieldType::MultiList => {
                let items = value.as_array().ok_or("must be an array of the allowed values")?;
                if items.len() > MAX_CHOSEN {
                    return Err(format!("may hold at most {MAX_CHOSEN} values"));
                }
                let mut chosen: Vec<&str> = Vec::with_capacity(items.len());
                for item in items {
                    let one = self.choice(item)?;
                    if chosen.contains(&one) {
                        return Err(format!("lists {one:?} more than once"));
                    }
                    chosen.push(one);
                }
                if chosen.is_empty() {
                    return Ok(None);
                }
                // In the order the definition lists them: one spelling per set of values.
                let ordered = self.allowed.iter().filter(|a| chosen.contains(&a.as_str()));
                Value::Array(ordered.map(|a| Value::from(a.as_str())).collect())
            }
        };
        Ok(Some(canonical))
    }

    /// The allowed value `value` names (case aside, spaces around it aside).
    fn choice(&self, value: &Value) -> Result<&str, String> {
        let text = value.as_str().ok_or("must be one of the allowed values, as a string")?.trim();
        self.allowed
            .iter()
            .find(|a| a.to_lowercase() == text.to_lowercase())
            .map(String::as_str)
            .ok_or_else(|| {
                let shown: Vec<&str> = self.allowed.iter().take(10).map(String::as_str).collect();
                let more = if self.allowed.len() > 10 { ", ..." } else { "" };
                format!("{text:?} is not one of the allowed values ({}{more})", shown.join(", "))
            })
    }

    fn in_bounds(&self, value: Bound) -> Result<(), String> {
        if let Some(min) = self.min
            && value < min
        {
            return Err(format!("must be at least {min}"));
        }
        if let Some(max) = self.max
            && value > max
        {
            return Err(format!("must be at most {max}"));
        }
        Ok(())
    }
}

/// The allowed values of a list field: trimmed, 1 to [`MAX_ALLOWED_VALUES`] of them,
/// each 1 to [`MAX_ALLOWED_CHARS`] printable characters, distinct in any case.
fn allowed(values: &[String]) -> Result<Vec<String>, String> {
    if values.is_empty() || values.len() > MAX_ALLOWED_VALUES {
        return Err(format!("must list 1 to {MAX_ALLOWED_VALUES} values"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > MAX_ALLOWED_CHARS || value.chars().any(char::is_control) {
            return Err(format!("each value must be 1 to {MAX_ALLOWED_CHARS} printable characters"));
        }
        if out.iter().any(|o| o.to_lowercase() == value.to_lowercase()) {
            return Err(format!("lists {value:?} more than once (values are compared ignoring case)"));
        }
        out.push(value.to_owned());
    }
    Ok(out)
}

impl Definition {
    /// Validates a create body: the new definition, or every field error of the body.
    pub fn from_create(input: CreateField) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let key = key(&input.key)
            .map_err(|m| errors.push(FieldError::new("key", m)))
            .unwrap_or_default();
        let label = label(&input.label)
            .map_err(|m| errors.push(FieldError::new("label", m)))
            .unwrap_or_default();
        let defaults = Flags::default();
        let mut definition = Self {
            key,
            label,
            field_type: input.field_type,
            required: input.required,
            default: input.default,
            rules: input.rules,
            flags: Flags {
                searchable: input.searchable.unwrap_or(defaults.searchable),
                filterable: input.filterable.unwrap_or(defaults.filterable),
                sortable: input.sortable.unwrap_or(defaults.sortable),
                exported: input.exported.unwrap_or(defaults.exported),
                shown: input.shown.unwrap_or(defaults.shown),
            },
            position: input.position.unwrap_or(0),
            portfolio_id: input.portfolio_id,
            deleted_at: None,
        };
        if input.position.is_some_and(|p| !(0..=MAX_POSITION).contains(&p)) {
            errors.push(FieldError::new("position", format!("must be between 0 and {MAX_POSITION}")));
        }
        errors.extend(definition.problems());
        if errors.is_empty() { Ok(definition) } else { Err(errors) }
    }

    /// Applies a patch and validates the result. A new type converts the kept default
    /// as it converts the values accounts hold.
    pub fn apply(mut self, patch: PatchField) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(to) = patch.field_type
            && to != self.field_type
        {
            if patch.default.is_none()
                && let Some(default) = self.default.take()
            {
                match conversion::recast(self.field_type, to, &default) {
                    Ok(converted) => self.default = Some(converted),
                    Err(m) => errors.push(FieldError::new(
                        "default",
                        format!("does not convert to {}: {m}; send a new default or null", to.as_str()),
                    )),
                }
            }
            self.field_type = to;
        }
        if let Some(text) = patch.label {
            match label(&text) {
                Ok(l) => self.label = l,
                Err(m) => errors.push(FieldError::new("label", m)),
            }
        }
        if let Some(position) = patch.position {
            if (0..=MAX_POSITION).contains(&position) {
                self.position = position;
            } else {
                errors.push(FieldError::new("position", format!("must be between 0 and {MAX_POSITION}")));
            }
        }
        self.required = patch.required.unwrap_or(self.required);
        if let Some(default) = patch.default {
            self.default = default;
        }
        if let Some(rules) = patch.rules {
            self.rules = rules;
        }
        let flags = &mut self.flags;
        flags.searchable = patch.searchable.unwrap_or(flags.searchable);
        flags.filterable = patch.filterable.unwrap_or(flags.filterable);
        flags.sortable = patch.sortable.unwrap_or(flags.sortable);
        flags.exported = patch.exported.unwrap_or(flags.exported);
        flags.shown = patch.shown.unwrap_or(flags.shown);
        errors.extend(self.problems());
        if errors.is_empty() { Ok(self) } else { Err(errors) }
    }

    /// What is wrong with this definition's rules, flags and default, each named by its
    /// field in a create or patch body. The default is brought to its canonical form.
    fn problems(&mut self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let field_type = self.field_type;
        if self.flags.searchable && field_type != FieldType::Text {
            errors.push(FieldError::new("searchable", "only text fields are searched by their words"));
        }
        if self.flags.sortable && !field_type.is_ordered() {
            errors.push(FieldError::new("sortable", "only number, money and date fields sort"));
        }
        match Checks::of(field_type, &self.rules) {
            Ok(checks) => {
                if let Some(default) = &self.default {
                    match checks.value(field_type, default, None) {
                        Ok(canonical) => self.default = canonical,
                        Err(m) => errors.push(FieldError::new("default", format!("breaks the field's own rules: {m}"))),
                    }
                }
                if let Some(values) = &mut self.rules.allowed {
                    *values = checks.allowed;
                }
            }
            Err(rule_errors) => errors.extend(rule_errors),
        }
        errors
    }
}

/// Whether an account is being created (defaults fill absent keys) or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Patch,
}

/// One live definition with its checks.
#[derive(Clone, Debug)]
struct Field {
    definition: Definition,
    /// `Err` when the stored rules no longer pass (a limit of this build is lower than
    /// the one they were written under): every value is refused, saying so.
    checks: Result<Checks, String>,
}

/// The live definitions, as every write path validates `custom_fields` against them.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    fields: Vec<Field>,
}

impl Catalog {
    /// The catalog of `definitions`; deleted ones are left out.
    pub fn new(definitions: impl IntoIterator<Item = Definition>) -> Self {
        let fields = definitions
            .into_iter()
            .filter(|d| d.deleted_at.is_none())
            .map(|definition| {
                let checks = Checks::of(definition.field_type, &definition.rules).map_err(|errors| {
                    let why: Vec<String> = errors.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                    format!(
                        "the field's rules cannot be applied ({}); an admin must correct them",
                        why.join("; ")
                    )
                });
                Field { definition, checks }
            })
            .collect();
        Self { fields }
    }

    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.fields.iter().map(|f| &f.definition)
    }

    pub fn get(&self, key: &str) -> Option<&Definition> {
        self.definitions().find(|d| d.key == key)
    }

    /// The values of `map` that a live definition types and accepts, in their canonical
    /// form, with their definitions (what the search index holds typed). Values its
    /// definition refuses are left out, not reported: they stay as they are in
    /// `custom_fields`.
    pub fn checked<'a>(&'a self, map: &Map<String, Value>, currency: Currency) -> Vec<(&'a Definition, Value)> {
        self.fields
            .iter()
            .filter_map(|field| {
                let checks = field.checks.as_ref().ok()?;
                let value = map.get(&field.definition.key)?;
                let canonical = checks.value(field.definition.field_type, value, Some(currency)).ok()??;
                Some((&field.definition, canonical))
            })
            .collect()
    }

    /// Validates `map` for an account in `currency`: each key with a live definition is
    /// brought to its canonical form (a value holding nothing, such as null, is removed),
    /// a required key without a value is refused, and on [`Mode::Create`] an absent key
    /// takes its default. Keys without a definition pass through untouched. A definition
    /// that belongs to a portfolio checks its key's values everywhere, but its `required`
    /// and `default` apply to the accounts of its portfolio (`portfolio`) only. Errors
    /// are named `custom_fields.<key>`.
    pub fn validate(
        &self,
        mut map: Map<String, Value>,
        currency: Currency,
        portfolio: Option<Uuid>,
        mode: Mode,
    ) -> Result<Map<String, Value>, Vec<FieldError>> {
        let mut errors = Vec::new();
        for field in &self.fields {
            let definition = &field.definition;
            let name = format!("custom_fields.{}", definition.key);
            let checks = match &field.checks {
                Ok(checks) => checks,
                Err(why) => {
                    if map.contains_key(&definition.key) {
                        errors.push(FieldError::new(name, why.clone()));
                    }
                    continue;
                }
            };
            let given = match map.get(&definition.key) {
                Some(value) => checks.value(definition.field_type, value, Some(currency)),
                None => Ok(None),
            };
            let applies_here = definition.portfolio_id.is_none() || definition.portfolio_id == portfolio;
            let value = match given {
                Err(message) => {
                    errors.push(FieldError::new(name, message));
                    continue;
                }
                Ok(None) if mode == Mode::Create && applies_here && definition.default.is_some() => {
                    let default = definition.default.as_ref().unwrap_or(&Value::Null);
                    match checks.value(definition.field_type, default, Some(currency)) {
                        Ok(value) => value,
                        Err(message) => {
                            errors.push(FieldError::new(
                                name,
                                format!("the field's default does not fit this account: {message}"),
                            ));
                            continue;
                        }
                    }
                }
                Ok(value) => value,
            };
            match value {
                Some(value) => {
                    map.insert(definition.key.clone(), value);
                }
                None if definition.required && applies_here => {
                    errors.push(FieldError::new(name, format!("is required ({})", definition.label)));
                }
                None => {
                    map.remove(&definition.key);
                }
            }
        }
        if errors.is_empty() { Ok(map) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(body: Value) -> Result<Definition, Vec<FieldError>> {
        Definition::from_create(serde_json::from_value(body).expect("a create body"))
    }

    fn defined(body: Value) -> Definition {
        create(body.clone()).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// The canonical value `value` takes under `definition`, or the message refusing it.
    fn check(definition: &Definition, value: Value, currency: Currency) -> Result<Value, String> {
        let catalog = Catalog::new([definition.clone()]);
        let key = definition.key.clone();
        match catalog.validate(Map::from_iter([(key.clone(), value)]), currency, None, Mode::Patch) {
            Ok(mut out) => Ok(out.remove(&key).unwrap_or(Value::Null)),
            Err(errors) => {
                assert_eq!(fields(&errors), [format!("custom_fields.{key}")]);
                Err(errors[0].message.clone())
            }
        }
    }

    #[test]
    fn keys_and_labels_follow_their_rules() {
        for good in ["a", "risk_score", "product2", "a234567890123456789012345678901234567890"] {
            assert!(key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Risk",
            "2fa",
            "_x",
            "risk-score",
            "risk score",
            "ä",
            "a2345678901234567890123456789012345678901",
        ] {
            assert!(key(bad).is_err(), "{bad}");
        }
        let errors = create(json!({"key": "Bad Key", "label": "  ", "type": "text"})).unwrap_err();
        assert_eq!(fields(&errors), ["key", "label"]);
        let long = "x".repeat(81);
        assert_eq!(
            fields(&create(json!({"key": "a", "label": long, "type": "text"})).unwrap_err()),
            ["label"]
        );
        let trimmed = defined(json!({"key": "a", "label": "  Risk score ", "type": "text"}));
        assert_eq!(trimmed.label, "Risk score");
        assert_eq!(trimmed.flags, Flags::default());
        assert!(trimmed.flags.exported && trimmed.flags.shown && !trimmed.flags.filterable);
    }

    #[test]
    fn each_rule_applies_to_its_types_only() {
        let cases = [
            (json!({"type": "text", "rules": {"min": 1}}), "rules.min"),
            (json!({"type": "boolean", "rules": {"max": 1}}), "rules.max"),
            (json!({"type": "number", "rules": {"pattern": "a+"}}), "rules.pattern"),
            (json!({"type": "date", "rules": {"max_length": 3}}), "rules.max_length"),
            (json!({"type": "money", "rules": {"min_length": 3}}), "rules.min_length"),
            (json!({"type": "text", "rules": {"allowed": ["a"]}}), "rules.allowed"),
            (json!({"type": "list"}), "rules.allowed"),
            (json!({"type": "multi_list", "rules": {"allowed": []}}), "rules.allowed"),
            (json!({"type": "list", "rules": {"allowed": ["a", "A"]}}), "rules.allowed"),
            (json!({"type": "list", "rules": {"allowed": ["a", " "]}}), "rules.allowed"),
            (json!({"type": "number", "rules": {"min": 5, "max": 1}}), "rules.min"),
            (json!({"type": "number", "rules": {"min": "5"}}), "rules.min"),
            (json!({"type": "number", "rules": {"max": 1e12}}), "rules.max"),
            (json!({"type": "money", "rules": {"min": 5}}), "rules.min"),
            (json!({"type": "money", "rules": {"min": "1.00001"}}), "rules.min"),
            (json!({"type": "date", "rules": {"min": "2026-13-01"}}), "rules.min"),
            (
                json!({"type": "date", "rules": {"min": "2026-02-01", "max": "2026-01-01"}}),
                "rules.min",
            ),
            (
                json!({"type": "text", "rules": {"min_length": 10, "max_length": 5}}),
                "rules.min_length",
            ),
            (json!({"type": "text", "rules": {"max_length": 0}}), "rules.max_length"),
            (json!({"type": "text", "rules": {"max_length": 2001}}), "rules.max_length"),
            (json!({"type": "text", "searchable": false, "sortable": true}), "sortable"),
            (json!({"type": "number", "searchable": true}), "searchable"),
        ];
        for (mut body, field) in cases {
            body["key"] = json!("f");
            body["label"] = json!("F");
            let errors = create(body.clone()).expect_err(&body.to_string());
            assert_eq!(fields(&errors), [field], "{body}");
        }
        let many: Vec<String> = (0..201).map(|i| format!("v{i}")).collect();
        let errors = create(json!({"key": "f", "label": "F", "type": "list", "rules": {"allowed": many}})).unwrap_err();
        assert_eq!(fields(&errors), ["rules.allowed"]);
        defined(json!({"key": "f", "label": "F", "type": "money", "rules": {"min": "0", "max": "99999.9999"}, "sortable": true}));
        defined(json!({"key": "f", "label": "F", "type": "text", "searchable": true, "rules": {"pattern": "[A-Z]{2}[0-9]+"}}));
    }

    #[test]
    fn patterns_are_bounded_and_whole() {
        for (pattern, why) in [("(", "not a valid"), ("a{1000}{1000}", "too complex"), ("\\w{500}", "too complex")] {
            let errors = create(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": pattern}})).unwrap_err();
            assert_eq!(fields(&errors), ["rules.pattern"]);
            assert!(errors[0].message.contains(why), "{pattern}: {}", errors[0].message);
        }
        let long = "a".repeat(201);
        let errors = create(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": long}})).unwrap_err();
        assert!(errors[0].message.contains("at most 200"));
        let code = defined(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": "[A-Z]{2}[0-9]+|x"}}));
        assert_eq!(check(&code, json!("AB12"), usd()), Ok(json!("AB12")));
        assert_eq!(check(&code, json!("x"), usd()), Ok(json!("x")), "the alternation is grouped");
        assert!(check(&code, json!("AB12 and more"), usd()).unwrap_err().contains("pattern"));
        assert!(check(&code, json!("xAB12"), usd()).is_err());
        let errors = create(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": "a)|(b"}})).unwrap_err();
        assert_eq!(fields(&errors), ["rules.pattern"], "a pattern cannot close the anchoring group");
        let words = defined(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": "[\\w ]+"}}));
        assert_eq!(
            check(&words, json!("Zoë Ångström"), usd()),
            Ok(json!("Zoë Ångström")),
            "Unicode classes fit the bound"
        );
        // A pathological pattern for backtracking engines runs in linear time here.
        let evil = defined(json!({"key": "f", "label": "F", "type": "text", "rules": {"pattern": "(a+)+b", "max_length": 2000}}));
        assert!(check(&evil, json!("a".repeat(2000)), usd()).is_err());
    }

    #[test]
    fn text_values() {
        let text = defined(json!({"key": "note", "label": "Note", "type": "text", "rules": {"min_length": 2, "max_length": 5}}));
        assert_eq!(check(&text, json!("  abc "), usd()), Ok(json!("abc")));
        assert_eq!(check(&text, json!("   "), usd()), Ok(Value::Null), "blank text holds nothing");
        assert!(check(&text, json!("a"), usd()).unwrap_err().contains("2 to 5"));
        assert!(check(&text, json!("abcdef"), usd()).is_err());
        assert_eq!(check(&text, json!("éèêëü"), usd()), Ok(json!("éèêëü")), "characters, not bytes");
        assert!(check(&text, json!(12), usd()).unwrap_err().contains("string"));
        let plain = defined(json!({"key": "note", "label": "Note", "type": "text"}));
        assert!(check(&plain, json!("x".repeat(500)), usd()).is_ok());
        assert!(
            check(&plain, json!("x".repeat(501)), usd()).is_err(),
            "500 characters when no max_length"
        );
    }

    #[test]
    fn number_values() {
        let score = defined(json!({"key": "score", "label": "Score", "type": "number", "rules": {"min": -10, "max": 999.5}}));
        for good in [json!(0), json!(-10), json!(999.5), json!(12.3456), json!(1e2)] {
            assert_eq!(check(&score, good.clone(), usd()), Ok(good.clone()), "{good}");
        }
        assert!(check(&score, json!(-10.5), usd()).unwrap_err().contains("at least -10"));
        assert!(check(&score, json!(1000), usd()).unwrap_err().contains("at most 999.5"));
        assert!(check(&score, json!(1.23456), usd()).unwrap_err().contains("4 decimal places"));
        assert!(check(&score, json!("12"), usd()).unwrap_err().contains("JSON number"));
        assert!(check(&score, json!(true), usd()).is_err());
        let open = defined(json!({"key": "n", "label": "N", "type": "number"}));
        assert!(check(&open, json!(99_999_999_999.999_9), usd()).is_ok());
        assert!(check(&open, json!(100_000_000_000u64), usd()).is_err());
        assert!(check(&open, json!(-100_000_000_000i64), usd()).is_err());
        assert!(check(&open, json!(u64::MAX), usd()).is_err());
        assert!(check(&open, json!(1e300), usd()).is_err());
    }

    #[test]
    fn money_values_take_the_account_currencys_minor_digits() {
        let fee = defined(json!({"key": "fee", "label": "Fee", "type": "money", "rules": {"max": "500"}}));
        assert_eq!(check(&fee, json!("12.5"), usd()), Ok(json!("12.50")));
        assert_eq!(check(&fee, json!("12"), Currency::parse("JPY").unwrap()), Ok(json!("12")));
        assert_eq!(check(&fee, json!("1.5"), Currency::parse("KWD").unwrap()), Ok(json!("1.500")));
        assert!(check(&fee, json!("1.234"), usd()).unwrap_err().contains("USD allows at most 2"));
        assert!(
            check(&fee, json!("1.5"), Currency::parse("JPY").unwrap())
                .unwrap_err()
                .contains("JPY allows at most 0")
        );
        assert!(check(&fee, json!("500.01"), usd()).unwrap_err().contains("at most 500"));
        assert!(check(&fee, json!("-1.00"), usd()).unwrap_err().contains("negative"));
        for bad in [json!(12.5), json!("1,000.00"), json!("1e3"), json!("")] {
            assert!(check(&fee, bad.clone(), usd()).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_values() {
        let off = defined(json!({"key": "charged_off", "label": "Charged off", "type": "date", "rules": {"min": "2000-01-01"}}));
        assert_eq!(check(&off, json!("2026-02-28"), usd()), Ok(json!("2026-02-28")));
        assert!(check(&off, json!("1999-12-31"), usd()).unwrap_err().contains("at least 2000-01-01"));
        for bad in [
            json!("2026-2-28"),
            json!("2026-02-30"),
            json!("3000-01-01"),
            json!("2026-02-28T00:00:00Z"),
            json!(20260228),
        ] {
            assert!(check(&off, bad.clone(), usd()).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
    }

    #[test]
    fn boolean_and_list_values() {
        let flag = defined(json!({"key": "vip", "label": "VIP", "type": "boolean"}));
        assert_eq!(check(&flag, json!(true), usd()), Ok(json!(true)));
        assert!(check(&flag, json!("true"), usd()).is_err());
        assert!(check(&flag, json!(1), usd()).is_err());

        let product = defined(json!({"key": "product", "label": "Product", "type": "list", "rules": {"allowed": [" Card ", "Loan"]}}));
        assert_eq!(product.rules.allowed.as_deref(), Some(&["Card".to_owned(), "Loan".to_owned()][..]));
        assert_eq!(
            check(&product, json!("card"), usd()),
            Ok(json!("Card")),
            "the definition's spelling"
        );
        assert!(
            check(&product, json!("Mortgage"), usd())
                .unwrap_err()
                .contains("not one of the allowed values (Card, Loan)")
        );
        assert!(check(&product, json!(["Card"]), usd()).is_err());

        let channels =
            defined(json!({"key": "channels", "label": "Channels", "type": "multi_list", "rules": {"allowed": ["sms", "email", "post"]}}));
        assert_eq!(check(&channels, json!(["post", "SMS"]), usd()), Ok(json!(["sms", "post"])));
        assert_eq!(check(&channels, json!([]), usd()), Ok(Value::Null), "an empty choice holds nothing");
        assert!(
            check(&channels, json!(["sms", "Sms"]), usd())
                .unwrap_err()
                .contains("more than once")
        );
        assert!(check(&channels, json!(["fax"]), usd()).is_err());
        assert!(check(&channels, json!("sms"), usd()).unwrap_err().contains("array"));
        let many: Vec<String> = (0..51).map(|i| format!("v{i}")).collect();
        let wide = defined(json!({"key": "many", "label": "Many", "type": "multi_list", "rules": {"allowed": many.clone()}}));
        assert!(check(&wide, json!(many), usd()).unwrap_err().contains("at most 50"));
    }

    #[test]
    fn a_default_must_satisfy_the_fields_own_rules() {
        let cases = [
            json!({"type": "number", "rules": {"max": 10}, "default": 11}),
            json!({"type": "text", "rules": {"pattern": "[0-9]+"}, "default": "abc"}),
            json!({"type": "list", "rules": {"allowed": ["a"]}, "default": "b"}),
            json!({"type": "money", "default": "1.00001"}),
            json!({"type": "date", "default": "tomorrow"}),
            json!({"type": "boolean", "default": "yes"}),
        ];
        for mut body in cases {
            body["key"] = json!("f");
            body["label"] = json!("F");
            let errors = create(body.clone()).expect_err(&body.to_string());
            assert_eq!(fields(&errors), ["default"], "{body}");
            assert!(errors[0].message.contains("rules"), "{body}");
        }
        let list = defined(json!({"key": "f", "label": "F", "type": "list", "rules": {"allowed": ["Card"]}, "default": "card"}));
        assert_eq!(list.default, Some(json!("Card")), "stored in canonical form");
        let patched = list.clone().apply(PatchField {
            rules: Some(Rules {
                allowed: Some(vec!["Loan".to_owned()]),
                ..Rules::default()
            }),
            ..PatchField::default()
        });
        assert_eq!(
            fields(&patched.unwrap_err()),
            ["default"],
            "new rules are checked against the kept default"
        );
        let cleared = list.apply(PatchField {
            default: Some(None),
            label: Some("Product".to_owned()),
            ..PatchField::default()
        });
        let cleared = cleared.unwrap();
        assert_eq!((cleared.default, cleared.label.as_str()), (None, "Product"));
    }

    #[test]
    fn create_fills_defaults_and_requires_values_patch_only_requires() {
        let catalog = Catalog::new([
            defined(
                json!({"key": "segment", "label": "Segment", "type": "list", "rules": {"allowed": ["retail", "high"]}, "default": "retail"}),
            ),
            defined(json!({"key": "fee", "label": "Fee", "type": "money", "default": "5.5"})),
            defined(json!({"key": "branch", "label": "Branch", "type": "text", "required": true})),
            defined(json!({"key": "score", "label": "Score", "type": "number"})),
        ]);
        let created = catalog.validate(
            map(json!({"branch": "North", "legacy": {"any": ["json"]}})),
            usd(),
            None,
            Mode::Create,
        );
        assert_eq!(
            Value::Object(created.unwrap()),
            json!({"branch": "North", "legacy": {"any": ["json"]}, "segment": "retail", "fee": "5.50"}),
            "defaults filled, unknown keys untouched, absent optional keys stay absent"
        );
        let errors = catalog
            .validate(map(json!({"score": "high"})), usd(), None, Mode::Create)
            .unwrap_err();
        assert_eq!(fields(&errors), ["custom_fields.branch", "custom_fields.score"]);
        assert!(errors[0].message.contains("required"));
        let jpy = catalog.validate(map(json!({"branch": "x"})), Currency::parse("JPY").unwrap(), None, Mode::Create);
        let errors = jpy.unwrap_err();
        assert_eq!(fields(&errors), ["custom_fields.fee"]);
        assert!(errors[0].message.contains("default"), "{errors:?}");

        let patched = catalog
            .validate(map(json!({"branch": "South", "segment": null})), usd(), None, Mode::Patch)
            .unwrap();
        assert_eq!(
            Value::Object(patched),
            json!({"branch": "South"}),
            "no defaults on a change; null removes a value"
        );
        let errors = catalog
            .validate(map(json!({"branch": null})), usd(), None, Mode::Patch)
            .unwrap_err();
        assert_eq!(fields(&errors), ["custom_fields.branch"]);
    }

    #[test]
    fn deleted_and_portfolio_definitions() {
        let mut gone = defined(json!({"key": "old", "label": "Old", "type": "number", "required": true}));
        gone.deleted_at = Some(Utc::now());
        let mut placed = defined(json!({"key": "placed", "label": "Placed", "type": "date", "required": true, "default": "2026-01-01"}));
        let portfolio = Uuid::new_v4();
        placed.portfolio_id = Some(portfolio);
        let catalog = Catalog::new([gone, placed]);
        assert!(catalog.get("old").is_none());
        assert_eq!(catalog.definitions().count(), 1);
        let out = catalog
            .validate(map(json!({"old": "free again"})), usd(), None, Mode::Create)
            .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"old": "free again"}),
            "a deleted definition checks nothing"
        );
        let errors = catalog
            .validate(map(json!({"placed": "soon"})), usd(), None, Mode::Create)
            .unwrap_err();
        assert_eq!(fields(&errors), ["custom_fields.placed"], "a portfolio's field is typed everywhere");
        let elsewhere = catalog.validate(Map::new(), usd(), Some(Uuid::new_v4()), Mode::Create).unwrap();
        assert!(
            elsewhere.is_empty(),
            "another portfolio's account takes no default and needs no value"
        );
        let own = catalog.validate(Map::new(), usd(), Some(portfolio), Mode::Create).unwrap();
        assert_eq!(
            Value::Object(own),
            json!({"placed": "2026-01-01"}),
            "its own accounts take the default"
        );
        let errors = catalog
            .validate(map(json!({"placed": null})), usd(), Some(portfolio), Mode::Patch)
            .unwrap_err();
        assert_eq!(fields(&errors), ["custom_fields.placed"], "and must keep a value");
    }
}

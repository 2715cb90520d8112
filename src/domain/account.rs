//! Accounts: statuses, delinquency buckets, and validation of create and patch bodies.
//!
//! # Adding an account field
//! Declare it on [`AccountDoc`](crate::domain::document::AccountDoc), the document the
//! index holds, and on `store::accounts::AccountRow` with its column (a migration); the
//! compiler then names the row-to-document and document-to-view code. What it cannot see,
//! a test does:
//! - the Elasticsearch template `index-templates/accounts.json` (strict mapping):
//!   `tests/api/elastic.rs`, `templates_map_every_field_the_documents_produce_and_nothing_else`;
//! - the API's view: `tests/api/account_fields.rs`, `the_account_view_shows_every_field`;
//! - an import column (`import::columns`) or a stated reason: `every_account_field_has_an_import_column_or_a_reason`;
//! - an export column (`service::exports::ACCOUNT_COLUMNS`) or a stated reason:
//!   `every_account_field_has_an_export_column_or_a_reason`;
//! - the embedded index (`search::embedded::schema`) only when lists filter, sort or
//!   search on it, with `AccountQuery`, `lists::accounts::PARAMS` and both backends'
//!   translations (`search::embedded::filter`, `search::elastic::dsl`; their filters are
//!   tested in `tests/api/search.rs` and `golden_account_filters_and_search_after`).

use chrono::{DateTime, NaiveDate, Utc};
use phonenumber::country;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::contact::{normalize_email, normalize_phone, validate_country, validate_timezone};
use super::custom_field::{Catalog, Mode};
use super::debtor_zone::{DebtorZone, ZoneSource};
use super::money::Currency;
use super::patch::nullable;
use crate::domain::refusal::FieldError;

/// Stored as text (`accounts.status`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Delinquent,
    PromiseToPay,
    PaymentPlan,
    Disputed,
    Paid,
    Settled,
    Closed,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 8] = [
        Self::Active,
        Self::Delinquent,
        Self::PromiseToPay,
        Self::PaymentPlan,
        Self::Disputed,
        Self::Paid,
        Self::Settled,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Delinquent => "delinquent",
            Self::PromiseToPay => "promise_to_pay",
            Self::PaymentPlan => "payment_plan",
            Self::Disputed => "disputed",
            Self::Paid => "paid",
            Self::Settled => "settled",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Statuses in which nothing is owed any more, so no delinquency is counted.
    pub fn is_resolved(self) -> bool {
        matches!(self, Self::Paid | Self::Settled | Self::Closed)
    }
}

/// Delinquency buckets by days past due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Bucket {
    #[serde(rename = "current")]
    Current,
    #[serde(rename = "1-29")]
    Days1To29,
    #[serde(rename = "30-59")]
    Days30To59,
    #[serde(rename = "60-89")]
    Days60To89,
    #[serde(rename = "90-119")]
    Days90To119,
    #[serde(rename = "120+")]
    Days120Plus,
}

impl Bucket {
    pub fn from_days_past_due(days: i64) -> Self {
        match days {
            i64::MIN..=0 => Self::Current,
            1..=29 => Self::Days1To29,
            30..=59 => Self::Days30To59,
            60..=89 => Self::Days60To89,
            90..=119 => Self::Days90To119,
            _ => Self::Days120Plus,
        }
    }
}

/// Days past due on `today` (UTC): zero without a due date, before it, or once resolved.
pub fn days_past_due(due_date: Option<NaiveDate>, status: AccountStatus, today: NaiveDate) -> i64 {
    match due_date {
        Some(due) if !status.is_resolved() => (today - due).num_days().max(0),
        _ => 0,
    }
}

/// Read from the `address_*` columns of a row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[sqlx(rename = "address_line1")]
    pub line1: Option<String>,
    #[sqlx(rename = "address_line2")]
    pub line2: Option<String>,
    #[sqlx(rename = "address_city")]
    pub city: Option<String>,
    #[sqlx(rename = "address_region")]
    pub region: Option<String>,
    #[sqlx(rename = "address_postal_code")]
    pub postal_code: Option<String>,
    #[sqlx(rename = "address_country")]
    pub country: Option<String>,
}

/// Body of `POST /accounts`. Money arrives as strings; anything unknown is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "account_number": "ACC-000123",
    "debtor_name": "Jane Doe",
    "email": "jane@example.com",
    "phone": "+1 201 555 0134",
    "address": {"line1": "1 Main St", "city": "Springfield", "region": "NJ", "postal_code": "07081", "country": "US"},
    "timezone": "America/New_York",
    "original_balance": "1250.00",
    "currency": "USD",
    "due_date": "2026-01-15",
    "tags": ["priority"],
    "custom_fields": {"portfolio": "Q1"}
}))]
pub struct CreateAccount {
    pub account_number: Option<String>,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    /// An IANA zone. Absent (or `UTC`): derived from the address's US ZIP code or
    /// one-zone country, then the phone's prefix (`timezone_source` says which).
    pub timezone: Option<String>,
    pub status: Option<AccountStatus>,
    pub original_balance: String,
    pub current_balance: Option<String>,
    pub currency: String,
    pub due_date: Option<NaiveDate>,
    pub assigned_agent_id: Option<Uuid>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
    /// Any JSON object of at most 16 KiB serialized whose objects nest at most 20 deep
    /// (`custom_fields` itself is the first level; arrays add none).
    pub custom_fields: Option<Map<String, Value>>,
    pub do_not_call: Option<bool>,
    pub do_not_email: Option<bool>,
    pub cease_communication: Option<bool>,
    /// The live portfolio the account belongs to (managers and admins).
    pub portfolio_id: Option<Uuid>,
}

/// Body of `PATCH /accounts/{id}`: absent fields stay, `null` clears nullable ones.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccount {
    pub account_number: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub external_ref: Option<Option<String>>,
    pub debtor_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub phone: Option<Option<String>>,
    pub address: Option<Address>,
    /// An IANA zone, kept as given; `UTC` derives it again from the address and phone,
    /// as a changed address or phone does a derived zone.
    pub timezone: Option<String>,
    pub status: Option<AccountStatus>,
    pub original_balance: Option<String>,
    pub current_balance: Option<String>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub due_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "nullable")]
    pub assigned_agent_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    pub next_action_at: Option<Option<DateTime<Utc>>>,
    pub tags: Option<Vec<String>>,
    /// Any JSON object of at most 16 KiB serialized whose objects nest at most 20 deep
    /// (`custom_fields` itself is the first level; arrays add none).
    pub custom_fields: Option<Map<String, Value>>,
    pub do_not_call: Option<bool>,
    pub do_not_email: Option<bool>,
    pub cease_communication: Option<bool>,
    /// A live portfolio, or `null` for none (managers and admins).
    #[serde(default, deserialize_with = "nullable")]
    pub portfolio_id: Option<Option<Uuid>>,
}

/// Fields an agent may change on an account assigned to them.
const WORKFLOW_FIELDS: &[&str] = &[
    "status",
    "next_action_at",
    "tags",
    "custom_fields",
    "do_not_call",
    "do_not_email",
    "cease_communication",
];

impl PatchAccount {
    /// Names of the fields present in the body.
    pub fn present_fields(&self) -> Vec<&'static str> {
        let present = [
            ("account_number", self.account_number.is_some()),
            ("external_ref", self.external_ref.is_some()),
            ("debtor_name", self.debtor_name.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
            ("address", self.address.is_some()),
            ("timezone", self.timezone.is_some()),
            ("status", self.status.is_some()),
            ("original_balance", self.original_balance.is_some()),
            ("current_balance", self.current_balance.is_some()),
            ("currency", self.currency.is_some()),
            ("due_date", self.due_date.is_some()),
            ("assigned_agent_id", self.assigned_agent_id.is_some()),
            ("next_action_at", self.next_action_at.is_some()),
            ("tags", self.tags.is_some()),
            ("custom_fields", self.custom_fields.is_some()),
            ("do_not_call", self.do_not_call.is_some()),
            ("do_not_email", self.do_not_email.is_some()),
            ("cease_communication", self.cease_communication.is_some()),
            ("portfolio_id", self.portfolio_id.is_some()),
        ];
        present.into_iter().filter(|(_, p)| *p).map(|(name, _)| name).collect()
    }

    /// Present fields outside the agent's workflow set.
    pub fn non_workflow_fields(&self) -> Vec<&'static str> {
        self.present_fields().into_iter().filter(|f| !WORKFLOW_FIELDS.contains(f)).collect()
    }

    /// Fields of this patch that would lift a legal block the account has now: clearing
    /// a contact restriction (`true` to `false`), or moving it out of `disputed`. Setting
    /// a restriction, or restating one, lifts nothing.
    pub fn lifted_blocks(&self, current: &AccountFields) -> Vec<&'static str> {
        let mut lifted = Vec::new();
        if leaves_dispute(current.status, self.status) {
            lifted.push("status");
        }
        for (field, now, next) in [
            ("do_not_call", current.do_not_call, self.do_not_call),
            ("do_not_email", current.do_not_email, self.do_not_email),
            ("cease_communication", current.cease_communication, self.cease_communication),
        ] {
            if now && next == Some(false) {
                lifted.push(field);
            }
        }
        lifted
    }
}

/// Whether setting `next` moves an account in `current` out of `disputed`.
pub fn leaves_dispute(current: AccountStatus, next: Option<AccountStatus>) -> bool {
    current == AccountStatus::Disputed && next.is_some_and(|next| next != AccountStatus::Disputed)
}

/// Whether moving an account in `current` status with `balance` owed to `next` resolves
/// it (`paid`, `settled`, `closed`) while something is still owed.
pub fn resolves_owing(current: AccountStatus, balance: Decimal, next: Option<AccountStatus>) -> bool {
    balance > Decimal::ZERO && next.is_some_and(|next| next.is_resolved() && next != current)
}

/// Why a role without `ResolveOwingAccount` is refused such a status.
pub const RESOLVE_OWING_REFUSAL: &str = "only a manager or admin may close, settle or mark paid an account while a balance is owed";

/// Why a role that may not lift legal blocks is refused `field`.
pub fn lift_refusal(field: &str) -> &'static str {
    if field == "status" {
        "only a manager or admin may move an account out of disputed"
    } else {
        "only a manager or admin may clear a contact restriction; your role may only set it"
    }
}

/// The complete, validated writable state of an account.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountFields {
    pub account_number: Option<String>,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Address,
    /// The debtor's zone: given, or derived from the address and phone when not.
    pub zone: DebtorZone,
    pub status: AccountStatus,
    pub original_balance: Decimal,
    pub current_balance: Decimal,
    pub currency: Currency,
    pub due_date: Option<NaiveDate>,
    pub assigned_agent_id: Option<Uuid>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub cease_communication: bool,
    pub portfolio_id: Option<Uuid>,
}

/// Collects every field error of a body instead of stopping at the first.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.errors.push(FieldError::new(field, message))).ok()
    }

    fn optional(&mut self, field: &str, value: Option<String>, validate: impl Fn(&str) -> Result<String, String>) -> Option<String> {
        let text = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
        self.check(field, validate(&text))
    }
}

pub const MAX_TAGS: usize = 50;
pub const MAX_TEXT: usize = 500;
pub const MAX_CUSTOM_FIELDS_BYTES: usize = 16 * 1024;

pub fn account_number(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    let ok = (3..=32).contains(&upper.len())
        && upper.starts_with(|c: char| c.is_ascii_alphanumeric())
        && upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(upper)
    } else {
        Err("must be 3 to 32 letters, digits, `-` or `_`, starting with a letter or digit".to_owned())
    }
}

fn bounded_text(text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_TEXT {
        Err(format!("must be at most {MAX_TEXT} characters"))
    } else {
        Ok(text.to_owned())
    }
}

/// A debtor's name: shown as one line on every screen and filled into messages (an
/// email's subject among them), so nothing in it may break or reorder a line.
fn debtor_name(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("must not be empty".to_owned()),
        name => {
            super::text::check_one_line(name)?;
            bounded_text(name)
        }
    }
}

/// Trimmed, lowercased, unique and sorted; at most [`MAX_TAGS`].
pub fn tags(list: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for tag in list {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tag.len() > 64 || tag.chars().any(char::is_control) {
            return Err("each tag must be 1 to 64 printable characters".to_owned());
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    out.sort();
    Ok(out)
}

/// How deep `custom_fields` objects may nest: Elasticsearch maps the field as
/// `flattened`, whose `depth_limit` (20 by default) refuses a deeper document, which the
/// sync could then only dead-letter. Counted as its `FlattenedFieldParser` counts: the
/// `custom_fields` object itself is level 1, each object inside an object one more (an
/// empty one too), and arrays add no level.
pub const MAX_CUSTOM_FIELDS_DEPTH: usize = 20;

/// How deep the objects of `map` nest, counting as [`MAX_CUSTOM_FIELDS_DEPTH`] says, or
/// the first depth past `limit` once one is found. It walks with a stack of its own
/// (however deep the value, no call frame per level) and visits each value at most
/// once; bodies are parsed with serde_json's recursion limit (128) anyway, and
/// `custom_fields` is bounded in bytes before this runs.
fn object_depth(map: &Map<String, Value>, limit: usize) -> usize {
    let mut deepest = 1;
    // Each value with the depth of the object holding it.
    let mut pending: Vec<(&Value, usize)> = map.values().map(|v| (v, 1)).collect();
    while let Some((value, holder)) = pending.pop() {
        match value {
            Value::Object(inner) => {
                deepest = deepest.max(holder + 1);
                if deepest > limit {
                    break;
                }
                pending.extend(inner.values().map(|v| (v, holder + 1)));
            }
            Value::Array(items) => pending.extend(items.iter().map(|v| (v, holder))),
            _ => {}
        }
    }
    deepest
}

fn custom_fields(map: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let size = serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_CUSTOM_FIELDS_BYTES {
        return Err(format!("must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes of JSON"));
    }
    if object_depth(&map, MAX_CUSTOM_FIELDS_DEPTH) > MAX_CUSTOM_FIELDS_DEPTH {
        return Err(format!(
            "may nest objects at most {MAX_CUSTOM_FIELDS_DEPTH} deep, custom_fields itself counting as the first (arrays do not count)"
        ));
    }
    Ok(map)
}

fn address(checker: &mut Checker, input: Address) -> Address {
    Address {
        line1: checker.optional("address.line1", input.line1, bounded_text),
        line2: checker.optional("address.line2", input.line2, bounded_text),
        city: checker.optional("address.city", input.city, bounded_text),
        region: checker.optional("address.region", input.region, bounded_text),
        postal_code: checker.optional("address.postal_code", input.postal_code, bounded_text),
        country: checker.optional("address.country", input.country, validate_country),
    }
}

impl AccountFields {
    /// Validates a create body (`account_number: None` means "assign one");
    /// `custom_fields` is checked against `catalog`, and its defaults fill absent keys.
    pub fn from_create(input: CreateAccount, region: country::Id, catalog: &Catalog) -> Result<Self, Vec<FieldError>> {
        let mut c = Checker::default();
        let currency = c.check("currency", Currency::parse(&input.currency));
        let original = currency.and_then(|cur| c.check("original_balance", cur.parse_amount(&input.original_balance)));
        let current = match (&input.current_balance, currency) {
            (Some(text), Some(cur)) => c.check("current_balance", cur.parse_amount(text)),
            (None, _) => original,
            (Some(_), None) => None,
        };
        let phone = c.optional("phone", input.phone, |p| normalize_phone(p, region));
        let address = address(&mut c, input.address.unwrap_or_default());
        let given = input.timezone.and_then(|tz| c.check("timezone", validate_timezone(&tz)));
        let fields = Self {
            account_number: input.account_number.and_then(|n| c.check("account_number", account_number(&n))),
            external_ref: c.optional("external_ref", input.external_ref, bounded_text),
            debtor_name: c.check("debtor_name", debtor_name(&input.debtor_name)).unwrap_or_default(),
            email: c.optional("email", input.email, normalize_email),
            zone: DebtorZone::resolve(given.as_deref(), &address, phone.as_deref(), region),
            phone,
            address,
            status: input.status.unwrap_or(AccountStatus::Active),
            original_balance: original.unwrap_or_default(),
            current_balance: current.unwrap_or_default(),
            currency: currency.unwrap_or_else(|| Currency::parse("USD").expect("USD is a currency")),
            due_date: input.due_date,
            assigned_agent_id: input.assigned_agent_id,
            next_action_at: input.next_action_at,
            tags: c.check("tags", tags(input.tags.unwrap_or_default())).unwrap_or_default(),
            custom_fields: c
                .check("custom_fields", custom_fields(input.custom_fields.unwrap_or_default()))
                .unwrap_or_default(),
            do_not_call: input.do_not_call.unwrap_or(false),
            do_not_email: input.do_not_email.unwrap_or(false),
            cease_communication: input.cease_communication.unwrap_or(false),
            portfolio_id: input.portfolio_id,
        };
        let fields = fields.typed(catalog, Mode::Create, &mut c);
        if c.errors.is_empty() { Ok(fields) } else { Err(c.errors) }
    }

    /// Applies a patch on top of the current state and validates the result; when the
    /// patch sends `custom_fields`, `currency` or `portfolio_id`, the whole of
    /// `custom_fields` is checked against `catalog` again.
    pub fn apply(mut self, patch: PatchAccount, region: country::Id, catalog: &Catalog) -> Result<Self, Vec<FieldError>> {
        let mut c = Checker::default();
        let retype = patch.custom_fields.is_some() || patch.currency.is_some() || patch.portfolio_id.is_some();
        if let Some(code) = &patch.currency
            && let Some(currency) = c.check("currency", Currency::parse(code))
        {
            self.currency = currency;
        }
        let currency = self.currency;
        if let Some(text) = &patch.original_balance
            && let Some(v) = c.check("original_balance", currency.parse_amount(text))
        {
            self.original_balance = v;
        }
        if let Some(text) = &patch.current_balance
            && let Some(v) = c.check("current_balance", currency.parse_amount(text))
        {
            self.current_balance = v;
        }
        if patch.currency.is_some() {
            for (field, amount) in [
                ("original_balance", self.original_balance),
                ("current_balance", self.current_balance),
            ] {
                if !currency.fits(amount) {
                    c.errors.push(FieldError::new(
                        field,
                        format!("has more decimal places than {} allows", currency.code()),
                    ));
                }
            }
        }
        if let Some(n) = patch.account_number {
            self.account_number = c.check("account_number", account_number(&n));
        }
        if let Some(v) = patch.external_ref {
            self.external_ref = c.optional("external_ref", v, bounded_text);
        }
        if let Some(v) = patch.debtor_name
            && let Some(name) = c.check("debtor_name", debtor_name(&v))
        {
            self.debtor_name = name;
        }
        if let Some(v) = patch.email {
            self.email = c.optional("email", v, normalize_email);
        }
        let located = patch.address.is_some() || patch.phone.is_some();
        if let Some(v) = patch.phone {
            self.phone = c.optional("phone", v, |p| normalize_phone(p, region));
        }
        if let Some(v) = patch.address {
            self.address = address(&mut c, v);
        }
        if let Some(v) = patch.timezone {
            if let Some(tz) = c.check("timezone", validate_timezone(&v)) {
                self.zone = DebtorZone::resolve(Some(&tz), &self.address, self.phone.as_deref(), region);
            }
        } else if located && self.zone.source != ZoneSource::Given {
            self.zone = DebtorZone::derive(&self.address, self.phone.as_deref(), region);
        }
        if let Some(v) = patch.status {
            self.status = v;
        }
        if let Some(v) = patch.due_date {
            self.due_date = v;
        }
        if let Some(v) = patch.assigned_agent_id {
            self.assigned_agent_id = v;
        }
        if let Some(v) = patch.next_action_at {
            self.next_action_at = v;
        }
        if let Some(v) = patch.tags
            && let Some(t) = c.check("tags", tags(v))
        {
            self.tags = t;
        }
        if let Some(v) = patch.custom_fields
            && let Some(m) = c.check("custom_fields", custom_fields(v))
        {
            self.custom_fields = m;
        }
        self.do_not_call = patch.do_not_call.unwrap_or(self.do_not_call);
        self.do_not_email = patch.do_not_email.unwrap_or(self.do_not_email);
        self.cease_communication = patch.cease_communication.unwrap_or(self.cease_communication);
        if let Some(v) = patch.portfolio_id {
            self.portfolio_id = v;
        }
        if retype {
            self = self.typed(catalog, Mode::Patch, &mut c);
        }
        if c.errors.is_empty() { Ok(self) } else { Err(c.errors) }
    }

    /// The fields with `custom_fields` and `portfolio_id` replaced, checked as a change
    /// sending both is (a bulk update's row).
    pub fn with_custom_fields(
        mut self,
        map: Map<String, Value>,
        portfolio_id: Option<Uuid>,
        catalog: &Catalog,
    ) -> Result<Self, Vec<FieldError>> {
        let mut c = Checker::default();
        self.portfolio_id = portfolio_id;
        if let Some(map) = c.check("custom_fields", custom_fields(map)) {
            self.custom_fields = map;
            self = self.typed(catalog, Mode::Patch, &mut c);
        }
        if c.errors.is_empty() { Ok(self) } else { Err(c.errors) }
    }

    /// `custom_fields` checked against `catalog` for this account's currency and
    /// portfolio, each error collected in `c`.
    fn typed(mut self, catalog: &Catalog, mode: Mode, c: &mut Checker) -> Self {
        let map = std::mem::take(&mut self.custom_fields);
        match catalog.validate(map, self.currency, self.portfolio_id, mode) {
            Ok(typed) => self.custom_fields = typed,
            Err(errors) => c.errors.extend(errors),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bucket_boundaries() {
        let cases = [
            (0, "current"),
            (1, "1-29"),
            (29, "1-29"),
            (30, "30-59"),
            (59, "30-59"),
            (60, "60-89"),
            (89, "60-89"),
            (90, "90-119"),
            (119, "90-119"),
            (120, "120+"),
        ];
        for (days, expected) in cases {
            let got = serde_json::to_value(Bucket::from_days_past_due(days)).unwrap();
            assert_eq!(got, expected, "{days} days");
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Elasticsearch's own boundary case (`FlattenedFieldParserTests.testDepthLimit`):
    /// refused at a limit of 2, indexed at 3.
    #[test]
    fn custom_fields_depth_counts_objects_as_elasticsearch_does() {
        let depth = |value: Value| object_depth(&object(value), usize::MAX);
        let elastics = json!({"parent1": {"key": "value"}, "parent2": [{"key": {"key": "value"}}]});
        assert_eq!(depth(elastics), 3);
        assert_eq!(depth(json!({})), 1);
        assert_eq!(depth(json!({"a": 1, "b": [1, [2, [3]]]})), 1, "arrays add no level");
        assert_eq!(depth(json!({"a": {}})), 2, "an empty object is a level");
        assert_eq!(depth(json!({"a": [[{"b": [{}]}]]})), 3);
    }

    /// A value nested far deeper than any stack holds (built in code: the body parser
    /// stops at 128 levels) is measured without recursion, and only until it is too deep.
    #[test]
    fn custom_fields_depth_check_needs_no_stack_and_stops_at_the_limit() {
        // Built by hand: `json!` would serialize (and so recurse through) what it wraps.
        let wrap = |key: &str, value: Value| Map::from_iter([(key.to_owned(), value)]);
        let mut value = Value::from(1);
        for _ in 0..200_000 {
            value = Value::Array(vec![Value::Object(wrap("a", value))]);
        }
        let map = wrap("deep", value);
        assert_eq!(object_depth(&map, MAX_CUSTOM_FIELDS_DEPTH), MAX_CUSTOM_FIELDS_DEPTH + 1);
        assert_eq!(object_depth(&map, usize::MAX), 200_001);
        // Taken apart level by level: serde_json drops a value recursively.
        let mut parts: Vec<Value> = vec![Value::Object(map)];
        while let Some(part) = parts.pop() {
            match part {
                Value::Object(map) => parts.extend(map.into_iter().map(|(_, v)| v)),
                Value::Array(items) => parts.extend(items),
                _ => {}
            }
        }
    }

    #[test]
    fn days_past_due_counts_from_the_due_date() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let due = NaiveDate::from_ymd_opt(2026, 3, 1);
        assert_eq!(days_past_due(due, AccountStatus::Delinquent, today), 30);
        assert_eq!(days_past_due(due, AccountStatus::Paid, today), 0);
        assert_eq!(days_past_due(NaiveDate::from_ymd_opt(2026, 4, 1), AccountStatus::Active, today), 0);
    }
}

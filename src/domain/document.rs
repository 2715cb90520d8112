//! Documents as the index holds them: built from SQL rows by `store`, indexed by `search`.

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::account::{AccountStatus, Address};
use crate::domain::attachment::Kind;
use crate::domain::compliance::ContactInputs;
use crate::domain::custom_field::{Definition, FieldType, NUMBER_PLACES};
use crate::domain::debtor_zone::DebtorZone;
use crate::domain::payment::{Method, PaymentStatus};
use crate::domain::plan::PlanStatus;
use crate::domain::queue;

/// The kinds of document the index holds, one physical index (family) each: the two
/// the app searches, and the reporting ones only analysts read (Kibana), which the
/// embedded backend does not keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    Account,
    Payment,
    Activity,
    Promise,
    Plan,
    /// A day's KPI figures of one agent and portfolio (`kpi_documents`, migration 0053).
    KpiDay,
}

impl Entity {
    pub const ALL: [Entity; 6] = [
        Entity::Account,
        Entity::Payment,
        Entity::Activity,
        Entity::Promise,
        Entity::Plan,
        Entity::KpiDay,
    ];
    /// What the app's own searches read; every backend keeps these.
    pub const SEARCHED: [Entity; 2] = [Entity::Account, Entity::Payment];
    /// What only analysts read: Elasticsearch keeps these too.
    pub const REPORTING: [Entity; 4] = [Entity::Activity, Entity::Promise, Entity::Plan, Entity::KpiDay];

    /// The name outbox rows and search tasks use.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Account => "account",
            Entity::Payment => "payment",
            Entity::Activity => "activity",
            Entity::Promise => "promise",
            Entity::Plan => "plan",
            Entity::KpiDay => "kpi_day",
        }
    }

    /// The name of its index family (and of the CLI argument).
    pub fn plural(self) -> &'static str {
        match self {
            Entity::Account => "accounts",
            Entity::Payment => "payments",
            Entity::Activity => "activities",
            Entity::Promise => "promises",
            Entity::Plan => "plans",
            Entity::KpiDay => "kpi-days",
        }
    }

    /// Whether only analysts read it (a reporting index), not the app's searches.
    pub fn is_reporting(self) -> bool {
        Self::REPORTING.contains(&self)
    }

    pub fn parse(text: &str) -> Option<Entity> {
        Self::ALL.into_iter().find(|e| e.as_str() == text || e.plural() == text)
    }
}

/// The open promise to pay an account document shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenPromise {
    pub id: Uuid,
    pub amount: Decimal,
    pub due_date: NaiveDate,
}

/// The account's latest payment plan as its document shows it: the next instalment
/// owed (while the plan is active), and its misses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub id: Uuid,
    pub status: PlanStatus,
    /// Due date of the oldest instalment not paid in full; null unless active.
    pub next_due_date: Option<NaiveDate>,
    /// What is still owed on that instalment.
    pub next_amount: Option<Decimal>,
    pub missed_count: i64,
    /// Due date of the latest missed instalment.
    pub last_missed_on: Option<NaiveDate>,
}

/// What payments, activities, promises and plans add to an account document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    /// Sum and count of completed payments.
    pub total_paid: Decimal,
    pub payment_count: i64,
    pub last_payment_at: Option<DateTime<Utc>>,
    pub last_payment_amount: Option<Decimal>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub open_promise: Option<OpenPromise>,
    #[serde(default)]
    pub plan: Option<PlanSummary>,
}

/// An account in the index. Soft-deleted accounts stay, flagged by `deleted_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountDoc {
    pub id: Uuid,
    pub account_number: String,
    pub external_ref: Option<String>,
    pub debtor_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Address,
    pub timezone: String,
    pub status: AccountStatus,
    pub original_balance: Decimal,
    pub current_balance: Decimal,
    pub currency: String,
    pub due_date: Option<NaiveDate>,
    pub assigned_agent_id: Option<Uuid>,
    pub next_action_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub do_not_call: bool,
    pub do_not_email: bool,
    pub cease_communication: bool,
    /// The portfolio the account belongs to.
    #[serde(default)]
    pub portfolio_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub search_version: i64,
    #[serde(default)]
    pub summary: AccountSummary,
    /// Inputs of the work queue and the contact filter: the index's derived fields,
    /// never a reader's.
    #[serde(skip)]
    pub work: WorkInputs,
    /// Where `timezone` came from and the other zones the debtor may be in: read from
    /// SQL with the account, `None` in the index, which does not hold them.
    #[serde(skip)]
    pub zone: Option<DebtorZone>,
}

impl AccountDoc {
    /// The work queue's sort key (see [`queue::rank`]).
    pub fn queue_rank(&self) -> i64 {
        queue::rank(self.due_date, self.current_balance, self.summary.last_contact_at, self.created_at)
    }
}

/// What the index needs to answer "contactable now" and to order the work queue, built
/// from SQL with the account's document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkInputs {
    pub contact: ContactInputs,
    /// Due date of the latest broken promise to pay.
    pub broken_promise_due: Option<NaiveDate>,
    /// Due date of the oldest instalment of the active plan that was missed and is
    /// still unpaid.
    pub plan_missed_due: Option<NaiveDate>,
    /// The custom fields' values typed by their live definitions; a key without one, or a
    /// value its definition does not accept, is left out (it stays in `custom_fields`).
    pub custom: Vec<CustomValue>,
    /// The portfolio's name, for reports (Kibana) to group by.
    pub portfolio_name: Option<String>,
    /// The account's live documents (files), oldest first: their kinds and names are
    /// facets, their words are searched.
    pub files: Vec<FileFacts>,
}

/// What the index holds of one document (file) kept with an account.
#[derive(Clone, Debug, PartialEq)]
pub struct FileFacts {
    pub kind: Kind,
    pub name: String,
    /// Its words, once processing read them.
    pub text: Option<String>,
}

/// The most documents (files) of one account the index holds, oldest first.
pub const MAX_INDEXED_FILES: usize = 200;
/// The most characters of document text the index holds for one account, in all.
pub const MAX_INDEXED_FILE_CHARS: usize = 500_000;

impl WorkInputs {
    /// The documents' kinds, each once (a facet counts an account once per value).
    pub fn file_kinds(&self) -> Vec<&'static str> {
        let kinds: std::collections::BTreeSet<&'static str> = self.files.iter().map(|f| f.kind.as_str()).collect();
        kinds.into_iter().collect()
    }

    /// The documents' names, each once.
    pub fn file_names(&self) -> Vec<&str> {
        let names: std::collections::BTreeSet<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        names.into_iter().collect()
    }

    /// The documents' words, each document's text in turn until
    /// [`MAX_INDEXED_FILE_CHARS`].
    pub fn file_words(&self) -> Vec<&str> {
        let mut budget = MAX_INDEXED_FILE_CHARS;
        let mut words = Vec::new();
        for text in self.files.iter().filter_map(|f| f.text.as_deref()) {
            let chars = text.chars().count();
            if chars > budget {
                break;
            }
            budget -= chars;
            words.push(text);
        }
        words
    }
}

/// One custom field's value as the index holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomValue {
    pub key: String,
    pub value: Typed,
}

/// A custom field's value by its definition's type, in the units searches compare.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    /// Text: found by its words when `searchable`, filtered as a whole when `filterable`.
    Text {
        text: String,
        searchable: bool,
        filterable: bool,
    },
    /// The chosen values of a list or multi_list field.
    Keywords(Vec<String>),
    Boolean(bool),
    /// Ten-thousandths (numbers have at most four decimal places).
    Number(i64),
    /// Ten-thousandths of the account's currency.
    Money(i64),
    /// Days since 1970-01-01.
    Date(i64),
}

/// `amount` in ten-thousandths, when it has at most four decimal places and fits.
pub fn ten_thousandths(amount: Decimal) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive;
    let scaled = amount * Decimal::from(10_i64.pow(NUMBER_PLACES));
    if scaled.fract().is_zero() { scaled.to_i64() } else { None }
}

impl CustomValue {
    /// The typed value of `value`, a value `definition` accepts in its canonical form
    /// ([`crate::domain::custom_field::Catalog::checked`]).
    pub fn of(definition: &Definition, value: &Value) -> Option<Self> {
        let decimal = |v: &Value| {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            text.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&text).ok())
        };
        let typed = match definition.field_type {
            FieldType::Text => Typed::Text {
                text: value.as_str()?.to_owned(),
                searchable: definition.flags.searchable,
                filterable: definition.flags.filterable,
            },
            FieldType::List => Typed::Keywords(vec![value.as_str()?.to_owned()]),
            FieldType::MultiList => Typed::Keywords(
                value
                    .as_array()?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
            ),
            FieldType::Boolean => Typed::Boolean(value.as_bool()?),
            FieldType::Number => Typed::Number(ten_thousandths(decimal(value)?)?),
            FieldType::Money => Typed::Money(ten_thousandths(decimal(value)?)?),
            FieldType::Date => Typed::Date(crate::domain::queue::days(value.as_str()?.parse::<NaiveDate>().ok()?)),
        };
        Some(Self {
            key: definition.key.clone(),
            value: typed,
        })
    }
}

/// A payment in the index, with the account fields its searches and filters need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentDoc {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub method: Method,
    pub status: PaymentStatus,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub failure_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub search_version: i64,
    pub account_number: String,
    pub debtor_name: String,
    pub assigned_agent_id: Option<Uuid>,
    /// The account is soft-deleted: its payments are hidden like the account.
    #[serde(default)]
    pub account_deleted: bool,
    /// The account's portfolio: its payments are seen by who sees the account.
    #[serde(default)]
    pub portfolio_id: Option<Uuid>,
}

/// A reporting document (an activity, a promise, a plan) as SQL builds it: its source
/// is what the index stores, shaped by the entity's template in `index-templates/`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportDoc {
    pub entity: Entity,
    pub id: Uuid,
    pub search_version: i64,
    pub source: Value,
}

/// A document of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Doc {
    Account(Box<AccountDoc>),
    Payment(Box<PaymentDoc>),
    Report(Box<ReportDoc>),
}

impl From<AccountDoc> for Doc {
    fn from(doc: AccountDoc) -> Self {
        Doc::Account(Box::new(doc))
    }
}

impl From<PaymentDoc> for Doc {
    fn from(doc: PaymentDoc) -> Self {
        Doc::Payment(Box::new(doc))
    }
}

impl From<ReportDoc> for Doc {
    fn from(doc: ReportDoc) -> Self {
        Doc::Report(Box::new(doc))
    }
}

impl Doc {
    fn entity(&self) -> Entity {
        match self {
            Doc::Account(_) => Entity::Account,
            Doc::Payment(_) => Entity::Payment,
            Doc::Report(d) => d.entity,
        }
    }

    fn key(&self) -> (Uuid, i64) {
        match self {
            Doc::Account(d) => (d.id, d.search_version),
            Doc::Payment(d) => (d.id, d.search_version),
            Doc::Report(d) => (d.id, d.search_version),
        }
    }
}

/// One change for the index: a document, or a tombstone for a purged entity.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexOp {
    pub entity: Entity,
    pub id: Uuid,
    pub version: i64,
    pub doc: Option<Doc>,
}

impl IndexOp {
    pub fn upsert(doc: impl Into<Doc>) -> Self {
        let doc = doc.into();
        let (id, version) = doc.key();
        Self {
            entity: doc.entity(),
            id,
            version,
            doc: Some(doc),
        }
    }

    pub fn tombstone(entity: Entity, id: Uuid, version: i64) -> Self {
        Self {
            entity,
            id,
            version,
            doc: None,
        }
    }
}

/// A document the search backend refused for good, kept for an operator.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub entity: String,
    pub entity_id: Uuid,
    pub version: i64,
    pub target: String,
    pub error_type: String,
    pub reason: String,
    pub document: Value,
}

/// Where a backend puts the documents it refused for good.
pub trait DeadLetters: Send + Sync {
    fn record<'a>(&'a self, letters: &'a [DeadLetter]) -> BoxFuture<'a, anyhow::Result<()>>;
}

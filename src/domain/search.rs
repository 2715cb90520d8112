//! Search queries (accounts, payments, payment statistics), independent of any backend.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::account::{AccountStatus, Bucket};
use super::attachment::Kind;
use super::compliance::{Channel, UtcWindow};
use super::custom_field::FieldType;
use super::payment::{Method, PaymentStatus};
use super::plan::PlanStatus;
pub use super::queue::Tier;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    Relevance,
    Balance,
    DueDate,
    NextAction,
    Updated,
    Name,
    /// The work queue's score (see `queue::rank`).
    Queue,
    /// A sortable custom field (number, money or date).
    Custom(CustomField),
}

impl SortField {
    pub const NAMES: [(&'static str, SortField); 6] = [
        ("balance", SortField::Balance),
        ("due_date", SortField::DueDate),
        ("next_action", SortField::NextAction),
        ("updated", SortField::Updated),
        ("name", SortField::Name),
        ("queue_score", SortField::Queue),
    ];

    /// The fields' names as a response shows them, accepted as sort keys too.
    pub const WIRE_NAMES: [(&'static str, SortField); 4] = [
        ("current_balance", SortField::Balance),
        ("next_action_at", SortField::NextAction),
        ("updated_at", SortField::Updated),
        ("debtor_name", SortField::Name),
    ];

    /// The field a sort key names: a short name or a wire name.
    pub fn named(name: &str) -> Option<SortField> {
        field_named(name, &Self::NAMES, &Self::WIRE_NAMES)
    }

    pub fn name(self) -> &'static str {
        match self {
            SortField::Relevance => "relevance",
            SortField::Custom(field) => field.key.name(),
            other => Self::NAMES
                .iter()
                .find(|(_, f)| *f == other)
                .map(|(n, _)| *n)
                .unwrap_or("relevance"),
        }
    }
}

/// The field `name` names among the short names and the wire names of a sort.
fn field_named<F: Copy>(name: &str, short: &[(&str, F)], wire: &[(&str, F)]) -> Option<F> {
    short.iter().chain(wire).find(|(n, _)| *n == name).map(|(_, f)| *f)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

/// Who an account is assigned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentFilter {
    Agent(Uuid),
    Unassigned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Facet {
    Status,
    Bucket,
    AssignedAgent,
    Tags,
    /// Accounts by portfolio; those without one under [`NO_PORTFOLIO`].
    Portfolio,
    /// Accounts by the kinds of their live documents (files).
    DocumentKind,
    /// Accounts by the names of their live documents (files).
    DocumentName,
    /// A filterable list, multi_list, boolean or text custom field.
    Custom(CustomField),
}

impl Facet {
    pub const ALL: [(&'static str, Facet); 7] = [
        ("status", Facet::Status),
        ("bucket", Facet::Bucket),
        ("assigned_agent_id", Facet::AssignedAgent),
        ("tags", Facet::Tags),
        ("portfolio_id", Facet::Portfolio),
        ("document_kind", Facet::DocumentKind),
        ("document_name", Facet::DocumentName),
    ];

    /// Whether the facet tells what documents accounts hold, which only those who read
    /// every account's documents may ask.
    pub fn about_documents(self) -> bool {
        matches!(self, Facet::DocumentKind | Facet::DocumentName)
    }

    /// Whether the facet counts values an agent's summary of an account hides (tags,
    /// custom fields, documents; see [`crate::domain::privacy::Access`]).
    pub fn over_hidden_fields(self) -> bool {
        matches!(self, Facet::Tags | Facet::Custom(_)) || self.about_documents()
    }

    pub fn name(self) -> &'static str {
        match self {
            Facet::Custom(field) => field.key.name(),
            other => Self::ALL.iter().find(|(_, f)| *f == other).map(|(n, _)| *n).unwrap_or_default(),
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// Position after the last hit of a page: its sort key and id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct After {
    pub key: SortKey,
    pub id: Uuid,
}

/// A hit's value for the sort. `Missing` sorts last in both directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SortKey {
    Score(f32),
    Int(i128),
    Missing,
}

/// Whose accounts the caller reads in full: a search finds accounts through the text of
/// their documents (files) only there, and filters, sorts, facets and matches the fields
/// an agent's summary hides only there ([`AccountQuery::hidden_owner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileReach {
    /// A query built for no caller (the work queue, the backends' own tests): no
    /// account's documents; the fields a summary hides in every account.
    None,
    /// The accounts assigned to this agent.
    Assigned(Uuid),
    /// Every account the query reaches.
    All,
}

/// The value the portfolio facet and filter use for accounts without a portfolio.
pub const NO_PORTFOLIO: &str = "none";

/// A terms facet (tags, agents, custom fields, payment methods, failure reasons) answers
/// at most this many values, the most frequent first, on both backends: values typed by
/// users (tags, failure reasons) must not grow an answer without a bound.
pub const FACET_SIZE: usize = 1000;

/// Text kept for the life of the process, once per distinct value. Only the names of
/// custom fields that have a definition are interned (a parameter naming another is
/// refused before), so what is kept is bounded by the definitions ever created.
pub fn intern(text: &str) -> &'static str {
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut interned = INTERNED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    match interned.get(text) {
        Some(kept) => kept,
        None => {
            let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
            interned.insert(kept);
            kept
        }
    }
}

/// A custom field as a search names it: `cf.<key>`, interned (see [`intern`]) so sorts
/// and facets naming one stay `Copy` and name themselves like the built-in ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldKey(&'static str);

impl FieldKey {
    pub const PREFIX: &'static str = "cf.";

    pub fn new(key: &str) -> Self {
        FieldKey(intern(&format!("{}{key}", Self::PREFIX)))
    }

    /// The definition's key.
    pub fn key(self) -> &'static str {
        &self.0[Self::PREFIX.len()..]
    }

    /// `cf.<key>`: the parameter, sort and facet name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

/// How the index holds a custom field's values (see [`crate::domain::document::Typed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustomKind {
    /// List and multi_list values, and text values as a whole (filterable text).
    Keyword,
    Boolean,
    /// Ten-thousandths.
    Number,
    /// Ten-thousandths of the account's currency.
    Money,
    /// Days since 1970-01-01.
    Date,
}

impl CustomKind {
    pub fn of(field_type: FieldType) -> Self {
        match field_type {
            FieldType::Text | FieldType::List | FieldType::MultiList => CustomKind::Keyword,
            FieldType::Boolean => CustomKind::Boolean,
            FieldType::Number => CustomKind::Number,
            FieldType::Money => CustomKind::Money,
            FieldType::Date => CustomKind::Date,
        }
    }

    /// Whether values are integers in the index, compared and sorted as such.
    pub fn is_ordered(self) -> bool {
        matches!(self, CustomKind::Number | CustomKind::Money | CustomKind::Date)
    }
}

/// A custom field a query filters, sorts or facets on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomField {
    pub key: FieldKey,
    pub kind: CustomKind,
}

/// What a custom field's value must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomTest {
    /// One of these values (keyword and boolean fields: `true` or `false`).
    OneOf(Vec<String>),
    /// Within `[lo, hi]`, in the kind's integer units (ordered fields).
    Range { lo: Option<i64>, hi: Option<i64> },
    /// The account has a value (`true`) or none (`false`).
    Exists(bool),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomFilter {
    pub field: CustomField,
    pub test: CustomTest,
}

/// How far a search counts its matches, as Elasticsearch's `track_total_hits`: every
/// one, or up to a bound past which the total says only "at least this many". The
/// lists count up to [`Counted::LIST`] unless asked for an exact total; the service's
/// own searches (the dashboard's portfolio, the queue's tiers) count every match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Exact,
    UpTo(u64),
}

impl Counted {
    /// Elasticsearch's default bound, which the lists keep.
    pub const LIST: Counted = Counted::UpTo(10_000);

    /// `matches` counted this far: the total a page reports, and whether more match.
    pub fn total(self, matches: u64) -> (u64, bool) {
        match self {
            Counted::UpTo(bound) if matches > bound => (bound, true),
            _ => (matches, false),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccountQuery {
    pub text: Option<String>,
    pub statuses: Vec<AccountStatus>,
    pub agent: Option<AgentFilter>,
    pub tags: Vec<String>,
    /// The account holds a live document of one of these kinds.
    pub document_kinds: Vec<Kind>,
    /// Whose accounts the caller reads in full: the text matches their documents' words
    /// only there, and the query uses the fields a summary hides only there.
    pub file_reach: FileReach,
    pub min_balance: Option<Decimal>,
    pub max_balance: Option<Decimal>,
    pub due_from: Option<NaiveDate>,
    pub due_to: Option<NaiveDate>,
    pub next_action_before: Option<DateTime<Utc>>,
    pub next_action_after: Option<DateTime<Utc>>,
    pub buckets: Vec<Bucket>,
    pub do_not_call: Option<bool>,
    pub do_not_email: Option<bool>,
    pub cease_communication: Option<bool>,
    pub include_deleted: bool,
    pub has_open_promise: Option<bool>,
    /// Contact allowed now on a channel, by the document's guard inputs.
    pub contactable: Option<Contactable>,
    /// One tier of the work queue.
    pub tier: Option<Tier>,
    /// The latest plan is active.
    pub has_plan: Option<bool>,
    /// The latest plan's status is one of these.
    pub plan_statuses: Vec<PlanStatus>,
    /// The next instalment of an active plan is due before this day.
    pub plan_next_before: Option<NaiveDate>,
    /// The account's portfolio is one of these (`None`: the account has none).
    pub portfolios: Vec<Option<Uuid>>,
    /// Access scope: only accounts in no portfolio or in one of these (`None`: no
    /// restriction; an empty list: the accounts in no portfolio).
    pub portfolio_scope: Option<Vec<Uuid>>,
    /// Every one holds.
    pub custom: Vec<CustomFilter>,
    pub sort: Sort,
    pub page_size: usize,
    pub after: Option<After>,
    pub facets: Vec<Facet>,
    /// How far the total is counted.
    pub counted: Counted,
    /// Delinquency is computed against this day (UTC), so no nightly job is needed.
    pub today: NaiveDate,
}

impl AccountQuery {
    /// Everything, newest change first: the base that parameters refine.
    pub fn new(today: NaiveDate) -> Self {
        Self {
            text: None,
            statuses: Vec::new(),
            agent: None,
            tags: Vec::new(),
            document_kinds: Vec::new(),
            file_reach: FileReach::None,
            min_balance: None,
            max_balance: None,
            due_from: None,
            due_to: None,
            next_action_before: None,
            next_action_after: None,
            buckets: Vec::new(),
            do_not_call: None,
            do_not_email: None,
            cease_communication: None,
            include_deleted: false,
            has_open_promise: None,
            contactable: None,
            tier: None,
            has_plan: None,
            plan_statuses: Vec::new(),
            plan_next_before: None,
            portfolios: Vec::new(),
            portfolio_scope: None,
            custom: Vec::new(),
            sort: Sort {
                field: SortField::Updated,
                descending: true,
            },
            page_size: 25,
            after: None,
            facets: Vec::new(),
            counted: Counted::Exact,
            today,
        }
    }

    /// The agent in whose accounts alone the query may use the fields a summary hides:
    /// the caller, when they read only their own accounts in full; `None` when those
    /// fields reach every account the query does.
    ///
    /// What a role cannot read, it cannot filter, sort, facet or match on. An agent reads
    /// a summary of the accounts assigned to others or to no one
    /// ([`crate::domain::privacy::Access::Summary`]: no tags, custom fields, address or
    /// external reference), so a search of theirs uses those fields only in their own
    /// accounts. This is the one statement of the rule that both backends translate: a
    /// condition or a sort on a hidden field holds only in the owner's accounts
    /// ([`Self::owner_limit`]), a facet over hidden fields counts only those
    /// ([`Self::facet_owner`]), and a word of `text` matches a hidden field only there.
    /// The name, account number, email and phone, by which any agent finds any caller,
    /// match everywhere.
    pub fn hidden_owner(&self) -> Option<Uuid> {
        match self.file_reach {
            FileReach::Assigned(agent) => Some(agent),
            FileReach::None | FileReach::All => None,
        }
    }

    /// Whether the query selects or orders accounts by a field a summary hides.
    pub fn selects_by_hidden_fields(&self) -> bool {
        !self.tags.is_empty()
            || !self.custom.is_empty()
            || !self.document_kinds.is_empty()
            || matches!(self.sort.field, SortField::Custom(_))
    }

    /// The agent whose accounts alone the query finds, because it selects or orders
    /// accounts by a field a summary hides. A query's conditions all hold together, so
    /// adding `assigned_agent_id = owner` to them limits each hidden condition (a
    /// negation too: `.exists=false`) to the owner's accounts, and a sort by a hidden
    /// field then orders only those.
    pub fn owner_limit(&self) -> Option<Uuid> {
        self.hidden_owner().filter(|_| self.selects_by_hidden_fields())
    }

    /// The agent whose accounts alone `facet` counts among the matches: a facet over
    /// hidden fields counts only the owner's (`None`: every match).
    pub fn facet_owner(&self, facet: Facet) -> Option<Uuid> {
        self.hidden_owner().filter(|_| facet.over_hidden_fields())
    }
}

/// Accounts whose document says contact on `channel` is allowed at `now`
/// ([`crate::domain::compliance::ContactInputs::allow`]): the channel is not blocked
/// whatever the time, calls are open (for calls), and `now` is inside the window when
/// the channel has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contactable {
    pub channel: Channel,
    pub now: DateTime<Utc>,
}

impl Contactable {
    /// The minutes of the UTC day a window must contain (either one).
    pub fn minutes(&self) -> [i32; 2] {
        UtcWindow::minutes_of(self.now)
    }
}

/// Days-past-due bounds `[min, max]` of a bucket (`max` open for 120+).
pub fn bucket_days(bucket: Bucket) -> (i64, Option<i64>) {
    match bucket {
        Bucket::Current => (i64::MIN, Some(0)),
        Bucket::Days1To29 => (1, Some(29)),
        Bucket::Days30To59 => (30, Some(59)),
        Bucket::Days60To89 => (60, Some(89)),
        Bucket::Days90To119 => (90, Some(119)),
        Bucket::Days120Plus => (120, None),
    }
}

pub const ALL_BUCKETS: [Bucket; 6] = [
    Bucket::Current,
    Bucket::Days1To29,
    Bucket::Days30To59,
    Bucket::Days60To89,
    Bucket::Days90To119,
    Bucket::Days120Plus,
];

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Current => "current",
            Bucket::Days1To29 => "1-29",
            Bucket::Days30To59 => "30-59",
            Bucket::Days60To89 => "60-89",
            Bucket::Days90To119 => "90-119",
            Bucket::Days120Plus => "120+",
        }
    }

    pub fn parse(text: &str) -> Option<Bucket> {
        ALL_BUCKETS.into_iter().find(|b| b.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentSortField {
    Relevance,
    ReceivedAt,
    Amount,
    Updated,
}

impl PaymentSortField {
    pub const NAMES: [(&'static str, PaymentSortField); 3] = [
        ("received_at", PaymentSortField::ReceivedAt),
        ("amount", PaymentSortField::Amount),
        ("updated", PaymentSortField::Updated),
    ];

    /// The fields' names as a response shows them, where they differ from the short ones.
    pub const WIRE_NAMES: [(&'static str, PaymentSortField); 1] = [("updated_at", PaymentSortField::Updated)];

    /// The field a sort key names: a short name or a wire name.
    pub fn named(name: &str) -> Option<PaymentSortField> {
        field_named(name, &Self::NAMES, &Self::WIRE_NAMES)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, f)| *f == self).map_or("relevance", |(n, _)| *n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentSort {
    pub field: PaymentSortField,
    pub descending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentFacet {
    Status,
    Method,
    /// What failed payments were refused for (the payments without a reason have none).
    FailureReason,
}

impl PaymentFacet {
    pub const ALL: [(&'static str, PaymentFacet); 3] = [
        ("status", PaymentFacet::Status),
        ("method", PaymentFacet::Method),
        ("failure_reason", PaymentFacet::FailureReason),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or_default()
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PaymentQuery {
    pub text: Option<String>,
    pub statuses: Vec<PaymentStatus>,
    pub methods: Vec<Method>,
    pub min_amount: Option<Decimal>,
    pub max_amount: Option<Decimal>,
    /// `received_at` in `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub account_id: Option<Uuid>,
    pub agent: Option<AgentFilter>,
    /// Access scope, as [`AccountQuery::portfolio_scope`]: the payments of accounts in no
    /// portfolio or in one of these.
    pub portfolio_scope: Option<Vec<Uuid>>,
    /// Also the payments of deleted accounts (managers only).
    pub include_deleted: bool,
    pub sort: PaymentSort,
    pub page_size: usize,
    pub after: Option<After>,
    pub facets: Vec<PaymentFacet>,
    /// How far the total is counted.
    pub counted: Counted,
}

impl Default for PaymentQuery {
    /// Everything, most recently received first.
    fn default() -> Self {
        Self {
            text: None,
            statuses: Vec::new(),
            methods: Vec::new(),
            min_amount: None,
            max_amount: None,
            from: None,
            to: None,
            account_id: None,
            agent: None,
            portfolio_scope: None,
            include_deleted: false,
            sort: PaymentSort {
                field: PaymentSortField::ReceivedAt,
                descending: true,
            },
            page_size: 25,
            after: None,
            facets: Vec::new(),
            counted: Counted::Exact,
        }
    }
}

/// Payment statistics over local days of a timezone, resolved to UTC instants so a
/// backend only compares timestamps.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsQuery {
    /// Start of each local day from `from` to `to`, then the end of `to`: `days + 1` instants.
    pub day_starts: Vec<DateTime<Utc>>,
    pub today: (DateTime<Utc>, DateTime<Utc>),
    pub this_week: (DateTime<Utc>, DateTime<Utc>),
    pub this_month: (DateTime<Utc>, DateTime<Utc>),
    /// Access scope, as [`PaymentQuery::portfolio_scope`].
    pub portfolio_scope: Option<Vec<Uuid>>,
}

/// The instant a local date starts in `tz` (the first valid local time of that day).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut time = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A DST gap at midnight: the day starts at the first local time that exists.
    for _ in 0..48 {
        if let Some(t) = tz.from_local_datetime(&time).earliest() {
            return t.to_utc();
        }
        time += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The periods a statistics series is counted in: local days, ISO weeks (from Monday) or
/// calendar months.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub const ALL: [Interval; 3] = [Interval::Day, Interval::Week, Interval::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == text)
    }

    /// The first day of the period `day` is in.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Interval::Day => day,
            Interval::Week => day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Interval::Month => day.with_day(1).unwrap_or(day),
        }
    }
}

impl StatsQuery {
    /// Days `from..=to` and today's day, ISO week and month, in `tz`.
    pub fn new(tz: Tz, from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Self {
        let day_starts = from
            .iter_days()
            .take_while(|d| *d <= to.succ_opt().unwrap_or(to))
            .map(|d| start_of_day(tz, d))
            .collect();
        let next = |d: NaiveDate| d.succ_opt().unwrap_or(d);
        let week_start = Interval::Week.start_of(today);
        let month_start = Interval::Month.start_of(today);
        let next_month = (month_start + chrono::Months::new(1)).with_day(1).unwrap_or(month_start);
        Self {
            day_starts,
            today: (start_of_day(tz, today), start_of_day(tz, next(today))),
            this_week: (
                start_of_day(tz, week_start),
                start_of_day(tz, week_start + chrono::Duration::days(7)),
            ),
            this_month: (start_of_day(tz, month_start), start_of_day(tz, next_month)),
            portfolio_scope: None,
        }
    }

    /// The earliest and the end of every instant any figure looks at.
    pub fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let starts = [self.day_starts.first().copied(), Some(self.this_week.0), Some(self.this_month.0)];
        let ends = [self.day_starts.last().copied(), Some(self.this_week.1), Some(self.this_month.1)];
        (
            starts.into_iter().flatten().min().unwrap_or(self.today.0),
            ends.into_iter().flatten().max().unwrap_or(self.today.1),
        )
    }
}

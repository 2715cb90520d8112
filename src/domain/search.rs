//! The account search query: what a list request asks for, independent of any backend.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::account::{AccountStatus, Bucket};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    Relevance,
    Balance,
    DueDate,
    NextAction,
    Updated,
    Name,
}

impl SortField {
    pub const NAMES: [(&'static str, SortField); 5] = [
        ("balance", SortField::Balance),
        ("due_date", SortField::DueDate),
        ("next_action", SortField::NextAction),
        ("updated", SortField::Updated),
        ("name", SortField::Name),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortField::Relevance => "relevance",
            other => Self::NAMES
                .iter()
                .find(|(_, f)| *f == other)
                .map(|(n, _)| *n)
                .unwrap_or("relevance"),
        }
    }
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
}

impl Facet {
    pub const ALL: [(&'static str, Facet); 4] = [
        ("status", Facet::Status),
        ("bucket", Facet::Bucket),
        ("assigned_agent_id", Facet::AssignedAgent),
        ("tags", Facet::Tags),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or_default()
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

#[derive(Clone, Debug, PartialEq)]
pub struct AccountQuery {
    pub text: Option<String>,
    pub statuses: Vec<AccountStatus>,
    pub agent: Option<AgentFilter>,
    pub tags: Vec<String>,
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
    pub sort: Sort,
    pub page_size: usize,
    pub after: Option<After>,
    pub facets: Vec<Facet>,
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
            sort: Sort {
                field: SortField::Updated,
                descending: true,
            },
            page_size: 25,
            after: None,
            facets: Vec::new(),
            today,
        }
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

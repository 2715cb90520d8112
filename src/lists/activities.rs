//! `GET /api/v1/activities`: the contact timeline's filters, answered from SQL.

use uuid::Uuid;

use crate::domain::activity::{ActivityType, Outcome, from_wire};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::Result;
use crate::lists::params::{self, Param, Problems, schema};
use crate::lists::values::{self, instant};
use crate::store::activities::ActivityFilter;

/// The most accounts one request may name.
pub const MAX_ACCOUNTS: usize = 1000;

/// A parsed activity list request: the filter and the page asked for.
pub struct ActivityList {
    pub filter: ActivityFilter,
    pub page_size: u32,
    pub cursor: Option<String>,
}

struct Request {
    caller: Uuid,
    list: ActivityList,
}

/// The activity list's parameters, each declared once.
const PARAMS: &[Param<Request>] = &[
    Param::new("account_id", "At most 1000 accounts.", schema::ids, |r, v| {
        r.list
            .filter
            .account_ids
            .extend(v.each(|v| Uuid::parse_str(v).ok(), "an account id"))
    }),
    Param::new("agent_id", "A user id or `me`.", schema::text, |r, v| {
        r.list.filter.agent_id = match v.raw().trim() {
            "me" => Some(r.caller),
            _ => v.one(|v| Uuid::parse_str(v).ok(), "a user id or `me`"),
        }
    }),
    Param::new("type", "", schema::list::<ActivityType>, |r, v| {
        let types = v.each(from_wire::<ActivityType>, "an activity type");
        r.list.filter.types.extend(types);
    }),
    Param::new("outcome", "", schema::list::<Outcome>, |r, v| {
        let outcomes = v.each(from_wire::<Outcome>, "an outcome code");
        r.list.filter.outcomes.extend(outcomes);
    }),
    Param::new(
        "from",
        "Occurred at or after: an RFC 3339 time, or a date (its first instant, UTC).",
        schema::text,
        |r, v| r.list.filter.from = v.one(instant, values::DATE_OR_TIME),
    ),
    Param::new(
        "to",
        "Occurred before: an RFC 3339 time, or a date (its first instant, UTC).",
        schema::text,
        |r, v| r.list.filter.to = v.one(instant, values::DATE_OR_TIME),
    ),
    Param::new(
        "include_deleted",
        "Activities of soft-deleted accounts too (managers and admins).",
        schema::one::<bool>,
        |r, v| r.list.filter.include_deleted = v.boolean().unwrap_or(false),
    ),
    Param::new("page_size", "", schema::page_size, |r, v| r.list.page_size = v.page_size() as u32),
    Param::new("cursor", "`next_cursor` of the previous page.", schema::text, |r, v| {
        r.list.cursor = Some(v.raw().to_owned())
    }),
];

params::described_by!(
    /// The activity list's parameters.
    ActivityListParams,
    PARAMS
);

/// Parses the activity list's parameters for `caller`; every bad one is named at once.
pub fn parse(raw: &str, caller: &Principal) -> Result<ActivityList> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        list: ActivityList {
            filter: ActivityFilter::default(),
            page_size: crate::lists::DEFAULT_PAGE_SIZE,
            cursor: None,
        },
    };
    params::read(raw, PARAMS, &mut request, &mut p);
    let list = request.list;
    if list.filter.account_ids.len() > MAX_ACCOUNTS {
        p.push("account_id", format!("at most {MAX_ACCOUNTS} accounts at once"));
    }
    if let (Some(from), Some(to)) = (list.filter.from, list.filter.to)
        && from >= to
    {
        p.push("from", "must be before to");
    }
    p.finish()?;
    if list.filter.include_deleted {
        caller.require(Action::RestoreAccount)?;
    }
    Ok(list)
}

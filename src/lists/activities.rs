//! `GET /api/v1/activities`: the contact timeline's filters, answered from SQL.

use uuid::Uuid;

use crate::domain::activity::{ActivityType, Outcome, from_wire};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::Result;
use crate::lists::params::{self, Param, Problems};
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
    Param::new("account_id", |r, v| {
        r.list
            .filter
            .account_ids
            .extend(v.each(|v| Uuid::parse_str(v).ok(), "an account id"))
    }),
    Param::new("agent_id", |r, v| {
        r.list.filter.agent_id = match v.raw().trim() {
            "me" => Some(r.caller),
            _ => v.one(|v| Uuid::parse_str(v).ok(), "a user id or `me`"),
        }
    }),
    Param::new("type", |r, v| {
        let types = v.each(from_wire::<ActivityType>, "an activity type");
        r.list.filter.types.extend(types);
    }),
    Param::new("outcome", |r, v| {
        let outcomes = v.each(from_wire::<Outcome>, "an outcome code");
        r.list.filter.outcomes.extend(outcomes);
    }),
    Param::new("from", |r, v| r.list.filter.from = v.one(instant, values::DATE_OR_TIME)),
    Param::new("to", |r, v| r.list.filter.to = v.one(instant, values::DATE_OR_TIME)),
    Param::new("include_deleted", |r, v| {
        r.list.filter.include_deleted = v.boolean().unwrap_or(false)
    }),
    Param::new("page_size", |r, v| r.list.page_size = v.page_size() as u32),
    Param::new("cursor", |r, v| r.list.cursor = Some(v.raw().to_owned())),
];

/// The activity list's parameters as the API description shows them (a test keeps
/// their names those of [`PARAMS`]). Repeatable ones also take comma-separated values.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityListParams {
    /// At most 1000 accounts.
    pub account_id: Option<Vec<Uuid>>,
    /// A user id or `me`.
    pub agent_id: Option<String>,
    #[param(rename = "type")]
    pub kind: Option<Vec<ActivityType>>,
    pub outcome: Option<Vec<Outcome>>,
    /// Occurred at or after: an RFC 3339 time, or a date (its first instant, UTC).
    pub from: Option<String>,
    /// Occurred before: an RFC 3339 time, or a date (its first instant, UTC).
    pub to: Option<String>,
    /// Activities of soft-deleted accounts too (managers and admins).
    pub include_deleted: Option<bool>,
    #[param(minimum = 1, maximum = 200, default = 25)]
    pub page_size: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_described_parameters_are_the_parsed_ones() {
        use utoipa::IntoParams;
        let described: Vec<String> = ActivityListParams::into_params(|| None).into_iter().map(|p| p.name).collect();
        let parsed: Vec<&str> = PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(described, parsed);
    }
}

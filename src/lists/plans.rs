//! `GET /api/v1/plans`: payment plans by status, account and agent, answered from SQL
//! (plans are not an indexed entity) newest first with keyset pages.

use uuid::Uuid;

use crate::domain::plan::PlanStatus;
use crate::domain::principal::Principal;
use crate::error::Result;
use crate::lists::activities::MAX_ACCOUNTS;
use crate::lists::params::{self, Param, Problems, schema};
use crate::store::plans::PlanFilter;

/// A parsed plan list request: the filter and the page asked for.
pub struct PlanList {
    pub filter: PlanFilter,
    pub page_size: u32,
    pub cursor: Option<String>,
}

struct Request {
    caller: Uuid,
    list: PlanList,
}

/// The plan list's parameters, each declared once.
const PARAMS: &[Param<Request>] = &[
    Param::new("status", "", schema::list::<PlanStatus>, |r, v| {
        let statuses = v.each(PlanStatus::parse, "a plan status");
        r.list.filter.statuses.extend(statuses);
    }),
    Param::new("account_id", "At most 1000 accounts.", schema::ids, |r, v| {
        r.list
            .filter
            .account_ids
            .extend(v.each(|v| Uuid::parse_str(v).ok(), "an account id"))
    }),
    Param::new(
        "assigned_agent_id",
        "The agent the plan's account is assigned to: a user id, `me` or `unassigned`.",
        schema::text,
        |r, v| r.list.filter.agent = v.agent(r.caller),
    ),
    Param::new("page_size", "", schema::page_size, |r, v| r.list.page_size = v.page_size() as u32),
    Param::new("cursor", "`next_cursor` of the previous page.", schema::text, |r, v| {
        r.list.cursor = Some(v.raw().to_owned())
    }),
];

params::described_by!(
    /// The plan list's parameters.
    PlanListParams,
    PARAMS
);

/// Parses the plan list's parameters for `caller`; every bad one is named at once.
pub fn parse(raw: &str, caller: &Principal) -> Result<PlanList> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        list: PlanList {
            filter: PlanFilter::default(),
            page_size: crate::lists::DEFAULT_PAGE_SIZE,
            cursor: None,
        },
    };
    params::read(raw, PARAMS, &mut request, &mut p);
    if request.list.filter.account_ids.len() > MAX_ACCOUNTS {
        p.push("account_id", format!("at most {MAX_ACCOUNTS} accounts at once"));
    }
    p.finish()?;
    Ok(request.list)
}

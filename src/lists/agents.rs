//! `GET /api/v1/agents`: the people who work accounts, by name, for the managers who
//! assign accounts and read KPIs per agent (names, roles and teams; never emails).

use uuid::Uuid;

use crate::error::Result;
use crate::lists::MAX_PAGE_SIZE;
use crate::lists::params::{self, Param, Problems, schema};
use crate::store::users::DirectoryFilter;

/// A parsed directory request: the filter and the page asked for.
pub struct AgentList {
    pub filter: DirectoryFilter,
    pub page_size: u32,
    pub cursor: Option<String>,
}

/// The directory's parameters, each declared once.
const PARAMS: &[Param<AgentList>] = &[
    Param::new(
        "q",
        "Part of the name, in any case (at most 200 characters).",
        schema::text,
        |r, v| r.filter.name = v.text(),
    ),
    Param::new(
        "id",
        "Only these users (repeatable or a comma list; at most 200), to name the ids a page of accounts or KPIs holds.",
        schema::ids,
        |r, v| r.filter.ids.extend(v.each(|v| Uuid::parse_str(v).ok(), "a user id")),
    ),
    Param::new(
        "include_disabled",
        "Also list disabled users (default false).",
        schema::one::<bool>,
        |r, v| {
            if let Some(include) = v.boolean() {
                r.filter.include_disabled = include;
            }
        },
    ),
    Param::new("page_size", "", schema::page_size, |r, v| r.page_size = v.page_size() as u32),
    Param::new("cursor", "`next_cursor` of the previous page.", schema::text, |r, v| {
        r.cursor = Some(v.raw().to_owned())
    }),
];

params::described_by!(
    /// The agent directory's parameters.
    AgentListParams,
    PARAMS
);

/// Parses the directory's parameters; every bad one is named at once.
pub fn parse(raw: &str) -> Result<AgentList> {
    let mut p = Problems::default();
    let mut list = AgentList {
        filter: DirectoryFilter::default(),
        page_size: crate::lists::DEFAULT_PAGE_SIZE,
        cursor: None,
    };
    params::read(raw, PARAMS, &mut list, &mut p);
    if list.filter.ids.len() > MAX_PAGE_SIZE as usize {
        p.push("id", format!("at most {MAX_PAGE_SIZE} users at once"));
    }
    p.finish()?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description lists ids, each a UUID: an empty value is none of them (the
    /// fuzzer's negative-data check found `?id=&id=` answered as a list of everyone).
    #[test]
    fn an_empty_list_value_is_refused() {
        for raw in ["id=", "id=&id=", "id=,"] {
            assert!(parse(raw).is_err(), "{raw}");
        }
        assert!(parse("").is_ok());
        assert_eq!(parse(&format!("id={}", Uuid::nil())).unwrap().filter.ids, [Uuid::nil()]);
    }
}

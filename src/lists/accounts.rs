//! `GET /api/v1/accounts` (and the exports and bulk updates that take its filters): search, filters, sort, cursor and facets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::account::{AccountStatus, Bucket};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{AccountQuery, After, AgentFilter, Facet, Sort, SortField, SortKey};
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::values::{self, boolean};
use crate::lists::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

pub const MAX_QUERY_CHARS: usize = 200;

/// Collects parameter errors so one answer names every bad parameter.
#[derive(Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// A 400 naming every bad parameter, if there was one.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let detail = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::with_fields(Code::InvalidParameter, detail, self.0))
    }

    pub fn parse<T>(&mut self, field: &str, value: &str, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        let parsed = parse(value.trim());
        if parsed.is_none() {
            self.push(field, format!("`{value}` is not {expected}"));
        }
        parsed
    }
}

pub fn list_values(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// Parses the list parameters for `caller`. Unknown parameters are refused by name.
pub fn parse(raw: &str, caller: &Principal, today: NaiveDate) -> Result<AccountQuery> {
    let mut query = AccountQuery::new(today);
    let mut p = Problems::default();
    let mut sort: Option<Sort> = None;
    let mut cursor: Option<String> = None;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.as_ref();
        match key.as_ref() {
            "q" => {
                let text = value.trim();
                if text.chars().count() > MAX_QUERY_CHARS {
                    p.push("q", format!("must be at most {MAX_QUERY_CHARS} characters"));
                } else if !text.is_empty() {
                    query.text = Some(text.to_owned());
                }
            }
            "status" => {
                for v in list_values(value) {
                    query
                        .statuses
                        .extend(p.parse("status", v, AccountStatus::parse, "an account status"));
                }
            }
            "assigned_agent_id" => {
                query.agent = match value.trim() {
                    "me" => Some(AgentFilter::Agent(caller.user_id)),
                    "unassigned" => Some(AgentFilter::Unassigned),
                    other => p
                        .parse(
                            "assigned_agent_id",
                            other,
                            |v| Uuid::parse_str(v).ok(),
                            "a user id, `me` or `unassigned`",
                        )
                        .map(AgentFilter::Agent),
                }
            }
            "tags" => query.tags.extend(list_values(value).map(str::to_lowercase)),
            "min_balance" => query.min_balance = p.parse("min_balance", value, values::amount, values::AMOUNT),
            "max_balance" => query.max_balance = p.parse("max_balance", value, values::amount, values::AMOUNT),
            "due_from" => query.due_from = p.parse("due_from", value, values::date, values::DATE),
            "due_to" => query.due_to = p.parse("due_to", value, values::date, values::DATE),
            "next_action_before" => query.next_action_before = p.parse("next_action_before", value, values::time, values::TIME),
            "next_action_after" => query.next_action_after = p.parse("next_action_after", value, values::time, values::TIME),
            "bucket" => {
                for v in list_values(value) {
                    query
                        .buckets
                        .extend(p.parse("bucket", v, Bucket::parse, "a bucket (current, 1-29, 30-59, 60-89, 90-119, 120+)"));
                }
            }
            "do_not_call" => query.do_not_call = p.parse("do_not_call", value, boolean, "true or false"),
            "do_not_email" => query.do_not_email = p.parse("do_not_email", value, boolean, "true or false"),
            "cease_communication" => query.cease_communication = p.parse("cease_communication", value, boolean, "true or false"),
            "include_deleted" => query.include_deleted = p.parse("include_deleted", value, boolean, "true or false").unwrap_or(false),
            "has_open_promise" => query.has_open_promise = p.parse("has_open_promise", value, boolean, "true or false"),
            "sort" => {
                sort = p.parse(
                    "sort",
                    value,
                    parse_sort,
                    "a sort field (balance or current_balance, due_date, next_action or next_action_at, updated or updated_at, name or debtor_name; `-` for descending)",
                )
            }
            "page_size" => query.page_size = page_size(&mut p, value),
            "cursor" => cursor = Some(value.to_owned()),
            "facets" => {
                for v in list_values(value) {
                    let facet = p.parse(
                        "facets",
                        v,
                        |name| Facet::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
                        "a facet (status, bucket, assigned_agent_id, tags)",
                    );
                    query.facets.extend(facet.filter(|f| !query.facets.contains(f)));
                }
            }
            other => p.push(other, "unknown parameter"),
        }
    }
    if let (Some(min), Some(max)) = (query.min_balance, query.max_balance)
        && min > max
    {
        p.push("min_balance", "must not exceed max_balance");
    }
    if let (Some(from), Some(to)) = (query.due_from, query.due_to)
        && from > to
    {
        p.push("due_from", "must not be after due_to");
    }
    if let (Some(after), Some(before)) = (query.next_action_after, query.next_action_before)
        && after >= before
    {
        p.push("next_action_after", "must be before next_action_before");
    }
    query.sort = sort.unwrap_or(if query.text.is_some() {
        Sort {
            field: SortField::Relevance,
            descending: true,
        }
    } else {
        Sort {
            field: SortField::Updated,
            descending: true,
        }
    });
    if let Some(cursor) = cursor {
        let relevance = query.sort.field == SortField::Relevance;
        query.after = decode_cursor(&cursor, &sort_signature(query.sort), relevance)
            .map_err(|m| p.push("cursor", m))
            .ok();
    }
    p.finish()?;
    if query.include_deleted {
        caller.require(Action::RestoreAccount)?;
    }
    Ok(query)
}

pub fn page_size(p: &mut Problems, value: &str) -> usize {
    p.parse(
        "page_size",
        value,
        |v| v.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE_SIZE as usize).contains(n)),
        &format!("a number from 1 to {MAX_PAGE_SIZE}"),
    )
    .unwrap_or(DEFAULT_PAGE_SIZE as usize)
}

fn parse_sort(text: &str) -> Option<Sort> {
    let (name, descending) = super::sort_direction(text);
    SortField::named(name).map(|field| Sort { field, descending })
}

/// The cursor names its sort so a cursor from another ordering is refused.
#[derive(Serialize, Deserialize)]
struct CursorBody {
    s: String,
    k: Option<Value>,
    i: Uuid,
}

pub fn sort_signature(sort: Sort) -> String {
    signature(sort.field.name(), sort.descending)
}

/// How a cursor names its ordering: `-balance`, `relevance`, ...
pub fn signature(field: &str, descending: bool) -> String {
    format!("{}{field}", if descending { "-" } else { "" })
}

pub fn encode_cursor(after: After, signature: &str) -> String {
    let key = match after.key {
        SortKey::Score(s) => Some(Value::from(f64::from(s))),
        SortKey::Int(v) => Some(Value::from(v.to_string())),
        SortKey::Missing => None,
    };
    let body = CursorBody {
        s: signature.to_owned(),
        k: key,
        i: after.id,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a cursor made for the ordering `signature` (`relevance`: keys are scores).
pub fn decode_cursor(cursor: &str, signature: &str, relevance: bool) -> std::result::Result<After, String> {
    let invalid = || "is not a cursor from this list; pass next_cursor from the previous page".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.s != signature {
        return Err(format!("belongs to sort `{}`, not `{signature}`", body.s));
    }
    let key = match body.k {
        None => SortKey::Missing,
        Some(v) if relevance => SortKey::Score(v.as_f64().ok_or_else(invalid)? as f32),
        Some(v) => SortKey::Int(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(invalid)?),
    };
    Ok(After { key, id: body.i })
}

/// Facets as `{name: [{value, count, sum?}]}`.
pub fn facets_json(facets: &[(&'static str, Vec<crate::search::FacetValue>)]) -> Map<String, Value> {
    facets
        .iter()
        .map(|(name, values)| ((*name).to_owned(), serde_json::to_value(values).unwrap_or(Value::Null)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::role::Role;

    fn caller(role: Role) -> Principal {
        Principal {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            email: String::new(),
            name: String::new(),
            role,
        }
    }

    fn fields_of(err: Error) -> Vec<String> {
        match err {
            Error::Problem(p) => p.errors.into_iter().map(|e| e.field).collect(),
            Error::Internal(_) => Vec::new(),
        }
    }

    #[test]
    fn parses_filters_and_names_bad_parameters() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let q = parse(
            "q=jane&status=active&status=delinquent,disputed&assigned_agent_id=me&bucket=30-59&sort=-balance&facets=status,tags",
            &caller(Role::Agent),
            today,
        )
        .unwrap();
        assert_eq!(q.statuses.len(), 3);
        assert_eq!(q.agent, Some(AgentFilter::Agent(Uuid::nil())));
        assert_eq!(
            q.sort,
            Sort {
                field: SortField::Balance,
                descending: true
            }
        );
        assert_eq!(q.facets, [Facet::Status, Facet::Tags]);
        let err = parse(
            "sort=colour&min_balance=5&max_balance=1&cursor=zzz&bogus=1&page_size=500",
            &caller(Role::Agent),
            today,
        )
        .unwrap_err();
        let mut fields = fields_of(err);
        fields.sort();
        assert_eq!(fields, ["bogus", "cursor", "min_balance", "page_size", "sort"]);
        assert!(parse("include_deleted=true", &caller(Role::Agent), today).is_err());
        assert!(parse("include_deleted=true", &caller(Role::Manager), today).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_sorts() {
        let sort = Sort {
            field: SortField::Balance,
            descending: true,
        };
        let after = After {
            key: SortKey::Int(42),
            id: Uuid::from_u128(7),
        };
        let cursor = encode_cursor(after, &sort_signature(sort));
        assert_eq!(decode_cursor(&cursor, &sort_signature(sort), false).unwrap(), after);
        let other = Sort {
            field: SortField::Name,
            descending: true,
        };
        assert!(decode_cursor(&cursor, &sort_signature(other), false).is_err());
    }
}

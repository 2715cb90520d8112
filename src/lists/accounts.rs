//! `GET /api/v1/accounts` (and the exports and bulk updates that take its filters): search, filters, sort, cursor and facets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::account::{AccountStatus, Bucket};
use crate::domain::attachment::Kind;
use crate::domain::compliance::Channel;
use crate::domain::custom_field::Catalog;
use crate::domain::money::CurrencyAmount;
use crate::domain::plan::PlanStatus;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::{AccountQuery, After, Contactable, Counted, Facet, FileReach, NO_PORTFOLIO, Sort, SortField, SortKey};
use crate::error::Result;
use crate::lists::custom;
use crate::lists::params::{self, Param, Problems, schema};
use crate::lists::values;
use crate::search::FacetValue;

/// What the account list's parameters fill in, before the rules between them apply.
struct Request {
    caller: Uuid,
    query: AccountQuery,
    sort: Option<Sort>,
    /// `sort=[-]cf.<key>`, resolved against the definitions once read.
    custom_sort: Option<(String, bool)>,
    /// `facets=cf.<key>` items, resolved against the definitions once read.
    custom_facets: Vec<String>,
    cursor: Option<String>,
}

/// An item of `facets`: a built-in facet or a custom field's.
enum FacetName {
    Known(Facet),
    Custom(String),
}

const FACETS: &str = "a facet (status, bucket, assigned_agent_id, tags, portfolio_id, document_kind, document_name, cf.<key>)";
const DOCUMENT_KINDS: &str = "a document kind (pdf, png, jpeg, heic, tiff, docx, xlsx, text, eml)";

const SORTS: &str = "a sort field (balance or current_balance, due_date, next_action or next_action_at, updated or updated_at, name or debtor_name, queue_score; `-` for descending)";
pub const CHANNELS: &str = "a channel (call, sms, email, letter, visit)";
const BUCKETS: &str = "a bucket (current, 1-29, 30-59, 60-89, 90-119, 120+)";

/// The account list's parameters, each declared once.
const PARAMS: &[Param<Request>] = &[
    Param::new(
        "q",
        "Full-text search: name, account number, reference, email, phone, address, custom text; and the words of the documents \
         of the accounts whose documents the caller reads. For an agent, the reference, address and custom text match only \
         the accounts assigned to them.",
        schema::words,
        |r, v| r.query.text = v.text(),
    ),
    Param::new("status", "", schema::list::<AccountStatus>, |r, v| {
        r.query.statuses.extend(v.each(AccountStatus::parse, "an account status"))
    }),
    Param::new("assigned_agent_id", "A user id, `me` or `unassigned`.", schema::text, |r, v| {
        r.query.agent = v.agent(r.caller)
    }),
    Param::new("tags", "", schema::list::<String>, |r, v| {
        r.query.tags.extend(v.items().map(str::to_lowercase))
    }),
    Param::new(
        "document_kind",
        "Accounts holding a live document of one of these kinds (managers, admins and viewers).",
        schema::list::<Kind>,
        |r, v| {
            for kind in v.each(Kind::parse, DOCUMENT_KINDS) {
                if !r.query.document_kinds.contains(&kind) {
                    r.query.document_kinds.push(kind);
                }
            }
        },
    ),
    Param::new(
        "portfolio_id",
        "Portfolio ids, or `none` for accounts without a portfolio.",
        schema::list::<String>,
        |r, v| {
            let portfolios = v.each(
                |item| match item {
                    NO_PORTFOLIO => Some(None),
                    id => Uuid::parse_str(id).ok().map(Some),
                },
                "a portfolio id or `none`",
            );
            for portfolio in portfolios {
                if !r.query.portfolios.contains(&portfolio) {
                    r.query.portfolios.push(portfolio);
                }
            }
        },
    ),
    Param::new("min_balance", "A non-negative decimal amount.", schema::amount, |r, v| {
        r.query.min_balance = v.one(values::amount, values::AMOUNT)
    }),
    Param::new("max_balance", "", schema::amount, |r, v| {
        r.query.max_balance = v.one(values::amount, values::AMOUNT)
    }),
    Param::new("due_from", "", schema::date, |r, v| {
        r.query.due_from = v.one(values::date, values::DATE)
    }),
    Param::new("due_to", "", schema::date, |r, v| {
        r.query.due_to = v.one(values::date, values::DATE)
    }),
    Param::new("next_action_before", "", schema::time, |r, v| {
        r.query.next_action_before = v.one(values::time, values::TIME)
    }),
    Param::new("next_action_after", "", schema::time, |r, v| {
        r.query.next_action_after = v.one(values::time, values::TIME)
    }),
    Param::new("bucket", "", schema::list::<Bucket>, |r, v| {
        r.query.buckets.extend(v.each(Bucket::parse, BUCKETS))
    }),
    Param::new("do_not_call", "", schema::one::<bool>, |r, v| r.query.do_not_call = v.boolean()),
    Param::new("do_not_email", "", schema::one::<bool>, |r, v| r.query.do_not_email = v.boolean()),
    Param::new("cease_communication", "", schema::one::<bool>, |r, v| {
        r.query.cease_communication = v.boolean()
    }),
    Param::new(
        "include_deleted",
        "Soft-deleted accounts too (managers and admins).",
        schema::one::<bool>,
        |r, v| r.query.include_deleted = v.boolean().unwrap_or(false),
    ),
    Param::new("has_open_promise", "", schema::one::<bool>, |r, v| {
        r.query.has_open_promise = v.boolean()
    }),
    Param::new(
        "contactable_now",
        "Only accounts the contact guard's inputs in the index allow on this channel now.",
        schema::one::<Channel>,
        |r, v| {
            r.query.contactable = v
                .one(Channel::parse, CHANNELS)
                .map(|channel| Contactable { channel, now: Utc::now() })
        },
    ),
    Param::new(
        "has_plan",
        "The account's latest payment plan is active.",
        schema::one::<bool>,
        |r, v| r.query.has_plan = v.boolean(),
    ),
    Param::new(
        "plan_status",
        "The status of the account's latest payment plan.",
        schema::list::<PlanStatus>,
        |r, v| r.query.plan_statuses.extend(v.each(PlanStatus::parse, "a plan status")),
    ),
    Param::new(
        "plan_next_before",
        "The next instalment of an active plan is due before this date.",
        schema::date,
        |r, v| r.query.plan_next_before = v.one(values::date, values::DATE),
    ),
    Param::new(
        "sort",
        "balance or current_balance, due_date, next_action or next_action_at, updated or updated_at, name or debtor_name, queue_score, or a sortable custom field `cf.<key>`; `-` first for descending. Relevance with `q`, else `-updated`.",
        schema::text,
        |r, v| {
            let (name, descending) = super::sort_direction(v.raw().trim());
            if custom::is_custom(name) {
                r.custom_sort = Some((name.to_owned(), descending));
            } else {
                r.sort = v.one(parse_sort, SORTS);
            }
        },
    ),
    Param::new("page_size", "", schema::search_page_size, |r, v| {
        r.query.page_size = v.search_page_size()
    }),
    Param::new("cursor", "`next_cursor` of the previous page (same sort).", schema::text, |r, v| {
        r.cursor = Some(v.raw().to_owned())
    }),
    Param::new("exact_total", super::EXACT_TOTAL, schema::one::<bool>, |r, v| {
        r.query.counted = super::counted(v.boolean())
    }),
    Param::new(
        "facets",
        "Comma-separated: status, bucket, assigned_agent_id, tags, portfolio_id, document_kind and document_name (managers, admins and viewers), or a filterable list, multi_list, boolean or text custom field `cf.<key>`.",
        schema::text,
        |r, v| {
            let named = |item: &str| {
                if custom::is_custom(item) {
                    Some(FacetName::Custom(item.to_owned()))
                } else {
                    Facet::named(item).map(FacetName::Known)
                }
            };
            for facet in v.each(named, FACETS) {
                match facet {
                    FacetName::Known(facet) if !r.query.facets.contains(&facet) => r.query.facets.push(facet),
                    FacetName::Known(_) => {}
                    FacetName::Custom(name) => r.custom_facets.push(name),
                }
            }
        },
    ),
];

params::described_by!(
    /// The account list's parameters (repeatable ones also take comma-separated values).
    AccountListParams,
    PARAMS
);

/// Whether `raw` names a custom field (a filter, the sort or a facet).
pub fn names_custom_fields(raw: &str) -> bool {
    custom::named_in(raw)
}

/// Parses the list parameters for `caller`, custom field names resolved against
/// `fields`, the live definitions (needed only when [`names_custom_fields`]). Unknown
/// parameters are refused by name.
pub fn parse(raw: &str, caller: &Principal, today: NaiveDate, fields: &Catalog) -> Result<AccountQuery> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        query: AccountQuery {
            counted: Counted::LIST,
            ..AccountQuery::new(today)
        },
        sort: None,
        custom_sort: None,
        custom_facets: Vec::new(),
        cursor: None,
    };
    params::read_with(raw, PARAMS, &mut request, &mut p, |r, v| {
        custom::filter(fields, &mut r.query.custom, v)
    });
    let Request {
        mut query,
        mut sort,
        custom_sort,
        custom_facets,
        cursor,
        ..
    } = request;
    if let Some((name, descending)) = custom_sort {
        match custom::sort(fields, &name) {
            Ok(field) => {
                sort = Some(Sort {
                    field: SortField::Custom(field),
                    descending,
                })
            }
            Err(message) => p.push("sort", message),
        }
    }
    for name in custom_facets {
        match custom::facet(fields, &name) {
            Ok(field) if !query.facets.contains(&Facet::Custom(field)) => query.facets.push(Facet::Custom(field)),
            Ok(_) => {}
            Err(message) => p.push("facets", message),
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
        query.after = decode_search_cursor(&cursor, &sort_signature(query.sort), relevance)
            .map_err(|m| p.push("cursor", m))
            .ok();
    }
    p.finish()?;
    if query.include_deleted {
        caller.require(Action::RestoreAccount)?;
    }
    // What documents accounts hold is told only to those who read every account's.
    if !query.document_kinds.is_empty() || query.facets.iter().any(|f| f.about_documents()) {
        caller.require(Action::ReadAnyAccount)?;
    }
    query.file_reach = if caller.can(Action::ReadAnyAccount) {
        FileReach::All
    } else {
        FileReach::Assigned(caller.user_id)
    };
    Ok(query)
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

/// A cursor into an index list: the ordering it belongs to, the last hit's sort key and id.
pub fn encode_search_cursor(after: After, signature: &str) -> String {
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
pub fn decode_search_cursor(cursor: &str, signature: &str, relevance: bool) -> std::result::Result<After, String> {
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

/// A facet's value as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FacetValueView {
    pub value: String,
    pub count: u64,
    /// Where the facet counts money: the amounts summed per currency, by currency code
    /// (currencies are never added together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sums: Option<Vec<CurrencyAmount>>,
}

/// Facets as `{name: [{value, count, sums?}]}`.
pub fn facets_json(facets: &[(&'static str, Vec<FacetValue>)]) -> Map<String, Value> {
    facets
        .iter()
        .map(|(name, values)| {
            let views: Vec<FacetValueView> = values
                .iter()
                .map(|v| FacetValueView {
                    value: v.value.clone(),
                    count: v.count,
                    sums: v.sums.as_ref().map(|sums| {
                        sums.iter()
                            .map(|(currency, amount)| CurrencyAmount::new(currency, *amount))
                            .collect()
                    }),
                })
                .collect();
            ((*name).to_owned(), serde_json::to_value(views).unwrap_or(Value::Null))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::role::Role;
    use crate::domain::search::AgentFilter;
    use crate::error::Error;

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
            &Catalog::default(),
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
            &Catalog::default(),
        )
        .unwrap_err();
        let mut fields = fields_of(err);
        fields.sort();
        assert_eq!(fields, ["bogus", "cursor", "min_balance", "page_size", "sort"]);
        assert!(parse("include_deleted=true", &caller(Role::Agent), today, &Catalog::default()).is_err());
        assert!(parse("include_deleted=true", &caller(Role::Manager), today, &Catalog::default()).is_ok());
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
        let cursor = encode_search_cursor(after, &sort_signature(sort));
        assert_eq!(decode_search_cursor(&cursor, &sort_signature(sort), false).unwrap(), after);
        let other = Sort {
            field: SortField::Name,
            descending: true,
        };
        assert!(decode_search_cursor(&cursor, &sort_signature(other), false).is_err());
    }
}

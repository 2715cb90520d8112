//! Portfolios: the accounts one creditor client placed with the agency, worked under that
//! placement's terms, and the grants that say who works them (a user, or every member of
//! a team). The rules of their fields; no I/O.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::patch::nullable;
use crate::domain::refusal::FieldError;
use crate::domain::role::team_name;

/// Which accounts a user sees and works by their portfolio: every account (admins), or
/// the accounts outside any portfolio and those of the portfolios granted to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Every,
    Granted(Vec<Uuid>),
}

impl Scope {
    /// Whether an account in `portfolio` (none: `None`) is within the scope.
    pub fn admits(&self, portfolio: Option<Uuid>) -> bool {
        match (self, portfolio) {
            (Scope::Every, _) | (_, None) => true,
            (Scope::Granted(ids), Some(id)) => ids.contains(&id),
        }
    }

    /// The portfolios a search is limited to (besides accounts in none); `None` for all.
    pub fn into_search(self) -> Option<Vec<Uuid>> {
        match self {
            Scope::Every => None,
            Scope::Granted(ids) => Some(ids),
        }
    }
}

/// Why an account cannot go to an agent: its portfolio is not granted to them.
pub const NOT_GRANTED: &str = "this user is not granted the account's portfolio, and cannot be assigned it";

/// Why a user cannot place an account in a portfolio: it is not granted to them.
pub const NOT_YOURS_TO_PLACE: &str = "this portfolio is not granted to you";

/// The longest portfolio name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest client name, in characters.
pub const MAX_CLIENT_CHARS: usize = 200;

/// A portfolio's fields, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortfolioFields {
    pub name: String,
    pub client: Option<String>,
    pub placement_date: Option<NaiveDate>,
    /// The agency's share of what it collects, in percent (0 to 100, four decimals).
    pub commission_rate: Option<Decimal>,
    /// Days past its due date after which an active account of the portfolio becomes
    /// delinquent (`None`: `OVERDUE_AFTER_DAYS`).
    pub delinquent_after_days: Option<i32>,
}

/// The most days past due a portfolio may wait before an account is delinquent.
pub const MAX_DELINQUENT_AFTER_DAYS: i32 = 365;

/// Body of `POST /portfolios`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPortfolio {
    /// 1 to 100 characters, unique among live portfolios (case-insensitive).
    pub name: String,
    /// The creditor client who placed the accounts, 1 to 200 characters.
    pub client: Option<String>,
    /// When the client placed the accounts (`YYYY-MM-DD`).
    pub placement_date: Option<NaiveDate>,
    /// The agency's commission, in percent: 0 to 100, at most four decimals.
    #[schema(value_type = Option<String>, example = "18.5")]
    pub commission_rate: Option<Decimal>,
    /// Days past its due date after which an active account becomes delinquent, 0 to
    /// 365 (absent or `null`: the server's `OVERDUE_AFTER_DAYS`).
    pub delinquent_after_days: Option<i32>,
}

/// Body of `PATCH /portfolios/{id}`: the fields to change; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub client: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NaiveDate>)]
    pub placement_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub commission_rate: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub delinquent_after_days: Option<Option<i32>>,
}

/// Body of `POST /portfolios/{id}/grants`: exactly one of a user or a team.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// A user who works accounts.
    pub user_id: Option<Uuid>,
    /// A team: every member of it, now and later.
    pub team: Option<String>,
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    User(Uuid),
    Team(String),
}

fn name(text: &str, errors: &mut Vec<FieldError>) -> String {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    name.to_owned()
}

fn client(text: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let client = text?.trim().to_owned();
    if client.is_empty() || client.chars().count() > MAX_CLIENT_CHARS {
        errors.push(FieldError::new(
            "client",
            format!("must be 1 to {MAX_CLIENT_CHARS} characters, or null"),
        ));
    }
    Some(client)
}

fn placement_date(date: Option<NaiveDate>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    if let Some(date) = date
        && !(1900..=2999).contains(&date.year())
    {
        errors.push(FieldError::new("placement_date", "must be a date from 1900 to 2999"));
    }
    date
}

fn commission_rate(rate: Option<Decimal>, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    if let Some(rate) = rate
        && (rate < Decimal::ZERO || rate > Decimal::ONE_HUNDRED || rate.normalize().scale() > 4)
    {
        errors.push(FieldError::new(
            "commission_rate",
            "must be a percentage from 0 to 100 with at most four decimals",
        ));
    }
    rate.map(|r| r.normalize())
}

fn delinquent_after_days(days: Option<i32>, errors: &mut Vec<FieldError>) -> Option<i32> {
    if let Some(days) = days
        && !(0..=MAX_DELINQUENT_AFTER_DAYS).contains(&days)
    {
        errors.push(FieldError::new(
            "delinquent_after_days",
            format!("must be 0 to {MAX_DELINQUENT_AFTER_DAYS} days, or null"),
        ));
    }
    days
}

impl NewPortfolio {
    pub fn validate(self) -> Result<PortfolioFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fields = PortfolioFields {
            name: name(&self.name, &mut errors),
            client: client(self.client, &mut errors),
            placement_date: placement_date(self.placement_date, &mut errors),
            commission_rate: commission_rate(self.commission_rate, &mut errors),
            delinquent_after_days: delinquent_after_days(self.delinquent_after_days, &mut errors),
        };
        if errors.is_empty() { Ok(fields) } else { Err(errors) }
    }
}

impl PortfolioPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.client.is_none()
            && self.placement_date.is_none()
            && self.commission_rate.is_none()
            && self.delinquent_after_days.is_none()
    }

    /// `current` with this patch applied.
    pub fn apply(self, current: PortfolioFields) -> Result<PortfolioFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fields = PortfolioFields {
            name: self.name.map_or(current.name, |n| name(&n, &mut errors)),
            client: self.client.map_or(current.client, |c| client(c, &mut errors)),
            placement_date: self
                .placement_date
                .map_or(current.placement_date, |d| placement_date(d, &mut errors)),
            commission_rate: self
                .commission_rate
                .map_or(current.commission_rate, |r| commission_rate(r, &mut errors)),
            delinquent_after_days: self
                .delinquent_after_days
                .map_or(current.delinquent_after_days, |d| delinquent_after_days(d, &mut errors)),
        };
        if errors.is_empty() { Ok(fields) } else { Err(errors) }
    }
}

impl NewGrant {
    pub fn validate(self) -> Result<Grantee, Vec<FieldError>> {
        match (self.user_id, self.team) {
            (Some(user), None) => Ok(Grantee::User(user)),
            (None, Some(team)) => team_name(&team).map(Grantee::Team).map_err(|m| vec![FieldError::new("team", m)]),
            _ => Err(vec![FieldError::new("user_id", "name exactly one of user_id and team")]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewPortfolio {
        NewPortfolio {
            name: name.to_owned(),
            client: Some("  Acme Bank ".to_owned()),
            placement_date: NaiveDate::from_ymd_opt(2026, 11, 2),
            commission_rate: Some(Decimal::new(18_50, 2)),
            delinquent_after_days: Some(30),
        }
    }

    fn fields_of(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_new_portfolio_is_trimmed_and_its_rate_normalised() {
        let fields = new(" Acme cards Q4 ").validate().unwrap();
        assert_eq!(fields.name, "Acme cards Q4");
        assert_eq!(fields.client.as_deref(), Some("Acme Bank"));
        assert_eq!(fields.commission_rate, Some(Decimal::new(185, 1)));
    }

    #[test]
    fn each_field_is_refused_by_name() {
        let mut bad = new(" ");
        bad.client = Some(String::new());
        bad.placement_date = NaiveDate::from_ymd_opt(1850, 1, 1);
        bad.commission_rate = Some(Decimal::new(100_001, 3));
        bad.delinquent_after_days = Some(366);
        assert_eq!(
            fields_of(bad.validate().unwrap_err()),
            ["name", "client", "placement_date", "commission_rate", "delinquent_after_days"]
        );
        let mut negative = new("P");
        negative.delinquent_after_days = Some(-1);
        assert_eq!(fields_of(negative.validate().unwrap_err()), ["delinquent_after_days"]);
        for rate in [Decimal::new(123_456, 5), Decimal::new(-1, 0)] {
            let mut refused = new("P");
            refused.commission_rate = Some(rate);
            assert_eq!(fields_of(refused.validate().unwrap_err()), ["commission_rate"]);
        }
        assert!(new(&"n".repeat(MAX_NAME_CHARS)).validate().is_ok());
        assert!(new(&"n".repeat(MAX_NAME_CHARS + 1)).validate().is_err());
    }

    #[test]
    fn a_patch_changes_what_it_names_and_null_clears() {
        let current = new("Acme").validate().unwrap();
        let patch = PortfolioPatch {
            client: Some(None),
            commission_rate: Some(Some(Decimal::new(20, 0))),
            ..PortfolioPatch::default()
        };
        let changed = patch.apply(current.clone()).unwrap();
        assert_eq!(changed.name, "Acme");
        assert_eq!(changed.client, None);
        assert_eq!(changed.placement_date, current.placement_date);
        assert_eq!(changed.commission_rate, Some(Decimal::new(20, 0)));
        assert!(PortfolioPatch::default().is_empty());
        let bad = PortfolioPatch {
            name: Some(String::new()),
            ..PortfolioPatch::default()
        };
        assert_eq!(fields_of(bad.apply(current).unwrap_err()), ["name"]);
    }

    #[test]
    fn a_grant_names_a_user_or_a_team_not_both_nor_neither() {
        let user = Uuid::nil();
        let grant = |user_id, team: Option<&str>| {
            NewGrant {
                user_id,
                team: team.map(str::to_owned),
            }
            .validate()
        };
        assert_eq!(grant(Some(user), None), Ok(Grantee::User(user)));
        assert_eq!(grant(None, Some(" North ")), Ok(Grantee::Team("North".to_owned())));
        assert!(grant(Some(user), Some("North")).is_err());
        assert!(grant(None, None).is_err());
        assert_eq!(fields_of(grant(None, Some(" ")).unwrap_err()), ["team"]);
    }
}

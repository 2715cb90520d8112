//! Manager KPIs: what each figure counts, stated once for the store's SQL, the docs
//! (docs/features/kpis.md) and the tests.

use serde::{Deserialize, Serialize};

use crate::domain::account::{AccountStatus, Bucket};
use crate::domain::activity::{ActivityType, Direction, Outcome, wire_name};
use crate::domain::search::{ALL_BUCKETS, bucket_days};

/// How the figures are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Agent,
    Team,
    Bucket,
    Portfolio,
}

impl GroupBy {
    pub const ALL: [GroupBy; 4] = [GroupBy::Agent, GroupBy::Team, GroupBy::Bucket, GroupBy::Portfolio];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Agent => "agent",
            GroupBy::Team => "team",
            GroupBy::Bucket => "bucket",
            GroupBy::Portfolio => "portfolio",
        }
    }

    pub fn parse(text: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// The activity types that are contact attempts when their direction is outbound.
pub const ATTEMPT_TYPES: [ActivityType; 6] = [
    ActivityType::Call,
    ActivityType::Sms,
    ActivityType::Whatsapp,
    ActivityType::Email,
    ActivityType::Letter,
    ActivityType::Visit,
];

/// The direction of a contact attempt.
pub const ATTEMPT_DIRECTION: Direction = Direction::Outbound;

/// Outcomes that mean the debtor was reached: a right-party contact.
pub const RIGHT_PARTY_OUTCOMES: [Outcome; 4] = [Outcome::RightParty, Outcome::PromiseToPay, Outcome::Dispute, Outcome::Paid];

/// The one status that does not cure an account back in the current bucket: it was
/// closed (written off), not brought back to paying.
pub const NOT_A_CURE: AccountStatus = AccountStatus::Closed;

/// The most days one request may cover.
pub const MAX_DAYS: i64 = 366;

/// The days a request covers when it names none.
pub const DEFAULT_DAYS: i64 = 30;

/// `'a', 'b'` for an SQL `IN` list of wire names; the names are the program's own.
pub fn sql_list<T: Serialize>(values: &[T]) -> String {
    values.iter().map(|v| format!("'{}'", wire_name(v))).collect::<Vec<_>>().join(", ")
}

/// An SQL expression of a bucket name from `days` (an integer expression of days past
/// due), built from the domain's bucket bounds so that SQL and Rust agree.
pub fn sql_bucket_of(days: &str) -> String {
    let arms: String = ALL_BUCKETS
        .into_iter()
        .filter_map(|bucket| match bucket_days(bucket) {
            (_, Some(max)) => Some(format!(" WHEN {days} <= {max} THEN '{}'", bucket.as_str())),
            (_, None) => None,
        })
        .collect();
    let last = ALL_BUCKETS
        .into_iter()
        .find(|b| bucket_days(*b).1.is_none())
        .unwrap_or(Bucket::Days120Plus);
    format!("CASE{arms} ELSE '{}' END", last.as_str())
}

/// The statuses in which nothing is owed, whose days past due are zero.
pub fn resolved_statuses() -> Vec<&'static str> {
    AccountStatus::ALL
        .into_iter()
        .filter(|s| s.is_resolved())
        .map(AccountStatus::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_bucket_has_the_domain_bounds() {
        assert_eq!(
            sql_bucket_of("d"),
            "CASE WHEN d <= 0 THEN 'current' WHEN d <= 29 THEN '1-29' WHEN d <= 59 THEN '30-59' \
             WHEN d <= 89 THEN '60-89' WHEN d <= 119 THEN '90-119' ELSE '120+' END"
        );
        assert_eq!(Bucket::from_days_past_due(120).as_str(), "120+");
    }

    #[test]
    fn attempts_and_right_party_outcomes_are_wire_names() {
        assert_eq!(sql_list(&ATTEMPT_TYPES), "'call', 'sms', 'whatsapp', 'email', 'letter', 'visit'");
        assert_eq!(
            sql_list(&RIGHT_PARTY_OUTCOMES),
            "'right_party', 'promise_to_pay', 'dispute', 'paid'"
        );
        assert_eq!(resolved_statuses(), ["paid", "settled", "closed"]);
    }
}

//! The agent work queue's order: reasons first (each a filter the index answers), then
//! a score. The score only mixes quantities that grow one a day with the calendar, so
//! ordering by it on any day is ordering by a key fixed when the account is indexed
//! ([`rank`]); the index sorts by that key and no nightly job is needed.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::compliance::Rule;
use super::search::After;

/// Why an account is where it is in the queue, in the order the queue takes them:
/// `broken_promise` (a promise to pay due yesterday was broken), `promise_due_today`
/// (an open promise falls due today), `next_action_due` (the account's next action time
/// has come), `plan_instalment_missed` (an instalment of the active plan was missed and
/// is still unpaid), `score` (everything else, the most overdue and largest debts first:
/// days past due + 20 × log10(1 + balance) + 0.5 × days since the last contact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A promise to pay due yesterday was broken.
    BrokenPromise,
    /// An open promise to pay falls due today.
    PromiseDueToday,
    /// The account's next action time has come.
    NextActionDue,
    /// An instalment of the account's active plan was missed and is still unpaid.
    PlanInstalmentMissed,
    /// Everything else, by [`rank`].
    Score,
}

/// What holds an account of the queue back on a channel now: one of the guard's rules,
/// the two frequency rules counted together (`call_frequency`: the call-attempt limit
/// or a recent conversation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    CeaseCommunication,
    UnverifiedDispute,
    DoNotCall,
    DoNotEmail,
    OutsideWindow,
    CallFrequency,
}

impl From<Rule> for Hold {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::CeaseCommunication => Hold::CeaseCommunication,
            Rule::UnverifiedDispute => Hold::UnverifiedDispute,
            Rule::DoNotCall => Hold::DoNotCall,
            Rule::DoNotEmail => Hold::DoNotEmail,
            Rule::OutsideWindow => Hold::OutsideWindow,
            Rule::CallAttempts | Rule::RecentConversation => Hold::CallFrequency,
        }
    }
}

impl Reason {
    pub const ORDER: [Reason; 5] = [
        Reason::BrokenPromise,
        Reason::PromiseDueToday,
        Reason::NextActionDue,
        Reason::PlanInstalmentMissed,
        Reason::Score,
    ];

    pub fn position(self) -> usize {
        Self::ORDER.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The range that selects accounts with this reason (none: the score tier).
    fn range(self, today: NaiveDate, now: DateTime<Utc>) -> Option<FieldRange> {
        let day = |d: NaiveDate| days(d);
        match self {
            Reason::BrokenPromise => {
                let yesterday = day(today - Duration::days(1));
                Some(FieldRange {
                    field: QueueField::BrokenPromiseDue,
                    lo: yesterday,
                    hi: yesterday,
                })
            }
            Reason::PromiseDueToday => Some(FieldRange {
                field: QueueField::PromiseDue,
                lo: day(today),
                hi: day(today),
            }),
            Reason::NextActionDue => Some(FieldRange {
                field: QueueField::NextAction,
                lo: i64::MIN,
                hi: now.timestamp_micros(),
            }),
            Reason::PlanInstalmentMissed => Some(FieldRange {
                field: QueueField::PlanMissedDue,
                lo: i64::MIN,
                hi: day(today),
            }),
            Reason::Score => None,
        }
    }

    /// The filter of this tier: its own range, and none of the earlier tiers' (an account
    /// is listed once, under its first reason).
    pub fn tier(self, today: NaiveDate, now: DateTime<Utc>) -> Tier {
        let earlier = &Self::ORDER[..self.position()];
        Tier {
            reason: self,
            within: self.range(today, now),
            outside: earlier.iter().filter_map(|r| r.range(today, now)).collect(),
        }
    }
}

/// Where a page of the queue starts: a tier and the place in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    pub reason: Reason,
    pub after: Option<After>,
}

/// A document column the queue's tiers select on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueField {
    /// Due date (days since 1970-01-01) of the latest broken promise.
    BrokenPromiseDue,
    /// Due date (days) of the open promise.
    PromiseDue,
    /// Next action time (microseconds since 1970).
    NextAction,
    /// Due date (days) of the oldest missed instalment of the active plan not yet paid.
    PlanMissedDue,
}

/// `lo..=hi` on a field; a document without the field is outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldRange {
    pub field: QueueField,
    pub lo: i64,
    pub hi: i64,
}

/// One tier of the queue as a filter: inside `within` (if any) and outside each of
/// `outside`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub reason: Reason,
    pub within: Option<FieldRange>,
    pub outside: Vec<FieldRange>,
}

/// Days since 1970-01-01.
pub fn days(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

/// Weight of the balance: points per factor of ten owed.
const BALANCE_POINTS: f64 = 20.0;
/// Points per day since the last contact.
const QUIET_DAY_POINTS: f64 = 0.5;
/// An account without a due date is ranked as if due this many days after 1970.
const NO_DUE_DATE_DAYS: i64 = 1_000_000;

/// The score on day `today` is `days past due + 20 × log10(1 + balance) + 0.5 × days
/// since the last contact (or since creation)`. Both day counts grow by one a day for
/// every account, so the order on any day equals the order of this key (thousandths of
/// a point, the day terms taken at day 0).
pub fn rank(due_date: Option<NaiveDate>, balance: Decimal, last_contact: Option<DateTime<Utc>>, created_at: DateTime<Utc>) -> i64 {
    let due = due_date.map_or(NO_DUE_DATE_DAYS, days);
    let contacted = days(last_contact.unwrap_or(created_at).date_naive());
    let owed = balance.to_f64().unwrap_or(0.0).max(0.0);
    let key = -(due as f64) + BALANCE_POINTS * (1.0 + owed).log10() - QUIET_DAY_POINTS * contacted as f64;
    (key * 1000.0).round() as i64
}

/// The score itself on `today`, as docs/features/queue.md defines it (for views and tests).
pub fn score(
    due_date: Option<NaiveDate>,
    balance: Decimal,
    last_contact: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    today: NaiveDate,
) -> f64 {
    let today = days(today) as f64;
    (rank(due_date, balance, last_contact, created_at) as f64) / 1000.0 + today + QUIET_DAY_POINTS * today
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn the_rank_orders_accounts_as_the_score_does_on_any_day() {
        let created = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let contacted = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let accounts = [
            (Some(date("2026-01-01")), Decimal::new(50_000, 2), None),
            (Some(date("2026-02-15")), Decimal::new(9_000_000, 2), Some(contacted)),
            (Some(date("2026-04-01")), Decimal::new(100, 2), None),
            (None, Decimal::new(1_000_000, 2), None),
        ];
        for today in [date("2026-04-02"), date("2026-09-30")] {
            let by_rank: Vec<i64> = accounts.iter().map(|(d, b, c)| rank(*d, *b, *c, created)).collect();
            let by_score: Vec<f64> = accounts.iter().map(|(d, b, c)| score(*d, *b, *c, created, today)).collect();
            for i in 0..accounts.len() {
                for j in 0..accounts.len() {
                    assert_eq!(by_rank[i] > by_rank[j], by_score[i] > by_score[j], "{i} vs {j} on {today}");
                }
            }
        }
        // 91 days past due and never contacted since creation (456 days): 91 + 20×log10(501) + 228.
        let expected = 91.0 + 20.0 * 501f64.log10() + 0.5 * 456.0;
        assert!((score(accounts[0].0, accounts[0].1, None, created, date("2026-04-02")) - expected).abs() < 0.01);
    }

    #[test]
    fn each_tier_excludes_the_earlier_ones() {
        let now = DateTime::parse_from_rfc3339("2026-04-02T10:00:00Z").unwrap().with_timezone(&Utc);
        let today = now.date_naive();
        assert!(Reason::BrokenPromise.tier(today, now).outside.is_empty());
        let next = Reason::NextActionDue.tier(today, now);
        assert_eq!(next.outside.len(), 2);
        assert_eq!(next.within.unwrap().hi, now.timestamp_micros());
        let missed = Reason::PlanInstalmentMissed.tier(today, now);
        assert_eq!((missed.within.unwrap().hi, missed.outside.len()), (days(today), 3));
        let rest = Reason::Score.tier(today, now);
        assert_eq!((rest.within, rest.outside.len()), (None, 4));
    }
}

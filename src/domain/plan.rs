//! Payment plans: a total split into dated instalments with exact money.

use chrono::{Datelike, Duration, Months, NaiveDate};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::money::Currency;
use crate::domain::refusal::FieldError;

/// The most instalments one plan may have (five years of weekly instalments).
pub const MAX_INSTALMENTS: u32 = 260;

/// Stored as text (`plans.status`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PlanStatus {
    Active,
    Completed,
    Broken,
    Cancelled,
}

impl PlanStatus {
    pub const ALL: [PlanStatus; 4] = [Self::Active, Self::Completed, Self::Broken, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Broken => "broken",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How often instalments fall due: every week, every two weeks, or monthly on a day.
/// Stored as text (`plans.frequency`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Frequency {
    Weekly,
    Biweekly,
    Monthly,
}

/// An instalment's state, derived from what it was paid and whether it was missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstalmentStatus {
    Open,
    Partial,
    Paid,
    Missed,
}

impl InstalmentStatus {
    /// Paid in full wins over a miss (a late payment pays a missed instalment).
    pub fn of(amount: Decimal, paid: Decimal, missed: bool) -> Self {
        if paid >= amount {
            Self::Paid
        } else if missed {
            Self::Missed
        } else if paid > Decimal::ZERO {
            Self::Partial
        } else {
            Self::Open
        }
    }
}

/// Body of `POST /accounts/{id}/plans`: `instalment_count` or `instalment_amount`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    /// The amount the plan pays off, with the currency's minor digits.
    pub total: String,
    /// Split the total into this many instalments (the last takes the rounding).
    pub instalment_count: Option<u32>,
    /// Or instalments of this amount (the last one is what remains).
    pub instalment_amount: Option<String>,
    pub frequency: Frequency,
    /// Monthly plans: the day instalments fall on after the first (the last day of a
    /// shorter month); defaults to the first date's day.
    pub day_of_month: Option<u32>,
    /// When the first instalment is due; not before today in the debtor's time zone.
    pub first_due_date: NaiveDate,
}

/// A validated plan, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPlan {
    pub total: Decimal,
    pub frequency: Frequency,
    pub day_of_month: Option<u32>,
    pub first_due_date: NaiveDate,
    /// `(due date, amount)` in order.
    pub instalments: Vec<(NaiveDate, Decimal)>,
}

impl CreatePlan {
    /// `today` is the date in the account's time zone; `balance` what the account owes.
    pub fn validate(self, currency: Currency, today: NaiveDate, balance: Decimal) -> Result<NewPlan, Vec<FieldError>> {
        let mut errors = Vec::new();
        let total = match currency.parse_amount(&self.total) {
            Ok(t) if t.is_zero() => {
                errors.push(FieldError::new("total", "must be greater than zero"));
                None
            }
            Ok(t) if t > balance => {
                errors.push(FieldError::new(
                    "total",
                    format!("must not exceed the current balance ({})", currency.format(balance)),
                ));
                None
            }
            Ok(t) => Some(t),
            Err(message) => {
                errors.push(FieldError::new("total", message));
                None
            }
        };
        let amounts = match (self.instalment_count, self.instalment_amount.as_deref()) {
            (Some(_), Some(_)) | (None, None) => {
                let message = "give either instalment_count or instalment_amount";
                errors.push(FieldError::new("instalment_count", message));
                errors.push(FieldError::new("instalment_amount", message));
                None
            }
            (Some(count), None) if !(1..=MAX_INSTALMENTS).contains(&count) => {
                errors.push(FieldError::new("instalment_count", format!("must be from 1 to {MAX_INSTALMENTS}")));
                None
            }
            (Some(count), None) => total.map(|t| split_by_count(t, count, currency.minor_digits())),
            (None, Some(text)) => match currency.parse_amount(text) {
                Ok(a) if a.is_zero() => {
                    errors.push(FieldError::new("instalment_amount", "must be greater than zero"));
                    None
                }
                Ok(a) => match total.map(|t| split_by_amount(t, a)) {
                    Some(Some(amounts)) => Some(amounts),
                    Some(None) => {
                        errors.push(FieldError::new(
                            "instalment_amount",
                            format!("would make more than {MAX_INSTALMENTS} instalments"),
                        ));
                        None
                    }
                    None => None,
                },
                Err(message) => {
                    errors.push(FieldError::new("instalment_amount", message));
                    None
                }
            },
        };
        let day_of_month = match (self.frequency, self.day_of_month) {
            (Frequency::Monthly, Some(day)) if !(1..=31).contains(&day) => {
                errors.push(FieldError::new("day_of_month", "must be from 1 to 31"));
                None
            }
            (Frequency::Monthly, day) => Some(day.unwrap_or(self.first_due_date.day())),
            (_, Some(_)) => {
                errors.push(FieldError::new("day_of_month", "only monthly plans fall on a day of the month"));
                None
            }
            (_, None) => None,
        };
        if self.first_due_date < today {
            errors.push(FieldError::new(
                "first_due_date",
                format!("must not be before today ({today}) in the account's timezone"),
            ));
        }
        let (Some(total), Some(amounts), true) = (total, amounts, errors.is_empty()) else {
            return Err(errors);
        };
        let dates = schedule(self.frequency, day_of_month, self.first_due_date, amounts.len());
        Ok(NewPlan {
            total,
            frequency: self.frequency,
            day_of_month,
            first_due_date: self.first_due_date,
            instalments: dates.into_iter().zip(amounts).collect(),
        })
    }
}

/// `count` equal instalments rounded down to the minor unit; the last takes the rest.
pub fn split_by_count(total: Decimal, count: u32, minor_digits: u32) -> Vec<Decimal> {
    let mut share = total / Decimal::from(count);
    share = share.trunc_with_scale(minor_digits);
    let mut amounts = vec![share; count as usize];
    if let Some(last) = amounts.last_mut() {
        *last = total - share * Decimal::from(count - 1);
    }
    // A total smaller than its count of minor units leaves zero instalments; drop them.
    amounts.retain(|a| !a.is_zero());
    amounts
}

/// Instalments of `amount`; the last is what remains. `None` past [`MAX_INSTALMENTS`].
pub fn split_by_amount(total: Decimal, amount: Decimal) -> Option<Vec<Decimal>> {
    let count = (total / amount).ceil();
    if count > Decimal::from(MAX_INSTALMENTS) {
        return None;
    }
    let count = count.to_u32()?;
    let mut amounts = vec![amount; count as usize];
    if let Some(last) = amounts.last_mut() {
        *last = total - amount * Decimal::from(count - 1);
    }
    Some(amounts)
}

/// The due dates of `count` instalments from `first`. Monthly instalments after the first
/// fall on `day_of_month`, or on the last day of a month too short for it.
pub fn schedule(frequency: Frequency, day_of_month: Option<u32>, first: NaiveDate, count: usize) -> Vec<NaiveDate> {
    (0..count)
        .map(|n| match frequency {
            Frequency::Weekly => first + Duration::weeks(n as i64),
            Frequency::Biweekly => first + Duration::weeks(2 * n as i64),
            Frequency::Monthly if n == 0 => first,
            Frequency::Monthly => {
                let month_start = first.with_day(1).unwrap_or(first) + Months::new(n as u32);
                let day = day_of_month.unwrap_or(first.day());
                (0..4)
                    .find_map(|short| month_start.with_day(day.saturating_sub(short)))
                    .unwrap_or(month_start)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn the_last_instalment_takes_the_rounding() {
        assert_eq!(split_by_count(dec("100.00"), 3, 2), [dec("33.33"), dec("33.33"), dec("33.34")]);
        assert_eq!(split_by_count(dec("100"), 3, 0), [dec("33"), dec("33"), dec("34")]);
        assert_eq!(split_by_count(dec("10.000"), 4, 3), [dec("2.500"); 4]);
        assert_eq!(
            split_by_amount(dec("100.00"), dec("30.00")).unwrap(),
            [dec("30.00"), dec("30.00"), dec("30.00"), dec("10.00")]
        );
        assert_eq!(split_by_amount(dec("90.00"), dec("30.00")).unwrap(), [dec("30.00"); 3]);
        assert!(split_by_amount(dec("1000.00"), dec("0.01")).is_none());
    }

    #[test]
    fn monthly_on_the_31st_falls_on_the_last_day_of_short_months() {
        let dates = schedule(Frequency::Monthly, Some(31), date(2027, 1, 31), 4);
        assert_eq!(dates, [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]);
        let leap = schedule(Frequency::Monthly, Some(30), date(2028, 1, 15), 3);
        assert_eq!(leap, [date(2028, 1, 15), date(2028, 2, 29), date(2028, 3, 30)]);
    }

    #[test]
    fn weekly_and_biweekly_step_by_weeks() {
        assert_eq!(
            schedule(Frequency::Weekly, None, date(2027, 12, 27), 2),
            [date(2027, 12, 27), date(2028, 1, 3)]
        );
        assert_eq!(
            schedule(Frequency::Biweekly, None, date(2027, 1, 1), 3),
            [date(2027, 1, 1), date(2027, 1, 15), date(2027, 1, 29)]
        );
    }

    #[test]
    fn an_instalment_paid_late_is_paid() {
        assert_eq!(InstalmentStatus::of(dec("10"), dec("10"), true), InstalmentStatus::Paid);
        assert_eq!(InstalmentStatus::of(dec("10"), dec("5"), true), InstalmentStatus::Missed);
        assert_eq!(InstalmentStatus::of(dec("10"), dec("5"), false), InstalmentStatus::Partial);
        assert_eq!(InstalmentStatus::of(dec("10"), dec("0"), false), InstalmentStatus::Open);
    }
}

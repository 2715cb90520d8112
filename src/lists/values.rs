//! Values of query parameters, each bounded so that nothing downstream (date arithmetic,
//! money in index units) can overflow: a value outside its range is refused by name,
//! like a malformed one.

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::domain::money::MAX_AMOUNT_UNITS;

use crate::domain::dates::YEARS;

pub const DATE: &str = "a date (YYYY-MM-DD) between 1900 and 2999";
pub const TIME: &str = "an RFC 3339 time between 1900 and 2999";
pub const DATE_OR_TIME: &str = "an RFC 3339 time or a date (YYYY-MM-DD) between 1900 and 2999";
pub const AMOUNT: &str = "a non-negative decimal amount below 1000000000000";
/// [`AMOUNT`] as the API description's pattern.
pub const AMOUNT_PATTERN: &str = r"^[0-9]{1,12}(\.[0-9]{1,4})?$";

pub fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::from_str(text).ok().filter(|d| YEARS.contains(&d.year()))
}

pub fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.to_utc())
        .filter(|t| YEARS.contains(&t.year()))
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
}

/// An RFC 3339 instant, or a date meaning its first instant (UTC).
pub fn instant(text: &str) -> Option<DateTime<Utc>> {
    time(text).or_else(|| date(text).map(midnight))
}

/// The end of a `to` bound, exclusive: a date includes its whole day.
pub fn end_instant(text: &str) -> Option<DateTime<Utc>> {
    match date(text) {
        Some(date) => date.succ_opt().map(midnight),
        None => time(text),
    }
}

pub fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub fn amount(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text)
        .ok()
        .filter(|d| !d.is_sign_negative() && *d < Decimal::from(MAX_AMOUNT_UNITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_their_range_are_refused() {
        assert!(date("2026-11-22").is_some());
        assert!(date("-262143-01-01").is_none() && date("+262142-12-31").is_none() && date("0001-01-01").is_none());
        assert!(instant("+262142-12-31T00:00:00Z").is_none());
        assert!(end_instant("2999-12-31").is_some());
        assert!(amount("999999999999.9999").is_some());
        assert!(amount("1000000000000").is_none() && amount("79228162514264337593543950335").is_none() && amount("-1").is_none());
    }
}

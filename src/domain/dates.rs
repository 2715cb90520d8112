//! The dates and times the service accepts: years 1900 to 2999, in query parameters,
//! JSON bodies and imported rows alike. chrono reads years far beyond what PostgreSQL
//! stores (it takes -262143), so a value outside the range is refused by name before it
//! reaches a statement or any date arithmetic.

use std::ops::RangeInclusive;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime};

/// Years a date or time may name.
pub const YEARS: RangeInclusive<i32> = 1900..=2999;

/// Why a date or time out of [`YEARS`] is refused.
pub const OUT_OF_RANGE: &str = "must be a date or time between the years 1900 and 2999";

/// The year of `text` when it is a whole date or time as chrono's own parsers (those
/// behind the serde types of every date field) would read it; `None` for other text.
pub fn year_of(text: &str) -> Option<i32> {
    DateTime::<FixedOffset>::from_str(text)
        .map(|t| t.naive_utc().year())
        .or_else(|_| NaiveDateTime::from_str(text).map(|t| t.year()))
        .or_else(|_| NaiveDate::from_str(text).map(|d| d.year()))
        .ok()
}

/// A date written exactly `YYYY-MM-DD` (a stored value's one spelling) in [`YEARS`].
pub fn iso_date(text: &str) -> Option<NaiveDate> {
    let shaped = text.len() == 10
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| shaped && YEARS.contains(&d.year()))
}

/// Whether `text`, when it is a date or time, names a supported year.
pub fn supported(text: &str) -> bool {
    year_of(text).is_none_or(|year| YEARS.contains(&year))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_chrono_reads_are_held_to_the_supported_years() {
        for refused in [
            "-262143-01-01",
            "-262143-01-01T00:00:00Z",
            "+262142-12-31T00:00:00Z",
            "1899-12-31",
            "3000-01-01T00:00:00+00:00",
        ] {
            assert!(year_of(refused).is_some(), "{refused} is a date to chrono");
            assert!(!supported(refused), "{refused}");
        }
        for accepted in ["1900-01-01", "2026-05-01T09:00:00Z", "2999-12-31", "2026-05-01T09:00:00"] {
            assert!(supported(accepted), "{accepted}");
        }
        for text in ["Ann Smith", "12", "", "+1 201 555 0134", "1250.00"] {
            assert_eq!(year_of(text), None, "{text}");
        }
    }

    #[test]
    fn iso_dates_have_one_spelling_and_the_supported_years() {
        assert_eq!(iso_date("2026-02-28"), NaiveDate::from_ymd_opt(2026, 2, 28));
        for refused in [
            "2026-2-28",
            "2026-02-30",
            "26-02-28",
            "+2026-02-28",
            "2026-02-28T00:00:00Z",
            "1899-12-31",
            "3000-01-01",
            " 2026-02-28",
        ] {
            assert_eq!(iso_date(refused), None, "{refused}");
        }
    }
}

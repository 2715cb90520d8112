//! List parameters, parsed the same way for the API, exports, bulk updates and the
//! CLI: every bad parameter reported in one answer, every value bounded before use.

use crate::domain::search::Counted;

pub mod accounts;
pub mod activities;
pub mod agents;
pub mod custom;
pub mod params;
pub mod payments;
pub mod plans;
pub mod queue;
pub mod values;

/// Rows a page holds unless the client asks for another size.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// The most rows a page may hold.
pub const MAX_PAGE_SIZE: u32 = 200;

/// What `exact_total` says, the same on every search list.
pub const EXACT_TOTAL: &str = "`true`: count every match. Otherwise the total counts up to 10,000 and, past that, \
     says `total_is_lower_bound: true` (at least this many). Exports and bulk updates act on every match either way.";

/// A search list's `exact_total`: every match counted, or up to the lists' bound.
fn counted(exact: Option<bool>) -> Counted {
    if exact == Some(true) { Counted::Exact } else { Counted::LIST }
}

/// A sort parameter's field name and direction: `-name` is descending.
fn sort_direction(text: &str) -> (&str, bool) {
    match text.strip_prefix('-') {
        Some(name) => (name, true),
        None => (text, false),
    }
}

//! The contact-compliance guard's rules (US Regulation F / FDCPA by default): whether an
//! outbound contact attempt on a channel is allowed at an instant, and if not, which rule
//! refuses it and when contact opens again. The same rules give the inputs the account
//! document carries, so the index's "contactable now" filter and the guard agree.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::activity::{ActivityType, Direction, Outcome};
use super::refusal::FieldError;

/// A way of reaching the debtor that the guard controls. Stored as text
/// (`contact_overrides.channel`, whose CHECK lists the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Channel {
    Call,
    Sms,
    Email,
    Letter,
    Visit,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Channel::Call, Channel::Sms, Channel::Email, Channel::Letter, Channel::Visit];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "call",
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Letter => "letter",
            Channel::Visit => "visit",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The channel of an activity the guard must check: an outbound contact attempt.
    pub fn of_attempt(kind: ActivityType, direction: Option<Direction>) -> Option<Channel> {
        if direction != Some(Direction::Outbound) {
            return None;
        }
        match kind {
            ActivityType::Call => Some(Channel::Call),
            // A WhatsApp message reaches the debtor's phone as a text message does.
            ActivityType::Sms | ActivityType::Whatsapp => Some(Channel::Sms),
            ActivityType::Email => Some(Channel::Email),
            ActivityType::Letter => Some(Channel::Letter),
            ActivityType::Visit => Some(Channel::Visit),
            ActivityType::Note => None,
        }
    }
}

/// Why the guard refuses an attempt; its wire name is the problem's `rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    CeaseCommunication,
    UnverifiedDispute,
    DoNotCall,
    DoNotEmail,
    CallAttempts,
    RecentConversation,
    OutsideWindow,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::CeaseCommunication,
        Rule::UnverifiedDispute,
        Rule::DoNotCall,
        Rule::DoNotEmail,
        Rule::CallAttempts,
        Rule::RecentConversation,
        Rule::OutsideWindow,
    ];

    /// The rule of wire name `text` (as `contact_overrides.rule` keeps it).
    pub fn parse(text: &str) -> Option<Rule> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::CeaseCommunication => "cease_communication",
            Rule::UnverifiedDispute => "unverified_dispute",
            Rule::DoNotCall => "do_not_call",
            Rule::DoNotEmail => "do_not_email",
            Rule::CallAttempts => "call_attempts",
            Rule::RecentConversation => "recent_conversation",
            Rule::OutsideWindow => "outside_window",
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            Rule::CeaseCommunication => "the debtor asked that all communication cease",
            Rule::UnverifiedDispute => "the debt is disputed and the dispute is not verified",
            Rule::DoNotCall => "the account is marked do-not-call (calls and text messages)",
            Rule::DoNotEmail => "the account is marked do-not-email",
            Rule::CallAttempts => "the call-attempt limit for the period is reached",
            Rule::RecentConversation => "a telephone conversation with the debtor took place within the cooling-off period",
            Rule::OutsideWindow => "it is outside the allowed hours in the debtor's time zone",
        }
    }
}

/// The limits, windows and channels the guard applies to an account: the agency's
/// (the `contact_policy` row), or its portfolio's over it (the `contact_policies` view).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Policy {
    /// Local time in the debtor's zone from which contact is allowed.
    #[schema(value_type = String, example = "08:00:00")]
    pub window_start: NaiveTime,
    /// Local time from which contact is no longer allowed (after `window_start`).
    #[schema(value_type = String, example = "21:00:00")]
    pub window_end: NaiveTime,
    /// The channels the hours apply to.
    pub window_channels: Vec<Channel>,
    /// At most this many outbound calls within `call_attempt_days`.
    pub call_attempt_limit: u32,
    pub call_attempt_days: u32,
    /// No call within this many days after a conversation.
    pub conversation_days: u32,
    /// The call outcomes that count as a conversation.
    pub conversation_outcomes: Vec<Outcome>,
    /// How long a manager's override stays usable.
    pub override_minutes: u32,
}

/// The largest `call_attempt_limit` a portfolio may set.
pub const MAX_CALL_ATTEMPT_LIMIT: u32 = 1000;
/// The most days a portfolio's call and conversation periods may span.
pub const MAX_PERIOD_DAYS: u32 = 366;
/// The longest an override may stay usable, in minutes (a day).
pub const MAX_OVERRIDE_MINUTES: u32 = 1440;

/// A portfolio's own contact policy (`PUT /portfolios/{id}/contact-policy`): each field
/// set replaces the agency's; each absent or null one follows the agency's, now and
/// after it changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioPolicy {
    /// `HH:MM` or `HH:MM:SS`, local time in the debtor's zone.
    #[schema(value_type = Option<String>, example = "09:00")]
    pub window_start: Option<NaiveTime>,
    /// `HH:MM` or `HH:MM:SS`; after the window's start (the window does not span midnight).
    #[schema(value_type = Option<String>, example = "20:00")]
    pub window_end: Option<NaiveTime>,
    pub window_channels: Option<Vec<Channel>>,
    /// 1 to 1,000.
    pub call_attempt_limit: Option<u32>,
    /// 1 to 366.
    pub call_attempt_days: Option<u32>,
    /// 0 to 366.
    pub conversation_days: Option<u32>,
    pub conversation_outcomes: Option<Vec<Outcome>>,
    /// 1 to 1,440.
    pub override_minutes: Option<u32>,
}

impl PortfolioPolicy {
    /// Whether it sets nothing (the portfolio follows the agency's policy entirely).
    pub fn is_empty(&self) -> bool {
        *self == PortfolioPolicy::default()
    }

    /// The policy in force with this one over `agency`'s, or each field in error.
    pub fn over(&self, agency: &Policy) -> Result<Policy, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bounded = |field: &str, value: Option<u32>, low: u32, high: u32| {
            if let Some(v) = value
                && !(low..=high).contains(&v)
            {
                errors.push(FieldError::new(field, format!("must be {low} to {high}")));
            }
        };
        bounded("call_attempt_limit", self.call_attempt_limit, 1, MAX_CALL_ATTEMPT_LIMIT);
        bounded("call_attempt_days", self.call_attempt_days, 1, MAX_PERIOD_DAYS);
        bounded("conversation_days", self.conversation_days, 0, MAX_PERIOD_DAYS);
        bounded("override_minutes", self.override_minutes, 1, MAX_OVERRIDE_MINUTES);
        let policy = Policy {
            window_start: self.window_start.unwrap_or(agency.window_start),
            window_end: self.window_end.unwrap_or(agency.window_end),
            window_channels: self.window_channels.clone().unwrap_or_else(|| agency.window_channels.clone()),
            call_attempt_limit: self.call_attempt_limit.unwrap_or(agency.call_attempt_limit),
            call_attempt_days: self.call_attempt_days.unwrap_or(agency.call_attempt_days),
            conversation_days: self.conversation_days.unwrap_or(agency.conversation_days),
            conversation_outcomes: self
                .conversation_outcomes
                .clone()
                .unwrap_or_else(|| agency.conversation_outcomes.clone()),
            override_minutes: self.override_minutes.unwrap_or(agency.override_minutes),
        };
        if policy.window_end <= policy.window_start {
            let field = if self.window_end.is_some() { "window_end" } else { "window_start" };
            errors.push(FieldError::new(
                field,
                format!(
                    "the window must end after it starts (it would run {} to {})",
                    policy.window_start.format("%H:%M"),
                    policy.window_end.format("%H:%M")
                ),
            ));
        }
        if errors.is_empty() { Ok(policy) } else { Err(errors) }
    }

    /// This one with its lists' repeats dropped, as it is stored.
    pub fn normalized(mut self) -> Self {
        self.window_channels = self.window_channels.as_deref().map(distinct);
        self.conversation_outcomes = self.conversation_outcomes.as_deref().map(distinct);
        self
    }
}

/// `values` in order without repeats.
fn distinct<T: Copy + PartialEq>(values: &[T]) -> Vec<T> {
    let mut kept: Vec<T> = Vec::with_capacity(values.len());
    for v in values {
        if !kept.contains(v) {
            kept.push(*v);
        }
    }
    kept
}

/// What the account row says about contacting the debtor at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub cease_communication: bool,
    pub do_not_call: bool,
    pub do_not_email: bool,
    /// Status `disputed` without a verification.
    pub unverified_dispute: bool,
}

impl Standing {
    /// The rule that refuses `channel` whatever the time, if any.
    pub fn blocks(&self, channel: Channel) -> Option<Rule> {
        if self.cease_communication {
            return Some(Rule::CeaseCommunication);
        }
        if self.unverified_dispute {
            return Some(Rule::UnverifiedDispute);
        }
        match channel {
            Channel::Call | Channel::Sms if self.do_not_call => Some(Rule::DoNotCall),
            Channel::Email if self.do_not_email => Some(Rule::DoNotEmail),
            _ => None,
        }
    }

    /// Every channel refused whatever the time.
    pub fn blocked_channels(&self) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| self.blocks(*c).is_some()).collect()
    }
}

/// Zone names that say nothing about where the debtor lives: `UTC` is the default when
/// an account names no zone.
pub const UNKNOWN_ZONES: [&str; 7] = ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"];

/// The zone the debtor lives in, when the account names one (see [`UNKNOWN_ZONES`]).
pub fn known_zone(name: &str) -> Option<Tz> {
    if UNKNOWN_ZONES.contains(&name) {
        return None;
    }
    name.parse::<Tz>().ok()
}

/// The zones the guard's window must fit for an account: its zone and the other zones
/// the debtor may be in (`alternates`, domain::debtor_zone), or every zone of its country
/// (`country_zones`) when its zone names none.
pub fn guard_zones(timezone: &str, alternates: &[String], country_zones: &[String]) -> Vec<Tz> {
    match known_zone(timezone) {
        Some(zone) => std::iter::once(zone)
            .chain(alternates.iter().filter_map(|z| z.parse::<Tz>().ok()))
            .collect(),
        None => country_zones.iter().filter_map(|z| z.parse().ok()).collect(),
    }
}

/// A zone's offset from UTC at `at`, in minutes east.
pub fn offset_minutes(zone: Tz, at: DateTime<Utc>) -> i32 {
    use chrono::Offset;
    at.with_timezone(&zone).offset().fix().local_minus_utc() / 60
}

/// Calls the frequency rules count, as of the attempt: the `call_attempt_limit`-th most
/// recent outbound call and the latest conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallHistory {
    pub limit_th_latest_call: Option<DateTime<Utc>>,
    pub last_conversation: Option<DateTime<Utc>>,
}

/// Why contact is refused and when it opens again (`None`: not by waiting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub next_allowed_at: Option<DateTime<Utc>>,
}

/// How far ahead the window's next opening is looked for.
const WINDOW_SEARCH_DAYS: i64 = 3;

impl Policy {
    fn has_window(&self, channel: Channel) -> bool {
        self.window_channels.contains(&channel)
    }

    /// Until when the frequency rules hold calls back, and which rule ends last.
    pub fn calls_open_at(&self, history: &CallHistory) -> Option<(DateTime<Utc>, Rule)> {
        let attempts = history
            .limit_th_latest_call
            .map(|at| (at + Duration::days(i64::from(self.call_attempt_days)), Rule::CallAttempts));
        let conversation = history
            .last_conversation
            .map(|at| (at + Duration::days(i64::from(self.conversation_days)), Rule::RecentConversation));
        match (attempts, conversation) {
            (Some(a), Some(c)) => Some(if c.0 > a.0 { c } else { a }),
            (a, c) => a.or(c),
        }
    }

    /// Whether `at` is inside the window in every one of `zones` (none: never).
    pub fn in_window(&self, zones: &[Tz], at: DateTime<Utc>) -> bool {
        !zones.is_empty()
            && zones.iter().all(|zone| {
                let local = at.with_timezone(zone).time();
                self.window_start <= local && local < self.window_end
            })
    }

    /// When the window starts in `zone` on the local days `days` from `at`'s local date (in
    /// a spring-forward gap, when the clock resumes).
    fn starts(&self, zone: &Tz, at: DateTime<Utc>, days: RangeInclusive<i64>) -> impl Iterator<Item = DateTime<Utc>> {
        let today = at.with_timezone(zone).date_naive();
        days.filter_map(move |days| {
            let local = (today + Duration::days(days)).and_time(self.window_start);
            zone.from_local_datetime(&local)
                .earliest()
                .or_else(|| zone.from_local_datetime(&(local + Duration::hours(1))).earliest())
                .map(|t| t.with_timezone(&Utc))
        })
    }

    /// The first instant at or after `from` inside the window in every zone.
    pub fn window_opens(&self, zones: &[Tz], from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.in_window(zones, from) {
            return Some(from);
        }
        let mut candidates: Vec<DateTime<Utc>> = zones
            .iter()
            .flat_map(|zone| self.starts(zone, from, -1..=WINDOW_SEARCH_DAYS))
            .filter(|t| *t > from)
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().find(|t| self.in_window(zones, *t))
    }

    /// When the window holding `at` opened (the last of the zones to open), or the next
    /// opening when `at` is outside it: the start of the day's window, whatever the time
    /// of day it is asked.
    fn window_opened(&self, zones: &[Tz], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.in_window(zones, at) {
            return self.window_opens(zones, at);
        }
        zones
            .iter()
            .map(|zone| self.starts(zone, at, -1..=0).filter(|t| *t <= at).max())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// The first instant after `open` (inside the window) at which some zone leaves it.
    fn window_closes(&self, zones: &[Tz], open: DateTime<Utc>) -> Option<DateTime<Utc>> {
        zones
            .iter()
            .filter_map(|zone| {
                let today = open.with_timezone(zone).date_naive();
                (0..=1)
                    .filter_map(|days| {
                        zone.from_local_datetime(&(today + Duration::days(days)).and_time(self.window_end))
                            .earliest()
                            .map(|t| t.with_timezone(&Utc))
                    })
                    .find(|t| *t > open)
            })
            .min()
    }

    /// Decides an outbound attempt on `channel` at `at`.
    pub fn decide(
        &self,
        standing: &Standing,
        zones: &[Tz],
        history: &CallHistory,
        channel: Channel,
        at: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if let Some(rule) = standing.blocks(channel) {
            return Err(Refusal {
                rule,
                next_allowed_at: None,
            });
        }
        let mut refused = None;
        let mut earliest = Some(at);
        if channel == Channel::Call
            && let Some((open, rule)) = self.calls_open_at(history)
            && open > at
        {
            refused = Some(rule);
            earliest = Some(open);
        }
        if self.has_window(channel)
            && let Some(from) = earliest
            && !self.in_window(zones, from)
        {
            refused = refused.or(Some(Rule::OutsideWindow));
            earliest = self.window_opens(zones, from);
        }
        match refused {
            None => Ok(()),
            Some(rule) => Err(Refusal {
                rule,
                next_allowed_at: earliest,
            }),
        }
    }

    /// Decides as [`Policy::decide`] with `lifted` not applying: the rule a manager's
    /// override was used for. Every other rule still refuses, so an override lifts what
    /// the manager weighed and nothing that holds besides it or came after it.
    pub fn decide_lifting(
        &self,
        standing: &Standing,
        zones: &[Tz],
        history: &CallHistory,
        channel: Channel,
        at: DateTime<Utc>,
        lifted: Rule,
    ) -> Result<(), Refusal> {
        let mut standing = *standing;
        let mut history = *history;
        let mut policy = std::borrow::Cow::Borrowed(self);
        match lifted {
            Rule::CeaseCommunication => standing.cease_communication = false,
            Rule::UnverifiedDispute => standing.unverified_dispute = false,
            Rule::DoNotCall => standing.do_not_call = false,
            Rule::DoNotEmail => standing.do_not_email = false,
            Rule::CallAttempts => history.limit_th_latest_call = None,
            Rule::RecentConversation => history.last_conversation = None,
            Rule::OutsideWindow => policy.to_mut().window_channels.retain(|c| *c != channel),
        }
        policy.decide(&standing, zones, &history, channel, at)
    }

    /// What the account document carries so the index can tell, at query time, whether
    /// contact is allowed: the statically blocked channels, when calls open, and the
    /// window as UTC minutes of the day for the zones' offsets at `now` (the whole day's
    /// window, when `now` is inside it too).
    pub fn inputs(&self, standing: &Standing, zones: &[Tz], history: &CallHistory, now: DateTime<Utc>) -> ContactInputs {
        let window = self.window_opened(zones, now).and_then(|open| {
            let close = self.window_closes(zones, open)?;
            let start = (open.time().num_seconds_from_midnight() / 60) as i32;
            let length = (close - open).num_minutes() as i32;
            Some(UtcWindow {
                start_min: start,
                end_min: start + length,
            })
        });
        ContactInputs {
            blocked: standing.blocked_channels(),
            windowed: self.window_channels.clone(),
            calls_open_at: self.calls_open_at(history).map(|(at, _)| at),
            window,
        }
    }
}

/// A daily window in UTC minutes of the day: `start_min` in `0..1440`, `end_min` after
/// it, past 1440 when the window runs over midnight UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtcWindow {
    pub start_min: i32,
    pub end_min: i32,
}

impl UtcWindow {
    /// The minute of the UTC day of `at`, and the same minute a day later: the window
    /// contains `at` when it contains either.
    pub fn minutes_of(at: DateTime<Utc>) -> [i32; 2] {
        let minute = (at.time().num_seconds_from_midnight() / 60) as i32;
        [minute, minute + 1440]
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        Self::minutes_of(at).iter().any(|m| self.start_min <= *m && *m < self.end_min)
    }
}

/// The guard's inputs in an account document (see [`Policy::inputs`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactInputs {
    /// Refused whatever the time.
    pub blocked: Vec<Channel>,
    /// Allowed only inside the window.
    pub windowed: Vec<Channel>,
    pub calls_open_at: Option<DateTime<Utc>>,
    pub window: Option<UtcWindow>,
}

impl ContactInputs {
    /// Whether `channel` is allowed at `now` by these inputs: what the index's filter
    /// computes, stated once for both backends' tests.
    pub fn allow(&self, channel: Channel, now: DateTime<Utc>) -> bool {
        !self.blocked.contains(&channel)
            && (channel != Channel::Call || self.calls_open_at.is_none_or(|open| open <= now))
            && (!self.windowed.contains(&channel) || self.window.is_some_and(|w| w.contains(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regulation_f() -> Policy {
        Policy {
            window_start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            window_end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            window_channels: vec![Channel::Call, Channel::Sms, Channel::Email, Channel::Visit],
            call_attempt_limit: 7,
            call_attempt_days: 7,
            conversation_days: 7,
            conversation_outcomes: vec![Outcome::RightParty],
            override_minutes: 60,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    const NEW_YORK: &[Tz] = &[Tz::America__New_York];

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_portfolios_policy_replaces_what_it_sets_and_follows_the_agency_elsewhere() {
        let agency = regulation_f();
        assert_eq!(PortfolioPolicy::default().over(&agency), Ok(agency.clone()));
        let own = PortfolioPolicy {
            window_end: Some(hm(19, 0)),
            call_attempt_limit: Some(3),
            window_channels: Some(vec![Channel::Call, Channel::Sms, Channel::Call]),
            ..PortfolioPolicy::default()
        }
        .normalized();
        assert_eq!(own.window_channels, Some(vec![Channel::Call, Channel::Sms]), "repeats dropped");
        let policy = own.over(&agency).unwrap();
        assert_eq!((policy.window_start, policy.window_end), (hm(8, 0), hm(19, 0)));
        assert_eq!((policy.call_attempt_limit, policy.call_attempt_days), (3, 7));
        // 19:30 in New York on 2026-11-25 (EST): inside the agency's hours, not the portfolio's.
        let evening = at("2026-11-26T00:30:00Z");
        let none = CallHistory::default();
        assert_eq!(agency.decide(&Standing::default(), NEW_YORK, &none, Channel::Call, evening), Ok(()));
        let refused = policy
            .decide(&Standing::default(), NEW_YORK, &none, Channel::Call, evening)
            .unwrap_err();
        assert_eq!(
            (refused.rule, refused.next_allowed_at),
            (Rule::OutsideWindow, Some(at("2026-11-26T13:00:00Z")))
        );
        // Email is no longer under the hours.
        assert_eq!(
            policy.decide(&Standing::default(), NEW_YORK, &none, Channel::Email, evening),
            Ok(())
        );
    }

    #[test]
    fn a_portfolios_policy_is_refused_field_by_field() {
        let agency = regulation_f();
        let fields = |own: PortfolioPolicy| -> Vec<String> { own.over(&agency).unwrap_err().into_iter().map(|e| e.field).collect() };
        let bad = PortfolioPolicy {
            call_attempt_limit: Some(0),
            call_attempt_days: Some(MAX_PERIOD_DAYS + 1),
            conversation_days: Some(MAX_PERIOD_DAYS + 1),
            override_minutes: Some(0),
            ..PortfolioPolicy::default()
        };
        assert_eq!(
            fields(bad),
            ["call_attempt_limit", "call_attempt_days", "conversation_days", "override_minutes"]
        );
        // A window that would end before it starts is named where it was set.
        let early_end = PortfolioPolicy {
            window_end: Some(hm(7, 0)),
            ..PortfolioPolicy::default()
        };
        assert_eq!(fields(early_end), ["window_end"]);
        let late_start = PortfolioPolicy {
            window_start: Some(hm(21, 0)),
            ..PortfolioPolicy::default()
        };
        assert_eq!(fields(late_start), ["window_start"]);
    }

    #[test]
    fn the_window_ends_at_nine_local_on_both_sides_of_a_dst_change() {
        let policy = regulation_f();
        let none = CallHistory::default();
        let ok = |t: &str| policy.decide(&Standing::default(), NEW_YORK, &none, Channel::Call, at(t));
        // 2026-11-01: New York leaves daylight time (EDT -4 → EST -5).
        assert_eq!(ok("2026-10-31T00:59:00Z"), Ok(()), "20:59 EDT");
        assert_eq!(ok("2026-10-31T01:00:00Z").unwrap_err().rule, Rule::OutsideWindow, "21:00 EDT");
        assert_eq!(ok("2026-11-02T01:59:00Z"), Ok(()), "20:59 EST");
        let refused = ok("2026-11-02T02:00:00Z").unwrap_err();
        assert_eq!(refused.rule, Rule::OutsideWindow, "21:00 EST");
        assert_eq!(refused.next_allowed_at, Some(at("2026-11-02T13:00:00Z")), "08:00 EST next morning");
        // 2026-03-08: New York enters daylight time; 07:59 EDT is refused, 08:00 EDT is not.
        assert_eq!(
            ok("2026-03-08T11:59:00Z").unwrap_err().next_allowed_at,
            Some(at("2026-03-08T12:00:00Z"))
        );
        assert_eq!(ok("2026-03-08T12:00:00Z"), Ok(()));
    }

    #[test]
    fn an_unknown_zone_allows_only_hours_inside_the_window_everywhere_in_the_country() {
        let policy = regulation_f();
        let us = [Tz::America__New_York, Tz::America__Los_Angeles, Tz::Pacific__Honolulu];
        let none = CallHistory::default();
        // 09:00 in New York is 03:00 in Honolulu (HST -10): refused until 08:00 there.
        let refused = policy
            .decide(&Standing::default(), &us, &none, Channel::Call, at("2026-01-15T14:00:00Z"))
            .unwrap_err();
        assert_eq!(refused.next_allowed_at, Some(at("2026-01-15T18:00:00Z")));
        // 20:59 in New York (13:59 LA, 15:59 HNL) is the window's last minute.
        assert_eq!(
            policy.decide(&Standing::default(), &us, &none, Channel::Call, at("2026-01-16T01:59:00Z")),
            Ok(())
        );
        assert!(
            policy
                .decide(&Standing::default(), &us, &none, Channel::Call, at("2026-01-16T02:00:00Z"))
                .is_err()
        );
        assert_eq!(known_zone("UTC"), None);
        assert_eq!(known_zone("Europe/Paris"), Some(Tz::Europe__Paris));
    }

    #[test]
    fn the_eighth_call_in_seven_days_is_refused_until_the_first_leaves_the_period() {
        let policy = regulation_f();
        let first = at("2026-05-04T14:00:00Z");
        let seventh_latest = CallHistory {
            limit_th_latest_call: Some(first),
            last_conversation: None,
        };
        let call = |h: &CallHistory, t: &str| policy.decide(&Standing::default(), NEW_YORK, h, Channel::Call, at(t));
        // Six calls so far: the seventh is allowed.
        assert_eq!(call(&CallHistory::default(), "2026-05-05T14:00:00Z"), Ok(()));
        let refused = call(&seventh_latest, "2026-05-11T13:59:00Z").unwrap_err();
        assert_eq!(refused.rule, Rule::CallAttempts);
        assert_eq!(refused.next_allowed_at, Some(at("2026-05-11T14:00:00Z")));
        // The day the period ends, at the first call's time, it is out of the period.
        assert_eq!(call(&seventh_latest, "2026-05-11T14:00:00Z"), Ok(()));
        // Text messages are not calls.
        assert_eq!(
            policy.decide(
                &Standing::default(),
                NEW_YORK,
                &seventh_latest,
                Channel::Sms,
                at("2026-05-10T14:00:00Z")
            ),
            Ok(())
        );
    }

    #[test]
    fn a_conversation_holds_calls_back_and_the_window_applies_after_it() {
        let policy = regulation_f();
        let history = CallHistory {
            limit_th_latest_call: None,
            last_conversation: Some(at("2026-05-04T23:30:00Z")),
        };
        // Seven days later is 19:30 EDT + 7 days; allowed then (inside the window).
        let refused = policy
            .decide(&Standing::default(), NEW_YORK, &history, Channel::Call, at("2026-05-11T15:00:00Z"))
            .unwrap_err();
        assert_eq!(refused.rule, Rule::RecentConversation);
        assert_eq!(refused.next_allowed_at, Some(at("2026-05-11T23:30:00Z")));
        // A conversation at 21:30 local (the debtor called in late): seven days later is
        // outside the window, so calls open at 08:00 the next morning.
        let late = CallHistory {
            limit_th_latest_call: None,
            last_conversation: Some(at("2026-05-05T01:30:00Z")),
        };
        let refused = policy
            .decide(&Standing::default(), NEW_YORK, &late, Channel::Call, at("2026-05-11T15:00:00Z"))
            .unwrap_err();
        assert_eq!(refused.next_allowed_at, Some(at("2026-05-12T12:00:00Z")));
    }

    #[test]
    fn flags_and_disputes_refuse_without_a_time() {
        let policy = regulation_f();
        let none = CallHistory::default();
        let noon = at("2026-05-04T16:00:00Z");
        let decide = |s: Standing, c: Channel| policy.decide(&s, NEW_YORK, &none, c, noon);
        let dnc = Standing {
            do_not_call: true,
            ..Standing::default()
        };
        assert_eq!(decide(dnc, Channel::Sms).unwrap_err().rule, Rule::DoNotCall);
        assert_eq!(decide(dnc, Channel::Email), Ok(()));
        let disputed = Standing {
            unverified_dispute: true,
            ..Standing::default()
        };
        assert_eq!(
            decide(disputed, Channel::Letter),
            Err(Refusal {
                rule: Rule::UnverifiedDispute,
                next_allowed_at: None
            })
        );
        let cease = Standing {
            cease_communication: true,
            do_not_email: true,
            ..Standing::default()
        };
        assert_eq!(decide(cease, Channel::Email).unwrap_err().rule, Rule::CeaseCommunication);
        assert_eq!(cease.blocked_channels(), Channel::ALL.to_vec());
    }

    #[test]
    fn lifting_one_rule_leaves_every_other_one_refusing() {
        let policy = regulation_f();
        let none = CallHistory::default();
        let night = at("2026-05-05T02:30:00Z");
        let noon = at("2026-05-04T16:00:00Z");
        let opted_out = Standing {
            do_not_call: true,
            ..Standing::default()
        };
        let lift = |s: &Standing, t, rule| policy.decide_lifting(s, NEW_YORK, &none, Channel::Sms, t, rule);
        assert_eq!(lift(&opted_out, noon, Rule::DoNotCall), Ok(()));
        assert_eq!(
            lift(&opted_out, night, Rule::DoNotCall).unwrap_err().rule,
            Rule::OutsideWindow,
            "the hours hold besides the flag lifted"
        );
        assert_eq!(lift(&Standing::default(), night, Rule::OutsideWindow), Ok(()));
        assert_eq!(lift(&opted_out, night, Rule::OutsideWindow).unwrap_err().rule, Rule::DoNotCall);
        let ceased = Standing {
            cease_communication: true,
            do_not_call: true,
            ..Standing::default()
        };
        assert_eq!(lift(&ceased, noon, Rule::DoNotCall).unwrap_err().rule, Rule::CeaseCommunication);
        assert_eq!(lift(&ceased, noon, Rule::CeaseCommunication).unwrap_err().rule, Rule::DoNotCall);
        for rule in Rule::ALL {
            assert_eq!(Rule::parse(rule.as_str()), Some(rule));
        }
    }

    /// A document indexed at any time of day, outside the window or inside it, answers
    /// as the guard does from a while before it was written (a query's clock may read a
    /// moment earlier than the sync's) through the days after.
    #[test]
    fn the_document_inputs_agree_with_the_guard_through_a_day() {
        let policy = regulation_f();
        let zones = [Tz::America__New_York, Tz::America__Los_Angeles];
        let history = CallHistory {
            limit_th_latest_call: Some(at("2026-05-01T15:00:00Z")),
            last_conversation: None,
        };
        // Outside the window, inside it (it opens at 15:00Z, 08:00 in Los Angeles, and
        // closes at 01:00Z, 21:00 in New York), and just after midnight UTC inside it.
        for indexed_at in [
            "2026-05-06T03:00:00Z",
            "2026-05-06T15:00:30Z",
            "2026-05-06T18:41:17Z",
            "2026-05-07T00:20:00Z",
        ] {
            let indexed_at = at(indexed_at);
            let inputs = policy.inputs(&Standing::default(), &zones, &history, indexed_at);
            let mut t = indexed_at - Duration::minutes(30);
            while t < indexed_at + Duration::days(3) {
                for channel in Channel::ALL {
                    let guard = policy.decide(&Standing::default(), &zones, &history, channel, t).is_ok();
                    assert_eq!(inputs.allow(channel, t), guard, "{channel:?} at {t}, indexed at {indexed_at}");
                }
                t += Duration::minutes(7);
            }
        }
    }
}

//! Manager KPIs: the request's parameters and their rules, who may ask and which
//! accounts' figures they read, and the answer assembled from the store's grouped figures.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::account::Bucket;
use crate::domain::kpi::{DEFAULT_DAYS, GroupBy, MAX_DAYS};
use crate::domain::money::CurrencyAmount;
use crate::domain::portfolio::Scope;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::domain::search::NO_PORTFOLIO;
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::params::{self, Param, Problems, schema};
use crate::lists::values;
use crate::service::portfolios;
use crate::store::kpis::{self, KeptRows, Portfolios, Window};
use crate::store::{self, users};

/// What the parameters fill in, before the rules between them apply.
struct Request {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    group_by: GroupBy,
    portfolio: Option<Option<Uuid>>,
    agent: Option<Uuid>,
    team: Option<String>,
}

/// The longest team name (as `POST /api/v1/users` allows).
const MAX_TEAM_CHARS: usize = 100;

const PARAMS: &[Param<Request>] = &[
    Param::new(
        "from",
        "The first UTC day; 29 days before `to` when absent.",
        schema::date,
        |r, v| r.from = v.one(values::date, values::DATE),
    ),
    Param::new(
        "to",
        "The last UTC day, at most today; today when absent. At most 366 days in all.",
        schema::date,
        |r, v| r.to = v.one(values::date, values::DATE),
    ),
    Param::new(
        "group_by",
        "How the figures are split: `agent` (default), `team`, `bucket` or `portfolio`.",
        schema::one::<GroupBy>,
        |r, v| {
            if let Some(by) = v.one(GroupBy::parse, "agent, team, bucket or portfolio") {
                r.group_by = by;
            }
        },
    ),
    Param::new(
        "portfolio",
        "Only the accounts of this portfolio (an id of one within the caller's portfolios), or of none with `none`.",
        schema::text,
        |r, v| {
            r.portfolio = v.one(
                |text| match text {
                    NO_PORTFOLIO => Some(None),
                    id => Uuid::parse_str(id).ok().map(Some),
                },
                "a portfolio id or `none`",
            )
        },
    ),
    Param::new(
        "agent",
        "Only the figures that count for this user (a user's id): what they logged and promised, what the accounts they held collected, the moves of the accounts they held at the opening.",
        schema::id,
        |r, v| r.agent = v.one(|text| Uuid::parse_str(text).ok(), "a user id"),
    ),
    Param::new(
        "team",
        "Only the figures that count for the users now in this team (a team some user is in).",
        schema::text,
        |r, v| match v.text() {
            Some(team) if team.chars().count() > MAX_TEAM_CHARS => v.refuse(format!("must be at most {MAX_TEAM_CHARS} characters")),
            Some(team) => r.team = Some(team),
            None => v.refuse("must not be empty"),
        },
    ),
];

params::described_by!(
    /// The KPI report's parameters.
    KpiParams,
    PARAMS
);

/// A validated KPI request.
#[derive(Clone, Debug)]
pub struct KpiRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    /// The portfolio asked for (`Some(None)`: none); every one in scope when `None`.
    pub portfolio: Option<Option<Uuid>>,
    /// The user, and the team, whose figures are asked for; everyone's when `None`.
    pub agent: Option<Uuid>,
    pub team: Option<String>,
    pub window: Window,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Reads and checks the query string: dates, `from <= to <= today`, at most
/// [`MAX_DAYS`] days.
pub fn parse(raw: &str, now: DateTime<Utc>) -> Result<KpiRequest> {
    let mut problems = Problems::default();
    let mut request = Request {
        from: None,
        to: None,
        group_by: GroupBy::Agent,
        portfolio: None,
        agent: None,
        team: None,
    };
    params::read(raw, PARAMS, &mut request, &mut problems);
    let today = now.date_naive();
    let to = request.to.unwrap_or(today);
    let from = request.from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    if to > today {
        problems.push("to", "must not be after today (UTC)");
    }
    if from > to {
        problems.push("from", "must not be after to");
    } else if (to - from).num_days() + 1 > MAX_DAYS {
        problems.push("from", format!("the range may span at most {MAX_DAYS} days"));
    }
    problems.finish()?;
    let after = to + Duration::days(1);
    Ok(KpiRequest {
        from,
        to,
        group_by: request.group_by,
        portfolio: request.portfolio,
        agent: request.agent,
        team: request.team,
        window: Window {
            start: midnight(from),
            end: midnight(after),
            opening: from,
            closing: after.min(today),
        },
    })
}

/// Accounts that moved from one bucket at the opening to another (or the same) at the
/// closing.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Roll {
    pub from_bucket: String,
    pub to_bucket: String,
    pub accounts: i64,
    /// `accounts` over the accounts in `from_bucket` at the opening that have a closing
    /// snapshot.
    pub rate: f64,
}

/// Contact attempts of one channel (an activity type: `call`, `sms`, `whatsapp`,
/// `email`, `letter`, `visit`; messages sent count as their channel's attempts).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelFigures {
    pub channel: String,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
    /// `right_party_contacts / contact_attempts`.
    pub right_party_contact_rate: Option<f64>,
}

/// The figures of one group, or of all of them.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub accounts_worked: i64,
    pub contact_attempts: i64,
    pub right_party_contacts: i64,
    /// `right_party_contacts / contact_attempts`; null without attempts.
    pub right_party_contact_rate: Option<f64>,
    /// The attempts and right-party contacts split by channel, by channel name; only
    /// the channels with attempts.
    pub channels: Vec<ChannelFigures>,
    pub promises_made: i64,
    pub promises_kept: i64,
    pub promises_broken: i64,
    /// `promises_kept / (promises_kept + promises_broken)`; null when none is resolved.
    pub promise_kept_rate: Option<f64>,
    /// Completed payments per currency, never summed across currencies.
    pub collected: Vec<CurrencyAmount>,
    /// Accounts in a delinquent bucket at the opening with a closing snapshot.
    pub delinquent_at_opening: i64,
    pub cured: i64,
    /// `cured / delinquent_at_opening`; null when none was delinquent.
    pub cure_rate: Option<f64>,
    pub roll_rates: Vec<Roll>,
}

/// One group: its key (an agent's id, a team's name, an opening bucket or a portfolio's
/// id; null for none) and its figures.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub key: Option<String>,
    /// The user's name when grouped by agent, the portfolio's when grouped by portfolio;
    /// null otherwise.
    pub name: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// `GET /kpis`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KpiReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    /// The portfolio the figures are limited to (`none`: the accounts in none); null for
    /// every portfolio the caller sees.
    pub portfolio: Option<String>,
    /// The user, and the team, the figures are limited to; null for everyone.
    pub agent: Option<Uuid>,
    pub team: Option<String>,
    /// The snapshot day whose buckets open the period (`from`).
    pub opening_day: NaiveDate,
    /// The snapshot day whose buckets close it: the day after `to`, or today when `to`
    /// is today.
    pub closing_day: NaiveDate,
    /// Ordered by key, the group without a key last.
    pub groups: Vec<Group>,
    pub total: Figures,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    // Counts stay far below 2^52, so the conversions are exact.
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// What a group's figures are summed from.
#[derive(Default)]
struct Sums {
    /// The accounts worked; only groups have them: the total's are the union of the
    /// groups'.
    worked: Ordinals,
    attempts: i64,
    right_party: i64,
    /// Per channel: `(attempts, right-party contacts)`.
    channels: BTreeMap<String, (i64, i64)>,
    made: i64,
    kept: i64,
    broken: i64,
    collected: BTreeMap<String, Decimal>,
    /// `(opening bucket, closing bucket)` to `(accounts, cured)`.
    moves: BTreeMap<(String, String), (i64, i64)>,
}

/// A group's accounts worked, by ordinal: listed as the work rows give them (repeats too)
/// while the list is smaller than a bit for each ordinal up to the largest would be, then
/// a bit each. A year's work rows name about 5,000,000 ordinals at 1,000,000 accounts, and
/// setting a bit costs a memory write where sorting them into a roaring bitmap cost a
/// comparison sort, and collecting them all first a copy (what each cost a request:
/// docs/benchmarks.md); a short period's few ordinals stay a short list. Either way a
/// group holds at most the smaller of 4 bytes per ordinal read and 125 KB at 1,000,000
/// accounts, however many agents a request groups by.
#[derive(Default)]
struct Ordinals {
    listed: Vec<u32>,
    largest: u32,
    bits: Bits,
}

impl Ordinals {
    /// Adds a work row's accounts ([`kpis::ordinals`]).
    fn extend(&mut self, accounts: &[u8]) {
        if !self.bits.words.is_empty() {
            for ordinal in kpis::ordinals(accounts) {
                self.bits.insert(ordinal);
            }
            return;
        }
        for ordinal in kpis::ordinals(accounts) {
            self.largest = self.largest.max(ordinal);
            self.listed.push(ordinal);
        }
        // 4 bytes an ordinal listed against one bit per ordinal up to the largest.
        if self.listed.len() as u64 * 32 > u64::from(self.largest) {
            for ordinal in std::mem::take(&mut self.listed) {
                self.bits.insert(ordinal);
            }
        }
    }

    /// How many accounts, each added to `everyone`; `scratch` is a clear set, left clear.
    fn count(&self, everyone: &mut Bits, scratch: &mut Bits) -> u64 {
        if self.listed.is_empty() {
            everyone.union(&self.bits);
            return self.bits.len();
        }
        let mut distinct = 0;
        for ordinal in &self.listed {
            if scratch.insert(*ordinal) {
                distinct += 1;
                everyone.insert(*ordinal);
            }
        }
        scratch.clear(&self.listed);
        distinct
    }
}

/// Accounts by ordinal, a bit each.
#[derive(Default)]
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// Sets `ordinal`'s bit; whether it was clear.
    fn insert(&mut self, ordinal: u32) -> bool {
        let (word, bit) = ((ordinal / 64) as usize, 1u64 << (ordinal % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let clear = self.words[word] & bit == 0;
        self.words[word] |= bit;
        clear
    }

    /// Clears the bits of `ordinals`, leaving the words allocated for the next group.
    fn clear(&mut self, ordinals: &[u32]) {
        for ordinal in ordinals {
            if let Some(word) = self.words.get_mut((ordinal / 64) as usize) {
                *word = 0;
            }
        }
    }

    /// Adds the accounts of `other`.
    fn union(&mut self, other: &Bits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word |= theirs;
        }
    }

    /// How many accounts.
    fn len(&self) -> u64 {
        self.words.iter().map(|word| u64::from(word.count_ones())).sum()
    }
}

impl Sums {
    /// The figures, with `worked` the number of distinct accounts worked.
    fn figures(self, worked: u64) -> Figures {
        let mut opening: BTreeMap<&str, i64> = BTreeMap::new();
        for ((from, _), (accounts, _)) in &self.moves {
            *opening.entry(from.as_str()).or_default() += accounts;
        }
        let delinquent: i64 = opening
            .iter()
            .filter(|(bucket, _)| **bucket != Bucket::Current.as_str())
            .map(|(_, accounts)| accounts)
            .sum();
        let cured: i64 = self.moves.values().map(|(_, cured)| cured).sum();
        let roll_rates = self
            .moves
            .iter()
            .map(|((from, to), (accounts, _))| Roll {
                from_bucket: from.clone(),
                to_bucket: to.clone(),
                accounts: *accounts,
                rate: rate(*accounts, opening[from.as_str()]).unwrap_or_default(),
            })
            .collect();
        Figures {
            accounts_worked: i64::try_from(worked).unwrap_or(i64::MAX),
            contact_attempts: self.attempts,
            right_party_contacts: self.right_party,
            right_party_contact_rate: rate(self.right_party, self.attempts),
            channels: self
                .channels
                .into_iter()
                .map(|(channel, (attempts, right_party))| ChannelFigures {
                    channel,
                    contact_attempts: attempts,
                    right_party_contacts: right_party,
                    right_party_contact_rate: rate(right_party, attempts),
                })
                .collect(),
            promises_made: self.made,
            promises_kept: self.kept,
            promises_broken: self.broken,
            promise_kept_rate: rate(self.kept, self.kept + self.broken),
            collected: self
                .collected
                .into_iter()
                .map(|(currency, amount)| CurrencyAmount::new(&currency, amount))
                .collect(),
            delinquent_at_opening: delinquent,
            cured,
            cure_rate: rate(cured, delinquent),
            roll_rates,
        }
    }
}

/// Sums every row that counts into its group and into the total.
struct Tally {
    by: GroupBy,
    roster: Roster,
    /// The users whose rows count; every row counts when `None`.
    admitted: Option<HashSet<Uuid>>,
    groups: BTreeMap<Option<GroupKey>, Sums>,
    total: Sums,
}

/// A group while rows are summed: an agent or a portfolio by id (compared as 16 bytes, not
/// formatted for every row), a team or a bucket by name.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Id(Uuid),
    Name(String),
}

impl GroupKey {
    /// The group's key in the answer.
    fn into_key(self) -> String {
        match self {
            GroupKey::Id(id) => id.to_string(),
            GroupKey::Name(name) => name,
        }
    }
}

impl Tally {
    /// The group of a row that counts for `agent`, `bucket` and `portfolio`; `None` when
    /// the row is not one asked for (another user's, under `agent` or `team`).
    fn group(&self, agent: Option<Uuid>, bucket: Option<&str>, portfolio: Option<Uuid>) -> Option<Option<GroupKey>> {
        if let Some(admitted) = &self.admitted
            && !agent.is_some_and(|a| admitted.contains(&a))
        {
            return None;
        }
        Some(match self.by {
            GroupBy::Agent => agent.map(GroupKey::Id),
            GroupBy::Team => agent
                .and_then(|a| self.roster.team_of(a))
                .map(|team| GroupKey::Name(team.to_owned())),
            GroupBy::Bucket => bucket.map(|bucket| GroupKey::Name(bucket.to_owned())),
            GroupBy::Portfolio => portfolio.map(GroupKey::Id),
        })
    }

    /// Adds to the group of a row that counts (see [`Tally::group`]).
    fn add(&mut self, agent: Option<Uuid>, bucket: Option<&str>, portfolio: Option<Uuid>, add: impl Fn(&mut Sums)) {
        if let Some(key) = self.group(agent, bucket, portfolio) {
            add(self.groups.entry(key).or_default());
            add(&mut self.total);
        }
    }

    /// Adds a work row's accounts to its group when the row counts.
    fn worked(&mut self, agent: Option<Uuid>, bucket: Option<&str>, portfolio: Option<Uuid>, accounts: &[u8]) {
        if let Some(key) = self.group(agent, bucket, portfolio) {
            self.groups.entry(key).or_default().worked.extend(accounts);
        }
    }

    /// Lists every agent (and, by team, every team of one) among the users asked for, with
    /// nothing to count as well: an idle agent is a figure too.
    fn list_everyone(&mut self) {
        let keys: Vec<GroupKey> = self
            .roster
            .users
            .iter()
            .filter(|u| u.agent && self.admitted.as_ref().is_none_or(|a| a.contains(&u.id)))
            .filter_map(|u| match self.by {
                GroupBy::Agent => Some(GroupKey::Id(u.id)),
                GroupBy::Team => u.team.clone().map(GroupKey::Name),
                GroupBy::Bucket | GroupBy::Portfolio => None,
            })
            .collect();
        for key in keys {
            self.groups.entry(Some(key)).or_default();
        }
    }

    fn finish(self) -> (Vec<Group>, Figures) {
        let (mut everyone, mut scratch) = (Bits::default(), Bits::default());
        let mut groups: Vec<Group> = self
            .groups
            .into_iter()
            .map(|(key, mut sums)| {
                let worked = std::mem::take(&mut sums.worked).count(&mut everyone, &mut scratch);
                Group {
                    key: key.map(GroupKey::into_key),
                    name: None,
                    figures: sums.figures(worked),
                }
            })
            .collect();
        groups.sort_by(|a, b| (a.key.is_none(), &a.key).cmp(&(b.key.is_none(), &b.key)));
        (groups, self.total.figures(everyone.len()))
    }
}

/// A 400 naming `portfolio`, as a bad parameter is.
fn refused_portfolio(message: &str) -> Error {
    Error::with_fields(
        Code::InvalidParameter,
        format!("portfolio: {message}"),
        vec![FieldError::new("portfolio", message)],
    )
}

/// The accounts whose figures a caller of `scope` reads when they ask for `portfolio`
/// (every one in scope when `None`); a portfolio that does not exist or is outside the
/// scope is refused naming `portfolio`.
async fn selection(conn: &mut PgConnection, scope: Scope, portfolio: Option<Option<Uuid>>) -> Result<Portfolios> {
    match (portfolio, scope) {
        (None, Scope::Every) => Ok(Portfolios::EVERY),
        (None, Scope::Granted(ids)) => Ok(Portfolios {
            ids: Some(ids),
            none: true,
        }),
        (Some(None), _) => Ok(Portfolios {
            ids: Some(Vec::new()),
            none: true,
        }),
        (Some(Some(id)), scope) => {
            if store::portfolios::get(conn, id, false).await?.is_none() {
                return Err(refused_portfolio("no such portfolio"));
            }
            if !scope.admits(Some(id)) {
                return Err(refused_portfolio("is not one of your portfolios"));
            }
            Ok(Portfolios {
                ids: Some(vec![id]),
                none: false,
            })
        }
    }
}

/// The users a request's figures may count for, and their teams.
struct Roster {
    users: Vec<users::RosterRow>,
    teams: HashMap<Uuid, String>,
}

impl Roster {
    fn new(users: Vec<users::RosterRow>) -> Self {
        let teams = users.iter().filter_map(|u| Some((u.id, u.team.clone()?))).collect();
        Self { users, teams }
    }

    fn team_of(&self, user: Uuid) -> Option<&str> {
        self.teams.get(&user).map(String::as_str)
    }
}

/// The users whose rows count under `agent` and `team` (both: the user, if in the team);
/// `None` without either. A user or a team no user is in is refused naming it.
fn admitted(roster: &Roster, agent: Option<Uuid>, team: Option<&str>) -> Result<Option<HashSet<Uuid>>> {
    let mut problems = Problems::default();
    if let Some(agent) = agent
        && !roster.users.iter().any(|u| u.id == agent)
    {
        problems.push("agent", "no such user");
    }
    if let Some(team) = team
        && !roster.users.iter().any(|u| u.team.as_deref() == Some(team))
    {
        problems.push("team", "no user is in this team");
    }
    problems.finish()?;
    if agent.is_none() && team.is_none() {
        return Ok(None);
    }
    Ok(Some(
        roster
            .users
            .iter()
            .filter(|u| agent.is_none_or(|a| a == u.id) && team.is_none_or(|t| u.team.as_deref() == Some(t)))
            .map(|u| u.id)
            .collect(),
    ))
}

/// The KPIs the query string `raw` asks for at `now`, for managers and admins, over the
/// accounts within the caller's portfolios (docs/features/kpis.md, "Portfolios").
pub async fn report(pool: &PgPool, kept_rows: &KeptRows, caller: &Principal, raw: &str, now: DateTime<Utc>) -> Result<KpiReport> {
    caller.require(Action::ReadKpis)?;
    let request = parse(raw, now)?;
    let selected = {
        let mut conn = pool.acquire().await?;
        let scope = portfolios::scope(&mut conn, caller).await?;
        selection(&mut conn, scope, request.portfolio).await?
    };
    let (by, window) = (request.group_by, request.window);
    let (days, moves, roster) = tokio::try_join!(
        kpis::day_figures(pool, kept_rows, window, &selected),
        kpis::moves(pool, window, &selected),
        async { Ok(Roster::new(users::roster(pool).await?)) },
    )?;
    let admitted = admitted(&roster, request.agent, request.team.as_deref())?;
    let mut tally = Tally {
        by,
        roster,
        admitted,
        groups: BTreeMap::new(),
        total: Sums::default(),
    };
    for row in days.rows(|r| r.work.as_slice()) {
        let (agent, bucket, portfolio) = (row.agent_id, row.bucket.as_deref(), row.portfolio_id);
        tally.worked(agent, bucket, portfolio, &row.accounts);
        tally.add(agent, bucket, portfolio, |s| {
            s.attempts += row.contact_attempts;
            s.right_party += row.right_party_contacts;
        });
    }
    for row in days.rows(|r| r.channels.as_slice()) {
        tally.add(row.agent_id, row.bucket.as_deref(), row.portfolio_id, |s| {
            let channel = s.channels.entry(row.channel.clone()).or_default();
            channel.0 += row.contact_attempts;
            channel.1 += row.right_party_contacts;
        });
    }
    for row in days.rows(|r| r.promises.as_slice()) {
        tally.add(row.agent_id, row.bucket.as_deref(), row.portfolio_id, |s| {
            s.made += row.made;
            s.kept += row.kept;
            s.broken += row.broken;
        });
    }
    for row in days.rows(|r| r.collected.as_slice()) {
        tally.add(row.agent_id, row.bucket.as_deref(), row.portfolio_id, |s| {
            *s.collected.entry(row.currency.clone()).or_default() += row.amount;
        });
    }
    for row in moves {
        tally.add(row.agent_id, Some(&row.opening_bucket), row.portfolio_id, |s| {
            let pair = s.moves.entry((row.opening_bucket.clone(), row.closing_bucket.clone())).or_default();
            pair.0 += row.accounts;
            pair.1 += row.cured;
        });
    }
    tally.list_everyone();
    let names: HashMap<Uuid, String> = tally.roster.users.iter().map(|u| (u.id, u.name.clone())).collect();
    let (mut groups, total) = tally.finish();
    match by {
        GroupBy::Portfolio => name_portfolios(pool, &mut groups).await?,
        GroupBy::Agent => {
            for group in &mut groups {
                group.name = group
                    .key
                    .as_deref()
                    .and_then(|k| Uuid::parse_str(k).ok())
                    .and_then(|id| names.get(&id).cloned());
            }
        }
        GroupBy::Team | GroupBy::Bucket => {}
    }
    Ok(KpiReport {
        from: request.from,
        to: request.to,
        group_by: by,
        portfolio: request
            .portfolio
            .map(|p| p.map_or_else(|| NO_PORTFOLIO.to_owned(), |id| id.to_string())),
        agent: request.agent,
        team: request.team,
        opening_day: window.opening,
        closing_day: window.closing,
        groups,
        total,
    })
}

/// Gives each portfolio's group the portfolio's name (a deleted one's too).
async fn name_portfolios(pool: &PgPool, groups: &mut [Group]) -> Result<()> {
    let ids: Vec<Uuid> = groups
        .iter()
        .filter_map(|g| g.key.as_deref().and_then(|k| Uuid::parse_str(k).ok()))
        .collect();
    let names = store::portfolios::names(&mut *pool.acquire().await?, &ids).await?;
    for group in groups {
        group.name = group
            .key
            .as_deref()
            .and_then(|k| Uuid::parse_str(k).ok())
            .and_then(|id| names.get(&id).cloned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn accounts_worked_count_each_account_once_per_group_and_once_in_all() {
        let roster = Roster::new(Vec::new());
        let mut tally = Tally {
            by: GroupBy::Bucket,
            roster,
            admitted: None,
            groups: BTreeMap::new(),
            total: Sums::default(),
        };
        let bytes = |ordinals: &[u32]| ordinals.iter().flat_map(|o| o.to_be_bytes()).collect::<Vec<u8>>();
        // Two days' rows of one bucket, repeating an account, and another bucket sharing one.
        tally.worked(None, Some("1-29"), None, &bytes(&[7, 64, 1_000_000]));
        tally.worked(None, Some("1-29"), None, &bytes(&[64, 3]));
        tally.worked(None, Some("30-59"), None, &bytes(&[3, 63, 65, 2_000_000]));
        // A bucket worked densely, twice: its list outgrows a bit each and becomes one.
        let dense: Vec<u32> = (60..1_060).collect();
        tally.worked(None, Some("60-89"), None, &bytes(&dense));
        tally.worked(None, Some("60-89"), None, &bytes(&dense[..500]));
        assert!(tally.groups[&Some(GroupKey::Name("60-89".to_owned()))].worked.listed.is_empty());
        assert!(!tally.groups[&Some(GroupKey::Name("1-29".to_owned()))].worked.listed.is_empty());
        let (groups, total) = tally.finish();
        let worked: Vec<(Option<String>, i64)> = groups.iter().map(|g| (g.key.clone(), g.figures.accounts_worked)).collect();
        assert_eq!(
            worked,
            [
                (Some("1-29".to_owned()), 4),
                (Some("30-59".to_owned()), 4),
                (Some("60-89".to_owned()), 1_000)
            ]
        );
        // 3, 7, 1,000,000 and 2,000,000 besides the dense ones (63, 64 and 65 among them).
        assert_eq!(total.accounts_worked, 1_004);
    }

    #[test]
    fn the_period_opens_on_from_and_closes_after_to_or_today() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let r = parse("from=2026-11-01&to=2026-11-10&group_by=team", now).unwrap();
        assert_eq!((r.window.opening, r.window.closing), (day("2026-11-01"), day("2026-11-11")));
        assert_eq!(r.window.end, midnight(day("2026-11-11")));
        assert_eq!(r.group_by, GroupBy::Team);
        let r = parse("", now).unwrap();
        assert_eq!(
            (r.from, r.to, r.window.closing),
            (day("2026-10-25"), day("2026-11-23"), day("2026-11-23"))
        );
        assert!(parse("from=2025-11-21&to=2026-11-22", now).is_err());
        assert!(parse("from=2025-11-22&to=2026-11-22", now).is_ok());
        assert!(parse("to=2026-11-24", now).is_err());
        let id = Uuid::now_v7();
        assert_eq!(parse(&format!("portfolio={id}"), now).unwrap().portfolio, Some(Some(id)));
        assert_eq!(parse("portfolio=none&group_by=portfolio", now).unwrap().portfolio, Some(None));
        assert_eq!(parse("", now).unwrap().portfolio, None);
        assert!(parse("portfolio=alpha", now).is_err());
    }
}

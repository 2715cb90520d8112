//! The agent work queue: an agent's accounts (or the team's unassigned ones) in the
//! order they should be worked, each with its reason, leaving out accounts the contact
//! guard blocks now; and claiming the top one so two agents never get the same.

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::account::AccountStatus;
use crate::domain::compliance::{CallHistory, Channel, Policy, Rule, Standing, guard_zones};
use crate::domain::document::AccountDoc;
use crate::domain::principal::Principal;
use crate::domain::queue::{Hold, Position, Reason};
use crate::domain::role::Action;
use crate::domain::search::{AccountQuery, After, AgentFilter, Contactable, Sort, SortField};
use crate::error::{Error, Result};
use crate::search::SearchIndex;
use crate::service::accounts::document;
use crate::service::portfolios;
use crate::store::queue::StandingGroup;
use crate::store::{self, accounts, queue};

/// Accounts a claim attempt reads from the index at once: the first of an agent's own
/// queue is nearly always claimed.
const CLAIM_CANDIDATES: usize = 10;
/// Pages of candidates a claim attempt tries per tier before the next tier (other
/// agents may hold the first ones of the team queue).
const CLAIM_PAGES: usize = 5;

/// Whose queue: an agent's, or the team's unassigned accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Agent(Uuid),
    Team,
}

impl Owner {
    /// The queue `caller` asked for; only supervisors see another agent's or the team's.
    pub fn resolve(caller: &Principal, asked: Option<AgentFilter>) -> Result<Owner> {
        caller.require(Action::WorkAccount)?;
        let owner = match asked {
            None => Owner::Agent(caller.user_id),
            Some(AgentFilter::Agent(id)) => Owner::Agent(id),
            Some(AgentFilter::Unassigned) => Owner::Team,
        };
        if owner != Owner::Agent(caller.user_id) {
            caller.require(Action::SuperviseQueues)?;
        }
        Ok(owner)
    }

    fn filter(self) -> AgentFilter {
        match self {
            Owner::Agent(id) => AgentFilter::Agent(id),
            Owner::Team => AgentFilter::Unassigned,
        }
    }
}

/// One account of the queue.
pub struct Entry {
    pub doc: AccountDoc,
    pub reason: Reason,
}

pub struct QueuePage {
    pub entries: Vec<Entry>,
    /// Accounts in the queue now, over every tier.
    pub total: u64,
    pub next: Option<Position>,
}

/// Statuses nobody works: the debt is resolved.
fn workable() -> Vec<AccountStatus> {
    AccountStatus::ALL.into_iter().filter(|s| !s.is_resolved()).collect()
}

/// Whose queue, on which channel, limited to which portfolios (besides accounts in none;
/// `None`: every portfolio), as of when.
#[derive(Clone, Debug)]
pub struct Ask {
    pub owner: Owner,
    pub channel: Channel,
    pub scope: Option<Vec<Uuid>>,
    pub now: DateTime<Utc>,
}

/// The index query of one tier of a queue.
fn tier_query(ask: &Ask, reason: Reason, page_size: usize, after: Option<After>) -> AccountQuery {
    let (channel, now) = (ask.channel, ask.now);
    let today = now.date_naive();
    AccountQuery {
        statuses: workable(),
        agent: Some(ask.owner.filter()),
        portfolio_scope: ask.scope.clone(),
        contactable: Some(Contactable { channel, now }),
        tier: Some(reason.tier(today, now)),
        sort: Sort {
            field: SortField::Queue,
            descending: true,
        },
        page_size,
        after,
        ..AccountQuery::new(today)
    }
}

/// A page of the queue `ask` names from `start`. Every tier is asked (for the total);
/// those before `start` and after a full page only count.
pub async fn page(search: &dyn SearchIndex, ask: &Ask, start: Option<Position>, page_size: usize) -> Result<QueuePage> {
    let first = start.map_or(0, |p| p.reason.position());
    let mut entries = Vec::with_capacity(page_size);
    let mut totals = [0; Reason::ORDER.len()];
    let mut next = None;
    for reason in Reason::ORDER {
        let position = reason.position();
        let wanted = if position < first || next.is_some() {
            0
        } else {
            page_size - entries.len()
        };
        let after = start.filter(|p| p.reason == reason).and_then(|p| p.after);
        let found = search.search(tier_query(ask, reason, wanted.max(1), after)).await?;
        totals[position] = found.total;
        if wanted == 0 {
            continue;
        }
        let full = found.hits.len() >= wanted;
        entries.extend(found.hits.into_iter().take(wanted).map(|hit| Entry { doc: hit.doc, reason }));
        if full {
            next = match found.next {
                Some(after) => Some(Position {
                    reason,
                    after: Some(after),
                }),
                None => Reason::ORDER.get(position + 1).map(|r| Position { reason: *r, after: None }),
            };
        }
    }
    // A page that ended with its tier points at the next tier only if something is left.
    if let Some(Position { reason, after: None }) = next
        && totals[reason.position()..].iter().sum::<u64>() == 0
    {
        next = None;
    }
    Ok(QueuePage {
        entries,
        total: totals.iter().sum(),
        next,
    })
}

/// Why a queue holds what it holds on a channel now: how many of its accounts the guard
/// holds back and by what, when the earliest calling window among them opens, and how
/// many accounts each channel could work now.
pub struct Explanation {
    pub channel: Channel,
    /// The queue's accounts whatever the guard says (live, not resolved).
    pub workable: u64,
    /// Of those, held back on `channel` now, by what (only what holds some back).
    pub held_back: Vec<(Hold, u64)>,
    /// The earliest moment an account held back by the hours becomes callable.
    pub opens: Option<Opening>,
    /// For each channel, the accounts of the queue contactable on it now.
    pub channels: Vec<(Channel, u64)>,
    /// Of an agent's queue: the team queue's accounts contactable on `channel` now, which
    /// a claim takes once the agent's own are worked (`None` for the team queue itself).
    pub team: Option<u64>,
}

/// When the window of the earliest held-back debtor opens, and in which zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Opening {
    pub at: DateTime<Utc>,
    pub zone: String,
}

impl Explanation {
    pub fn held_back_total(&self) -> u64 {
        self.held_back.iter().map(|(_, n)| n).sum()
    }
}

/// The count query of the queue's workable accounts, contactable on `channel` now if
/// given.
fn count_query(ask: &Ask, channel: Option<Channel>) -> AccountQuery {
    AccountQuery {
        statuses: workable(),
        agent: Some(ask.owner.filter()),
        portfolio_scope: ask.scope.clone(),
        contactable: channel.map(|channel| Contactable { channel, now: ask.now }),
        page_size: 1,
        ..AccountQuery::new(ask.now.date_naive())
    }
}

/// Explains the queue `ask` names, `contactable` being its total on the channel (the page
/// already counted it). Cheap by construction: one count from the index per channel, and
/// one SQL aggregate of the queue's accounts by zone and flags that the guard's own rules
/// then judge per group, never per account.
pub async fn explain(pool: &PgPool, search: &dyn SearchIndex, ask: &Ask, contactable: u64) -> Result<Explanation> {
    let (channel, now) = (ask.channel, ask.now);
    let others = Channel::ALL.into_iter().filter(|c| *c != channel);
    let team = Ask {
        owner: Owner::Team,
        ..ask.clone()
    };
    let counts = try_join_all(
        std::iter::once(count_query(ask, None))
            .chain(others.clone().map(|c| count_query(ask, Some(c))))
            .chain((ask.owner != Owner::Team).then(|| count_query(&team, Some(channel))))
            .map(|query| search.search(query)),
    )
    .await?;
    let queued = counts[0].total;
    let team = (ask.owner != Owner::Team).then(|| counts[counts.len() - 1].total);
    let mut channels: Vec<(Channel, u64)> = std::iter::once((channel, contactable))
        .chain(others.zip(counts[1..Channel::ALL.len()].iter().map(|page| page.total)))
        .collect();
    channels.sort_by_key(|(c, _)| Channel::ALL.iter().position(|a| a == c));
    let mut conn = pool.acquire().await?;
    let agent = match ask.owner {
        Owner::Agent(id) => Some(id),
        Owner::Team => None,
    };
    let statuses: Vec<&str> = workable().into_iter().map(AccountStatus::as_str).collect();
    let groups = queue::standings(&mut conn, agent, &statuses, ask.scope.as_deref()).await?;
    let (mut held_back, opens) = judge(&groups, channel, now);
    // The frequency rules need each account's calls: what the index holds back beyond
    // the rules judged here is theirs.
    let judged: u64 = held_back.iter().map(|(_, n)| n).sum();
    let frequency = queued.saturating_sub(contactable).saturating_sub(judged);
    if channel == Channel::Call && frequency > 0 {
        held_back.push((Hold::CallFrequency, frequency));
    }
    Ok(Explanation {
        channel,
        workable: queued,
        held_back,
        opens,
        channels,
        team,
    })
}

/// What the guard's rules, but the frequency ones, hold back of `groups` on `channel` at
/// `now` (each group under its own policy), and the earliest window opening among those
/// held back by the hours.
fn judge(groups: &[StandingGroup], channel: Channel, now: DateTime<Utc>) -> (Vec<(Hold, u64)>, Option<Opening>) {
    let mut held: Vec<(Hold, u64)> = Vec::new();
    let mut opens: Option<Opening> = None;
    for group in groups {
        let policy = Policy::from(group.policy.clone());
        let zones = guard_zones(&group.timezone, &group.alternate_timezones, &group.country_zones);
        let standing = Standing {
            cease_communication: group.cease_communication,
            do_not_call: group.do_not_call,
            do_not_email: group.do_not_email,
            unverified_dispute: group.unverified_dispute,
        };
        let Err(refusal) = policy.decide(&standing, &zones, &CallHistory::default(), channel, now) else {
            continue;
        };
        let hold = Hold::from(refusal.rule);
        let accounts = u64::try_from(group.accounts).unwrap_or(0);
        match held.iter_mut().find(|(h, _)| *h == hold) {
            Some((_, n)) => *n += accounts,
            None => held.push((hold, accounts)),
        }
        if refusal.rule == Rule::OutsideWindow
            && let Some(at) = refusal.next_allowed_at
            && opens.as_ref().is_none_or(|o| at < o.at)
        {
            // Of several zones (the debtor's is unknown), the one whose morning it is then.
            let zone = zones
                .iter()
                .find(|z| at.with_timezone(*z).time() == policy.window_start)
                .or(zones.first())
                .map_or_else(|| group.timezone.clone(), |z| z.name().to_owned());
            opens = Some(Opening { at, zone });
        }
    }
    held.sort_by_key(|(h, _)| *h as u8);
    (held, opens)
}

/// An account claimed from the queue.
pub struct Claimed {
    /// The account with its summary, read from SQL once claimed.
    pub account: AccountDoc,
    pub reason: Reason,
    pub expires_at: DateTime<Utc>,
}

/// Claims the top account of the caller's queue on `channel` (then of the team queue),
/// for `seconds`, as of `now`. `None`: nothing can be worked now.
pub async fn next(
    pool: &PgPool,
    search: &dyn SearchIndex,
    caller: &Principal,
    channel: Channel,
    skip: Option<Uuid>,
    seconds: u32,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>> {
    caller.require(Action::WorkAccount)?;
    let scope = portfolios::search_scope(pool, caller).await?;
    for owner in [Owner::Agent(caller.user_id), Owner::Team] {
        let ask = Ask {
            owner,
            channel,
            scope: scope.clone(),
            now,
        };
        let tier = |reason: Reason, after| tier_query(&ask, reason, CLAIM_CANDIDATES, after);
        // The first tier with accounts, then, if other agents hold all it offers, the
        // first after it.
        let mut from = 0;
        while let Some((position, mut found)) = search
            .first_ranked_ids(Reason::ORDER[from..].iter().map(|r| tier(*r, None)).collect())
            .await?
        {
            let reason = Reason::ORDER[from + position];
            for _ in 0..CLAIM_PAGES {
                found.ids.retain(|id| Some(*id) != skip);
                let mut tx = store::begin_as(pool, caller.user_id).await?;
                let claimed = queue::claim(&mut tx, caller.user_id, &found.ids, i64::from(seconds)).await?;
                tx.commit().await?;
                if let Some((account_id, expires_at)) = claimed {
                    tracing::info!(%account_id, reason = ?reason, "queue account claimed");
                    let row = accounts::get(pool, account_id).await?.ok_or_else(|| Error::not_found("account"))?;
                    return Ok(Some(Claimed {
                        account: document(pool, row).await?,
                        reason,
                        expires_at,
                    }));
                }
                // Every candidate is held by another agent (or was taken since the
                // index saw it): the next ones.
                match found.next {
                    Some(next) => found = search.ranked_ids(tier(reason, Some(next))).await?,
                    None => break,
                }
                if found.ids.is_empty() {
                    break;
                }
            }
            from += position + 1;
        }
    }
    Ok(None)
}

//! The agent work queue: an agent's accounts (or the team's unassigned ones) in the
//! order they should be worked, each with its reason, leaving out accounts the contact
//! guard blocks now; and claiming the top one so two agents never get the same.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::account::AccountStatus;
use crate::domain::compliance::Channel;
use crate::domain::document::AccountDoc;
use crate::domain::principal::Principal;
use crate::domain::queue::{Position, Reason};
use crate::domain::role::Action;
use crate::domain::search::{AccountQuery, After, AgentFilter, Contactable, Sort, SortField};
use crate::error::{Error, Result};
use crate::search::SearchIndex;
use crate::service::accounts::document;
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

/// The index query of one tier of `owner`'s queue on `channel`.
fn tier_query(owner: Owner, channel: Channel, reason: Reason, now: DateTime<Utc>, page_size: usize, after: Option<After>) -> AccountQuery {
    let today = now.date_naive();
    AccountQuery {
        statuses: workable(),
        agent: Some(owner.filter()),
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

/// A page of `owner`'s queue on `channel` from `start`, as of `now`. Every tier is asked
/// (for the total); those before `start` and after a full page only count.
pub async fn page(
    search: &dyn SearchIndex,
    owner: Owner,
    channel: Channel,
    start: Option<Position>,
    page_size: usize,
    now: DateTime<Utc>,
) -> Result<QueuePage> {
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
        let found = search.search(tier_query(owner, channel, reason, now, wanted.max(1), after)).await?;
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
    seconds: u32,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>> {
    caller.require(Action::WorkAccount)?;
    for owner in [Owner::Agent(caller.user_id), Owner::Team] {
        let tier = |reason: Reason, after| tier_query(owner, channel, reason, now, CLAIM_CANDIDATES, after);
        // The first tier with accounts, then, if other agents hold all it offers, the
        // first after it.
        let mut from = 0;
        while let Some((position, mut found)) = search
            .first_ranked_ids(Reason::ORDER[from..].iter().map(|r| tier(*r, None)).collect())
            .await?
        {
            let reason = Reason::ORDER[from + position];
            for _ in 0..CLAIM_PAGES {
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

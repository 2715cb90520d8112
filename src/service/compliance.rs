//! The contact-compliance guard as operations: deciding an outbound attempt (called by
//! activity logging under the account's lock), what each channel allows now, managers'
//! overrides, and verifying a dispute.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::compliance::{Channel, Refusal};
use crate::domain::document::AccountDoc;
use crate::domain::principal::Principal;
use crate::domain::refusal::FieldError;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::service::accounts::{get_for, lock_for};
use crate::service::portfolios;
use crate::store::compliance::{self, Facts};
use crate::store::{self, accounts};

pub use crate::store::compliance::OverrideRow;

/// Longest override reason, in characters.
pub const MAX_REASON_LEN: usize = 2000;

/// What the guard knows of the account as of `at`, its policy included.
async fn facts(conn: &mut PgConnection, account_id: Uuid, at: DateTime<Utc>) -> Result<Facts> {
    compliance::facts(conn, &[account_id], Some(at))
        .await?
        .remove(&account_id)
        .ok_or_else(|| Error::not_found("account"))
}

/// What the guard says about an attempt on `channel` at `at` on a locked account.
pub async fn decide(conn: &mut PgConnection, account_id: Uuid, channel: Channel, at: DateTime<Utc>) -> Result<Result<(), Refusal>> {
    let facts = facts(conn, account_id, at).await?;
    Ok(facts.policy.decide(&facts.standing, &facts.zones, &facts.history, channel, at))
}

/// What the guard says about another try of attempt `activity_id` (a queued message's
/// retry) on `channel` at `at`, on a locked account: as [`decide`], except that the
/// manager's override used when the attempt was made lifts the rule it was used for,
/// and only that rule, until the override expires. It was granted for that attempt, so
/// it covers the attempt's retries; a rule that holds besides it or came after it (a
/// STOP between the tries) refuses.
pub async fn decide_again(
    conn: &mut PgConnection,
    account_id: Uuid,
    channel: Channel,
    activity_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Result<(), Refusal>> {
    let facts = facts(conn, account_id, at).await?;
    let (policy, standing, zones, history) = (&facts.policy, &facts.standing, &facts.zones, &facts.history);
    Ok(match compliance::lifted_for(conn, activity_id, at).await? {
        Some(lifted) => policy.decide_lifting(standing, zones, history, channel, at, lifted),
        None => policy.decide(standing, zones, history, channel, at),
    })
}

/// The 409 a refused attempt answers.
pub fn blocked(channel: Channel, refusal: Refusal) -> Error {
    let detail = format!("{} contact refused: {}", channel.as_str(), refusal.rule.explain());
    Error::new(Code::ContactBlocked, detail)
        .with_extension("rule", refusal.rule.as_str().into())
        .with_extension("channel", channel.as_str().into())
        .with_extension("next_allowed_at", serde_json::to_value(refusal.next_allowed_at).unwrap_or_default())
}

/// Each channel's answer at `now`, for an account the caller may read.
pub async fn standing_now(
    pool: &PgPool,
    caller: &Principal,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<(Channel, Result<(), Refusal>)>> {
    caller.require(Action::ReadAccounts)?;
    get_for(pool, caller, account_id, "account").await?;
    let mut conn = pool.acquire().await?;
    let facts = facts(&mut conn, account_id, now).await?;
    Ok(Channel::ALL
        .into_iter()
        .map(|channel| {
            (
                channel,
                facts.policy.decide(&facts.standing, &facts.zones, &facts.history, channel, now),
            )
        })
        .collect())
}

/// Body of `POST /accounts/{id}/contact-overrides`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantOverride {
    pub channel: Channel,
    /// Why this attempt may go ahead (kept with the override).
    pub reason: String,
}

/// Lets the next attempt on a channel through the guard, for the policy's minutes from
/// `now`.
pub async fn grant(pool: &PgPool, caller: &Principal, account_id: Uuid, body: GrantOverride, now: DateTime<Utc>) -> Result<OverrideRow> {
    caller.require(Action::OverrideContact)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(Error::validation(vec![FieldError::new(
            "reason",
            format!("must be 1 to {MAX_REASON_LEN} characters"),
        )]));
    }
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    let policy = compliance::policy_of(&mut tx, account.portfolio_id).await?;
    let expires_at = now + Duration::minutes(i64::from(policy.override_minutes));
    let row = compliance::grant(&mut tx, account_id, body.channel, reason, caller.user_id, expires_at).await?;
    tx.commit().await?;
    tracing::info!(override_id = %row.id, account_id = %account_id, channel = body.channel.as_str(), "contact override granted");
    Ok(row)
}

/// A page of the overrides on accounts within `caller`'s scope, newest first.
pub async fn list(
    pool: &PgPool,
    caller: &Principal,
    account_id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<(Vec<OverrideRow>, i64)> {
    caller.require(Action::OverrideContact)?;
    let scope = portfolios::search_scope(pool, caller).await?;
    let rows = compliance::list_overrides(pool, account_id, scope.as_deref(), after, limit).await?;
    Ok((rows, compliance::count_overrides(pool, account_id, scope.as_deref()).await?))
}

/// Marks the account's dispute verified, which lifts the dispute block; returns the account.
pub async fn verify_dispute(pool: &PgPool, caller: &Principal, account_id: Uuid) -> Result<AccountDoc> {
    caller.require(Action::OverrideContact)?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    lock_for(&mut tx, caller, account_id, "account").await?;
    if !compliance::verify_dispute(&mut tx, account_id, caller.user_id).await? {
        return Err(Error::new(Code::NotDisputed, "only a disputed account's dispute can be verified"));
    }
    let row = lock_for(&mut tx, caller, account_id, "account").await?;
    let doc = accounts::document(&mut tx, row).await?;
    tx.commit().await?;
    tracing::info!(account_id = %account_id, "dispute verified");
    Ok(doc)
}

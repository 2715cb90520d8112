//! Calls as operations (docs/features/telephony.md): placing one from the console, the
//! provider's steps of each call (the voice webhooks), the agent's wrap-up, and the
//! phone each agent takes calls on.
//!
//! The guard decides twice on a call the console places: before the provider is asked
//! (nothing rings when it would refuse) and again when the agent answers and the debtor
//! is about to be dialled. Both decisions are [`activities::log_locked`]'s, the one place
//! every attempt is judged: the first is tried and undone, the second is the attempt.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::activity::{self, ActivityType, Direction, NewActivity, Outcome};
use crate::domain::contact::normalize_phone;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::messaging::SendFailure;
use crate::service::Window;
use crate::service::accounts::lock_for;
use crate::service::activities::{self, ActivityRow};
use crate::store::accounts::AccountRow;
pub use crate::store::calls::CallRow;
use crate::store::calls::{self, NewCall, Progress};
use crate::store::{self, accounts, inbound, users};
use crate::telephony::{Dialer, Placing, twiml, voice_url};

/// What a debtor hears when the guard stops a call as it connects.
const STOPPED: &str = "This call was stopped by the contact rules and the debtor was not dialled.";
/// What a debtor hears when no agent can take their call.
const NO_ONE: &str = "No one can take your call right now. Please call again later.";

/// The attempt a placed call makes on the debtor, at `now`.
fn attempt(now: DateTime<Utc>) -> NewActivity {
    NewActivity {
        kind: ActivityType::Call,
        direction: Some(Direction::Outbound),
        outcome: None,
        notes: None,
        occurred_at: now,
        next_action_at: None,
    }
}

/// Places a call from `caller`'s phone to `account_id`'s debtor: the guard allows it now
/// (as it would allow logging the attempt), then the dialer rings the caller's phone.
pub async fn place(pool: &PgPool, dialer: &dyn Dialer, caller: &Principal, account_id: Uuid, now: DateTime<Utc>) -> Result<CallRow> {
    caller.require(Action::WorkAccount)?;
    let mut conn = pool.acquire().await?;
    let agent_number = calls::agent_phone(&mut conn, caller.user_id).await?.ok_or_else(|| {
        Error::new(
            Code::NoAgentPhone,
            "set the phone you take calls on first (PUT /api/v1/me/phone, or \"Your phone\" in the console)",
        )
    })?;
    drop(conn);
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let account = lock_for(&mut tx, caller, account_id, "account").await?;
    let Some(debtor_number) = account.phone.clone() else {
        return Err(Error::new(Code::NoRecipient, "the account has no phone number to call"));
    };
    {
        let mut trial = tx.begin().await?;
        activities::log_locked(&mut trial, caller, &account, &attempt(now), now).await?;
        trial.rollback().await?;
    }
    tx.rollback().await?;
    let id = Uuid::now_v7();
    let placing = Placing {
        call_id: id,
        agent_number: agent_number.clone(),
        debtor_number: debtor_number.clone(),
    };
    let placed = dialer.place(&placing).await.map_err(|failure| {
        let (code, why) = match failure {
            SendFailure::Retry(why) => (Code::ServiceUnavailable, why),
            SendFailure::Refused(why) => (Code::CallNotPlaced, why),
        };
        tracing::warn!(call_id = %id, reason = %why, "the call was not placed");
        Error::new(code, format!("the call was not placed: {why}"))
    })?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let call = calls::insert(
        &mut tx,
        &NewCall {
            id,
            direction: "outbound",
            account_id: Some(account_id),
            agent_id: Some(caller.user_id),
            debtor_number: &debtor_number,
            agent_number: Some(&agent_number),
            provider: dialer.name(),
            provider_call_id: &placed.provider_call_id,
            status: "placed",
        },
    )
    .await?;
    tell(&mut tx, &call).await?;
    tx.commit().await?;
    tracing::info!(call_id = %call.id, "call placed");
    Ok(call)
}

/// Tells the call's agent how it stands (`call.updated`, when `tx` commits).
async fn tell(tx: &mut PgConnection, call: &CallRow) -> Result<()> {
    match call.agent_id {
        Some(agent) => calls::tell(tx, agent, "call.updated", serde_json::to_value(call).unwrap_or_default()).await,
        None => Ok(()),
    }
}

/// The agent of a call, as the guard judges their attempt.
async fn principal_of(pool: &PgPool, user: Uuid) -> Result<Principal> {
    let row = users::by_id(pool, user)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .ok_or_else(|| Error::forbidden("the call's agent can no longer work accounts"))?;
    Ok(Principal {
        user_id: row.id,
        session_id: Uuid::nil(),
        role: row.role(),
        email: row.email,
        name: row.name,
    })
}

/// A voice webhook's call: `call_id` whose provider id is `call_sid`, locked.
async fn locked(tx: &mut PgConnection, call_id: Uuid, call_sid: &str) -> Result<CallRow> {
    calls::lock(tx, call_id, call_sid).await?.ok_or_else(|| Error::not_found("call"))
}

/// Logs a call's attempt on `account_id` by `principal` at `now` in a savepoint of `tx`:
/// the activity's id, or why it may not be made (the guard's refusal, or the agent no
/// longer working the account).
async fn try_attempt(tx: &mut PgConnection, principal: &Principal, account_id: Uuid, now: DateTime<Utc>) -> Result<Uuid> {
    let account = lock_for(tx, principal, account_id, "account").await?;
    let mut savepoint = tx.begin().await?;
    let activity = activities::log_locked(&mut savepoint, principal, &account, &attempt(now), now).await?;
    savepoint.commit().await?;
    Ok(activity.id)
}

/// The agent answered a call the console placed: the guard decides again, at `now`.
/// Allowed, the attempt is logged and the debtor dialled (`caller_id` shown); refused,
/// the agent hears why and the call ends. Answers the TwiML.
pub async fn connect(
    pool: &PgPool,
    call_id: Uuid,
    call_sid: &str,
    caller_id: &str,
    dialled: &str,
    record: bool,
    now: DateTime<Utc>,
) -> Result<String> {
    let agent = calls::get(pool, call_id).await?.and_then(|call| call.agent_id);
    let principal = match agent {
        Some(agent) => principal_of(pool, agent).await,
        None => Err(Error::forbidden("the call has no agent")),
    };
    let mut tx = store::begin_for_job(pool, "telephony", agent).await?;
    let call = locked(&mut tx, call_id, call_sid).await?;
    if call.status == "connecting" {
        return Ok(twiml::dial_debtor(&call.debtor_number, caller_id, dialled, record));
    }
    if call.status != "placed" && call.status != "ringing" {
        return Ok(twiml::hang_up());
    }
    let account_id = call.account_id.ok_or_else(|| Error::not_found("call"))?;
    let verdict = match principal {
        Ok(principal) => try_attempt(&mut tx, &principal, account_id, now).await,
        Err(gone) => Err(gone),
    };
    let (call, answer) = match verdict {
        Ok(activity_id) => {
            let change = Progress {
                status: Some("connecting"),
                activity_id: Some(activity_id),
                ..Progress::default()
            };
            let call = calls::progress(&mut tx, call.id, &change).await?;
            let answer = twiml::dial_debtor(&call.debtor_number, caller_id, dialled, record);
            (call, answer)
        }
        Err(failed) if failed.code() == Code::Internal => return Err(failed),
        Err(refusal) => {
            let rule = refusal
                .extension("rule")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(refusal.code().describe().0)
                .to_owned();
            tracing::info!(call_id = %call.id, rule = %rule, "the guard stopped a call as it connected");
            let change = Progress {
                status: Some("ended"),
                result: Some("refused"),
                refused_rule: Some(&rule),
                ..Progress::default()
            };
            (calls::progress(&mut tx, call.id, &change).await?, twiml::say_and_hang_up(STOPPED))
        }
    };
    tell(&mut tx, &call).await?;
    tx.commit().await?;
    Ok(answer)
}

/// How the provider's word for a finished leg reads as a call's result.
fn result_of(status: &str) -> Option<&'static str> {
    Some(match status {
        "completed" | "answered" => "answered",
        "busy" => "busy",
        "no-answer" => "no_answer",
        "failed" => "failed",
        "canceled" => "canceled",
        _ => return None,
    })
}

/// The final status report of a placed call's first leg (the agent's phone). A call whose
/// agent never answered ends `agent_missed` (or `failed`); one that ends after the
/// debtor was dialled keeps the dialled leg's result. Returns the call.
pub async fn status(pool: &PgPool, call_id: Uuid, call_sid: &str, call_status: &str) -> Result<CallRow> {
    let mut tx = store::begin_for_job(pool, "telephony", None).await?;
    let call = locked(&mut tx, call_id, call_sid).await?;
    let change = match (call.status.as_str(), call_status) {
        ("placed", "failed") => Progress {
            status: Some("ended"),
            result: Some("failed"),
            ..Progress::default()
        },
        ("placed", "busy" | "no-answer" | "canceled" | "completed") => Progress {
            status: Some("ended"),
            result: Some("agent_missed"),
            ..Progress::default()
        },
        ("connecting" | "in_progress", "completed" | "canceled") => Progress {
            status: Some("ended"),
            result: Some(call.result.as_deref().unwrap_or("canceled")),
            ..Progress::default()
        },
        _ => return Ok(call),
    };
    let call = calls::progress(&mut tx, call.id, &change).await?;
    tell(&mut tx, &call).await?;
    tx.commit().await?;
    Ok(call)
}

/// What the provider reported when a `<Dial>` ended: the dialled leg's status and how
/// long it lasted, and the recording's address.
pub struct DialEnd<'a> {
    pub status: &'a str,
    pub duration_seconds: Option<i32>,
    pub recording_url: Option<&'a str>,
}

/// A call's `<Dial>` ended: the debtor's leg of a placed call, or the agents' of a call
/// taken. Its result is kept; a placed call the debtor did not answer logs `no_answer`
/// on its attempt (until the wrap-up says more); a call no agent took ends `missed`.
pub async fn dialled(pool: &PgPool, call_id: Uuid, call_sid: &str, end: &DialEnd<'_>) -> Result<CallRow> {
    let mut tx = store::begin_for_job(pool, "telephony", None).await?;
    let call = locked(&mut tx, call_id, call_sid).await?;
    let mut result = result_of(end.status).ok_or_else(|| Error::field("DialCallStatus", "not a status of a finished dial"))?;
    if call.direction == "inbound" && call.agent_id.is_none() {
        result = "missed";
    }
    if let (Some(activity), "busy" | "no_answer") = (call.activity_id, result) {
        store::activities::complete(&mut tx, activity, Some(Outcome::NoAnswer), None, None).await?;
    }
    let change = Progress {
        status: Some("ended"),
        result: Some(result),
        duration_seconds: end.duration_seconds,
        recording_url: end.recording_url,
        ..Progress::default()
    };
    let call = calls::progress(&mut tx, call.id, &change).await?;
    tell(&mut tx, &call).await?;
    tx.commit().await?;
    Ok(call)
}

/// A debtor calls from `from` (E.164; `None` when withheld): the call is kept, and rings
/// the agents of the caller's accounts who have a phone, or the floor's agents when none
/// of them has ([`calls::who_rings`]). Each agent's answer is reported to the `answered`
/// step under `webhook_url` (TWILIO_WEBHOOK_URL), the end to `dialed`; `record` records
/// the call. Answers the TwiML.
pub async fn incoming(
    pool: &PgPool,
    provider: &str,
    call_sid: &str,
    from: Option<&str>,
    webhook_url: &str,
    record: bool,
) -> Result<String> {
    let mut tx = store::begin_for_job(pool, "telephony", None).await?;
    let holders = match from {
        Some(number) => inbound::holders(&mut tx, number).await?,
        None => Vec::new(),
    };
    let only = match holders.as_slice() {
        [one] => Some(one.id),
        _ => None,
    };
    let call = calls::insert(
        &mut tx,
        &NewCall {
            id: Uuid::now_v7(),
            direction: "inbound",
            account_id: only,
            agent_id: None,
            debtor_number: from.unwrap_or("withheld"),
            agent_number: None,
            provider,
            provider_call_id: call_sid,
            status: "ringing",
        },
    )
    .await?;
    if call.status != "ringing" {
        return Ok(twiml::hang_up());
    }
    let mut owners: Vec<Uuid> = holders.iter().filter_map(|h| h.assigned_agent_id).collect();
    owners.sort_unstable();
    owners.dedup();
    let ringing = calls::who_rings(&mut tx, &owners).await?;
    let dialled = voice_url(webhook_url, "dialed", call.id);
    let answer = if ringing.is_empty() {
        let change = Progress {
            status: Some("ended"),
            result: Some("missed"),
            ..Progress::default()
        };
        calls::progress(&mut tx, call.id, &change).await?;
        twiml::say_and_hang_up(NO_ONE)
    } else {
        let agents: Vec<(String, String)> = ringing
            .into_iter()
            .map(|(agent, number)| (number, format!("{}&agent={agent}", voice_url(webhook_url, "answered", call.id))))
            .collect();
        twiml::ring_agents(&agents, &dialled, record)
    };
    tx.commit().await?;
    tracing::info!(call_id = %call.id, accounts = holders.len(), "a debtor's call came in");
    Ok(answer)
}

/// At most this many of the caller's accounts are popped on the agent's console.
const MAX_POPPED: usize = 20;

/// `agent` answered the debtor's call `call_id` (whose provider id is `parent_sid`):
/// the call is theirs, it is logged on the caller's one account, and their console pops
/// the caller's accounts (`call.popped`: the call, the number, the accounts' ids, which
/// the console reads as the agent may). Another agent's answer after the first is hung up.
pub async fn answered(pool: &PgPool, call_id: Uuid, parent_sid: &str, agent: Uuid, now: DateTime<Utc>) -> Result<String> {
    let mut tx = store::begin_for_job(pool, "telephony", Some(agent)).await?;
    let call = locked(&mut tx, call_id, parent_sid).await?;
    if call.direction != "inbound" || call.agent_id.is_some_and(|taken| taken != agent) || call.status == "ended" {
        return Ok(twiml::hang_up());
    }
    if call.agent_id == Some(agent) {
        return Ok(twiml::empty());
    }
    let activity_id = match call.account_id {
        Some(account_id) => {
            let contact = NewActivity {
                kind: ActivityType::Call,
                direction: Some(Direction::Inbound),
                outcome: None,
                notes: None,
                occurred_at: now,
                next_action_at: None,
            };
            Some(store::activities::insert(&mut tx, account_id, &contact, Some(agent), now).await?.id)
        }
        None => None,
    };
    let change = Progress {
        status: Some("in_progress"),
        agent_id: Some(agent),
        activity_id,
        ..Progress::default()
    };
    let call = calls::progress(&mut tx, call.id, &change).await?;
    let accounts: Vec<Uuid> = if call.debtor_number.starts_with('+') {
        inbound::holders(&mut tx, &call.debtor_number)
            .await?
            .into_iter()
            .take(MAX_POPPED)
            .map(|h| h.id)
            .collect()
    } else {
        Vec::new()
    };
    calls::tell(
        &mut tx,
        agent,
        "call.popped",
        json!({"call_id": call.id, "number": call.debtor_number, "account_ids": accounts}),
    )
    .await?;
    tell(&mut tx, &call).await?;
    tx.commit().await?;
    Ok(twiml::empty())
}

/// Ends call `call_id` of `caller`'s in a wrap-up of `account` (locked in `tx`):
/// `contact`, a call, completes the activity the call logged as it connected (its outcome,
/// notes and next action), or is logged on `account` when the call logged none (a caller
/// with several accounts, or an unknown number, names the account by the wrap-up). Once
/// per call, and only for a call that reached the debtor.
pub async fn wrap_up_locked(
    tx: &mut PgConnection,
    caller: &Principal,
    account: &AccountRow,
    call_id: Uuid,
    contact: &NewActivity,
    now: DateTime<Utc>,
) -> Result<ActivityRow> {
    let call = calls::lock_by_id(tx, call_id)
        .await?
        .filter(|c| c.agent_id == Some(caller.user_id))
        .ok_or_else(|| Error::field("call_id", "no such call of yours"))?;
    if call.wrapped_up_at.is_some() {
        return Err(Error::new(Code::Conflict, "this call is wrapped up already"));
    }
    if call.status == "placed" || matches!(call.result.as_deref(), Some("refused" | "agent_missed" | "failed" | "missed")) {
        return Err(Error::new(
            Code::Conflict,
            "this call has not reached the debtor: there is nothing to wrap up",
        ));
    }
    if call.account_id.is_some_and(|ours| ours != account.id) {
        return Err(Error::field("call_id", "the call is about another account"));
    }
    let direction = if call.direction == "inbound" {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    if contact.kind != ActivityType::Call || contact.direction.is_some_and(|d| d != direction) {
        return Err(Error::field(
            "contact.type",
            format!("the call's wrap-up logs an {} call", activity::wire_name(&direction)),
        ));
    }
    let activity = match call.activity_id {
        Some(activity) => {
            if let Some(next) = contact.next_action_at {
                caller.require_work_on(account.assigned_agent_id)?;
                accounts::set_next_action(tx, account.id, next, caller.user_id).await?;
            }
            store::activities::complete(tx, activity, contact.outcome, contact.notes.as_deref(), contact.next_action_at).await?
        }
        None => {
            let logged = NewActivity {
                direction: Some(direction),
                occurred_at: call.created_at.min(now),
                ..contact.clone()
            };
            let activity = activities::log_locked(tx, caller, account, &logged, now).await?;
            let change = Progress {
                account_id: Some(account.id),
                activity_id: Some(activity.id),
                ..Progress::default()
            };
            calls::progress(tx, call.id, &change).await?;
            activity
        }
    };
    let call = calls::wrapped_up(tx, call.id).await?;
    tell(tx, &call).await?;
    Ok(activity)
}

/// Call `id`, for its agent or a role that reads any account.
pub async fn get(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<CallRow> {
    caller.require(Action::ReadAccounts)?;
    calls::get(pool, id)
        .await?
        .filter(|c| c.agent_id == Some(caller.user_id) || caller.can(Action::ReadAnyAccount))
        .ok_or_else(|| Error::not_found("call"))
}

/// A page of the caller's calls (every agent's for a role that reads any account, or
/// one agent's when `agent` is named), newest first, and how many there are.
pub async fn list(pool: &PgPool, caller: &Principal, agent: Option<Uuid>, window: Window) -> Result<(Vec<CallRow>, i64)> {
    caller.require(Action::ReadAccounts)?;
    let agent = if caller.can(Action::ReadAnyAccount) {
        agent
    } else {
        Some(caller.user_id)
    };
    Ok((
        calls::list(pool, agent, window.after, window.limit).await?,
        calls::count(pool, agent).await?,
    ))
}

/// Body of `PUT /me/phone`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPhone {
    /// The phone the caller takes calls on (their desk phone, mobile or softphone
    /// number), in any form the default region reads; null removes it.
    pub phone: Option<String>,
}

/// The phone `caller` takes calls on.
pub async fn phone(pool: &PgPool, caller: &Principal) -> Result<Option<String>> {
    calls::agent_phone(&mut *pool.acquire().await?, caller.user_id).await
}

/// Sets the phone `caller` takes calls on; returns it in E.164.
pub async fn set_phone(pool: &PgPool, caller: &Principal, body: AgentPhone, region: phonenumber::country::Id) -> Result<Option<String>> {
    caller.require(Action::WorkAccount)?;
    let phone = match body.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(text) if text.len() > 40 => return Err(Error::field("phone", "must be at most 40 characters")),
        Some(text) => Some(normalize_phone(text, region).map_err(|why| Error::field("phone", why))?),
        None => None,
    };
    calls::set_agent_phone(pool, caller.user_id, phone.as_deref()).await?;
    Ok(phone)
}

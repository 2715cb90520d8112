//! Users: creating one, the same way for admins, registration and the CLI, and the
//! view every answer shows of one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::domain::contact::normalize_email;
use crate::domain::patch::nullable;
use crate::domain::principal::Principal;
use crate::domain::role::{Action, NO_TEAM, NOT_ASSIGNABLE, Role, team_name};
use crate::error::{Code, Error, FieldError, Result};
use crate::service::Window;
use crate::service::jobs::{self as job_service, JobRow};
use crate::store::users::{self, DirectoryFilter, UserChange, UserRow};
use crate::store::{self, accounts, notifications, sessions};

pub use crate::store::users::DirectoryRow;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// The team whose KPIs the user's work counts in; null for none.
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the user was deleted (anonymised); null for a user who was not.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<&UserRow> for UserView {
    fn from(row: &UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email.clone(),
            name: row.name.clone(),
            role: row.role(),
            disabled: row.disabled,
            team: row.team.clone(),
            created_at: row.created_at,
            deleted_at: row.deleted_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    name: String,
    role: Role,
    password: String,
    /// The user's team (1 to 100 characters); none when absent.
    #[serde(default)]
    team: Option<String>,
}

impl CreateUser {
    pub fn new(email: String, name: String, role: Role, password: String) -> Self {
        Self {
            email,
            name,
            role,
            password,
            team: None,
        }
    }
}

/// Body of `PATCH /users/{id}`: what an admin changes of a user (a manager: only
/// `disabled`, of an agent of their team).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    role: Option<Role>,
    disabled: Option<bool>,
    /// The user's team (1 to 100 characters); null removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    team: Option<Option<String>>,
}

/// Body of `POST /users/{id}/accounts/move`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveAccounts {
    /// The active user who works accounts that receives them.
    to: Uuid,
}

/// Whom a caller manages: every user (admins), or the agents of one team (managers).
enum Reach {
    Everyone,
    Team(String),
}

/// The caller's reach; 403 for roles that manage no one and for managers without a team.
async fn reach(pool: &PgPool, caller: &Principal) -> Result<Reach> {
    if caller.can(Action::ManageUsers) {
        return Ok(Reach::Everyone);
    }
    caller.require(Action::ManageTeamAgents)?;
    let team = users::by_id(pool, caller.user_id).await?.and_then(|u| u.team);
    team.map(Reach::Team).ok_or_else(|| Error::forbidden(NO_TEAM))
}

impl Reach {
    fn team(&self) -> Option<&str> {
        match self {
            Reach::Everyone => None,
            Reach::Team(team) => Some(team),
        }
    }

    /// 403 unless the caller manages `user`; `what` names them in the refusal.
    fn check(&self, user: &UserRow, what: &str) -> Result<()> {
        match self.team() {
            Some(team) if user.role() != Role::Agent || user.team.as_deref() != Some(team) => Err(Error::forbidden(format!(
                "managers manage only the agents of their own team ({team}); {what} is not one of them"
            ))),
            _ => Ok(()),
        }
    }
}

fn deleted_conflict() -> Error {
    Error::new(
        Code::Conflict,
        "this user was deleted; a deleted user cannot be changed or enabled again",
    )
}

/// Changes a user as `caller`: an admin, who may not change their own role or disable
/// themselves, or a manager, who may only disable or enable an agent of their team.
pub async fn update(pool: &PgPool, caller: &Principal, id: Uuid, body: UpdateUser) -> Result<UserView> {
    let reach = reach(pool, caller).await?;
    let target = users::by_id(pool, id).await?.ok_or_else(|| Error::not_found("user"))?;
    reach.check(&target, "this user")?;
    if target.deleted_at.is_some() {
        return Err(deleted_conflict());
    }
    if let Some(own) = reach.team() {
        if body.role.is_some() {
            return Err(Error::forbidden("managers may not change roles; ask an admin"));
        }
        if body.team.as_ref().is_some_and(|team| team.as_deref().map(str::trim) != Some(own)) {
            return Err(Error::forbidden("managers may not move an agent out of their team; ask an admin"));
        }
    }
    if id == caller.user_id && (body.disabled == Some(true) || body.role.is_some_and(|r| r != caller.role)) {
        return Err(Error::new(Code::Conflict, "you cannot change your own role or disable yourself"));
    }
    let team = match body.team {
        Some(Some(text)) => Some(Some(
            team_name(&text).map_err(|m| Error::validation(vec![FieldError::new("team", m)]))?,
        )),
        other => other,
    };
    let change = UserChange {
        role: body.role,
        disabled: body.disabled,
        team,
        agent_of_team: reach.team().map(str::to_owned),
    };
    // `None`: deleted, or moved out of the manager's team, since it was read above.
    let row = users::update(pool, caller.user_id, id, &change)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    // A new team or role may change whose accounts anyone's searches span.
    super::portfolios::forget_scopes();
    tracing::info!(user_id = %id, role = row.role, disabled = row.disabled, "user updated");
    Ok(UserView::from(&row))
}

/// Creates a user as `caller`: an admin, or a manager creating an agent of their team
/// (the team is theirs when the body names none).
pub async fn create(pool: &PgPool, hashers: &password::Hashers, caller: &Principal, mut body: CreateUser) -> Result<UserView> {
    if let Reach::Team(own) = reach(pool, caller).await? {
        if body.role != Role::Agent {
            return Err(Error::forbidden("managers create agents only; ask an admin for other roles"));
        }
        match body.team.as_deref().map(str::trim) {
            None => body.team = Some(own),
            Some(team) if team == own => {}
            Some(_) => {
                return Err(Error::forbidden(format!("managers create agents in their own team ({own}) only")));
            }
        }
    }
    let row = create_user(pool, hashers, Some(caller.user_id), body).await?;
    tracing::info!(user_id = %row.id, role = row.role, "user created");
    Ok(UserView::from(&row))
}

/// Users, oldest first, and how many there are: every user for admins, the users of
/// their team for managers.
pub async fn list(pool: &PgPool, caller: &Principal, window: Window) -> Result<(Vec<UserView>, i64)> {
    let reach = reach(pool, caller).await?;
    let rows = users::list(pool, reach.team(), window.after, window.limit).await?;
    Ok((rows.iter().map(UserView::from).collect(), users::count(pool, reach.team()).await?))
}

/// Deletes the user `id` as `caller`, an admin: anonymises them and revokes their
/// sessions, keeping the id that accounts, activities and the audit trail name. Refused
/// while open accounts are assigned to them, and for oneself.
pub async fn delete(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<UserView> {
    caller.require(Action::ManageUsers)?;
    if id == caller.user_id {
        return Err(Error::new(Code::Conflict, "you cannot delete yourself"));
    }
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    let target = users::lock(&mut tx, id).await?.ok_or_else(|| Error::not_found("user"))?;
    if target.deleted_at.is_some() {
        return Err(Error::new(Code::Conflict, "this user is already deleted"));
    }
    let open = accounts::open_assigned(&mut tx, id).await?.len();
    if open > 0 {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "{open} open {} still assigned to this user; move them to another agent first \
                 (POST /api/v1/users/{id}/accounts/move with {{\"to\": \"<agent id>\"}}), then delete",
                if open == 1 { "account is" } else { "accounts are" }
            ),
        )
        .with_extension("assigned_accounts", serde_json::json!(open)));
    }
    let row = users::anonymise(&mut tx, id).await?.ok_or_else(|| Error::not_found("user"))?;
    sessions::revoke_all_of(&mut tx, id, "user deleted").await?;
    tx.commit().await?;
    tracing::info!(user_id = %id, "user deleted");
    Ok(UserView::from(&row))
}

/// Accounts up to this many move in one transaction; more move as a bulk-update job.
pub const MOVE_NOW_MAX: usize = 500;

/// What moving an agent's accounts did.
pub enum Moved {
    /// Moved now: how many.
    Now(u64),
    /// Too many to move in one request: the job that moves them.
    Queued(JobRow),
}

/// Moves every open account of the user `from` to `body.to` as `caller`: an admin, or a
/// manager moving between agents of their team. The receiver must be an active user
/// who works accounts.
pub async fn move_accounts(pool: &PgPool, caller: &Principal, from: Uuid, body: MoveAccounts) -> Result<Moved> {
    let reach = reach(pool, caller).await?;
    let source = users::by_id(pool, from).await?.ok_or_else(|| Error::not_found("user"))?;
    reach.check(&source, "the user whose accounts would move")?;
    let to = body.to;
    if to == from {
        return Err(Error::field("to", "must be another user than the one whose accounts move"));
    }
    let target = users::by_id(pool, to).await?.ok_or_else(|| Error::field("to", "no such user"))?;
    reach.check(&target, "the user who would receive them")?;
    let mut tx = store::begin_as(pool, caller.user_id).await?;
    // Read under a share lock: the receiver cannot be disabled or deleted until this commits.
    let standing = users::standing(&mut tx, to).await?;
    if target.deleted_at.is_some() || !standing.is_some_and(Role::works_accounts) {
        return Err(Error::field("to", NOT_ASSIGNABLE));
    }
    let ids = accounts::open_assigned(&mut tx, from).await?;
    if ids.len() > MOVE_NOW_MAX {
        drop(tx);
        return Ok(Moved::Queued(job_service::queue_move(pool, caller, from, to, &ids).await?));
    }
    let moved = accounts::reassign_open(&mut tx, from, to, caller.user_id).await?;
    tx.commit().await?;
    tracing::info!(from = %from, to = %to, moved, "accounts moved");
    Ok(Moved::Now(moved))
}

/// The people who work accounts matching `filter`, by name, and how many match: for
/// managers and admins.
pub async fn directory(
    pool: &PgPool,
    caller: &Principal,
    filter: &DirectoryFilter,
    window: Window<(String, Uuid)>,
) -> Result<(Vec<DirectoryRow>, i64)> {
    caller.require(Action::ReadAgents)?;
    let rows = users::directory(pool, filter, window.after, window.limit).await?;
    Ok((rows, users::directory_count(pool, filter).await?))
}

/// Validates a new user's fields the same way for admins, registration and the CLI;
/// `actor` made it (none for registration and the CLI).
pub async fn create_user(pool: &PgPool, hashers: &password::Hashers, actor: Option<Uuid>, body: CreateUser) -> Result<UserRow> {
    let mut errors = Vec::new();
    let email = normalize_email(&body.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let team = body
        .team
        .as_deref()
        .map(team_name)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("team", m)))
        .ok()
        .flatten();
    if let Err(Error::Problem(p)) = password::check_policy(&body.password) {
        errors.extend(p.errors);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(Error::validation(errors));
    };
    let hash = hashers.hash(body.password).await?;
    users::insert_in_team(pool, actor, &email, &name, body.role, &hash, team.as_deref()).await
}

/// Self-registration (always as `pending`). The answer is the same whether or not the
/// email is taken (same status and shape, a password hashed either way), so registration
/// cannot tell a stranger which emails belong to staff; the owner of a taken email is
/// told instead, by an in-app notification.
pub async fn register(pool: &PgPool, hashers: &password::Hashers, body: CreateUser) -> Result<UserView> {
    let name = body.name.trim().to_owned();
    let email = normalize_email(&body.email).ok();
    match create_user(
        pool,
        hashers,
        None,
        CreateUser {
            role: Role::Pending,
            team: None,
            ..body
        },
    )
    .await
    {
        Ok(row) => {
            tracing::info!(user_id = %row.id, "user registered");
            Ok(UserView::from(&row))
        }
        Err(err) if err.code() == Code::EmailTaken => {
            let email = email.unwrap_or_default();
            let owner = notifications::tell_owner_of_registration_attempt(pool, &email).await?;
            // Logged without the address: the log is no place to collect who tried whose.
            tracing::info!(owner_id = ?owner, "registration for a taken email; its owner was told");
            Ok(UserView {
                id: Uuid::now_v7(),
                email,
                name,
                role: Role::Pending,
                disabled: false,
                team: None,
                created_at: Utc::now(),
                deleted_at: None,
            })
        }
        Err(err) => Err(err),
    }
}

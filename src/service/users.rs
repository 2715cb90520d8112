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
use crate::domain::role::{Action, Role, team_name};
use crate::error::{Code, Error, FieldError, Result};
use crate::service::Window;
use crate::store::notifications;
use crate::store::users::{self, DirectoryFilter, UserChange, UserRow};

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

/// Body of `PATCH /users/{id}`: what an admin changes of a user.
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

/// Changes a user as `caller`, an admin who may not change their own role or disable
/// themselves.
pub async fn update(pool: &PgPool, caller: &Principal, id: Uuid, body: UpdateUser) -> Result<UserView> {
    caller.require(Action::ManageUsers)?;
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
    };
    let row = users::update(pool, caller.user_id, id, &change)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    tracing::info!(user_id = %id, role = row.role, disabled = row.disabled, "user updated");
    Ok(UserView::from(&row))
}

/// Creates a user as `caller`, an admin.
pub async fn create(pool: &PgPool, hashers: &password::Hashers, caller: &Principal, body: CreateUser) -> Result<UserView> {
    caller.require(Action::ManageUsers)?;
    let row = create_user(pool, hashers, body).await?;
    tracing::info!(user_id = %row.id, role = row.role, "user created");
    Ok(UserView::from(&row))
}

/// Users, newest first, and how many there are: for admins.
pub async fn list(pool: &PgPool, caller: &Principal, window: Window) -> Result<(Vec<UserView>, i64)> {
    caller.require(Action::ManageUsers)?;
    let rows = users::list(pool, window.after, window.limit).await?;
    Ok((rows.iter().map(UserView::from).collect(), users::count(pool).await?))
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

/// Validates a new user's fields the same way for admins, registration and the CLI.
pub async fn create_user(pool: &PgPool, hashers: &password::Hashers, body: CreateUser) -> Result<UserRow> {
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
    users::insert_in_team(pool, &email, &name, body.role, &hash, team.as_deref()).await
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
            })
        }
        Err(err) => Err(err),
    }
}

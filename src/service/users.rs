//! Users: creating one, the same way for admins, registration and the CLI, and the
//! view every answer shows of one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::domain::contact::normalize_email;
use crate::domain::role::Role;
use crate::error::{Error, FieldError, Result};
use crate::store::users::{self, UserRow};

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
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
}

impl CreateUser {
    pub fn new(email: String, name: String, role: Role, password: String) -> Self {
        Self {
            email,
            name,
            role,
            password,
        }
    }
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
    if let Err(Error::Problem(p)) = password::check_policy(&body.password) {
        errors.extend(p.errors);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(Error::validation(errors));
    };
    let hash = hashers.hash(body.password).await?;
    users::insert(pool, &email, &name, body.role, &hash).await
}

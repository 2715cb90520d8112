//! A user's credentials and sessions: changing one's password, seeing and ending one's
//! sessions, password resets with one-time tokens, and the `user_activity` events of
//! signing in and out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::domain::event::{Event, USER_ACTIVITY};
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, FieldError, Result};
use crate::service::Window;
use crate::service::sessions::Sessions;
use crate::store::sessions::{self, LiveSession};
use crate::store::{self, password_resets, users};

/// How long a password reset token is good for.
pub const RESET_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);
/// A longer `token` is no token of ours (ours are 43 characters).
const MAX_TOKEN_CHARS: usize = 200;

/// Body of `POST /auth/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// 10 to 256 characters.
    pub new_password: String,
}

/// Body of `POST /auth/password-reset`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The one-time token an admin was given for the user.
    pub token: String,
    /// 10 to 256 characters.
    pub new_password: String,
}

/// A one-time password reset token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResetToken {
    pub user_id: Uuid,
    /// Give it to the user (for instance as the console link
    /// `#/reset?token=...`); only its hash is kept, so it cannot be shown again.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// One of the caller's live sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    /// The User-Agent the session signed in with (printable text, at most 200
    /// characters); null when none was sent.
    pub device: Option<String>,
    /// The client address it signed in from.
    pub address: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When its tokens were last refreshed; null when never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether it is the session of the request's access token.
    pub current: bool,
}

impl SessionView {
    fn of(row: LiveSession, caller: &Principal) -> Self {
        Self {
            current: row.id == caller.session_id,
            id: row.id,
            device: row.user_agent,
            address: row.client_address,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

impl Sessions<'_> {
    /// Changes the caller's password, from the address `ip`. A wrong current password
    /// is a failed login for the lockout. Every other session of the caller ends.
    pub async fn change_password(&self, caller: &Principal, ip: &str, body: ChangePassword) -> Result<()> {
        check_new_password(&body.new_password)?;
        self.gate.check_lockout(ip, &caller.email).await?;
        let user = users::by_id(self.pool, caller.user_id)
            .await?
            .ok_or_else(|| Error::new(Code::Unauthorized, "the user no longer exists"))?;
        let verified = self
            .gate
            .hashers()
            .verify(ip, body.current_password, user.password_hash.clone())
            .await?;
        if !verified {
            self.gate.record_login_failure(ip, &caller.email).await?;
            return Err(Error::with_fields(
                Code::Forbidden,
                "the current password is wrong",
                vec![FieldError::new("current_password", "is wrong")],
            ));
        }
        let hash = self.gate.hashers().hash(body.new_password).await?;
        let mut tx = store::begin_as(self.pool, caller.user_id).await?;
        users::set_password(&mut tx, user.id, &hash).await?;
        password_resets::drop_of(&mut tx, user.id).await?;
        let ended = sessions::revoke_others_of(&mut tx, user.id, caller.session_id, "password changed").await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, ended, "password changed");
        self.changed(user.id).await;
        Ok(())
    }

    /// The caller's live sessions, newest first, and how many there are.
    pub async fn list(&self, caller: &Principal, window: Window) -> Result<(Vec<SessionView>, i64)> {
        let rows = sessions::live_of(self.pool, caller.user_id, window.after, window.limit).await?;
        let total = sessions::count_live_of(self.pool, caller.user_id).await?;
        Ok((rows.into_iter().map(|row| SessionView::of(row, caller)).collect(), total))
    }

    /// Ends one of the caller's live sessions; anyone else's is not found. Its access
    /// tokens stop working at once on this instance.
    pub async fn end(&self, caller: &Principal, session_id: Uuid) -> Result<()> {
        if !sessions::revoke_of(self.pool, caller.user_id, session_id, "ended by its user").await? {
            return Err(Error::not_found("session"));
        }
        tracing::info!(user_id = %caller.user_id, session_id = %session_id, "session ended");
        self.changed(caller.user_id).await;
        Ok(())
    }

    /// Sets a new password with a reset token from the address `ip` (held to its budget
    /// of resets): spends the token and ends every session of the user.
    pub async fn reset_password(&self, ip: &str, body: ResetPassword) -> Result<()> {
        self.gate.spend_password_reset(ip)?;
        let token_hash = reset_token_hash(&body.token)?;
        check_new_password(&body.new_password)?;
        // Looked at before hashing, so a made-up token costs no hash.
        if password_resets::holder(self.pool, &token_hash).await?.is_none() {
            return Err(bad_token());
        }
        let hash = self.gate.hashers().hash(body.new_password).await?;
        let mut tx = self.pool.begin().await?;
        let Some(user_id) = password_resets::spend(&mut tx, &token_hash).await? else {
            return Err(bad_token());
        };
        store::record_as(&mut tx, Some(user_id), None).await?;
        users::set_password(&mut tx, user_id, &hash).await?;
        let ended = sessions::revoke_all_of(&mut tx, user_id, "password reset").await?;
        tx.commit().await?;
        tracing::info!(user_id = %user_id, ended, "password reset");
        self.changed(user_id).await;
        Ok(())
    }

    /// Tells `user_id` and the admins, live, that the user signed in, refreshed or
    /// signed out (`action`) in `session_id` from `address`.
    pub(crate) async fn user_activity(&self, user_id: Uuid, action: &str, session_id: Uuid, address: &str) {
        let at = Utc::now();
        self.events
            .publish(Event {
                id: None,
                kind: USER_ACTIVITY.into(),
                user_id: Some(user_id),
                topics: Vec::new(),
                data: serde_json::json!({
                    "user_id": user_id,
                    "action": action,
                    "session_id": session_id,
                    "address": address,
                    "at": at,
                }),
                at,
                account_deleted: false,
                portfolio_id: None,
                account_owner: None,
            })
            .await;
    }
}

/// A reset token for user `id`, replacing any earlier one, as `caller` (an admin).
pub async fn issue_password_reset(pool: &PgPool, caller: &Principal, id: Uuid) -> Result<ResetToken> {
    caller.require(Action::ManageUsers)?;
    issue_reset_token(pool, id, Some(caller.user_id)).await
}

/// A reset token for the user with `email`, for the command line.
pub async fn issue_password_reset_by_email(pool: &PgPool, email: &str) -> Result<ResetToken> {
    let email = crate::domain::contact::normalize_email(email).map_err(|m| Error::field("email", m))?;
    let user = users::by_email(pool, &email).await?.ok_or_else(|| Error::not_found("user"))?;
    issue_reset_token(pool, user.id, None).await
}

async fn issue_reset_token(pool: &PgPool, user_id: Uuid, created_by: Option<Uuid>) -> Result<ResetToken> {
    // The same kind of secret as a refresh token: 256 random bits, stored hashed.
    let (token, hash) = new_refresh_token();
    let expires_at = Utc::now() + RESET_TOKEN_TTL;
    if !password_resets::issue(pool, user_id, created_by, &hash, expires_at).await? {
        return Err(Error::not_found("user"));
    }
    tracing::info!(user_id = %user_id, created_by = ?created_by, "password reset token issued");
    Ok(ResetToken {
        user_id,
        token,
        expires_at,
    })
}

fn reset_token_hash(token: &str) -> Result<Vec<u8>> {
    let token = token.trim();
    if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
        return Err(bad_token());
    }
    Ok(hash_refresh_token(token))
}

fn bad_token() -> Error {
    Error::with_fields(
        Code::ValidationFailed,
        "this reset token is unknown, used or expired; ask an admin for a new one",
        vec![FieldError::new("token", "is unknown, used or expired")],
    )
}

/// The password policy, naming `new_password`.
fn check_new_password(new_password: &str) -> Result<()> {
    match password::check_policy(new_password) {
        Err(Error::Problem(problem)) => Err(Error::validation(
            problem
                .errors
                .into_iter()
                .map(|e| FieldError::new("new_password", e.message))
                .collect(),
        )),
        other => other,
    }
}

//! Sessions: signing in (with the login limits), refreshing tokens, signing out, and who
//! is signed in, the same for every adapter.

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::gate::{Gate, login_refused};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::clock::Clock;
use crate::domain::contact::normalize_email;
use crate::domain::device::device;
use crate::domain::principal::Principal;
use crate::error::{Code, Error, Result};
use crate::events::Events;
use crate::service::second_factor::{self, LoginCheck, Proof};
use crate::service::users::UserView;
use crate::store::audit_log::{self, NewEntry};
use crate::store::sessions::{self, Rotation};
use crate::store::users::{self, UserRow};

/// How long a sign-in from an address keeps its user known there (see [`login`]).
const KNOWN_ADDRESS_DAYS: i64 = 90;

/// What the session operations work with: the database, the gate (tokens, hashing,
/// login limits), the live events that tell a user's sockets their sessions changed, and
/// the clock second-factor codes are checked at.
pub struct Sessions<'a> {
    pub pool: &'a PgPool,
    pub gate: &'a Gate,
    pub events: &'a Events,
    pub refresh_ttl: std::time::Duration,
    pub clock: &'a Clock,
}

/// A new pair of tokens and the user they are for.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub user: UserView,
}

impl Sessions<'_> {
    /// Signs `email` in from the address `ip` with `password`. Unknown email, wrong
    /// password and disabled user get one answer, after one hash verification each, so
    /// neither the answer nor its time tells them apart. A user with a second factor on
    /// also proves it ([`Sessions::prove_second_factor`]). `user_agent` names the device
    /// (see [`device`]).
    pub async fn login(&self, ip: &str, user_agent: Option<&str>, email: &str, password: String, proof: Proof) -> Result<Tokens> {
        let gate = self.gate;
        let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        gate.check_lockout(ip, &email).await?;
        gate.check_login_budget(ip, &email)?;
        let user = users::by_email(self.pool, &email).await?;
        // Over the address's budget of failures, only a user who signed in from this
        // address before is still judged: one device guessing made-up emails cannot lock
        // an office out, and guesses at anyone else (password spraying) are refused
        // without a hash.
        let over_budget = gate.address_over_budget(ip).await?;
        if let Some(wait) = over_budget {
            let since = Utc::now() - chrono::Duration::days(KNOWN_ADDRESS_DAYS);
            let known = match &user {
                Some(u) => sessions::signed_in_from(self.pool, u.id, ip, since).await?,
                None => false,
            };
            if !known {
                return Err(login_refused(wait));
            }
        }
        let hash = user
            .as_ref()
            .map_or_else(|| gate.dummy_hash().to_owned(), |u| u.password_hash.clone());
        let verified = gate.hashers().verify(ip, password, hash).await?;
        let tried = user.as_ref().map(|u| (u.id, u.disabled));
        let Some(user) = user.filter(|u| verified && !u.disabled) else {
            let what = match tried {
                Some((_, true)) if verified => "disabled user",
                _ => "password",
            };
            self.failed(ip, &email, tried.map(|(id, _)| id), what).await?;
            return Err(match over_budget {
                Some(wait) => login_refused(wait),
                None => wrong_credentials(),
            });
        };
        self.prove_second_factor(ip, &email, user.id, &proof).await?;
        gate.spend_login_success(ip, &email).await?;
        let (refresh_token, hash) = new_refresh_token();
        let expires_at = Utc::now() + self.refresh_ttl;
        let device = user_agent.and_then(device);
        let Some(session_id) = sessions::create(self.pool, user.id, ip, device.as_deref(), expires_at, &hash).await? else {
            // Disabled between the password check and now: the same answer as any failure.
            return Err(wrong_credentials());
        };
        tracing::info!(user_id = %user.id, session_id = %session_id, "login");
        self.user_activity(user.id, "login", session_id, ip).await;
        self.tokens(&user, session_id, refresh_token)
    }

    /// After the right password: a user with a second factor on must send a proof.
    /// Without one the answer is `second_factor_required` (not a failure: the console
    /// asks for the code next); a wrong or used code counts as a failed login.
    async fn prove_second_factor(&self, ip: &str, email: &str, user_id: Uuid, proof: &Proof) -> Result<()> {
        match second_factor::check_login(self.pool, self.gate, self.clock, user_id, proof).await? {
            LoginCheck::NotEnrolled | LoginCheck::Passed => Ok(()),
            LoginCheck::Missing => Err(Error::new(
                Code::SecondFactorRequired,
                "this user signs in with a second factor: send `code` from the authenticator app, or a `recovery_code`",
            )),
            LoginCheck::Failed => {
                self.failed(ip, email, Some(user_id), "second factor").await?;
                Err(Error::new(Code::SecondFactorInvalid, "the code is wrong or was already used"))
            }
        }
    }

    /// A failed sign-in: counted toward the lockout and the address's budget, and
    /// recorded in the audit trail with the email tried and what failed.
    async fn failed(&self, ip: &str, email: &str, user: Option<Uuid>, what: &str) -> Result<()> {
        self.gate.record_login_failure(ip, email).await?;
        let mut conn = self.pool.acquire().await?;
        audit_log::append(
            &mut conn,
            NewEntry {
                actor: None,
                address: Some(ip),
                action: "session.login_failed",
                entity: "user",
                entity_id: user.map(|u| u.to_string()),
                account_id: None,
                details: serde_json::json!({"email": email, "failed": what}),
            },
        )
        .await
    }

    /// Spends `refresh_token`, presented from the address `ip`, for a new pair. A token
    /// used twice revokes its session.
    pub async fn refresh(&self, ip: &str, refresh_token: &str) -> Result<Tokens> {
        let (new_token, new_hash) = new_refresh_token();
        match sessions::rotate(self.pool, &hash_refresh_token(refresh_token), &new_hash).await? {
            Rotation::Rotated { session_id, user_id } => {
                let user = users::by_id(self.pool, user_id)
                    .await?
                    .ok_or_else(|| Error::new(Code::RefreshTokenInvalid, "the user no longer exists"))?;
                self.user_activity(user_id, "refresh", session_id, ip).await;
                self.tokens(&user, session_id, new_token)
            }
            Rotation::Reused { user_id } => {
                self.changed(user_id).await;
                tracing::warn!("refresh token reused; session revoked");
                Err(Error::new(
                    Code::RefreshTokenReused,
                    "this refresh token was already used; the session is revoked, log in again",
                ))
            }
            Rotation::Invalid => Err(Error::new(
                Code::RefreshTokenInvalid,
                "the refresh token is unknown, expired or revoked",
            )),
        }
    }

    /// Revokes the session of `refresh_token` (signing out from the address `ip`), if
    /// there is one; says nothing either way.
    pub async fn logout(&self, ip: &str, refresh_token: &str) -> Result<()> {
        if let Some((user_id, session_id)) = sessions::revoke_by_token(self.pool, &hash_refresh_token(refresh_token)).await? {
            self.changed(user_id).await;
            self.user_activity(user_id, "logout", session_id, ip).await;
        }
        Ok(())
    }

    /// After `user_id`'s sessions were revoked or the user changed: this process reads
    /// sessions from SQL again, and that user's open sockets, on every instance the
    /// events reach, check theirs at once (4403 if revoked or disabled).
    pub async fn changed(&self, user_id: Uuid) {
        self.gate.forget_sessions();
        self.events.sessions_changed(user_id).await;
    }

    fn tokens(&self, user: &UserRow, session_id: Uuid, refresh_token: String) -> Result<Tokens> {
        let keys = self.gate.keys();
        Ok(Tokens {
            access_token: keys.issue(user.id, session_id)?,
            refresh_token,
            expires_in: keys.access_ttl().as_secs(),
            user: UserView::from(user),
        })
    }
}

fn wrong_credentials() -> Error {
    Error::new(Code::InvalidCredentials, "email or password is wrong")
}

/// The signed-in user.
pub async fn me(pool: &PgPool, caller: &Principal) -> Result<UserView> {
    let user = users::by_id(pool, caller.user_id)
        .await?
        .ok_or_else(|| Error::new(Code::Unauthorized, "the user no longer exists"))?;
    Ok(UserView::from(&user))
}

//! The TOTP second factor: enrolling one (a secret for the app, confirmed by a code, then
//! recovery codes once), proving it at sign-in, turning it off, and an admin's reset of a
//! user who lost it.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::gate::Gate;
use crate::auth::{recovery_codes, totp};
use crate::clock::Clock;
use crate::domain::principal::Principal;
use crate::domain::role::Action;
use crate::error::{Code, Error, Result};
use crate::store::users;
use crate::store::{second_factors, sessions};

/// Whether the caller's second factor is on, and whether their role requires one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecondFactorStatus {
    /// On: signing in takes a code (or a recovery code).
    pub enabled: bool,
    /// An enrolment was started and waits for a code to confirm it.
    pub pending: bool,
    /// The caller's role must have one (SECOND_FACTOR_REQUIRED_FOR): until it is on,
    /// every route but enrolment, `/auth/me`, refresh and logout answers 403.
    pub required: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

/// A new secret to put into an authenticator app; not in force until confirmed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32, to type into the app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    /// The same as an `otpauth://totp/…` Key URI.
    pub otpauth_uri: String,
    /// The Key URI as a QR code to scan: an SVG image, as a `data:image/svg+xml;base64,…` URI.
    pub qr_code: String,
}

/// The recovery codes, shown this once: each signs in once without the app.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    #[schema(example = json!(["7k2m-9q4x-vb3n-t8ha"]))]
    pub recovery_codes: Vec<String>,
}

/// What a login body offers as a second factor.
pub enum Proof {
    Nothing,
    /// Six digits from the app (spaces removed).
    Code(String),
    RecoveryCode(String),
}

impl Proof {
    /// The proof of a login body's `code` and `recovery_code`: at most one of them, each
    /// of the right shape.
    pub fn from_login(code: Option<String>, recovery_code: Option<String>) -> Result<Self> {
        match (code, recovery_code) {
            (None, None) => Ok(Proof::Nothing),
            (Some(_), Some(_)) => Err(Error::field("recovery_code", "send either `code` or `recovery_code`, not both")),
            (Some(code), None) => Ok(Proof::Code(code_field(&code)?)),
            (None, Some(recovery)) => {
                let length = recovery.chars().count();
                if length == 0 || length > recovery_codes::MAX_TYPED_LEN {
                    return Err(Error::field(
                        "recovery_code",
                        format!(
                            "must be one of your recovery codes (at most {} characters)",
                            recovery_codes::MAX_TYPED_LEN
                        ),
                    ));
                }
                Ok(Proof::RecoveryCode(recovery))
            }
        }
    }
}

/// A `code` field: six digits, spaces allowed between them (apps show `123 456`).
fn code_field(typed: &str) -> Result<String> {
    let code: String = typed.chars().take(32).filter(|c| *c != ' ').collect();
    if typed.chars().count() > 32 || !totp::is_code_shaped(&code) {
        return Err(Error::field("code", "must be the 6 digits your authenticator app shows"));
    }
    Ok(code)
}

/// What a sign-in's proof came to, once the password was right.
pub enum LoginCheck {
    /// The user has no second factor on: the password is enough.
    NotEnrolled,
    Passed,
    /// The user has one on and the login sent no proof.
    Missing,
    /// A wrong code, a used one, or an unknown or used recovery code.
    Failed,
}

/// Checks `proof` against `user_id`'s second factor at `clock`'s now, spending the code's
/// time step or the recovery code when it passes (neither is accepted twice).
pub async fn check_login(pool: &PgPool, gate: &Gate, clock: &Clock, user_id: Uuid, proof: &Proof) -> Result<LoginCheck> {
    let Some(factor) = second_factors::get(pool, user_id).await?.filter(|f| f.confirmed) else {
        return Ok(LoginCheck::NotEnrolled);
    };
    let passed = match proof {
        Proof::Nothing => return Ok(LoginCheck::Missing),
        Proof::Code(code) => {
            let Some(secret) = gate.seal().open(user_id, &factor.secret_sealed) else {
                tracing::warn!(user_id = %user_id, "a second-factor secret does not open: was JWT_SECRET changed?");
                return Ok(LoginCheck::Failed);
            };
            match totp::matching_step(&secret, code, clock.now(), factor.last_used_step) {
                Some(step) => second_factors::spend_step(pool, user_id, step).await?,
                None => false,
            }
        }
        Proof::RecoveryCode(code) => {
            let spent = second_factors::spend_recovery_code(pool, user_id, &recovery_codes::hash(user_id, code)).await?;
            if spent {
                tracing::info!(user_id = %user_id, "recovery code used");
            }
            spent
        }
    };
    Ok(if passed { LoginCheck::Passed } else { LoginCheck::Failed })
}

pub async fn status(pool: &PgPool, gate: &Gate, caller: &Principal) -> Result<SecondFactorStatus> {
    let factor = second_factors::get(pool, caller.user_id).await?;
    Ok(SecondFactorStatus {
        enabled: factor.as_ref().is_some_and(|f| f.confirmed),
        pending: factor.as_ref().is_some_and(|f| !f.confirmed),
        required: gate.requires_second_factor(caller.role),
        recovery_codes_left: factor.map_or(0, |f| f.recovery_codes_left),
    })
}

/// Starts (or starts again) the caller's enrolment with a new secret. Refused while a
/// second factor is on: turning it off comes first.
pub async fn begin(pool: &PgPool, gate: &Gate, caller: &Principal) -> Result<Enrolment> {
    let secret = totp::new_secret();
    let sealed = gate.seal().seal(caller.user_id, &secret);
    if !second_factors::begin(pool, caller.user_id, &sealed).await? {
        return Err(Error::new(
            Code::Conflict,
            "your second factor is already on; turn it off before enrolling another app",
        ));
    }
    tracing::info!(user_id = %caller.user_id, "second-factor enrolment started");
    let otpauth_uri = totp::otpauth_uri(&caller.email, &secret);
    Ok(Enrolment {
        secret: totp::base32(&secret),
        qr_code: totp::qr_code(&otpauth_uri),
        otpauth_uri,
    })
}

/// Turns the caller's enrolment on with a code from the app; answers the recovery codes,
/// which are kept only as hashes. The code's step counts as used.
pub async fn confirm(pool: &PgPool, gate: &Gate, clock: &Clock, caller: &Principal, code: &str) -> Result<RecoveryCodes> {
    let code = code_field(code)?;
    let factor = second_factors::get(pool, caller.user_id).await?;
    let factor = match factor {
        Some(factor) if !factor.confirmed => factor,
        Some(_) => return Err(Error::new(Code::Conflict, "your second factor is already on")),
        None => {
            return Err(Error::new(
                Code::Conflict,
                "no enrolment is waiting: start one with POST /api/v1/auth/second-factor",
            ));
        }
    };
    let secret = gate
        .seal()
        .open(caller.user_id, &factor.secret_sealed)
        .ok_or_else(|| Error::new(Code::Conflict, "this enrolment can no longer be read; start again"))?;
    let Some(step) = totp::matching_step(&secret, &code, clock.now(), None) else {
        return Err(Error::field(
            "code",
            "does not match the secret: check that the phone's clock is right and type the code the app shows now",
        ));
    };
    let codes = recovery_codes::generate();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_codes::hash(caller.user_id, c)).collect();
    if !second_factors::confirm(pool, caller.user_id, &factor.secret_sealed, step, &hashes).await? {
        return Err(Error::new(Code::Conflict, "the enrolment changed meanwhile; start again"));
    }
    // Sessions opened before, with the password alone, end: the factor guards from now
    // on; the one that proved the code stays.
    let ended = sessions::revoke_others_of(
        &mut *pool.acquire().await?,
        caller.user_id,
        caller.session_id,
        "second factor turned on",
    )
    .await?;
    // The caller's session is no longer limited to enrolment, here at once.
    gate.forget_sessions();
    tracing::info!(user_id = %caller.user_id, sessions_ended = ended, "second factor on");
    Ok(RecoveryCodes { recovery_codes: codes })
}

/// Turns the caller's second factor off (or drops an enrolment in progress), with their
/// password and, when it is on, a code from the app or a recovery code (`proof`): a
/// stolen session and password alone cannot remove it. Refused when their role requires
/// one. A wrong password or proof counts as a failed login from `ip` (and is refused
/// while that email is locked out there).
pub async fn disable(
    pool: &PgPool,
    gate: &Gate,
    clock: &Clock,
    ip: &str,
    caller: &Principal,
    password: String,
    proof: &Proof,
) -> Result<()> {
    if gate.requires_second_factor(caller.role) {
        return Err(Error::forbidden(format!(
            "role {} must sign in with a second factor; it cannot be turned off",
            caller.role.as_str()
        )));
    }
    gate.check_lockout(ip, &caller.email).await?;
    let user = users::by_id(pool, caller.user_id)
        .await?
        .ok_or_else(|| Error::new(Code::Unauthorized, "the user no longer exists"))?;
    if !gate.hashers().verify(ip, password, user.password_hash).await? {
        gate.record_login_failure(ip, &caller.email).await?;
        return Err(Error::field("password", "is not your password"));
    }
    match check_login(pool, gate, clock, caller.user_id, proof).await? {
        LoginCheck::NotEnrolled | LoginCheck::Passed => {}
        LoginCheck::Missing => {
            return Err(Error::field(
                "code",
                "turning the second factor off takes the code your app shows (or a recovery code)",
            ));
        }
        LoginCheck::Failed => {
            gate.record_login_failure(ip, &caller.email).await?;
            return Err(Error::field(
                "code",
                "is not the code your app shows now, nor an unused recovery code",
            ));
        }
    }
    second_factors::remove(pool, caller.user_id, caller.user_id).await?;
    gate.forget_sessions();
    tracing::info!(user_id = %caller.user_id, "second factor off");
    Ok(())
}

/// An admin removes `user_id`'s second factor (a lost phone and lost recovery codes):
/// they sign in with the password again and, when their role requires a factor, can only
/// enrol a new one.
pub async fn reset(pool: &PgPool, gate: &Gate, caller: &Principal, user_id: Uuid) -> Result<()> {
    caller.require(Action::ManageUsers)?;
    if users::by_id(pool, user_id).await?.is_none() {
        return Err(Error::not_found("user"));
    }
    second_factors::remove(pool, caller.user_id, user_id).await?;
    gate.forget_sessions();
    tracing::info!(user_id = %user_id, admin_id = %caller.user_id, "second factor reset by an admin");
    Ok(())
}

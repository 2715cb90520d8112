//! The gate every request passes: access tokens and the sessions behind them (with
//! this process's short cache of them), password hashing, the trusted proxies that say
//! who the client is, the limits on logins and registrations per client, and which
//! roles must sign in with a second factor (and the key its secrets are sealed with).

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::auth::password::{self, Hashers};
use crate::auth::proxies::TrustedProxies;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::seal::Seal;
use crate::auth::session_cache::SessionCache;
use crate::auth::tokens::{self, TokenKeys};
use crate::config::Settings;
use crate::domain::principal::Principal;
use crate::domain::role::Role;
use crate::error::{Code, Error, Result};
use crate::store;

pub struct Gate {
    pool: PgPool,
    keys: TokenKeys,
    trusted_proxies: TrustedProxies,
    hashers: Hashers,
    /// Registrations per client address (each costs a password hash).
    registrations_by_client: RateLimiter,
    /// Password resets per client address (each costs a password hash).
    resets_by_client: RateLimiter,
    /// Failed logins per client address: over its budget, the address may sign in only
    /// users who signed in from it before (password spraying stays refused). Counted in
    /// PostgreSQL (`store::login_failures`), as is the lockout, so every instance
    /// shares them and a restart keeps them.
    failures_by_client: FailureLimit,
    /// Failed logins per email and client address: the lockout, which a stranger
    /// elsewhere cannot use to keep a user out.
    failures_by_email: FailureLimit,
    /// Keys the hashes failures are counted under, so the table holds no email or
    /// address in a form one can read back by hashing guesses.
    failure_key_secret: Vec<u8>,
    /// Successful logins per account (email) and per client address: a valid account
    /// signing in over and over is refused before it spends a hash.
    successes_by_email: RateLimiter,
    successes_by_client: RateLimiter,
    sessions: SessionCache,
    /// Verified against when the email is unknown, so both failures cost the same time.
    dummy_hash: String,
    /// Roles whose users must have a second factor on to do more than enrol one.
    second_factor_roles: Vec<Role>,
    /// Seals second-factor secrets at rest, with a key derived from the token secret.
    seal: Seal,
}

impl Gate {
    pub async fn new(settings: &Settings, pool: PgPool) -> anyhow::Result<Self> {
        let secret = tokens::load_secret(settings.jwt_secret.as_deref(), settings.production, &settings.data_dir)?;
        let seal = Seal::derive(&secret);
        let dummy_hash = password::hash("arrears-timing-equaliser".to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            pool,
            keys: TokenKeys::new(&secret, settings.access_token_ttl()),
            hashers: Hashers::for_this_machine(settings.hash_queue_share_per_ip_percent),
            trusted_proxies: TrustedProxies::parse(&settings.trusted_proxies).map_err(|e| anyhow::anyhow!(e))?,
            registrations_by_client: RateLimiter::new(REGISTRATIONS_PER_HOUR, std::time::Duration::from_secs(3600)),
            resets_by_client: RateLimiter::new(RESETS_PER_HOUR, std::time::Duration::from_secs(3600)),
            failures_by_client: FailureLimit {
                label: "address",
                limit: settings.login_rate_limit_per_ip,
                window: settings.login_rate_window(),
            },
            failures_by_email: FailureLimit {
                label: "lockout",
                limit: u32::try_from(settings.lockout_threshold).unwrap_or(0),
                window: settings.lockout(),
            },
            failure_key_secret: secret,
            successes_by_email: RateLimiter::new(settings.logins_per_account_per_minute, MINUTE),
            successes_by_client: RateLimiter::new(settings.logins_per_ip_per_minute, MINUTE),
            sessions: SessionCache::default(),
            dummy_hash,
            second_factor_roles: second_factor_roles(settings)?,
            seal,
        })
    }

    /// Whether users of `role` must sign in with a second factor.
    pub fn requires_second_factor(&self, role: Role) -> bool {
        self.second_factor_roles.contains(&role)
    }

    /// What second-factor secrets are sealed with at rest.
    pub fn seal(&self) -> &Seal {
        &self.seal
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Where this server hashes passwords (a bounded queue of its own).
    pub fn hashers(&self) -> &Hashers {
        &self.hashers
    }

    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    pub fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }

    /// After a session was revoked or a user changed: authentication reads SQL again.
    pub fn forget_sessions(&self) {
        self.sessions.clear();
    }

    /// Refuses a login for an email that failed too often from this client address (the
    /// per-account lockout); the same answer whether the email exists or not.
    pub async fn check_lockout(&self, ip: &str, email: &str) -> Result<()> {
        match self.locked_for(&self.failures_by_email, &email_key(ip, email)).await? {
            Some(wait) => Err(login_refused(wait)),
            None => Ok(()),
        }
    }

    /// How long until the client address is back under its budget of failed logins;
    /// `None` while it is under. Over it, only users who signed in from the address
    /// before are still judged ([`login_refused`] for everyone else).
    pub async fn address_over_budget(&self, ip: &str) -> Result<Option<std::time::Duration>> {
        self.locked_for(&self.failures_by_client, ip).await
    }

    /// Spends one of the client address's registrations for the hour.
    pub fn spend_registration(&self, ip: &str) -> Result<()> {
        let limiter = &self.registrations_by_client;
        limiter.check(ip).map_err(|wait| {
            Error::new(Code::RateLimited, "too many registrations from this address; try again later").with_retry_after(wait)
        })?;
        limiter.record(ip);
        Ok(())
    }

    /// Spends one of the client address's password resets for the hour.
    pub fn spend_password_reset(&self, ip: &str) -> Result<()> {
        let limiter = &self.resets_by_client;
        limiter.check(ip).map_err(|wait| {
            Error::new(Code::RateLimited, "too many password resets from this address; try again later").with_retry_after(wait)
        })?;
        limiter.record(ip);
        Ok(())
    }

    /// Counts a failed login against the client address and the email from it.
    pub async fn record_login_failure(&self, ip: &str, email: &str) -> Result<()> {
        self.record_failure(&self.failures_by_client, ip).await?;
        self.record_failure(&self.failures_by_email, &email_key(ip, email)).await
    }

    async fn locked_for(&self, limit: &FailureLimit, key: &str) -> Result<Option<std::time::Duration>> {
        store::login_failures::locked_for(&self.pool, &self.failure_key(limit, key)).await
    }

    async fn record_failure(&self, limit: &FailureLimit, key: &str) -> Result<()> {
        store::login_failures::record(&self.pool, &self.failure_key(limit, key), limit.limit, limit.window).await
    }

    fn failure_key(&self, limit: &FailureLimit, key: &str) -> Vec<u8> {
        let mut hasher = Sha256::new();
        for part in [self.failure_key_secret.as_slice(), limit.label.as_bytes(), key.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize().to_vec()
    }

    /// Refuses a login, before any hash, once the email or the client address spent its
    /// budget of successful logins for the minute.
    pub fn check_login_budget(&self, ip: &str, email: &str) -> Result<()> {
        self.successes_by_email.check(email).map_err(too_many_sign_ins)?;
        self.successes_by_client.check(ip).map_err(too_many_sign_ins)
    }

    /// A successful login spends the email's and the address's budgets (checked and
    /// spent at once: logins verified side by side cannot overspend them; over either,
    /// no session is made) and forgets the email's failures from that address. The
    /// address's budget is looked at first, so a login its address is refused does not
    /// spend the account's.
    pub async fn spend_login_success(&self, ip: &str, email: &str) -> Result<()> {
        self.successes_by_client.check(ip).map_err(too_many_sign_ins)?;
        self.successes_by_email.try_record(email).map_err(too_many_sign_ins)?;
        self.successes_by_client.try_record(ip).map_err(too_many_sign_ins)?;
        let key = self.failure_key(&self.failures_by_email, &email_key(ip, email));
        store::login_failures::clear(&self.pool, &key).await
    }

    /// Resolves an access token to its caller, refusing (403
    /// `second_factor_enrollment_required`) a user whose role requires a second factor
    /// they have not turned on: such a user may only enrol ([`Gate::authenticate_enrolling`]).
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let (principal, must_enrol) = self.session_of(token).await?;
        if must_enrol {
            return Err(Error::new(
                Code::SecondFactorEnrollmentRequired,
                "your role requires a second factor: turn one on at /api/v1/auth/second-factor first",
            ));
        }
        Ok(principal)
    }

    /// Resolves an access token to its caller, who may still have to enrol a second
    /// factor: for who-am-I and the enrolment itself.
    pub async fn authenticate_enrolling(&self, token: &str) -> Result<Principal> {
        Ok(self.session_of(token).await?.0)
    }

    /// The caller of an access token, and whether they must enrol a second factor before
    /// anything else. The session and user are read from SQL
    /// (or from what this process read of them in the last
    /// [`TTL`](crate::auth::session_cache::TTL)), so
    /// logout, disabling and role changes take effect at once on the process that made
    /// them and within that time on the others.
    async fn session_of(&self, token: &str) -> Result<(Principal, bool)> {
        let claims = self.keys.verify(token)?;
        let session = match self.sessions.get(claims.sid) {
            Some(session) => Some(session),
            None => {
                let read = store::sessions::session_user(&self.pool, claims.sid).await?;
                if let Some(session) = &read {
                    self.sessions.put(session.clone());
                }
                read
            }
        };
        let Some(session) = session.filter(|s| s.user_id == claims.sub) else {
            return Err(Error::new(Code::Unauthorized, "the session of this token does not exist"));
        };
        if session.revoked {
            return Err(Error::new(Code::Unauthorized, "this session has been logged out"));
        }
        if session.disabled {
            return Err(Error::new(Code::Unauthorized, "this user is disabled"));
        }
        let role = Role::stored(&session.role);
        let must_enrol = self.requires_second_factor(role) && !session.second_factor;
        let principal = Principal {
            user_id: session.user_id,
            session_id: session.session_id,
            email: session.email,
            name: session.name,
            role,
        };
        Ok((principal, must_enrol))
    }
}

/// The one answer to a login refused for too many failures, whichever limit refused it
/// and whether the email exists or not.
pub fn login_refused(wait: std::time::Duration) -> Error {
    Error::new(Code::RateLimited, "too many failed logins; try again later").with_retry_after(wait)
}

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

fn too_many_sign_ins(wait: std::time::Duration) -> Error {
    Error::new(
        Code::RateLimited,
        "too many sign-ins to this account or from this address; try again later",
    )
    .with_retry_after(wait)
}

/// SECOND_FACTOR_REQUIRED_FOR's roles; an unknown name stops the start.
fn second_factor_roles(settings: &Settings) -> anyhow::Result<Vec<Role>> {
    settings
        .second_factor_role_names()
        .iter()
        .map(|name| {
            Role::parse(name).ok_or_else(|| {
                anyhow::anyhow!("SECOND_FACTOR_REQUIRED_FOR names {name:?}, not a role (admin, manager, agent, viewer) or `none`")
            })
        })
        .collect()
}

/// Registrations one client address may make per hour.
const REGISTRATIONS_PER_HOUR: u32 = 10;
/// Password resets one client address may make per hour.
const RESETS_PER_HOUR: u32 = 10;

/// A budget of failed logins: `limit` in a window of `window`, and refused for `window`
/// once spent. `label` keeps the keys of different budgets apart.
struct FailureLimit {
    label: &'static str,
    limit: u32,
    window: std::time::Duration,
}

fn email_key(ip: &str, email: &str) -> String {
    format!("{email}\n{ip}")
}

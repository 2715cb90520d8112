//! State shared by every handler: the pool, the index, settings, keys, the login limits
//! and the session cache, with the authentication that reads them.
use std::sync::Arc;

use phonenumber::country;
use sqlx::PgPool;

use crate::auth::password::{self, Hashers};
use crate::auth::proxies::TrustedProxies;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::session_cache::SessionCache;
use crate::auth::tokens::{self, TokenKeys};
use crate::config::Settings;
use crate::domain::contact::parse_region;
use crate::domain::principal::Principal;
use crate::domain::role::Role;
use crate::error::{Code, Error, Result};
use crate::events::Events;
use crate::search::SearchIndex;
use crate::store;
use crate::store::payment_writer::PaymentWriter;
use crate::sync::metrics::SyncMetrics;

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    search: Arc<dyn SearchIndex>,
    sync_metrics: Arc<SyncMetrics>,
    settings: Settings,
    keys: TokenKeys,
    phone_region: country::Id,
    trusted_proxies: TrustedProxies,
    hashers: Hashers,
    /// Registrations per client address (each costs a password hash).
    registrations_by_client: RateLimiter,
    /// Failed logins per client address.
    failures_by_client: RateLimiter,
    /// Failed logins per email and client address: the lockout, which a stranger
    /// elsewhere cannot use to keep a user out.
    failures_by_email: RateLimiter,
    events: Events,
    sessions: SessionCache,
    payment_writer: PaymentWriter,
    /// Verified against when the email is unknown, so both failures cost the same time.
    dummy_hash: String,
}

impl AppState {
    pub async fn new(settings: Settings, pool: PgPool, search: Arc<dyn SearchIndex>) -> anyhow::Result<Self> {
        let problems = settings.unsafe_for_production();
        if !problems.is_empty() {
            anyhow::bail!("refusing to start in production mode:\n- {}", problems.join("\n- "));
        }
        let secret = tokens::load_secret(settings.jwt_secret.as_deref(), settings.production, &settings.data_dir)?;
        let phone_region = parse_region(&settings.default_phone_region).map_err(|e| anyhow::anyhow!("DEFAULT_PHONE_REGION: {e}"))?;
        let dummy_hash = password::hash("arrears-timing-equaliser".to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let database = settings.database_url.rsplit('/').next().unwrap_or_default();
        let events = Events::new(settings.redis_url.as_deref(), database.split('?').next().unwrap_or_default())?;
        let payment_writer = PaymentWriter::start(pool.clone(), usize::from(settings.payment_writers));
        let inner = Inner {
            events,
            keys: TokenKeys::new(&secret, settings.access_token_ttl()),
            hashers: Hashers::for_this_machine(),
            trusted_proxies: TrustedProxies::parse(&settings.trusted_proxies).map_err(|e| anyhow::anyhow!(e))?,
            registrations_by_client: RateLimiter::new(REGISTRATIONS_PER_HOUR, std::time::Duration::from_secs(3600)),
            failures_by_client: RateLimiter::new(settings.login_rate_limit_per_ip, settings.login_rate_window()),
            failures_by_email: RateLimiter::new(u32::try_from(settings.lockout_threshold).unwrap_or(0), settings.lockout()),
            phone_region,
            dummy_hash,
            pool,
            settings,
            search,
            sync_metrics: Arc::new(SyncMetrics::default()),
            sessions: SessionCache::default(),
            payment_writer,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn search(&self) -> &Arc<dyn SearchIndex> {
        &self.inner.search
    }

    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    pub fn sync_metrics(&self) -> &Arc<SyncMetrics> {
        &self.inner.sync_metrics
    }

    pub fn payment_writer(&self) -> &PaymentWriter {
        &self.inner.payment_writer
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.inner.keys
    }

    pub fn phone_region(&self) -> country::Id {
        self.inner.phone_region
    }

    /// Where this server hashes passwords (a bounded queue of its own).
    pub fn hashers(&self) -> &Hashers {
        &self.inner.hashers
    }

    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }

    pub fn dummy_hash(&self) -> &str {
        &self.inner.dummy_hash
    }

    /// After a session was revoked or a user changed: authentication reads SQL again.
    pub fn forget_sessions(&self) {
        self.inner.sessions.clear();
    }

    /// Applies both login limits; the attempt counts against each.
    /// Refuses a login from a client address that failed too often, or for an email
    /// that failed too often from it; the same answer whether the email exists or not.
    pub fn check_login_rate(&self, ip: &str, email: &str) -> Result<()> {
        let limited = self
            .inner
            .failures_by_client
            .check(ip)
            .and_then(|()| self.inner.failures_by_email.check(&email_key(ip, email)));
        limited.map_err(|wait| Error::new(Code::RateLimited, "too many failed logins; try again later").with_retry_after(wait))
    }

    /// Spends one of the client address's registrations for the hour.
    pub fn spend_registration(&self, ip: &str) -> Result<()> {
        let limiter = &self.inner.registrations_by_client;
        limiter.check(ip).map_err(|wait| {
            Error::new(Code::RateLimited, "too many registrations from this address; try again later").with_retry_after(wait)
        })?;
        limiter.record(ip);
        Ok(())
    }

    /// Counts a failed login against the client address and the email from it.
    pub fn record_login_failure(&self, ip: &str, email: &str) {
        self.inner.failures_by_client.record(ip);
        self.inner.failures_by_email.record(&email_key(ip, email));
    }

    /// A successful login forgets the email's failures from that address.
    pub fn clear_login_failures(&self, ip: &str, email: &str) {
        self.inner.failures_by_email.clear(&email_key(ip, email));
    }

    /// Resolves an access token to its caller. The session and user are read from SQL
    /// (or from what this process read of them in the last
    /// [`TTL`](crate::auth::session_cache::TTL)), so
    /// logout, disabling and role changes take effect at once on the process that made
    /// them and within that time on the others.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.inner.keys.verify(token)?;
        let session = match self.inner.sessions.get(claims.sid) {
            Some(session) => Some(session),
            None => {
                let read = store::sessions::session_user(&self.inner.pool, claims.sid).await?;
                if let Some(session) = &read {
                    self.inner.sessions.put(session.clone());
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
        Ok(Principal {
            user_id: session.user_id,
            session_id: session.session_id,
            email: session.email,
            name: session.name,
            role: Role::stored(&session.role),
        })
    }
}

/// Registrations one client address may make per hour.
const REGISTRATIONS_PER_HOUR: u32 = 10;

fn email_key(ip: &str, email: &str) -> String {
    format!("{email}\n{ip}")
}

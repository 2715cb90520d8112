//! State shared by every handler: the pool, the index, settings, the events, the
//! payment writer, the authentication gate, the request quotas and the store of the
//! files kept with accounts.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use phonenumber::country;
use sqlx::PgPool;

use crate::auth::gate::Gate;
use crate::auth::rate_limit::RateLimiter;
use crate::clock::Clock;
use crate::config::{DocumentStore, Settings};
use crate::domain::contact::parse_region;
use crate::events::Events;
use crate::messaging::Providers;
use crate::quota::Quotas;
use crate::search::SearchIndex;
use crate::service::messages::Outbox;
use crate::service::sessions::Sessions;
use crate::storage::ContentStore;
use crate::storage::local::LocalStore;
use crate::storage::s3::{S3Config, S3Store};
use crate::store::kpis::KeptRows;
use crate::store::payment_writer::PaymentWriter;
use crate::sync::metrics::SyncMetrics;
use crate::telephony::Dialer;

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
    phone_region: country::Id,
    gate: Gate,
    quotas: Quotas,
    events: Events,
    payment_writer: PaymentWriter,
    clock: Clock,
    /// One permit per spreadsheet being received and read ([`Settings::import_concurrency`]).
    import_slots: Arc<tokio::sync::Semaphore>,
    /// Catch-up replays per user ([`Settings::ws_replays_per_minute`]).
    ws_replays: RateLimiter,
    /// The bytes of the files kept with accounts (documents).
    content: Arc<dyn ContentStore>,
    /// Who carries messages to debtors.
    messengers: Providers,
    /// Who places calls.
    dialer: Arc<dyn Dialer>,
    /// The KPI rows of kept months and days last read.
    kept_rows: KeptRows,
    /// When this state was built: the process's uptime, for the operator's view.
    started: std::time::Instant,
}

impl AppState {
    pub async fn new(settings: Settings, pool: PgPool, search: Arc<dyn SearchIndex>, clock: Clock) -> anyhow::Result<Self> {
        let problems = settings.unsafe_for_production();
        if !problems.is_empty() {
            anyhow::bail!("refusing to start in production mode:\n- {}", problems.join("\n- "));
        }
        let phone_region = parse_region(&settings.default_phone_region).map_err(|e| anyhow::anyhow!("DEFAULT_PHONE_REGION: {e}"))?;
        let gate = Gate::new(&settings, pool.clone()).await?;
        let database = settings.database_url.rsplit('/').next().unwrap_or_default();
        let namespace = database.split('?').next().unwrap_or_default();
        let events = Events::new(settings.redis_url.as_deref(), namespace)?;
        let quotas = Quotas::new(&settings, namespace)?;
        let payment_writer = PaymentWriter::start(pool.clone(), usize::from(settings.payment_writers));
        let settings_import_concurrency = settings.import_concurrency;
        let ws_replays = RateLimiter::new(settings.ws_replays_per_minute, Duration::from_secs(60));
        let content: Arc<dyn ContentStore> = match settings.document_store {
            DocumentStore::Local => Arc::new(LocalStore::open(&settings.data_dir)),
            DocumentStore::S3 => Arc::new(S3Store::open(
                &S3Config {
                    bucket: settings.s3_bucket.clone().context("DOCUMENT_STORE=s3 needs S3_BUCKET")?,
                    endpoint: settings.s3_endpoint.clone(),
                    region: settings.s3_region.clone(),
                    access_key_id: settings.s3_access_key_id.clone(),
                    secret_access_key: settings.s3_secret_access_key.clone(),
                },
                &settings.data_dir,
            )?),
        };
        let messengers = Providers::from_settings(&settings)?;
        let dialer = crate::telephony::from_settings(&settings)?;
        let inner = Inner {
            events,
            gate,
            quotas,
            phone_region,
            pool,
            settings,
            search,
            sync_metrics: Arc::new(SyncMetrics::default()),
            payment_writer,
            clock,
            import_slots: Arc::new(tokio::sync::Semaphore::new(usize::from(settings_import_concurrency))),
            ws_replays,
            content,
            messengers,
            dialer,
            kept_rows: KeptRows::default(),
            started: std::time::Instant::now(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The slots spreadsheets are read in, so that all imports together stay bounded.
    pub fn import_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.import_slots
    }

    /// Each user's budget of WebSocket catch-up replays, in this process.
    pub fn ws_replays(&self) -> &RateLimiter {
        &self.inner.ws_replays
    }

    /// Where the bytes of the files kept with accounts (documents) are.
    pub fn content(&self) -> &Arc<dyn ContentStore> {
        &self.inner.content
    }

    /// Who carries messages to debtors, by channel (the sender's providers).
    /// When this state was built.
    pub fn started(&self) -> std::time::Instant {
        self.inner.started
    }

    pub fn messengers(&self) -> &Providers {
        &self.inner.messengers
    }

    /// What composing and sending a message needs beyond the request.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox {
            providers: &self.inner.messengers,
            payment_link: self.inner.settings.payment_link_template.as_deref(),
        }
    }

    /// Who places the calls the console makes.
    pub fn dialer(&self) -> &dyn Dialer {
        self.inner.dialer.as_ref()
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

    /// After `user_id`'s sessions were revoked or the user changed: this process reads
    /// sessions from SQL again, and that user's open sockets, on every instance the
    /// events reach, check theirs at once (4403 if revoked or disabled).
    pub async fn sessions_changed(&self, user_id: uuid::Uuid) {
        self.sessions().changed(user_id).await;
    }

    /// Signing in and out, and refreshing tokens.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions {
            pool: self.pool(),
            gate: self.auth(),
            events: self.events(),
            refresh_ttl: self.settings().refresh_token_ttl(),
            clock: self.clock(),
        }
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

    /// Authentication: tokens, sessions, hashing, client addresses, login limits.
    pub fn auth(&self) -> &Gate {
        &self.inner.gate
    }

    /// The request budgets of clients and users (rate limits).
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// The KPI rows of kept months and days last read ([`KeptRows`]).
    pub fn kept_rows(&self) -> &KeptRows {
        &self.inner.kept_rows
    }

    /// Where the date- and hour-dependent decisions read "now" ([`Clock`]).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn phone_region(&self) -> country::Id {
        self.inner.phone_region
    }
}

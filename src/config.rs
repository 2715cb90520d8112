//! Configuration: one clap struct, every field readable from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Who carries text messages to debtors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SmsProvider {
    /// Nothing leaves the machine: each message is written under DATA_DIR/messages.
    Local,
    /// Twilio's Messages API (TWILIO_*).
    Twilio,
}

/// Who carries WhatsApp messages to debtors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhatsappProvider {
    /// Nothing leaves the machine: each message is written under DATA_DIR/messages.
    Local,
    /// Twilio's Messages API (TWILIO_*).
    Twilio,
    /// Meta's WhatsApp Cloud API (META_*).
    Meta,
}

/// Who places and takes the calls the console makes and receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TelephonyProvider {
    /// Nothing rings: each call is written under DATA_DIR/calls, and the provider's
    /// reports may be sent to the voice webhooks by hand (docs/features/telephony.md).
    Local,
    /// Twilio Programmable Voice (TWILIO_*, TWILIO_VOICE_FROM).
    Twilio,
}

/// Who carries email to debtors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmailProvider {
    /// Nothing leaves the machine: each message is written under DATA_DIR/messages.
    Local,
    /// An SMTP server (SMTP_URL, SMTP_FROM).
    Smtp,
}

/// Where the files kept with accounts (documents) live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DocumentStore {
    /// Under DATA_DIR/documents.
    Local,
    /// In an S3-compatible bucket (S3_*).
    S3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SearchBackend {
    /// tantivy under DATA_DIR/index, owned by one process.
    Embedded,
    /// Elasticsearch 8 at ELASTICSEARCH_URL, shared by every process.
    Elasticsearch,
}

#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// PostgreSQL connection string; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/arrears",
        global = true
    )]
    pub database_url: String,

    /// Maximum PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 32, global = true)]
    pub database_max_connections: u32,

    /// Payment writer tasks: how many batches of payments (group commit) can be written
    /// at once, each on one connection of the pool. Fewer writers make larger batches.
    #[arg(long, env = "PAYMENT_WRITERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), global = true)]
    pub payment_writers: u16,

    /// Address the HTTP API listens on (port 0 picks a free port).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,

    /// Time every database statement by family, and every wait for a pooled connection,
    /// for the operator's view (`GET /api/v1/admin/system`),
    /// `arrears_db_query_duration_seconds` and `arrears_db_pool_wait_seconds`.
    #[arg(long, env = "QUERY_TIMING", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub query_timing: bool,

    /// Export Prometheus metrics at `/metrics` on METRICS_BIND.
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub metrics: bool,

    /// Address of the metrics listener, apart from the API so that scrapes need no
    /// API token and the metrics are not on the API's public address.
    #[arg(long, env = "METRICS_BIND", default_value = "127.0.0.1:9464", global = true)]
    pub metrics_bind: SocketAddr,

    /// Bearer token a scrape must send (`Authorization: Bearer <token>`); unset: the
    /// listener's address is the only guard.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,

    /// Directory for local state: the development JWT secret, the embedded index and the
    /// files kept with accounts (`documents/`).
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Secret for signing access tokens (at least 32 bytes). Generated and kept under
    /// DATA_DIR in development; required with --production.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Production mode: refuse insecure defaults such as a generated JWT secret.
    #[arg(long, env = "PRODUCTION", global = true)]
    pub production: bool,

    /// Access token lifetime in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900, global = true)]
    pub access_token_ttl_secs: u64,

    /// Refresh token lifetime in seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600, global = true)]
    pub refresh_token_ttl_secs: u64,

    /// Log format: json or pretty.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json", global = true)]
    pub log_format: LogFormat,

    /// Origins allowed by CORS, comma separated; empty disables CORS.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,

    /// Seconds a client has to send a request's headers (and an idle keep-alive
    /// connection waits for the next request) before the connection is closed.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_S", default_value_t = 10, global = true)]
    pub http_header_timeout_s: u64,

    /// Seconds a request body may take before it must keep up with
    /// HTTP_BODY_MIN_BYTES_PER_S; a body that falls behind ends the request.
    #[arg(long, env = "HTTP_BODY_GRACE_S", default_value_t = 10, global = true)]
    pub http_body_grace_s: u64,

    /// The slowest average rate, in bytes a second, a request body may arrive at.
    #[arg(long, env = "HTTP_BODY_MIN_BYTES_PER_S", default_value_t = 4096, global = true)]
    pub http_body_min_bytes_per_s: u64,

    /// Open connections the server holds at most; more are closed as they arrive.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, global = true)]
    pub max_connections: usize,

    /// Open connections one client address holds at most (behind a proxy, every
    /// client shares the proxy's address: raise it there).
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, global = true)]
    pub max_connections_per_address: usize,

    /// `Strict-Transport-Security: max-age` in seconds on every answer; 0 (the default)
    /// sends none. Set it when clients reach the service over HTTPS only.
    #[arg(long, env = "HSTS_MAX_AGE_SECS", default_value_t = 0, global = true)]
    pub hsts_max_age_secs: u64,

    /// Region assumed for phone numbers written without a country code (ISO 3166 alpha-2).
    #[arg(long, env = "DEFAULT_PHONE_REGION", default_value = "US", global = true)]
    pub default_phone_region: String,

    /// Whether `POST /auth/register` is open. Off unless an operator opens it; a
    /// self-registered user gets role `pending` (no data) until an admin gives a role.
    #[arg(long, env = "ALLOW_REGISTRATION", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_registration: bool,

    /// Roles whose users must sign in with a second factor (TOTP), comma separated
    /// (`admin,manager`), or `none`. Unset: `admin,manager` with --production, `none`
    /// otherwise. A user of such a role who has not enrolled yet gets tokens good only for
    /// enrolling.
    #[arg(long, env = "SECOND_FACTOR_REQUIRED_FOR", global = true)]
    pub second_factor_required_for: Option<String>,

    /// Failed logins for one email from one client address before that address may not
    /// try that email again for LOCKOUT_SECS (a stranger elsewhere cannot lock a user out).
    #[arg(long, env = "LOCKOUT_THRESHOLD", default_value_t = 5, global = true)]
    pub lockout_threshold: i32,

    /// How long an email stays locked for the client address that failed it, in seconds.
    #[arg(long, env = "LOCKOUT_SECS", default_value_t = 900, global = true)]
    pub lockout_secs: u64,

    /// Failed logins allowed per client address within the window; successful ones do
    /// not count, so an office behind one address can start its shift.
    #[arg(long, env = "LOGIN_RATE_LIMIT_PER_IP", default_value_t = 100, global = true)]
    pub login_rate_limit_per_ip: u32,

    /// Successful logins one account may make per minute (a login is refused with 429
    /// before its password is hashed); a person signs in a few times a day.
    #[arg(long, env = "LOGINS_PER_ACCOUNT_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 10, global = true)]
    pub logins_per_account_per_minute: u32,

    /// Successful logins one client address may make per minute, across its accounts:
    /// generous, as an office behind one NAT signs in at the start of a shift.
    #[arg(long, env = "LOGINS_PER_IP_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 300, global = true)]
    pub logins_per_ip_per_minute: u32,

    /// Percentage of the password hashing queue's places (running or waiting) one client
    /// address may hold at once (at least one place), so others always find room.
    #[arg(long, env = "HASH_QUEUE_SHARE_PER_IP_PERCENT", value_parser = clap::value_parser!(u8).range(1..=100), default_value_t = 25, global = true)]
    pub hash_queue_share_per_ip_percent: u8,

    /// Proxies whose `X-Forwarded-For` names the client (IP addresses or CIDR blocks,
    /// comma separated). Empty: the connection's address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<String>,

    /// Window of the per-address login limit, in seconds.
    #[arg(long, env = "LOGIN_RATE_WINDOW_SECS", default_value_t = 900, global = true)]
    pub login_rate_window_secs: u64,

    /// Length of a rate-limit window in seconds; a key's window opens with its first request.
    #[arg(long, env = "RATE_LIMIT_WINDOW_SECS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 60, global = true)]
    pub rate_limit_window_secs: u64,

    /// Requests one user may make per window (every route but health checks).
    #[arg(long, env = "RATE_LIMIT_PER_USER", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 1200, global = true)]
    pub rate_limit_per_user: u32,

    /// Requests one client address may make per window, signed in or not. Higher than
    /// the per-user budget: an office's agents may share one address.
    #[arg(long, env = "RATE_LIMIT_PER_IP", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 6000, global = true)]
    pub rate_limit_per_ip: u32,

    /// Bulk updates, imports and exports one user may submit per window.
    #[arg(long, env = "RATE_LIMIT_BULK_PER_USER", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 20, global = true)]
    pub rate_limit_bulk_per_user: u32,

    /// Bulk updates, imports and exports one client address may submit per window.
    #[arg(long, env = "RATE_LIMIT_BULK_PER_IP", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 60, global = true)]
    pub rate_limit_bulk_per_ip: u32,

    /// How long an account `POST /queue/next` hands an agent stays theirs alone, unless
    /// they log an activity on it first.
    #[arg(long, env = "QUEUE_CLAIM_SECS", value_parser = clap::value_parser!(u32).range(10..=86_400), default_value_t = 300, global = true)]
    pub queue_claim_secs: u32,

    /// Run the sync worker in this process (`serve --no-sync` or SYNC_WORKER=false
    /// runs the API alone, reading an index another process feeds).
    #[arg(long, env = "SYNC_WORKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub sync_worker: bool,

    /// Sync worker tasks in this process; they share the outbox safely.
    #[arg(long, env = "SYNC_WORKERS", default_value_t = 1, global = true)]
    pub sync_workers: usize,

    /// Days a plan instalment may stay unpaid after its due date (in the debtor's time
    /// zone) before the scheduler marks it missed.
    #[arg(long, env = "PLAN_GRACE_DAYS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=365), global = true)]
    pub plan_grace_days: u32,

    /// Days past its due date (in the debtor's time zone) after which an active account
    /// becomes delinquent, where its portfolio does not say (`delinquent_after_days`).
    #[arg(long, env = "OVERDUE_AFTER_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=365), global = true)]
    pub overdue_after_days: u32,

    /// Missed instalments that break a payment plan.
    #[arg(long, env = "PLAN_MAX_MISSES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub plan_max_misses: u32,

    /// Days the audit trail keeps a month after it ends before retention drops it; three
    /// years by default (Regulation F §1006.100 keeps records three years after the last
    /// collection activity).
    #[arg(long, env = "AUDIT_RETENTION_DAYS", default_value_t = 1096, value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    pub audit_retention_days: u32,

    /// Longest a write with `?wait_for=indexed` waits for the index, in milliseconds.
    #[arg(long, env = "WAIT_FOR_INDEXED_TIMEOUT_MS", default_value_t = 5000, global = true)]
    pub wait_for_indexed_timeout_ms: u64,

    /// Redis for fanning events out to every API instance (`redis://host:6379/`);
    /// without it events reach the sessions of the instance that relays them.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Seconds between WebSocket pings; a peer silent for two intervals is dropped.
    #[arg(long, env = "WS_PING_SECS", default_value_t = 20, global = true)]
    pub ws_ping_secs: u64,

    /// Messages one WebSocket may send per second (twice that in a burst); a socket that
    /// sends more is closed with 4429.
    #[arg(long, env = "WS_MESSAGES_PER_SECOND", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 10, global = true)]
    pub ws_messages_per_second: u32,

    /// Catch-up replays one user may ask for per minute, across their sockets; more are
    /// answered with an `error` event saying when to try again.
    #[arg(long, env = "WS_REPLAYS_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 30, global = true)]
    pub ws_replays_per_minute: u32,

    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "MAX_JSON_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_json_body_bytes: u64,

    /// Largest spreadsheet accepted by `POST /imports`, in bytes.
    #[arg(long, env = "IMPORT_MAX_BYTES", default_value_t = 50 * 1024 * 1024, global = true)]
    pub import_max_bytes: u64,

    /// Largest file accepted by `POST /accounts/{id}/documents`, in bytes.
    #[arg(long, env = "DOCUMENT_MAX_BYTES", default_value_t = 25 * 1024 * 1024, global = true)]
    pub document_max_bytes: u64,

    /// Largest zip accepted by `POST /documents/bulk`, in bytes. Its files may add up to
    /// four times as much uncompressed; each is bounded by `DOCUMENT_MAX_BYTES`.
    #[arg(long, env = "DOCUMENT_BULK_MAX_BYTES", default_value_t = 512 * 1024 * 1024, global = true)]
    pub document_bulk_max_bytes: u64,

    /// Days a document's bytes are kept after it is deleted, or after its account is
    /// deleted, or after the last collection activity on an account in a final status
    /// (paid, settled, closed); then they are removed and the row marked purged. 0 (the
    /// default) keeps them for ever; otherwise at least 1096 (Regulation F §1006.100
    /// keeps records three years after the last collection activity).
    #[arg(long, env = "DOCUMENT_RETENTION_DAYS", default_value_t = 0, value_parser = document_retention_days, global = true)]
    pub document_retention_days: u32,

    /// The program that reads a document for processing (page count, thumbnail, text),
    /// run as `<program> extract-document` in a child process under resource limits, one
    /// per document. Unset: this binary. Empty: documents are not processed (they stay
    /// `pending`).
    #[arg(long, env = "DOCUMENT_EXTRACTOR", global = true)]
    pub document_extractor: Option<std::path::PathBuf>,

    /// Most files a zip sent to `POST /documents/bulk` may hold.
    #[arg(long, env = "DOCUMENT_BULK_MAX_FILES", default_value_t = 10_000, global = true)]
    pub document_bulk_max_files: usize,

    /// The payment link a message's `{{payment_link}}` becomes: an http(s) URL with
    /// `{account_number}` where the account's number goes
    /// (`https://pay.example.com/a/{account_number}`). Unset, templates that use the link
    /// are refused when rendered.
    #[arg(long, env = "PAYMENT_LINK_TEMPLATE", value_parser = payment_link_template, global = true)]
    pub payment_link_template: Option<String>,

    /// Where documents live (`local` or `s3`).
    #[arg(long, env = "DOCUMENT_STORE", value_enum, default_value = "local", global = true)]
    pub document_store: DocumentStore,

    /// The bucket documents live in, with DOCUMENT_STORE=s3.
    #[arg(long, env = "S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,

    /// The S3 endpoint (`http://minio:9000`); unset, AWS's own for S3_REGION.
    #[arg(long, env = "S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    /// The bucket's region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1", global = true)]
    pub s3_region: String,

    /// The access key's id; unset, the credentials of the machine's role (AWS_* or the
    /// instance's).
    #[arg(long, env = "S3_ACCESS_KEY_ID", global = true)]
    pub s3_access_key_id: Option<String>,

    /// The access key's secret.
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true, global = true)]
    pub s3_secret_access_key: Option<String>,

    /// Who sends text messages (`local` or `twilio`).
    #[arg(long, env = "SMS_PROVIDER", value_enum, default_value = "local", global = true)]
    pub sms_provider: SmsProvider,

    /// Who sends WhatsApp messages (`local`, `twilio` or `meta`).
    #[arg(long, env = "WHATSAPP_PROVIDER", value_enum, default_value = "local", global = true)]
    pub whatsapp_provider: WhatsappProvider,

    /// Who sends email (`local` or `smtp`).
    #[arg(long, env = "EMAIL_PROVIDER", value_enum, default_value = "local", global = true)]
    pub email_provider: EmailProvider,

    /// Who places and takes calls (`local` or `twilio`).
    #[arg(long, env = "TELEPHONY_PROVIDER", value_enum, default_value = "local", global = true)]
    pub telephony_provider: TelephonyProvider,

    /// The number the debtor sees a call come from, and the one debtors call: a Twilio
    /// number in E.164.
    #[arg(long, env = "TWILIO_VOICE_FROM", global = true)]
    pub twilio_voice_from: Option<String>,

    /// Record the debtor's side of each call (`true`); off by default, as some states
    /// require every party's consent to a recording.
    #[arg(long, env = "TWILIO_RECORD_CALLS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub twilio_record_calls: bool,

    /// Twilio's API base URL; a stand-in's in tests.
    #[arg(long, env = "TWILIO_API_URL", default_value = "https://api.twilio.com", global = true)]
    pub twilio_api_url: String,

    /// The Twilio account's SID (AC and 32 hex digits).
    #[arg(long, env = "TWILIO_ACCOUNT_SID", global = true)]
    pub twilio_account_sid: Option<String>,

    /// The Twilio account's auth token.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub twilio_auth_token: Option<String>,

    /// Who text messages come from: a Twilio number in E.164 or a Messaging Service SID.
    #[arg(long, env = "TWILIO_SMS_FROM", global = true)]
    pub twilio_sms_from: Option<String>,

    /// The Twilio WhatsApp sender's number, E.164.
    #[arg(long, env = "TWILIO_WHATSAPP_FROM", global = true)]
    pub twilio_whatsapp_from: Option<String>,

    /// Where Twilio reports how each message's delivery went (sent with each message).
    #[arg(long, env = "TWILIO_WEBHOOK_URL", global = true)]
    pub twilio_webhook_url: Option<String>,

    /// Meta's Graph API base URL, with its version; a stand-in's in tests.
    #[arg(long, env = "META_GRAPH_URL", default_value = "https://graph.facebook.com/v23.0", global = true)]
    pub meta_graph_url: String,

    /// The WhatsApp Business phone number's id (digits), that messages go from.
    #[arg(long, env = "META_PHONE_NUMBER_ID", global = true)]
    pub meta_phone_number_id: Option<String>,

    /// A system user's access token for the WhatsApp Business account.
    #[arg(long, env = "META_ACCESS_TOKEN", hide_env_values = true, global = true)]
    pub meta_access_token: Option<String>,

    /// The Meta app's secret, which signs its webhooks (`X-Hub-Signature-256`).
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true, global = true)]
    pub meta_app_secret: Option<String>,

    /// The token Meta echoes when the webhook is subscribed (`hub.verify_token`).
    #[arg(long, env = "META_VERIFY_TOKEN", hide_env_values = true, global = true)]
    pub meta_verify_token: Option<String>,

    /// The SMTP server, as lettre reads it: `smtps://user:password@host:465`,
    /// `smtp://user:password@host:587?tls=required` or `smtp://host:25`.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,

    /// Who email comes from: `Name <address>` or an address.
    #[arg(long, env = "SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,

    /// Most data rows one import may hold.
    #[arg(long, env = "IMPORT_MAX_ROWS", default_value_t = 200_000, global = true)]
    pub import_max_rows: usize,

    /// Spreadsheets read at once (imports and dry runs). Reading one may take up to
    /// 300 MiB, so this bounds what all of them take together; an upload that finds
    /// every slot taken for 10 s is answered 503 with `Retry-After`.
    #[arg(long, env = "IMPORT_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..), default_value_t = 2, global = true)]
    pub import_concurrency: u16,

    /// Search index backend.
    #[arg(long, env = "SEARCH_BACKEND", value_enum, default_value = "embedded", global = true)]
    pub search_backend: SearchBackend,

    /// Elasticsearch base URL (`https://es.internal:9200`), with SEARCH_BACKEND=elasticsearch.
    #[arg(long, env = "ELASTICSEARCH_URL", global = true)]
    pub elasticsearch_url: Option<String>,

    /// Basic-auth user for Elasticsearch.
    #[arg(long, env = "ELASTICSEARCH_USERNAME", global = true)]
    pub elasticsearch_username: Option<String>,

    /// Basic-auth password for Elasticsearch.
    #[arg(long, env = "ELASTICSEARCH_PASSWORD", hide_env_values = true, global = true)]
    pub elasticsearch_password: Option<String>,

    /// Encoded API key for Elasticsearch (takes precedence over basic auth).
    #[arg(long, env = "ELASTICSEARCH_API_KEY", hide_env_values = true, global = true)]
    pub elasticsearch_api_key: Option<String>,

    /// PEM file of the CA that signed the cluster's certificate.
    #[arg(long, env = "ELASTICSEARCH_CA_FILE", global = true)]
    pub elasticsearch_ca_file: Option<PathBuf>,

    /// Timeout of each Elasticsearch request, in milliseconds.
    #[arg(long, env = "ELASTICSEARCH_TIMEOUT_MS", default_value_t = DEFAULT_ELASTICSEARCH_TIMEOUT_MS, global = true)]
    pub elasticsearch_timeout_ms: u64,

    /// How long Elasticsearch may refuse the credentials (401) before the sync stops,
    /// in seconds. A restarting cluster refuses valid credentials until its security
    /// index is back; until then a 401 is retried with backoff.
    #[arg(long, env = "ELASTICSEARCH_AUTH_GRACE_S", default_value_t = 300, global = true)]
    pub elasticsearch_auth_grace_s: u64,

    /// Prefix of every index, alias and template name.
    #[arg(long, env = "ELASTICSEARCH_INDEX_PREFIX", default_value = "arrears", global = true)]
    pub elasticsearch_index_prefix: String,

    /// Replicas of each index once built (0 on a single node).
    #[arg(long, env = "ELASTICSEARCH_REPLICAS", default_value_t = 0, global = true)]
    pub elasticsearch_replicas: u32,

    /// Keep the previous generation after a rebuild (`reindex --keep-old`).
    #[arg(skip)]
    pub elasticsearch_keep_old: bool,
}

impl Settings {
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.lockout_secs)
    }

    pub fn login_rate_window(&self) -> Duration {
        Duration::from_secs(self.login_rate_window_secs)
    }

    /// The role names SECOND_FACTOR_REQUIRED_FOR lists, or its default: `admin` and
    /// `manager` in production, none otherwise.
    pub fn second_factor_role_names(&self) -> Vec<String> {
        match self.second_factor_required_for.as_deref().map(str::trim) {
            None if self.production => vec!["admin".to_owned(), "manager".to_owned()],
            None | Some("none") => Vec::new(),
            Some(names) => names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// With `--production`, the settings that would leave the service open: each one
    /// named, so the operator fixes them all at once.
    pub fn unsafe_for_production(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.production {
            return problems;
        }
        for origin in &self.cors_origins {
            if !origin.starts_with("https://") {
                problems.push(format!("CORS_ORIGINS holds {origin:?}: only https:// origins may call the API"));
            }
        }
        if self.trusted_proxies.iter().any(|p| p.trim().ends_with("/0")) {
            problems.push("TRUSTED_PROXIES trusts every address: any client could choose its own".to_owned());
        }
        if self.login_rate_limit_per_ip == 0 {
            problems.push("LOGIN_RATE_LIMIT_PER_IP must be above 0".to_owned());
        }
        if self.lockout_threshold <= 0 || self.lockout_secs == 0 {
            problems.push("LOCKOUT_THRESHOLD and LOCKOUT_SECS must be above 0".to_owned());
        }
        if self.access_token_ttl_secs > 3600 {
            problems.push("ACCESS_TOKEN_TTL_SECS may be at most 3600: a stolen token must expire soon".to_owned());
        }
        problems
    }
}

/// `PAYMENT_LINK_TEMPLATE`: an http(s) URL of at most 500 characters holding
/// `{account_number}`.
/// `DOCUMENT_RETENTION_DAYS`: 0 (for ever) or three years and more.
fn document_retention_days(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(days) if days == 0 || (MIN_DOCUMENT_RETENTION_DAYS..=36_500).contains(&days) => Ok(days),
        Ok(_) => Err(format!(
            "must be 0 (keep every document) or {MIN_DOCUMENT_RETENTION_DAYS} to 36500 days: Regulation F \
             (12 CFR 1006.100) keeps records three years after the last collection activity"
        )),
        Err(_) => Err("must be a whole number of days".to_owned()),
    }
}

/// The shortest document retention an operator may set: three years and a day.
pub const MIN_DOCUMENT_RETENTION_DAYS: u32 = 1096;

/// How long a request to Elasticsearch may take unless ELASTICSEARCH_TIMEOUT_MS says.
pub const DEFAULT_ELASTICSEARCH_TIMEOUT_MS: u64 = 10_000;

fn payment_link_template(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !(text.starts_with("https://") || text.starts_with("http://")) {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    if text.len() > 500 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be one URL of at most 500 characters, without spaces".to_owned());
    }
    if !text.contains("{account_number}") {
        return Err("must hold {account_number}, where the account's number goes".to_owned());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_link_template_is_a_url_with_the_account_number_in_it() {
        assert!(payment_link_template("https://pay.example.com/a/{account_number}").is_ok());
        assert!(
            payment_link_template("https://pay.example.com/a/")
                .unwrap_err()
                .contains("{account_number}")
        );
        assert!(payment_link_template("javascript:alert(1)//{account_number}").is_err());
        assert!(payment_link_template("https://pay.example.com/{account_number} x").is_err());
    }
}

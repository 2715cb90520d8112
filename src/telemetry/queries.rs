//! How long the database takes, by statement family. sqlx reports every statement it
//! runs, with its SQL and how long it took until its rows were read, as a `sqlx::query`
//! tracing event (`store::connect` asks for them at TRACE). [`QueryTiming`], a tracing
//! layer, reads each into a latency sketch of its family (its verb and the first table it
//! names: `select accounts`, `insert payments`, `with activities`) and into the
//! `arrears_db_query_duration_seconds` histogram: one place times every statement of
//! every store function without touching them. It reads the pool's `sqlx::pool::acquire`
//! events the same way: how long each wait for a connection took
//! (`arrears_db_pool_wait_seconds`). With `QUERY_TIMING=false` the layer is not
//! installed: nothing listens, and sqlx does not even format the events.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use metrics_util::storage::Summary;
use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The tracing target of sqlx's statement events.
pub const TARGET: &str = "sqlx::query";

/// The tracing target of sqlx's pool events: each acquire, with how long it waited for a
/// connection (`store::connect` asks for them at TRACE too).
pub const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";

/// Whether this process installed the layer.
static TIMING: AtomicBool = AtomicBool::new(false);

/// Whether statements are timed in this process.
pub fn timing() -> bool {
    TIMING.load(Ordering::Relaxed)
}

/// How long one window of recent statements lasts: percentiles cover the current
/// window and the one before it (one to two minutes).
const WINDOW: Duration = Duration::from_secs(60);

/// The most families kept; statements of any other go to `other` (the SQL is the
/// program's own, so this only guards against a mistake).
const MAX_FAMILIES: usize = 500;

/// The verbs a family may start with; any other statement is `other`.
const VERBS: [&str; 22] = [
    "select",
    "insert",
    "update",
    "delete",
    "with",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "set",
    "copy",
    "listen",
    "unlisten",
    "notify",
    "lock",
    "create",
    "alter",
    "drop",
    "truncate",
    "analyze",
    "values",
];

/// Words that may follow `FROM` without being a table.
const NOT_TABLES: [&str; 6] = ["select", "lateral", "only", "unnest", "generate_series", "jsonb_to_recordset"];

/// The family of `sql`: its verb, and the first table after `FROM`, `INTO` or `UPDATE`
/// when it names one. Reads the words in place (it runs for every statement): only the
/// verb and the table are copied.
pub fn family(sql: &str) -> String {
    let mut words = sql
        .split(|c: char| c.is_whitespace() || "(),;".contains(c))
        .filter(|w| !w.is_empty());
    let Some(verb) = words.next().and_then(|w| VERBS.iter().find(|v| v.eq_ignore_ascii_case(w))) else {
        return "other".to_owned();
    };
    let mut table_follows = *verb == "update";
    let mut previous = "";
    for word in words {
        if table_follows && is_table(word) {
            return format!("{verb} {}", word.to_ascii_lowercase());
        }
        // `EXTRACT(EPOCH FROM t)` names a column, not a table.
        table_follows = word.eq_ignore_ascii_case("into")
            || word.eq_ignore_ascii_case("update")
            || (word.eq_ignore_ascii_case("from") && !EXTRACT_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(previous)));
        previous = word;
    }
    (*verb).to_owned()
}

/// What `EXTRACT(<field> FROM ...)` takes.
const EXTRACT_FIELDS: [&str; 9] = ["epoch", "year", "month", "day", "hour", "minute", "second", "dow", "isodow"];

fn is_table(word: &str) -> bool {
    !NOT_TABLES.iter().any(|n| n.eq_ignore_ascii_case(word))
        && word.len() <= 63
        && word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// One family's statements: since the process started, and in the recent windows.
struct Family {
    count: u64,
    total: Duration,
    started: Instant,
    current: Summary,
    previous: Option<Summary>,
}

impl Family {
    fn new(now: Instant) -> Self {
        Self {
            count: 0,
            total: Duration::ZERO,
            started: now,
            current: Summary::with_defaults(),
            previous: None,
        }
    }

    /// Starts a new window when the current one is over (dropping the one before when
    /// more than a window has passed since).
    fn turn(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.started);
        if age < WINDOW {
            return;
        }
        let ended = std::mem::replace(&mut self.current, Summary::with_defaults());
        self.previous = (age < 2 * WINDOW).then_some(ended);
        self.started = now;
    }
}

static FAMILIES: LazyLock<Mutex<BTreeMap<String, Family>>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Records one statement of `family` that took `elapsed`. The Prometheus histogram gets the same family as the sketches, so its label set is
/// bounded by [`MAX_FAMILIES`] too.
pub fn record(family: String, elapsed: Duration) {
    let now = Instant::now();
    let mut families = FAMILIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = if families.contains_key(&family) || families.len() < MAX_FAMILIES {
        family
    } else {
        "other".to_owned()
    };
    super::metrics::db_query(&key, elapsed);
    families.entry(key).or_insert_with(|| Family::new(now)).add(now, elapsed);
}

/// How long some timed thing took: since the process started, and recently.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Timings {
    /// How many since the process started.
    pub count: u64,
    /// Their time together, in seconds.
    pub total_seconds: f64,
    /// How many in the recent windows (the last one to two minutes).
    pub recent: u64,
    /// Percentiles of the recent ones, in milliseconds (`null` when none).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Family {
    /// The figures at `now`.
    fn timings(&mut self, now: Instant) -> Timings {
        self.turn(now);
        let mut recent = self.current.clone();
        if let Some(previous) = &self.previous {
            // Both sketches are made with the same defaults, which is what merging needs.
            let _ = recent.merge(previous);
        }
        let quantile = |q| recent.quantile(q);
        Timings {
            count: self.count,
            total_seconds: self.total.as_secs_f64(),
            recent: recent.count() as u64,
            p50_ms: quantile(0.5),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: (!recent.is_empty()).then(|| recent.max()),
        }
    }

    fn add(&mut self, now: Instant, elapsed: Duration) {
        self.turn(now);
        self.count += 1;
        self.total += elapsed;
        self.current.add(elapsed.as_secs_f64() * 1000.0);
    }
}

/// A statement family's figures, as the operator's view shows them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FamilyFigures {
    /// The verb and the first table named: `select accounts`.
    pub family: String,
    /// The family's statements.
    #[serde(flatten)]
    pub timings: Timings,
}

/// Every family's figures, the most time taken first.
pub fn figures() -> Vec<FamilyFigures> {
    let now = Instant::now();
    let mut families = FAMILIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out: Vec<FamilyFigures> = families
        .iter_mut()
        .map(|(name, family)| FamilyFigures {
            family: name.clone(),
            timings: family.timings(now),
        })
        .collect();
    out.sort_by(|a, b| {
        b.timings
            .total_seconds
            .total_cmp(&a.timings.total_seconds)
            .then_with(|| a.family.cmp(&b.family))
    });
    out
}

static WAITS: LazyLock<Mutex<Option<Family>>> = LazyLock::new(|| Mutex::new(None));

/// Records one wait of `waited` for a pool connection.
pub fn record_wait(waited: Duration) {
    let now = Instant::now();
    super::metrics::db_pool_wait(waited);
    WAITS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(|| Family::new(now))
        .add(now, waited);
}

/// The waits for a pool connection (none counted where nothing listens).
pub fn waits() -> Timings {
    WAITS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_mut()
        .map(|family| family.timings(Instant::now()))
        .unwrap_or_default()
}

/// The tracing layer that times statements (`telemetry::statement_timing` makes it
/// with its filter).
pub struct QueryTiming;

impl QueryTiming {
    /// The layer; the process's statements are timed from now on.
    pub fn installed() -> Self {
        TIMING.store(true, Ordering::Relaxed);
        Self
    }
}

impl<S: Subscriber> Layer<S> for QueryTiming {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        match event.metadata().target() {
            TARGET => {
                let mut statement = Statement::default();
                event.record(&mut statement);
                if let (Some(family), Some(elapsed)) = (statement.family, statement.elapsed) {
                    record(family, elapsed);
                }
            }
            ACQUIRE_TARGET => {
                let mut acquire = Acquire::default();
                event.record(&mut acquire);
                if let Some(waited) = acquire.waited {
                    record_wait(waited);
                }
            }
            _ => {}
        }
    }
}

/// What a `sqlx::query` event says: the statement's family (from `db.statement`, the
/// whole statement when it is longer than its `summary`, its first four words, which
/// come first) and `elapsed_secs`.
#[derive(Default)]
struct Statement {
    family: Option<String>,
    elapsed: Option<Duration>,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.family = Some(family(value)),
            "db.statement" if !value.trim().is_empty() => self.family = Some(family(value)),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" && value.is_finite() && value >= 0.0 {
            self.elapsed = Some(Duration::from_secs_f64(value));
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// What a `sqlx::pool::acquire` event says: `acquired_after_secs`.
#[derive(Default)]
struct Acquire {
    waited: Option<Duration>,
}

impl Visit for Acquire {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "acquired_after_secs" && value.is_finite() && value >= 0.0 {
            self.waited = Some(Duration::from_secs_f64(value));
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_the_verb_and_the_first_table() {
        let cases = [
            ("SELECT id, name FROM accounts WHERE id = $1", "select accounts"),
            ("select count(*) from (select 1 from payments) p", "select payments"),
            (
                "INSERT INTO account_messages (id) VALUES ($1) RETURNING id",
                "insert account_messages",
            ),
            (
                "UPDATE accounts a SET status = 'delinquent' FROM due WHERE a.id = due.id",
                "update accounts",
            ),
            ("DELETE FROM sessions WHERE expires_at < now()", "delete sessions"),
            ("WITH due AS (SELECT a.id FROM accounts a) UPDATE accounts", "with accounts"),
            ("SELECT x FROM unnest($1::uuid[]) AS x", "select"),
            (
                "SELECT extract(epoch FROM locked_until - now()) FROM users WHERE id = $1",
                "select users",
            ),
            ("SELECT pg_notify($1, '')", "select"),
            ("BEGIN", "begin"),
            ("  \n", "other"),
            ("EXPLAIN SELECT 1", "other"),
            ("SELECT * FROM \"Odd Table\"", "select"),
        ];
        for (sql, expected) in cases {
            assert_eq!(family(sql), expected, "{sql}");
        }
    }
}

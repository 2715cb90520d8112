//! `arrears seed`: realistic demo and benchmark data, loaded with COPY: a manager, a
//! viewer and agents who sign in with [`DEMO_PASSWORD`], and accounts with a timeline
//! (calls, notes, promises to pay kept, broken and open, payments) that agrees with their
//! status and balance. The users' emails are fixed (`manager@seed.example.com`,
//! `agent0@seed.example.com`, ...): a second run reuses the users that exist, as they
//! are, and adds accounts under new numbers.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::domain::account::Address;
use crate::domain::custom_field::{CreateField, Definition};
use crate::domain::debtor_zone::DebtorZone;
use crate::domain::role::Role;
use crate::store::{self, bulk_load};

pub const DEMO_PASSWORD: &str = "arrears-demo-password";
/// The domain of the seeded users' emails.
pub const EMAIL_DOMAIN: &str = "seed.example.com";
const CHUNK: usize = 20_000;

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "José",
    "María",
    "Luis",
    "Sofía",
    "Zoë",
    "Chloé",
    "René",
    "Björn",
    "Søren",
    "Ángel",
    "Jonathan",
    "Jonah",
    "Jon",
    "Joanna",
    "Katherine",
    "Catherine",
    "Steven",
    "Stephen",
    "Aaliyah",
    "Mohammed",
    "Wei",
    "Priya",
    "Olumide",
    "Tatiana",
    "Dmitri",
    "Siobhan",
    "Niamh",
    "Giulia",
    "François",
    "Hélène",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Álvarez",
    "Muñoz",
    "Peña",
    "Müller",
    "Schröder",
    "Dubois",
    "Lefèvre",
    "Nguyen",
    "Kim",
    "Patel",
    "O'Brien",
    "McDonald",
    "Fitzgerald",
    "Kowalski",
    "Novak",
    "Ivanova",
    "Rossi",
    "Bianchi",
    "Okafor",
    "Adeyemi",
    "Chen",
    "Wang",
    "Singh",
    "Khan",
    "Cohen",
    "Schmidt",
    "Johansson",
    "Larsen",
    "Haddad",
    "Yamamoto",
];
const STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "River",
];
const SUFFIXES: &[&str] = &["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct"];
/// (city, state, area code, zip prefix); the zone is derived from the ZIP code and the
/// phone as an import's is (domain::debtor_zone).
const PLACES: &[(&str, &str, &str, &str)] = &[
    ("New York", "NY", "212", "100"),
    ("Brooklyn", "NY", "718", "112"),
    ("Newark", "NJ", "201", "071"),
    ("Boston", "MA", "617", "021"),
    ("Miami", "FL", "305", "331"),
    ("Atlanta", "GA", "404", "303"),
    ("Chicago", "IL", "312", "606"),
    ("Dallas", "TX", "214", "752"),
    ("Austin", "TX", "512", "787"),
    ("Denver", "CO", "303", "802"),
    ("Phoenix", "AZ", "602", "850"),
    ("Las Vegas", "NV", "702", "891"),
    ("Los Angeles", "CA", "213", "900"),
    ("San Francisco", "CA", "415", "941"),
    ("Seattle", "WA", "206", "981"),
];
const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example.net", "inbox.example.com"];
const TAGS: &[&str] = &[
    "vip",
    "payroll",
    "medical",
    "student",
    "hardship",
    "skip-trace",
    "legal-hold",
    "autopay",
    "spanish",
    "bankruptcy",
];
/// (status, weight in percent)
const STATUSES: &[(&str, u32)] = &[
    ("active", 30),
    ("delinquent", 35),
    ("promise_to_pay", 10),
    ("payment_plan", 8),
    ("disputed", 4),
    ("paid", 8),
    ("settled", 3),
    ("closed", 2),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn status(rng: &mut StdRng) -> &'static str {
    let mut roll = rng.random_range(0..100);
    for (status, weight) in STATUSES {
        if roll < *weight {
            return status;
        }
        roll -= weight;
    }
    "active"
}

/// CSV-quotes a field when needed.
fn csv(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

const COLUMNS: &str = "id, account_number, external_ref, debtor_name, email, phone, address_line1, address_city, address_region, \
     address_postal_code, address_country, timezone, timezone_source, alternate_timezones, status, original_balance, current_balance, currency, due_date, \
     assigned_agent_id, next_action_at, tags, custom_fields";

/// The facts of a seeded account its payments and timeline follow.
struct Seeded {
    id: Uuid,
    status: &'static str,
    agent: Option<Uuid>,
    original_cents: i64,
    current_cents: i64,
}

/// Writes one account row; `balance_cents` is the current balance as written (payments
/// seeded through the triggers lower it themselves).
fn row(out: &mut String, rng: &mut StdRng, run: u16, n: usize, agents: &[Uuid], today: NaiveDate, paid_by_trigger: bool) -> Seeded {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let (city, state, area, zip) = *pick(rng, PLACES);
    // One debtor in twenty kept the phone of a place they moved from.
    let area = if rng.random_bool(0.05) { pick(rng, PLACES).2 } else { area };
    let phone = format!("+1{area}{}{:04}", rng.random_range(200..1000), rng.random_range(0..10_000));
    let postal_code = format!("{zip}{:02}", rng.random_range(0..100));
    let address = Address {
        postal_code: Some(postal_code.clone()),
        country: Some("US".to_owned()),
        ..Address::default()
    };
    let zone = DebtorZone::derive(&address, Some(&phone), phonenumber::country::Id::US);
    let status = status(rng);
    let original_cents: i64 = rng.random_range(5_000..2_000_000);
    let current_cents = match status {
        "paid" | "settled" | "closed" => 0,
        _ => rng.random_range(original_cents / 10..=original_cents),
    };
    // An active account is not yet past due (the overdue scheduler would make it
    // delinquent); the others fell due up to 400 days ago, or fall due within 30 days.
    let days: i64 = rng.random_range(-30..400);
    let due = if status == "active" {
        today + TimeDelta::days(days.rem_euclid(31))
    } else {
        today - TimeDelta::days(days)
    };
    let agent = if rng.random_bool(0.8) && !agents.is_empty() {
        Some(*pick(rng, agents))
    } else {
        None
    };
    let next_action = if rng.random_bool(0.5) {
        (Utc::now() + TimeDelta::hours(rng.random_range(-14 * 24..14 * 24))).to_rfc3339()
    } else {
        String::new()
    };
    let tag_count = rng.random_range(0..=3);
    let tags: Vec<&str> = (0..tag_count)
        .map(|_| *pick(rng, TAGS))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let email_user: String = format!("{}.{}{}", first, last, n % 1000)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let id = Uuid::now_v7();
    let written_cents = if paid_by_trigger { original_cents } else { current_cents };
    let _ = write!(out, "{id},{},CRM-{},", account_number(run, n), rng.random_range(100_000..999_999));
    csv(out, &format!("{first} {last}"));
    out.push(',');
    csv(out, &format!("{}@{}", email_user.to_lowercase(), pick(rng, DOMAINS)));
    let _ = write!(
        out,
        ",{phone},{} {} {},{city},{state},{postal_code},US,{},{},\"{{{}}}\",{status},{}.{:02},{}.{:02},USD,{due},{},{next_action},",
        rng.random_range(1..9999),
        pick(rng, STREETS),
        pick(rng, SUFFIXES),
        zone.timezone,
        zone.source.as_str(),
        zone.alternates.join(","),
        original_cents / 100,
        original_cents % 100,
        written_cents / 100,
        written_cents % 100,
        agent.map(|a| a.to_string()).unwrap_or_default(),
    );
    csv(out, &format!("{{{}}}", tags.join(",")));
    out.push(',');
    csv(out, &custom_fields(rng, original_cents, due).to_string());
    out.push('\n');
    Seeded {
        id,
        status,
        agent,
        original_cents,
        current_cents,
    }
}

/// The custom fields the seed defines (docs/seed.md): a creditor's columns of each kind
/// the search filters on.
fn definitions() -> [serde_json::Value; 4] {
    use serde_json::json;
    [
        json!({"key": "balance_tier", "label": "Balance tier", "type": "list", "filterable": true,
               "rules": {"allowed": ["retail", "high"]}}),
        json!({"key": "product_type", "label": "Product type", "type": "list", "filterable": true,
               "rules": {"allowed": PRODUCTS}}),
        json!({"key": "credit_score", "label": "Credit score", "type": "number", "filterable": true, "sortable": true,
               "rules": {"min": 300, "max": 850}}),
        json!({"key": "charged_off_on", "label": "Charged off on", "type": "date", "filterable": true, "sortable": true}),
    ]
}

const PRODUCTS: &[&str] = &["card", "loan", "auto", "utility", "telecom"];

/// An account's values of the seeded custom fields, in their canonical forms.
fn custom_fields(rng: &mut StdRng, original_cents: i64, due: NaiveDate) -> serde_json::Value {
    serde_json::json!({
        "balance_tier": (if original_cents > 500_000 { "high" } else { "retail" }),
        "product_type": pick(rng, PRODUCTS),
        "credit_score": rng.random_range(300..=850),
        "charged_off_on": (due + TimeDelta::days(rng.random_range(90..240))).to_string(),
    })
}

/// Defines the seeded custom fields that no definition, live or deleted, holds the key
/// of yet, as `actor`.
async fn define_fields(pool: &PgPool, actor: Uuid) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    store::fields::lock_all(&mut tx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    for body in definitions() {
        let create: CreateField = serde_json::from_value(body)?;
        let mut definition = Definition::from_create(create).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if store::fields::lock(&mut tx, &definition.key)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .is_some()
        {
            continue;
        }
        definition.position = store::fields::next_position(&mut tx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        store::fields::insert(&mut tx, &definition, actor)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tx.commit().await?;
    Ok(())
}

/// The number of a run's `n`th account.
fn account_number(run: u16, n: usize) -> String {
    format!("S{run:04X}-{n:07}")
}

const PAYMENT_COLUMNS: &str = "id, account_id, amount, currency, method, status, reference, received_at, created_at, updated_at";
const METHODS: &[&str] = &["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

/// A completed payment: its amount in cents and when it was received.
type Paid = (i64, DateTime<Utc>);

/// Writes `count` payments of an account: the completed ones add up to what was paid
/// off it (original minus current balance), so balances and payments agree. Returns the
/// completed ones.
fn payments(out: &mut String, rng: &mut StdRng, account: &Seeded, count: usize, now: DateTime<Utc>) -> Vec<Paid> {
    let paid = account.original_cents - account.current_cents;
    let statuses: Vec<&str> = (0..count)
        .map(|_| match rng.random_range(0..100) {
            0..85 if paid > 0 => "completed",
            0..92 => "failed",
            92..97 => "pending",
            _ => "refunded",
        })
        .collect();
    let completed = statuses.iter().filter(|s| **s == "completed").count() as i64;
    let mut left = paid;
    let mut completed_seen = 0;
    let mut done = Vec::new();
    for status in statuses {
        let cents = if status == "completed" {
            completed_seen += 1;
            let share = if completed_seen == completed {
                left
            } else {
                (paid / completed).max(1).min(left - (completed - completed_seen))
            };
            left -= share;
            share
        } else {
            rng.random_range(1_000..50_000)
        };
        if cents <= 0 {
            continue;
        }
        let received = now - TimeDelta::seconds(rng.random_range(0..365 * 86_400));
        if status == "completed" {
            done.push((cents, received));
        }
        let _ = writeln!(
            out,
            "{},{},{}.{:02},USD,{},{status},PAY-{:08},{},{},{}",
            Uuid::now_v7(),
            account.id,
            cents / 100,
            cents % 100,
            pick(rng, METHODS),
            rng.random_range(0..100_000_000),
            received.to_rfc3339(),
            received.to_rfc3339(),
            received.to_rfc3339(),
        );
    }
    done
}

const ACTIVITY_COLUMNS: &str = "id, account_id, type, direction, outcome, notes, occurred_at, agent_id, created_at";
const PROMISE_COLUMNS: &str = "id, account_id, amount, due_date, status, created_by, created_at, resolved_at";
/// Outcomes of the calls that reach no agreement, weighted in percent.
const ROUTINE_OUTCOMES: &[(&str, u32)] = &[
    ("no_answer", 40),
    ("left_message", 30),
    ("right_party", 15),
    ("refused", 10),
    ("wrong_party", 5),
];
const NOTES: &[&str] = &[
    "Debtor asked to be called after payday.",
    "Confirmed mailing address; statement resent.",
    "Employer verified, hours reduced this quarter.",
    "Prefers email, call only in the evening.",
    "Hardship mentioned, sent the payment plan options.",
    "Spouse answered, will pass on the message.",
    "Checked the balance breakdown with the debtor, fees explained.",
];

/// One account's timeline, written as CSV rows of `activities` and `promises`.
struct Timeline<'a> {
    activities: &'a mut String,
    promises: &'a mut String,
    account: Uuid,
    agent: Option<Uuid>,
}

impl Timeline<'_> {
    fn activity(&mut self, kind: &str, direction: &str, outcome: &str, notes: &str, at: DateTime<Utc>) {
        let _ = write!(self.activities, "{},{},{kind},{direction},{outcome},", Uuid::now_v7(), self.account);
        csv(self.activities, notes);
        let at = at.to_rfc3339();
        let agent = self.agent.map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(self.activities, ",{at},{agent},{at}");
    }

    fn call(&mut self, direction: &str, outcome: &str, at: DateTime<Utc>) {
        self.activity("call", direction, outcome, "", at);
    }

    /// A promise made on a call at `made`, settled (`kept` or `broken`) at `resolved`.
    fn promise(&mut self, cents: i64, due: NaiveDate, status: &str, made: DateTime<Utc>, resolved: Option<DateTime<Utc>>) {
        self.call("outbound", "promise_to_pay", made);
        let agent = self.agent.map(|a| a.to_string()).unwrap_or_default();
        let resolved = resolved.map(|at| at.to_rfc3339()).unwrap_or_default();
        let _ = writeln!(
            self.promises,
            "{},{},{}.{:02},{due},{status},{agent},{},{resolved}",
            Uuid::now_v7(),
            self.account,
            cents / 100,
            cents % 100,
            made.to_rfc3339(),
        );
    }
}

fn routine_outcome(rng: &mut StdRng) -> &'static str {
    let mut roll = rng.random_range(0..100);
    for (outcome, weight) in ROUTINE_OUTCOMES {
        if roll < *weight {
            return outcome;
        }
        roll -= weight;
    }
    "no_answer"
}

/// A time in the `days` before `now`.
fn within(rng: &mut StdRng, now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    now - TimeDelta::seconds(rng.random_range(0..days * 86_400))
}

/// Writes an account's calls, notes and promises: routine calls and notes over the last
/// two months; a kept promise before some of its completed payments; for an account
/// still owing, sometimes a promise that passed unpaid (broken); for `promise_to_pay`
/// its one open promise, made after its last payment and due in the next month; the
/// call that disputed a `disputed` account and the one that paid off a paid one.
fn timeline(timeline: &mut Timeline, rng: &mut StdRng, account: &Seeded, completed: &[Paid], now: DateTime<Utc>) {
    let today = now.date_naive();
    for _ in 0..rng.random_range(1..=5) {
        let outcome = routine_outcome(rng);
        let direction = if outcome == "right_party" && rng.random_bool(0.3) {
            "inbound"
        } else {
            "outbound"
        };
        timeline.call(direction, outcome, within(rng, now, 60));
    }
    for _ in 0..rng.random_range(0..=2) {
        let note = *pick(rng, NOTES);
        timeline.activity("note", "", "", note, within(rng, now, 60));
    }
    for &(cents, received) in completed {
        if rng.random_bool(0.3) {
            let made = received - TimeDelta::days(rng.random_range(1..=10));
            timeline.promise(cents, received.date_naive(), "kept", made, Some(received));
        }
    }
    let owing = matches!(
        account.status,
        "active" | "delinquent" | "promise_to_pay" | "payment_plan" | "disputed"
    );
    if owing && rng.random_bool(0.3) {
        let made = now - TimeDelta::days(rng.random_range(20..180));
        let due = (made + TimeDelta::days(rng.random_range(3..=14))).date_naive();
        let cents = (account.current_cents / rng.random_range(2..=4)).max(1);
        let paid_meanwhile: i64 = completed
            .iter()
            .filter(|(_, at)| *at >= made && at.date_naive() <= due)
            .map(|(c, _)| c)
            .sum();
        if paid_meanwhile < cents {
            let broken = (due + TimeDelta::days(1)).and_hms_opt(6, 0, 0).map(|at| at.and_utc());
            timeline.promise(cents, due, "broken", made, broken);
        }
    }
    match account.status {
        "promise_to_pay" => {
            let last_paid = completed.iter().map(|(_, at)| *at).max();
            let since = last_paid.map_or(now - TimeDelta::days(14), |at| at.max(now - TimeDelta::days(14)));
            let made = since + (now - since) * rng.random_range(1..=100) / 100;
            let cents = (account.current_cents * rng.random_range(30..=100) / 100).max(1);
            timeline.promise(cents, today + TimeDelta::days(rng.random_range(1..=30)), "open", made, None);
        }
        "disputed" => timeline.call("inbound", "dispute", within(rng, now, 30)),
        "paid" | "settled" => {
            let at = completed.iter().map(|(_, at)| *at).max().unwrap_or_else(|| within(rng, now, 90));
            timeline.call("inbound", "paid", at);
        }
        _ => {}
    }
}

/// A seeded user a newcomer signs in as (password [`DEMO_PASSWORD`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub role: Role,
    pub email: String,
    /// The accounts assigned to them, all runs together.
    pub accounts: i64,
}

pub struct SeedReport {
    pub accounts: usize,
    pub payments: usize,
    pub activities: usize,
    pub promises: usize,
    pub agents: usize,
    /// The manager, the viewer and the agents, in that order.
    pub sign_ins: Vec<SignIn>,
    /// Accounts in today's KPI snapshot added by this run.
    pub snapshot: u64,
    pub elapsed: Duration,
    /// Triggers were bypassed, so the index must be rebuilt.
    pub needs_reindex: bool,
}

/// How much to create.
#[derive(Clone, Copy, Debug)]
pub struct SeedPlan {
    pub accounts: usize,
    /// Spread evenly over the accounts.
    pub payments: usize,
    pub agents: usize,
    pub seed: u64,
}

/// The user with `email`, made with `role` and `hash` if there is none.
/// The team of the seeded manager and agents: the manager manages the agents.
const DEMO_TEAM: &str = "Demo team";

async fn user(pool: &PgPool, email: &str, name: &str, role: Role, hash: &str) -> anyhow::Result<store::users::UserRow> {
    if let Some(user) = store::users::by_email(pool, email).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        return Ok(user);
    }
    let team = (role != Role::Viewer).then_some(DEMO_TEAM);
    store::users::insert_in_team(pool, None, email, name, role, hash, team)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The tables a seed loads, whose statistics it refreshes after.
const LOADED: &[&str] = &["accounts", "payments", "activities", "promises"];

/// Creates (or reuses) the manager, the viewer and the agents (password
/// [`DEMO_PASSWORD`]), then accounts with their payments and timelines; refreshes the
/// planner's statistics and adds the accounts to today's KPI snapshot.
pub async fn seed(pool: &PgPool, plan: SeedPlan, mut progress: impl FnMut(usize)) -> anyhow::Result<SeedReport> {
    let SeedPlan {
        accounts, agents, seed, ..
    } = plan;
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut run: u16 = rng.random();
    // A second run with the same seed numbers its accounts apart.
    while store::accounts::number_taken(pool, &account_number(run, 0))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        run = run.wrapping_add(1);
    }
    let hash = password::hash(DEMO_PASSWORD.to_owned()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut users = vec![
        user(pool, &format!("manager@{EMAIL_DOMAIN}"), "Demo Manager", Role::Manager, &hash).await?,
        user(pool, &format!("viewer@{EMAIL_DOMAIN}"), "Demo Viewer", Role::Viewer, &hash).await?,
    ];
    for i in 0..agents {
        users.push(user(pool, &format!("agent{i}@{EMAIL_DOMAIN}"), &format!("Agent {i}"), Role::Agent, &hash).await?);
    }
    let agent_ids: Vec<Uuid> = users[2..].iter().map(|u| u.id).collect();
    define_fields(pool, users[0].id).await?;
    let mut conn = pool.acquire().await?;
    // Bulk loads skip the per-row outbox triggers when allowed (superuser); the index is
    // then rebuilt in one pass, which is far cheaper than a million outbox rows.
    let bypass = bulk_load::skip_triggers(&mut conn, true).await;
    let now = Utc::now();
    let today = now.date_naive();
    let mut done = 0;
    let (mut payments_done, mut activities_done, mut promises_done) = (0, 0, 0);
    let result: anyhow::Result<()> = async {
        while done < accounts {
            let n = CHUNK.min(accounts - done);
            let mut data = String::with_capacity(n * 300);
            let (mut payment_data, mut activity_data, mut promise_data) = (String::new(), String::new(), String::new());
            for i in 0..n {
                let k = done + i;
                // Payments k*P/A .. (k+1)*P/A belong to account k: an even spread.
                let count = ((k + 1) * plan.payments) / accounts.max(1) - (k * plan.payments) / accounts.max(1);
                let seeded = row(&mut data, &mut rng, run, k, &agent_ids, today, count > 0 && !bypass);
                let completed = if count > 0 {
                    payments(&mut payment_data, &mut rng, &seeded, count, now)
                } else {
                    Vec::new()
                };
                let mut account_timeline = Timeline {
                    activities: &mut activity_data,
                    promises: &mut promise_data,
                    account: seeded.id,
                    agent: seeded
                        .agent
                        .or_else(|| (!agent_ids.is_empty()).then(|| *pick(&mut rng, &agent_ids))),
                };
                timeline(&mut account_timeline, &mut rng, &seeded, &completed, now);
            }
            bulk_load::copy_csv(&mut conn, "accounts", COLUMNS, &data).await?;
            // Payments before promises: an open promise is made after the payments it
            // follows, so none of them settles it.
            for (table, columns, rows, counted) in [
                ("payments", PAYMENT_COLUMNS, &payment_data, &mut payments_done),
                ("activities", ACTIVITY_COLUMNS, &activity_data, &mut activities_done),
                ("promises", PROMISE_COLUMNS, &promise_data, &mut promises_done),
            ] {
                if !rows.is_empty() {
                    *counted += rows.lines().count();
                    bulk_load::copy_csv(&mut conn, table, columns, rows).await?;
                }
            }
            done += n;
            progress(done);
        }
        Ok(())
    }
    .await;
    if bypass {
        bulk_load::skip_triggers(&mut conn, false).await;
        // The events went in without the triggers that drop the KPI days they change,
        // and that version their reporting documents (the rebuild indexes them).
        store::kpis::forget_days(&mut conn).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        store::reports::version_loaded(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    result?;
    bulk_load::analyze(&mut conn, LOADED).await?;
    drop(conn);
    let snapshot = store::kpis::complete_snapshot(pool, today)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let owned = store::accounts::assigned_counts(pool, &ids)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign_ins = users
        .into_iter()
        .map(|u| SignIn {
            role: u.role(),
            accounts: owned.get(&u.id).copied().unwrap_or(0),
            email: u.email,
        })
        .collect();
    Ok(SeedReport {
        accounts,
        payments: payments_done,
        activities: activities_done,
        promises: promises_done,
        agents,
        sign_ins,
        snapshot,
        elapsed: started.elapsed(),
        needs_reindex: bypass,
    })
}

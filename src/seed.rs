//! `arrears seed`: realistic demo and benchmark data, loaded with COPY.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::domain::role::Role;
use crate::store::{self, bulk_load};

pub const DEMO_PASSWORD: &str = "arrears-demo-password";
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
/// (city, state, area code, timezone, zip prefix)
const PLACES: &[(&str, &str, &str, &str, &str)] = &[
    ("New York", "NY", "212", "America/New_York", "100"),
    ("Brooklyn", "NY", "718", "America/New_York", "112"),
    ("Newark", "NJ", "201", "America/New_York", "071"),
    ("Boston", "MA", "617", "America/New_York", "021"),
    ("Miami", "FL", "305", "America/New_York", "331"),
    ("Atlanta", "GA", "404", "America/New_York", "303"),
    ("Chicago", "IL", "312", "America/Chicago", "606"),
    ("Dallas", "TX", "214", "America/Chicago", "752"),
    ("Austin", "TX", "512", "America/Chicago", "787"),
    ("Denver", "CO", "303", "America/Denver", "802"),
    ("Phoenix", "AZ", "602", "America/Phoenix", "850"),
    ("Las Vegas", "NV", "702", "America/Los_Angeles", "891"),
    ("Los Angeles", "CA", "213", "America/Los_Angeles", "900"),
    ("San Francisco", "CA", "415", "America/Los_Angeles", "941"),
    ("Seattle", "WA", "206", "America/Los_Angeles", "981"),
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
     address_postal_code, address_country, timezone, status, original_balance, current_balance, currency, due_date, \
     assigned_agent_id, next_action_at, tags, custom_fields";

/// The money facts of a seeded account, for its payments.
struct Seeded {
    id: Uuid,
    original_cents: i64,
    current_cents: i64,
}

/// Writes one account row; `balance_cents` is the current balance as written (payments
/// seeded through the triggers lower it themselves).
fn row(out: &mut String, rng: &mut StdRng, run: u16, n: usize, agents: &[Uuid], today: NaiveDate, paid_by_trigger: bool) -> Seeded {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let (city, state, area, tz, zip) = *pick(rng, PLACES);
    let status = status(rng);
    let original_cents: i64 = rng.random_range(5_000..2_000_000);
    let current_cents = match status {
        "paid" | "settled" | "closed" => 0,
        _ => rng.random_range(original_cents / 10..=original_cents),
    };
    let due = today - chrono::Duration::days(rng.random_range(-30..400));
    let agent = if rng.random_bool(0.8) && !agents.is_empty() {
        pick(rng, agents).to_string()
    } else {
        String::new()
    };
    let next_action = if rng.random_bool(0.5) {
        (Utc::now() + chrono::Duration::hours(rng.random_range(-14 * 24..14 * 24))).to_rfc3339()
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
    let _ = write!(out, "{id},S{run:04X}-{n:07},CRM-{},", rng.random_range(100_000..999_999));
    csv(out, &format!("{first} {last}"));
    out.push(',');
    csv(out, &format!("{}@{}", email_user.to_lowercase(), pick(rng, DOMAINS)));
    let _ = write!(
        out,
        ",+1{area}{}{:04},{} {} {},{city},{state},{zip}{:02},US,{tz},{status},{}.{:02},{}.{:02},USD,{due},{agent},{next_action},",
        rng.random_range(200..1000),
        rng.random_range(0..10_000),
        rng.random_range(1..9999),
        pick(rng, STREETS),
        pick(rng, SUFFIXES),
        rng.random_range(0..100),
        original_cents / 100,
        original_cents % 100,
        written_cents / 100,
        written_cents % 100,
    );
    csv(out, &format!("{{{}}}", tags.join(",")));
    out.push(',');
    csv(
        out,
        &format!("{{\"segment\":\"{}\"}}", if original_cents > 500_000 { "high" } else { "retail" }),
    );
    out.push('\n');
    Seeded {
        id,
        original_cents,
        current_cents,
    }
}

const PAYMENT_COLUMNS: &str = "id, account_id, amount, currency, method, status, reference, received_at, created_at, updated_at";
const METHODS: &[&str] = &["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

/// Writes `count` payments of an account: the completed ones add up to what was paid
/// off it (original minus current balance), so balances and payments agree.
fn payments(out: &mut String, rng: &mut StdRng, account: &Seeded, count: usize, now: chrono::DateTime<Utc>) {
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
        let received = now - chrono::Duration::seconds(rng.random_range(0..365 * 86_400));
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
}

pub struct SeedReport {
    pub accounts: usize,
    pub payments: usize,
    pub agents: usize,
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

/// Creates agent users (password [`DEMO_PASSWORD`]), accounts and their payments.
pub async fn seed(pool: &PgPool, plan: SeedPlan, mut progress: impl FnMut(usize)) -> anyhow::Result<SeedReport> {
    let SeedPlan {
        accounts, agents, seed, ..
    } = plan;
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let run: u16 = rng.random();
    let hash = password::hash(DEMO_PASSWORD.to_owned()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut agent_ids = Vec::with_capacity(agents);
    for i in 0..agents {
        let email = format!("agent{i}-{run:04x}@seed.example.com");
        let user = store::users::insert(pool, &email, &format!("Agent {i}"), Role::Agent, &hash)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        agent_ids.push(user.id);
    }
    let mut conn = pool.acquire().await?;
    // Bulk loads skip the per-row outbox triggers when allowed (superuser); the index is
    // then rebuilt in one pass, which is far cheaper than a million outbox rows.
    let bypass = bulk_load::skip_triggers(&mut conn, true).await;
    let now = Utc::now();
    let today = now.date_naive();
    let mut done = 0;
    let mut payments_done = 0;
    let result: anyhow::Result<()> = async {
        while done < accounts {
            let n = CHUNK.min(accounts - done);
            let mut data = String::with_capacity(n * 300);
            let mut payment_data = String::new();
            for i in 0..n {
                let k = done + i;
                // Payments k*P/A .. (k+1)*P/A belong to account k: an even spread.
                let count = ((k + 1) * plan.payments) / accounts.max(1) - (k * plan.payments) / accounts.max(1);
                let seeded = row(&mut data, &mut rng, run, k, &agent_ids, today, count > 0 && !bypass);
                if count > 0 {
                    payments(&mut payment_data, &mut rng, &seeded, count, now);
                }
            }
            bulk_load::copy_csv(&mut conn, "accounts", COLUMNS, &data).await?;
            if !payment_data.is_empty() {
                payments_done += payment_data.lines().count();
                bulk_load::copy_csv(&mut conn, "payments", PAYMENT_COLUMNS, &payment_data).await?;
            }
            done += n;
            progress(done);
        }
        Ok(())
    }
    .await;
    if bypass {
        bulk_load::skip_triggers(&mut conn, false).await;
        // The payments went in without the triggers that drop the KPI days they change.
        store::kpis::forget_days(&mut conn).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    result?;
    Ok(SeedReport {
        accounts,
        payments: payments_done,
        agents,
        elapsed: started.elapsed(),
        needs_reindex: bypass,
    })
}

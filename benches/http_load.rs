//! Foundation figures: `GET /api/v1/accounts/{id}` throughput and latency at 32
//! connections, login latency (argon2id-bound), and name searches alone and while 200
//! connections send bad logins as fast as they are answered.
//!
//! Run: `bin/bench http_load` (release build; needs PostgreSQL; BENCH_SECONDS default 10).

#[allow(dead_code)]
mod support;

use std::time::Duration;

use arrears::auth::password;
use arrears::domain::role::Role;
use serde_json::json;
use uuid::Uuid;

const ACCOUNTS: i64 = 10_000;
const CONNECTIONS: usize = 32;
const SEARCHERS: usize = 8;
const LOGIN_STORM: usize = 200;

#[tokio::main]
async fn main() {
    let (settings, pool) = support::fresh("http-load", 8).await;
    let pool = &pool;
    let server = support::start(settings).await;
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    let password = "bench password 123";
    let hash = password::hash(password.to_owned()).await.unwrap();
    arrears::store::users::insert(pool, &email, "Bench", Role::Admin, &hash)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO accounts (id, account_number, debtor_name, email, phone, original_balance, current_balance, currency, due_date)
         SELECT gen_random_uuid(), 'B-' || g, 'Debtor ' || g, 'd' || g || '@example.com', '+1201555' || lpad((g % 10000)::text, 4, '0'),
                1000, 500, 'USD', date '2026-01-01' + (g % 300)::int
         FROM generate_series(1, $1) g",
    )
    .bind(ACCOUNTS)
    .execute(pool)
    .await
    .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM accounts").fetch_all(pool).await.unwrap();
    let token = support::token(&server.base, &email, password).await;
    let base = server.base.clone();
    let ids = std::sync::Arc::new(ids);
    let clients = support::clients(CONNECTIONS);
    for (name, seconds) in [
        ("warm-up GET /api/v1/accounts/{id}", 2),
        (
            "GET /api/v1/accounts/{id}, 32 connections",
            support::env_number("BENCH_SECONDS", 10),
        ),
    ] {
        let (base, ids, token, clients) = (base.clone(), ids.clone(), token.clone(), clients.clone());
        let report = support::closed_loop(CONNECTIONS, Duration::from_secs(seconds), move |w, n| {
            let id = ids[(w * 7919 + n * 104_729) % ids.len()];
            support::send(clients[w].get(format!("{base}/api/v1/accounts/{id}")).bearer_auth(&token))
        })
        .await;
        report.print(name);
    }
    let search = {
        let (base, token, clients) = (base.clone(), token.clone(), clients.clone());
        move |w: usize, n: usize| {
            support::send(
                clients[w % CONNECTIONS]
                    .get(format!(
                        "{base}/api/v1/accounts?q=debtor%20{}",
                        1 + (w * 7919 + n * 104_729) % ACCOUNTS as usize
                    ))
                    .bearer_auth(&token),
            )
        }
    };
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 10));
    support::closed_loop(SEARCHERS, seconds, search.clone())
        .await
        .print("GET /api/v1/accounts?q=debtor N, 8 connections, alone");
    let attackers = support::clients(LOGIN_STORM);
    let storm = {
        let base = base.clone();
        support::closed_loop(LOGIN_STORM, seconds, move |w, n| {
            support::send(
                attackers[w]
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": format!("nobody{w}-{n}@example.com"), "password": "wrong password!!"})),
            )
        })
    };
    let (searches, logins) = tokio::join!(support::closed_loop(SEARCHERS, seconds, search), storm);
    searches.print("GET /api/v1/accounts?q=debtor N, 8 connections, during the login storm");
    logins.print("POST /api/v1/auth/login with a wrong password, 200 connections (errors: 401 or 503)");
    let login = support::closed_loop(1, Duration::from_secs(5), move |w, _| {
        support::send(
            clients[w]
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": email, "password": password})),
        )
    })
    .await;
    login.print("POST /api/v1/auth/login, sequential");
}

//! Search figures on seeded data: seed time, reindex time, index size, the search mix
//! (issue 52's: a surname with its last letter cut, a four-letter first-name prefix, the
//! last four phone digits, a filtered, sorted, faceted list) at 32 connections (in
//! process, then each kind alone, two searches outside the mix alone, and the mix from
//! `wrk` with the server's peak RSS and the same run's `GET /auth/me` floor, then from
//! `oha` at a fixed rate), the filter search and the dashboard's portfolio facets (with a
//! row, counted, and without, kept) from `wrk`, right after the bulk load and again once
//! the server has settled (its scheduler kept the loaded history's KPI days and months),
//! what a year of KPIs by agent adds to the server's memory, commit-to-searchable lag
//! under 500 writes/s, then the portfolio facets, and two custom-field filters against
//! two built-in ones, from `wrk` over the index as those writes left it, and the same
//! mix answered by plain SQL (ILIKE + OFFSET).
//!
//! On Elasticsearch (the server and the seed's reindex on a node):
//! `SEARCH_BACKEND=elasticsearch ELASTICSEARCH_URL=… bin/bench search`; the CPU each
//! request costs the node is read from its Java process on this machine.
//!
//! Run: `bin/bench search` (BENCH_ACCOUNTS, default 1000000; BENCH_SECONDS, default 15, for
//! the mix; BENCH_KIND_SECONDS, default 5, for each kind of search alone; BENCH_RATE,
//! default 200, the open loop's requests a second; BENCH_SETTLE_SECONDS, default 3600,
//! the longest wait for the server to settle). `BENCH_SEEDED=1` measures again over the
//! data and index the last run left, without seeding: the settled figures only.

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrears::domain::document::Entity;
use futures_util::future::BoxFuture;
use sqlx::PgPool;

const CONNECTIONS: usize = 32;
/// The same mix in SQL: a page, its total and the status facet, as the API would need.
fn sql_query(pool: PgPool, n: usize) -> BoxFuture<'static, bool> {
    Box::pin(async move {
        let (kind, k) = (n % support::KINDS.len(), n / support::KINDS.len());
        // What the agent typed, as the mix's search sends it.
        let query = support::kind_query(kind, k);
        let typed = query.trim_start_matches("q=");
        let (condition, arg) = match kind {
            0 | 1 => ("debtor_name ILIKE $1", format!("%{typed}%")),
            2 => ("phone LIKE $1", format!("%{typed}")),
            _ => (
                "status = 'delinquent' AND due_date BETWEEN current_date - 59 AND current_date - 30 AND current_balance >= 1000 AND $1 = $1",
                String::new(),
            ),
        };
        let page =
            format!("SELECT * FROM accounts WHERE deleted_at IS NULL AND {condition} ORDER BY updated_at DESC, id OFFSET 0 LIMIT 25");
        let total = format!("SELECT count(*) FROM accounts WHERE deleted_at IS NULL AND {condition}");
        let facet =
            format!("SELECT status, count(*), sum(current_balance) FROM accounts WHERE deleted_at IS NULL AND {condition} GROUP BY status");
        let a = sqlx::query(sqlx::AssertSqlSafe(page)).bind(&arg).fetch_all(&pool).await;
        let b = sqlx::query(sqlx::AssertSqlSafe(total)).bind(&arg).fetch_one(&pool).await;
        let c = sqlx::query(sqlx::AssertSqlSafe(facet)).bind(&arg).fetch_all(&pool).await;
        a.is_ok() && b.is_ok() && c.is_ok()
    })
}

/// Two filters on built-in fields, and two on the seed's custom fields matching about as
/// many accounts, each with the same facets and default sort.
const FILTER_PAIRS: [(&str, &str); 2] = [
    ("two built-in filters", "status=delinquent&min_balance=5000&facets=status,bucket"),
    (
        "two custom-field filters",
        "cf.product_type=card,loan&cf.credit_score.gte=600&facets=status,bucket",
    ),
];
/// Rounds of the pair, taken in turn, so a noisy moment hits both.
const PAIR_ROUNDS: usize = 3;

/// The mix from a separate process with the server's peak RSS (this process is the
/// server, and only waits on wrk meanwhile), the same run's floor (an authenticated
/// request that searches nothing: token check, rate limits, routing, compression, the
/// answer) with the mix's share of it, then the filter search of the mix and the
/// dashboard's portfolio facets (every account's status and bucket, with balances per
/// currency), each from wrk.
async fn mix_and_floor(when: &str, base: &str, token: &str, seconds: Duration, kind_seconds: Duration, rate: u32) {
    let mix: Vec<String> = (0..300).map(|n| format!("/api/v1/accounts?{}", support::search_query(n))).collect();
    let load = support::WrkLoad {
        method: "GET",
        paths: &mix,
        body: None,
    };
    let tokens = [token.to_owned()];
    let peak = support::PeakRss::start();
    let label = format!("search mix from wrk, 32 connections, {when}");
    let searched = support::wrk_load(&label, base, &load, &tokens, CONNECTIONS, seconds).await;
    if searched.is_some() {
        let (anon, all) = peak.peaks_mib();
        println!("{label}: server peak RSS {all:.0} MiB ({anon:.0} MiB anonymous, the rest the index's mapped files)");
    }
    let floor = support::wrk_load(
        &format!("floor: GET /auth/me from wrk, 32 connections, {when}"),
        &format!("{base}/api/v1/auth/me"),
        &support::WrkLoad {
            method: "GET",
            paths: &[],
            body: None,
        },
        &tokens,
        CONNECTIONS,
        seconds,
    )
    .await;
    if let (Some(searched), Some(floor)) = (searched, floor) {
        println!(
            "search mix at {:.0}% of the floor's throughput ({:.0} of {:.0} req/s), {when}",
            100.0 * searched.requests_per_second / floor.requests_per_second,
            searched.requests_per_second,
            floor.requests_per_second
        );
    }
    support::oha_rate(&format!("search mix at a fixed rate, {when}"), base, &mix, token, rate, seconds).await;
    wrk_search(
        "filter search with facets",
        &support::kind_query(3, 0),
        when,
        base,
        token,
        kind_seconds,
    )
    .await;
    portfolio_facets(when, base, token, kind_seconds).await;
}

/// What a year of KPIs by agent adds to the server's memory: the first request loads the
/// kept months and days each server holds (see `store::kpis::KeptRows`), which grow with
/// the accounts worked, so the server's resident memory is read before it and after.
async fn kpi_year_memory(base: &str, token: &str, client: &reqwest::Client) {
    let today = chrono::Utc::now().date_naive();
    let url = format!(
        "{base}/api/v1/kpis?from={}&to={today}&group_by=agent",
        today - chrono::Duration::days(365)
    );
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    // The time of one request, which must succeed (a refusal would be timed as fast).
    let timed = || async {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "GET /kpis: {}", response.status());
        response.bytes().await.unwrap();
        started.elapsed()
    };
    let before = support::rss_bytes();
    let loaded = timed().await;
    let next = timed().await;
    println!(
        "a year of KPIs by agent: first request {:.0} ms (loads the kept rows), the next {:.0} ms; server anonymous RSS {:.0} MiB before, {:.0} MiB after",
        loaded.as_secs_f64() * 1000.0,
        next.as_secs_f64() * 1000.0,
        mib(before),
        mib(support::rss_bytes())
    );
}

/// The dashboard's portfolio (every account's status and bucket, with balances per
/// currency) from wrk: as the Accounts screen opened with no words asks it, with its
/// first 25 rows, and as the dashboard asks, with none. Both take the total and facets
/// from the answer kept per segment; the screen's rows are taken band by band.
async fn portfolio_facets(when: &str, base: &str, token: &str, seconds: Duration) {
    for (name, query) in [
        (
            "the Accounts screen with no words (25 rows and the portfolio facets)",
            "page_size=25&facets=status,bucket",
        ),
        ("portfolio facets without rows (kept)", "page_size=0&facets=status,bucket"),
    ] {
        wrk_search(name, query, when, base, token, seconds).await;
    }
}

/// How many accounts the search `query` matches (its total, counted whole: the list
/// counts to 10,000 unless asked).
async fn matches(base: &str, token: &str, query: &str) -> u64 {
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/accounts?{query}&page_size=1&exact_total=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["total"].as_u64().expect("a total")
}

/// Searches whose `n`th query string is `query(n)` from wrk, 32 connections, after how
/// many accounts its first queries match on average (what a search's cost grows with).
async fn alone(name: &str, query: impl Fn(usize) -> String, base: &str, token: &str, seconds: Duration) {
    const SAMPLED: usize = 10;
    let mut matched = 0;
    for n in 0..SAMPLED {
        matched += matches(base, token, &query(n)).await;
    }
    println!(
        "  {name}: {} accounts match a query on average (its first {SAMPLED})",
        matched / SAMPLED as u64
    );
    let paths: Vec<String> = (0..300).map(|n| format!("/api/v1/accounts?{}", query(n))).collect();
    let load = support::WrkLoad {
        method: "GET",
        paths: &paths,
        body: None,
    };
    let label = format!("  {name}, 32 connections");
    support::wrk_load(&label, base, &load, &[token.to_owned()], CONNECTIONS, seconds).await;
}

async fn wrk_search(name: &str, query: &str, when: &str, base: &str, token: &str, seconds: Duration) {
    let url = format!("{base}/api/v1/accounts?{query}");
    let label = format!("{name}, 32 connections, {when}");
    support::wrk(&label, "GET", &url, &[token.to_owned()], CONNECTIONS, seconds).await;
}

/// Custom-field filters against built-in ones from wrk (a separate process), over the
/// index as the sync has left it: the median p50, p99 and req/s of each over
/// [`PAIR_ROUNDS`] alternated rounds, and custom over built-in.
async fn custom_against_built_in(base: &str, token: &str, seconds: Duration) {
    for (name, query) in FILTER_PAIRS {
        println!("{name} ({query}): {} accounts match", matches(base, token, query).await);
    }
    let mut figures: [Vec<support::WrkFigures>; 2] = [Vec::new(), Vec::new()];
    for round in 0..PAIR_ROUNDS {
        for (i, (name, query)) in FILTER_PAIRS.iter().enumerate() {
            let url = format!("{base}/api/v1/accounts?{query}");
            let label = format!("{name}, 32 connections, round {}", round + 1);
            let load = support::WrkLoad {
                method: "GET",
                paths: &[],
                body: None,
            };
            if let Some(f) = support::wrk_load(&label, &url, &load, &[token.to_owned()], CONNECTIONS, seconds).await {
                figures[i].push(f);
            }
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let mut summary = Vec::new();
    for (i, (name, _)) in FILTER_PAIRS.iter().enumerate() {
        let pick = |f: fn(&support::WrkFigures) -> f64| figures[i].iter().map(f).collect::<Vec<_>>();
        let (p50, p99, rps) = (
            median(&mut pick(|f| f.p50_ms)),
            median(&mut pick(|f| f.p99_ms)),
            median(&mut pick(|f| f.requests_per_second)),
        );
        println!(
            "{name}: median of {} rounds: p50 {p50:.1} ms, p99 {p99:.1} ms, {rps:.0} req/s",
            figures[i].len()
        );
        summary.push((p50, p99, rps));
    }
    if let [built_in, custom] = summary[..] {
        println!(
            "custom over built-in: p50 {:+.0}%, p99 {:+.0}%, req/s {:+.0}%",
            (custom.0 / built_in.0 - 1.0) * 100.0,
            (custom.1 / built_in.1 - 1.0) * 100.0,
            (custom.2 / built_in.2 - 1.0) * 100.0
        );
    }
}

/// Waits, for at most `at_most`, until the server's own catching up after a bulk load is
/// over: its scheduler keeps a KPI day for each day of the loaded history, then each
/// month whose days are all kept (PostgreSQL's work, on the same two cores).
async fn settle(pool: &PgPool, at_most: Duration) {
    let settling = Instant::now();
    loop {
        let today = chrono::Utc::now().date_naive();
        let days = arrears::store::kpis::days_to_keep(pool, today).await.unwrap().len();
        let months = arrears::store::kpis::months_to_keep(pool, today).await.unwrap().len();
        let waited = settling.elapsed().as_secs_f64();
        if days <= 1 && months == 0 {
            println!("settled: the scheduler kept the loaded history's KPI days and months in {waited:.0} s more");
            return;
        }
        if settling.elapsed() > at_most {
            println!("not settled after {waited:.0} s: {days} KPI days and {months} months still to keep");
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 1_000_000) as usize;
    let seconds = Duration::from_secs(support::env_number("BENCH_SECONDS", 15));
    let kind_seconds = Duration::from_secs(support::env_number("BENCH_KIND_SECONDS", 5));
    let rate = support::env_number("BENCH_RATE", 200) as u32;
    let (settings, pool, seeded) = support::fresh_unless_seeded("search", 40).await;
    if seeded {
        println!("measuring over the data and the index an earlier run left (BENCH_SEEDED=1), once settled");
    } else {
        support::seed_and_index(&pool, &settings, support::accounts_over_50_agents(accounts), &[Entity::Account]).await;
    }
    let server = support::start(settings.clone()).await;
    for size in server
        .state
        .search()
        .sizes()
        .await
        .unwrap()
        .iter()
        .filter(|s| s.entity == "account")
    {
        println!(
            "index size: {:.0} MiB ({}: {} documents, {} deleted, {} segments)",
            size.bytes as f64 / 1024.0 / 1024.0,
            size.index,
            size.documents,
            size.deleted_documents,
            size.segments
        );
    }
    let email = format!("search-bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let token = support::manager_token(&pool, &server.base, &email).await;
    let clients = support::clients(CONNECTIONS);
    let mut phases = vec![("warm-up search mix", Duration::from_secs(3))];
    if !seeded {
        phases.push(("search mix (surname, first name, phone, filtered list), 32 connections", seconds));
    }
    for (name, duration) in phases {
        let (base, token, clients) = (server.base.clone(), token.clone(), clients.clone());
        let report = support::closed_loop(CONNECTIONS, duration, move |w, n| {
            support::send(
                clients[w]
                    .get(format!("{base}/api/v1/accounts?{}", support::search_query(w * 1000 + n)))
                    .bearer_auth(&token),
            )
        })
        .await;
        report.print(name);
    }
    if !seeded {
        // Each kind of the mix alone, and the searches outside it, from wrk: throughput,
        // latency and CPU per request.
        for (kind, name) in support::KINDS.iter().enumerate() {
            let query = |n| support::kind_query(kind, n);
            alone(&format!("{name} alone"), query, &server.base, &token, kind_seconds).await;
        }
        for (name, query) in support::OTHER_KINDS {
            alone(&format!("{name} (not in the mix) alone"), query, &server.base, &token, kind_seconds).await;
        }
        mix_and_floor("right after the bulk load", &server.base, &token, seconds, kind_seconds, rate).await;
    }
    settle(&pool, Duration::from_secs(support::env_number("BENCH_SETTLE_SECONDS", 3600))).await;
    // Signed in again: the wait may outlast the access token (the 5,000,000 run's settled
    // phases once measured 401s).
    let token = support::token(&server.base, &email, support::PASSWORD).await;
    mix_and_floor("settled", &server.base, &token, seconds, kind_seconds, rate).await;
    kpi_year_memory(&server.base, &token, &clients[0]).await;

    // Commit-to-searchable lag under a steady 500 writes/s.
    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM accounts LIMIT 100000")
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    let metrics = server.state.sync_metrics().clone();
    metrics.reset_lag();
    let writes_started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(2));
    let mut writes = Vec::new();
    for n in 0..(500 * 10) {
        interval.tick().await;
        let (pool, id) = (pool.clone(), ids[(n * 7919) % ids.len()]);
        writes.push(tokio::spawn(async move {
            sqlx::query("UPDATE accounts SET next_action_at = now() WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let write_secs = writes_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = metrics.snapshot();
    println!(
        "commit-to-searchable lag at {:.0} writes/s: p50 <= {} ms, p99 <= {} ms ({} changes; histogram bucket bounds)",
        5000.0 / write_secs,
        snap.lag_p50_ms.unwrap_or(0),
        snap.lag_p99_ms.unwrap_or(0),
        snap.lag_samples
    );
    portfolio_facets("over the index as those writes left it", &server.base, &token, kind_seconds).await;

    custom_against_built_in(&server.base, &token, kind_seconds).await;

    let sql = {
        let pool = pool.clone();
        support::closed_loop(CONNECTIONS, seconds, move |w, n| sql_query(pool.clone(), w * 1000 + n)).await
    };
    sql.print("same mix in plain SQL (ILIKE/LIKE + OFFSET, count, GROUP BY), 32 connections");
}

//! Operations figures on BENCH_ACCOUNTS seeded accounts (default 1,000,000): CSV export
//! of all of them (time, bytes, peak anonymous RSS while it streams), a bulk update of
//! BENCH_BULK of them (default 100,000) until the job finishes, and an import of a
//! BENCH_IMPORT-row xlsx (default 100,000) until every row is searchable (time, peak
//! anonymous RSS), then the same file as an upsert until every update is indexed.
//!
//! Run: `bin/bench bulk`.

// Shared by every benchmark; this one needs only the server, login and memory helpers.
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use arrears::domain::document::Entity;
use serde_json::json;

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 1_000_000) as usize;
    let bulk = support::env_number("BENCH_BULK", 100_000) as usize;
    let (settings, pool) = support::fresh("bulk", 8).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 20,
        seed: 11,
    };
    support::seed_and_index(&pool, &settings, plan, &[Entity::Account]).await;
    let server = support::start(settings).await;
    let token = support::manager_token(&pool, &server.base, "bulk-bench@example.com").await;
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rss_before = support::rss_bytes() as f64 / 1048576.0;
    let peak = support::PeakRss::start();
    let started = Instant::now();
    let response = client
        .get(format!("{}/api/v1/accounts/export?format=csv", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (mut bytes, mut lines) = (0usize, 0usize);
    let mut response = response;
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    println!(
        "export {} accounts to CSV: {:.1} s, {:.0} MiB, anonymous RSS {rss_before:.0} MiB before, peak {:.0} MiB while streaming",
        lines.saturating_sub(1),
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1048576.0,
        peak.peak_mib()
    );

    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM accounts ORDER BY id LIMIT $1")
        .bind(bulk as i64)
        .fetch_all(&pool)
        .await
        .unwrap();
    let rss_before = support::rss_bytes() as f64 / 1048576.0;
    let peak = support::PeakRss::start();
    let started = Instant::now();
    let body = json!({"ids": ids, "patch": {"status": "disputed", "tags_add": ["bulk-bench"]}});
    let job: serde_json::Value = client
        .post(format!("{}/api/v1/accounts/bulk-update", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let submitted = started.elapsed();
    let path = format!("{}/api/v1/jobs/{}", server.base, job["id"].as_str().unwrap());
    let finished = loop {
        let state: serde_json::Value = client.get(&path).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        if state["finished_at"].is_string() {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "bulk update of {} accounts: submitted in {:.1} s, finished in {:.1} s ({} succeeded, {} failed, {} rows/s), anonymous RSS {rss_before:.0} MiB before, peak {:.0} MiB",
        finished["total"],
        submitted.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        finished["succeeded"],
        finished["failed"],
        finished["rate"],
        peak.peak_mib()
    );

    let rows = support::env_number("BENCH_IMPORT", 100_000) as usize;
    let file = import_workbook(rows);
    // The bulk update's documents are still being indexed; the import starts on a quiet
    // system so its time to searchable is its own.
    wait_for_empty_outbox(&pool).await;
    let rss_before = support::rss_bytes() as f64 / 1048576.0;
    let peak = support::PeakRss::start();
    let started = Instant::now();
    let (accepted, finished) = run_import(&client, &server.base, &token, file.clone(), "create", started).await;
    let applied = started.elapsed();
    let search = format!("{}/api/v1/accounts?tags=import-bench&page_size=1", server.base);
    loop {
        let page: serde_json::Value = client.get(&search).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        if page["total"].as_u64() == Some(rows as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "import of a {rows}-row xlsx ({:.1} MiB): 202 after {:.1} s, rows applied after {:.1} s ({} created, {} failed), all searchable after {:.1} s; anonymous RSS {rss_before:.0} MiB before, peak {:.0} MiB",
        file.len() as f64 / 1048576.0,
        accepted.as_secs_f64(),
        applied.as_secs_f64(),
        finished["result"]["created"],
        finished["failed"],
        started.elapsed().as_secs_f64(),
        peak.peak_mib()
    );

    // The same file again as an upsert: every row updates its account.
    wait_for_empty_outbox(&pool).await;
    let started = Instant::now();
    let (_, finished) = run_import(&client, &server.base, &token, file, "upsert", started).await;
    let applied = started.elapsed();
    wait_for_empty_outbox(&pool).await;
    println!(
        "upsert of the same {rows} rows: applied after {:.1} s ({} updated, {} failed), indexed after {:.1} s",
        applied.as_secs_f64(),
        finished["result"]["updated"],
        finished["failed"],
        started.elapsed().as_secs_f64(),
    );
}

/// Uploads an import and waits for its job to end: the time the 202 came, and the job.
async fn run_import(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    file: Vec<u8>,
    mode: &str,
    started: Instant,
) -> (Duration, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(file).file_name("bench.xlsx"))
        .text("mode", mode.to_owned());
    support::submit_job(client, (base, token), "/api/v1/imports", form, "/api/v1/imports", started).await
}

async fn wait_for_empty_outbox(pool: &sqlx::PgPool) {
    loop {
        let depth: i64 = sqlx::query_scalar("SELECT count(*) FROM search_outbox")
            .fetch_one(pool)
            .await
            .unwrap();
        if depth == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An xlsx of new accounts as operations staff send them: alias headers, typed cells.
fn import_workbook(rows: usize) -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let sheet = workbook.add_worksheet_with_constant_memory().unwrap();
    let headers = [
        "Account No",
        "Customer Name",
        "E-mail",
        "Phone Number",
        "Amount Due",
        "Currency",
        "Due Date",
        "Status",
        "Tags",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let due = ExcelDateTime::from_ymd(2026, 3, 1).unwrap();
    for i in 0..rows {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, format!("IMPB-{i:07}")).unwrap();
        sheet.write_string(r, 1, format!("Imported Debtor {i}")).unwrap();
        sheet.write_string(r, 2, format!("debtor{i}@example.com")).unwrap();
        sheet.write_number(r, 3, (2015550000 + (i % 9999) as u64) as f64).unwrap();
        sheet.write_number(r, 4, 100.0 + (i % 5000) as f64 / 4.0).unwrap();
        sheet.write_string(r, 5, "USD").unwrap();
        sheet.write_datetime_with_format(r, 6, &due, &date).unwrap();
        sheet.write_string(r, 7, "delinquent").unwrap();
        sheet.write_string(r, 8, "import-bench;q1").unwrap();
    }
    workbook.save_to_buffer().unwrap()
}

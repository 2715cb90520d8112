//! A bulk upload of documents over HTTP: a zip of BENCH_FILES files (default 2,000) of
//! BENCH_FILE_KIB KiB each (default 64; PDF-headed noise, so neither the zip nor the store
//! compresses it) named by the account numbers of BENCH_ACCOUNTS seeded accounts
//! (default 10,000), sent to `POST /documents/bulk`: the time to the 202 (the zip
//! streamed, its directory checked, the job queued) and until the job ends, files and
//! MiB per second, and the peak anonymous RSS of the process; then the same zip again,
//! every file a duplicate.
//!
//! Run: `bin/bench documents`.

// Shared by every benchmark; this one needs only the server, login and memory helpers.
#[allow(dead_code)]
mod support;

use std::io::Write;
use std::time::Instant;

use arrears::domain::document::Entity;

/// A zip of `files` files of `size` bytes, each a PDF header then noise, named
/// `<account number>.pdf`; stored, not deflated (noise does not compress).
fn zip_of(numbers: &[String], size: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for number in numbers {
        let mut body = b"%PDF-1.7\n".to_vec();
        body.extend((body.len()..size).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        }));
        writer.start_file(format!("{number}.pdf"), options).unwrap();
        writer.write_all(&body).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Sends the zip, waits for its job to end, and prints the figures as `label`.
async fn upload(client: &reqwest::Client, base: &str, token: &str, zip: Vec<u8>, label: &str) {
    let mib = zip.len() as f64 / 1048576.0;
    let rss_before = support::rss_bytes() as f64 / 1048576.0;
    let peak = support::PeakRss::start();
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(zip).file_name("scans.zip"));
    let (accepted, finished) = support::submit_job(client, (base, token), "/api/v1/documents/bulk", form, "/api/v1/jobs", started).await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {} files, {mib:.0} MiB zip: 202 after {:.2} s, job ended after {secs:.1} s ({} kept, {} refused; {:.0} files/s, {:.1} MiB/s); anonymous RSS {rss_before:.0} MiB before, peak {:.0} MiB",
        finished["total"],
        accepted.as_secs_f64(),
        finished["succeeded"],
        finished["failed"],
        finished["total"].as_f64().unwrap_or_default() / secs,
        mib / secs,
        peak.peak_mib()
    );
}

#[tokio::main]
async fn main() {
    let accounts = support::env_number("BENCH_ACCOUNTS", 10_000) as usize;
    let files = support::env_number("BENCH_FILES", 2_000) as i64;
    let size = support::env_number("BENCH_FILE_KIB", 64) as usize * 1024;
    let (settings, pool) = support::fresh("documents", 8).await;
    let plan = arrears::seed::SeedPlan {
        accounts,
        payments: 0,
        agents: 20,
        seed: 13,
    };
    support::seed_and_index(&pool, &settings, plan, &[Entity::Account]).await;
    let server = support::start(settings).await;
    let token = support::manager_token(&pool, &server.base, "documents-bench@example.com").await;
    let numbers: Vec<String> = sqlx::query_scalar("SELECT account_number FROM accounts ORDER BY id LIMIT $1")
        .bind(files)
        .fetch_all(&pool)
        .await
        .unwrap();
    let zip = zip_of(&numbers, size);
    let client = reqwest::Client::new();
    upload(&client, &server.base, &token, zip.clone(), "bulk upload").await;
    upload(&client, &server.base, &token, zip, "the same zip again, every file a duplicate").await;
}

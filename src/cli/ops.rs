//! Operator commands: sync, reindex, verify, seed. They print progress to the terminal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{SearchBackend, Settings};
use crate::domain::contact::parse_region;
use crate::domain::document::Entity;
use crate::search::elastic::{ElasticConfig, ElasticIndex};
use crate::search::embedded::OpenError;
use crate::search::open;
use crate::search::{Check, SearchIndex};
use crate::service::audit_log;
use crate::store::dead_letters::SqlDeadLetters;
use crate::store::{self, search_tasks};
use crate::sync::metrics::SyncMetrics;
use crate::sync::reindex::Progress;
use crate::sync::{SyncRuntime, reindex, verify as audit};

async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = store::connect(&settings.database_url, 8).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Turns a rebuild's bar into a spinner with the time spent since the copy ended: a
/// merge of millions of documents takes tens of seconds after the last row is copied.
fn swapping(bar: &ProgressBar, entity: Entity) {
    let message = format!(
        "reindex {}: every row copied; merging and swapping in the new index",
        entity.plural()
    );
    if bar.message() != message {
        bar.set_style(ProgressStyle::with_template("{msg} {spinner} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_message(message);
        bar.reset_elapsed();
        bar.enable_steady_tick(Duration::from_millis(200));
    }
}

/// Runs the sync worker(s) until SIGINT/SIGTERM. When another process owns the
/// embedded index, waits as a standby and takes over when it goes away.
pub async fn sync(settings: Settings) -> anyhow::Result<()> {
    let pool = connect(&settings).await?;
    let writer = loop {
        match open::writer(&settings, SqlDeadLetters::shared(pool.clone())).await {
            Ok(writer) => break writer,
            Err(OpenError::Busy(path)) => {
                tracing::info!(path = %path.display(), "another process owns the index; standing by");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = super::shutdown_signal() => return Ok(()),
                }
            }
            Err(OpenError::Other(err)) => return Err(err),
        }
    };
    let (stop, stopped) = watch::channel(false);
    let runtime = SyncRuntime {
        pool,
        index: writer.index,
        metrics: Arc::new(SyncMetrics::default()),
        workers: settings.sync_workers,
        initial_backfill: writer.fresh,
        rebuild_outdated: true,
    };
    let mut tasks = runtime.start(stopped).await?;
    super::shutdown_signal().await;
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Rebuilds in this process when it can write the index (running a worker meanwhile so
/// concurrent writes reach both generations); otherwise asks the embedded index's owner.
///
/// `entity` is one entity, or `None` for every one the backend keeps.
pub async fn reindex(settings: Settings, entity: Option<Entity>) -> anyhow::Result<()> {
    if settings.elasticsearch_keep_old && settings.search_backend != SearchBackend::Elasticsearch {
        bail!("--keep-old applies to the Elasticsearch backend; the embedded index drops the old generation");
    }
    let pool = connect(&settings).await?;
    let index = match open::writer(&settings, SqlDeadLetters::shared(pool.clone())).await {
        Ok(writer) => Some(writer.index),
        Err(OpenError::Busy(_)) => None,
        Err(OpenError::Other(err)) => return Err(err),
    };
    // Only an embedded index has an owner to ask, and it keeps the searched entities.
    let kept = index.as_ref().map_or(&Entity::SEARCHED[..], |index| index.entities());
    let entities: Vec<Entity> = match entity {
        Some(entity) if !kept.contains(&entity) => bail!(
            "the embedded index keeps no {}: the reporting indices are Elasticsearch's (docs/search.md)",
            entity.plural()
        ),
        Some(entity) => vec![entity],
        None => kept.to_vec(),
    };
    match index {
        Some(index) => reindex_here(pool, index, settings.sync_workers, &entities).await,
        None => {
            for entity in entities {
                reindex_by_owner(&pool, entity).await?;
            }
            Ok(())
        }
    }
}

async fn reindex_here(pool: PgPool, search: Arc<dyn SearchIndex>, workers: usize, entities: &[Entity]) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let runtime = SyncRuntime {
        pool: pool.clone(),
        index: search.clone(),
        metrics: Arc::new(SyncMetrics::default()),
        workers,
        initial_backfill: Vec::new(),
        rebuild_outdated: false,
    };
    let mut tasks = runtime.start(stopped).await?;
    let mut outcome = Ok(());
    for entity in entities {
        let bar = progress_bar(0, &format!("reindex {}", entity.plural()));
        let result = reindex::rebuild(&pool, search.as_ref(), *entity, |progress| match progress {
            Progress::Copying { done, total } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Progress::Swapping => swapping(&bar, *entity),
        })
        .await;
        bar.finish_and_clear();
        match result {
            Ok(report) => println!(
                "reindexed {} {} into {} in {:.1} s",
                report.documents,
                entity.plural(),
                report.generation,
                report.elapsed.as_secs_f64()
            ),
            Err(err) => {
                outcome = Err(anyhow::anyhow!("{err}"));
                break;
            }
        }
    }
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    outcome
}

async fn reindex_by_owner(pool: &PgPool, entity: Entity) -> anyhow::Result<()> {
    let started = Instant::now();
    let id = search_tasks::submit(pool, entity.plural()).await?;
    eprintln!("a running server owns the index; it performs the rebuild (task {id})");
    let bar = progress_bar(0, &format!("reindex {}", entity.plural()));
    loop {
        let task = search_tasks::get(pool, id).await?.context("the rebuild task vanished")?;
        if task.phase == "swapping" {
            swapping(&bar, entity);
        } else {
            bar.set_length(task.total.max(0) as u64);
            bar.set_position(task.processed.max(0) as u64);
        }
        match task.status.as_str() {
            "succeeded" => {
                bar.finish_and_clear();
                println!(
                    "reindexed {} {} in {:.1} s",
                    task.processed,
                    entity.plural(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            "failed" => {
                bar.finish_and_clear();
                bail!("rebuild failed: {}", task.message.unwrap_or_default());
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Prints every check of the database and the search backend, each failure with its fix.
///
/// With `fix`, generations left written but not read by a rebuild that died are dropped.
pub async fn doctor(settings: Settings, fix: bool) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let pool = match store::connect(&settings.database_url, 2).await {
        Ok(pool) => {
            checks.push(Check::pass("database", "reachable"));
            Some(pool)
        }
        Err(err) => {
            checks.push(Check::fail(
                "database",
                format!("{err:#}"),
                "check DATABASE_URL and that PostgreSQL runs",
            ));
            None
        }
    };
    match settings.search_backend {
        SearchBackend::Elasticsearch => {
            // Refused documents would be recorded there; the doctor writes none.
            let letters = PgPool::connect_lazy(&settings.database_url)?;
            let index = ElasticIndex::new(&ElasticConfig::from_settings(&settings)?, SqlDeadLetters::shared(letters))?;
            checks.extend(index.doctor().await);
            // Whether a generation written but not read is a rebuild in progress is
            // known in PostgreSQL (its rebuild lock).
            if let Some(pool) = &pool
                && checks.iter().all(|c| c.ok || !c.blocking)
            {
                match reindex::rebuild_checks(pool, &index, fix).await {
                    Ok(found) => checks.extend(found),
                    Err(err) => checks.push(Check::fail("rebuilds", err.to_string(), "see the checks above")),
                }
            }
        }
        SearchBackend::Embedded => checks.push(Check::pass(
            "search",
            format!("embedded index under {}", settings.data_dir.display()),
        )),
    }
    for check in &checks {
        let mark = match (check.ok, check.warning) {
            (false, _) => "FAIL",
            (true, true) => "WARN",
            (true, false) => "ok  ",
        };
        println!("{mark} {}: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("     fix: {fix}");
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}

pub async fn verify(settings: Settings, repair: bool) -> anyhow::Result<()> {
    let pool = connect(&settings).await?;
    let index = open::reader(&settings, SqlDeadLetters::shared(pool.clone()))?;
    let mut clean = true;
    for entity in index.entities().iter().copied() {
        clean &= verify_entity(&pool, index.as_ref(), entity, repair).await?;
    }
    let refused = store::dead_letters::recent(&pool, 5).await?;
    for letter in &refused {
        println!(
            "refused by the index: {} {} version {} ({}: {})",
            letter.entity, letter.entity_id, letter.version, letter.error_type, letter.reason
        );
    }
    if !clean {
        bail!("the index does not match SQL");
    }
    Ok(())
}

/// Prints one entity's differences; true when there are none.
async fn verify_entity(pool: &PgPool, index: &dyn SearchIndex, entity: Entity, repair: bool) -> anyhow::Result<bool> {
    let report = audit::verify(pool, index, entity).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let what = entity.plural();
    println!("{what}: sql {}, index {}", report.sql_documents, report.index_documents);
    for id in report.missing.iter().take(20) {
        println!("missing from index: {id}");
    }
    for (id, sql, held) in report.stale.iter().take(20) {
        println!("stale in index: {id} (sql version {sql}, index version {held})");
    }
    for id in report.extra.iter().take(20) {
        println!("not in sql: {id}");
    }
    if report.is_clean() {
        println!("{what}: index matches SQL");
        return Ok(true);
    }
    println!(
        "{what} differences: {} missing, {} stale, {} extra",
        report.missing.len(),
        report.stale.len(),
        report.extra.len()
    );
    if repair {
        let queued = audit::repair(pool, &report).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("queued {queued} {what} for re-indexing; run verify again once the worker caught up");
    }
    Ok(false)
}

/// `audit verify`: seals what is ready, walks every partition's chain and prints what it
/// found; an error when any partition shows tampering.
pub async fn audit_verify(settings: Settings, accept_writes: bool) -> anyhow::Result<()> {
    let pool = connect(&settings).await?;
    let reports = audit_log::verify(&pool, accept_writes).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tampered = 0;
    for report in &reports {
        let check = &report.check;
        let head = check.head.map_or_else(
            || "empty".to_owned(),
            |(position, hash)| format!("head {position} {}", hex::encode(hash)),
        );
        println!("{}: {} sealed, {} pending, {head}", report.partition, check.sealed, check.pending);
        for (position, id) in &check.broken {
            println!("  row {id} at position {position} does not match the digest sealed for it: edited");
        }
        for position in &check.missing {
            println!("  position {position} is missing: a row was removed");
        }
        for position in &check.forged_seals {
            println!("  the seal at position {position} does not match its hash: the seals were edited");
        }
        for id in &check.unsealed_behind {
            println!("  row {id} was written behind the sealer (an old transaction id): inserted by hand");
        }
        if let Some(position) = check.cut_at {
            println!("  the chain should reach position {position} with the hash sealed there: seals at its end were removed or replaced");
        }
        let since = report
            .writes
            .seen_at
            .map_or_else(|| "the partition was made".to_owned(), |at| at.to_rfc3339());
        let (updated, deleted) = report.written_over();
        if report.counts_reset {
            println!("  PostgreSQL's statistics were reset since {since}: updates or deletes before now cannot be told; counting anew");
        } else if updated > 0 || deleted > 0 {
            println!(
                "  {updated} rows updated and {deleted} deleted since {since}, past the append-only trigger: \
                 a superuser switched triggers off{}",
                if report.writes_accepted { " (recorded as looked into)" } else { "" }
            );
        }
        if report.tampered() {
            tampered += 1;
        }
    }
    if tampered > 0 {
        bail!("{tampered} of {} audit partitions show tampering", reports.len());
    }
    println!("audit trail intact: {} partitions", reports.len());
    Ok(())
}

/// `derive-zones`: derives, in batches with a progress bar, the zone of every account that
/// has none; the sync reindexes the accounts it writes.
pub async fn derive_zones(settings: Settings) -> anyhow::Result<()> {
    use crate::domain::debtor_zone::{DebtorZone, ZoneSource};
    let pool = connect(&settings).await?;
    let region = parse_region(&settings.default_phone_region).map_err(|e| anyhow::anyhow!("DEFAULT_PHONE_REGION: {e}"))?;
    let total = store::accounts::count_unknown_zones(&pool).await?;
    let bar = progress_bar(u64::try_from(total).unwrap_or(0), "derive zones");
    let (mut after, mut read, mut written) = (Uuid::nil(), 0u64, 0u64);
    loop {
        let batch = store::accounts::unknown_zones(&pool, after, 1_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        read += batch.len() as u64;
        let derived: Vec<(Uuid, DebtorZone)> = batch
            .into_iter()
            .map(|w| (w.id, DebtorZone::derive(&w.address, w.phone.as_deref(), region)))
            .filter(|(_, zone)| zone.source != ZoneSource::Unknown)
            .collect();
        written += store::accounts::set_derived_zones(&pool, &derived).await?;
        bar.set_position(read);
    }
    bar.finish_and_clear();
    println!(
        "derived the zone of {written} of {read} accounts that had none; {} still have none (no address or phone says where)",
        read - written
    );
    Ok(())
}

/// Seeds, rebuilds the index when the load bypassed the outbox, then prints how to sign in.
pub async fn seed(settings: Settings, accounts: usize, payments: usize, agents: usize, seed: u64) -> anyhow::Result<()> {
    let pool = connect(&settings).await?;
    let bar = progress_bar(accounts as u64, "seed accounts");
    let plan = crate::seed::SeedPlan {
        accounts,
        payments,
        agents,
        seed,
    };
    let report = crate::seed::seed(&pool, plan, |done| bar.set_position(done as u64)).await?;
    bar.finish_and_clear();
    println!(
        "seeded {} accounts with {} payments, {} activities and {} promises in {:.1} s",
        report.accounts,
        report.payments,
        report.activities,
        report.promises,
        report.elapsed.as_secs_f64()
    );
    if report.needs_reindex {
        println!("rebuilding the index (rows were bulk-loaded without the outbox)");
        reindex(settings.clone(), None).await?;
    }
    print!("{}", sign_in_table(&report.sign_ins, &console_url(settings.bind)));
    Ok(())
}

/// Where the console of a server listening on `bind` opens in a browser on this machine.
fn console_url(bind: std::net::SocketAddr) -> String {
    let ip = match bind.ip() {
        ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    format!("http://{}/", std::net::SocketAddr::new(ip, bind.port()))
}

/// How to sign in as each seeded user: the console, the password, then a row per user
/// (role, email, and for an agent the accounts assigned).
fn sign_in_table(users: &[crate::seed::SignIn], console: &str) -> String {
    use std::fmt::Write as _;
    let width = users.iter().map(|u| u.email.len()).max().unwrap_or(0).max("email".len());
    let mut out = format!(
        "\nSign in at {console} (after `arrears serve`) with the password {}:\n\n",
        crate::seed::DEMO_PASSWORD
    );
    let _ = writeln!(out, "  {:<8} {:<width$}  accounts", "role", "email");
    for user in users {
        let accounts = match user.role {
            crate::domain::role::Role::Agent => user.accounts.to_string(),
            _ => String::new(),
        };
        let line = format!("  {:<8} {:<width$}  {accounts}", user.role.as_str(), user.email);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Writes an export to `out` with a progress bar, reading the index this data dir holds.
pub async fn export(
    settings: Settings,
    entity: super::ExportEntity,
    format: crate::service::exports::Format,
    out: &std::path::Path,
    filter: &str,
) -> anyhow::Result<()> {
    use crate::service::exports as export;
    use tokio::io::AsyncWriteExt;
    let pool = connect(&settings).await?;
    let index = open::reader(&settings, SqlDeadLetters::shared(pool.clone()))?;
    // The operator at the terminal reads everything, as an admin would.
    let operator = crate::domain::principal::Principal {
        user_id: uuid::Uuid::nil(),
        session_id: uuid::Uuid::nil(),
        email: String::new(),
        name: "cli".into(),
        role: crate::domain::role::Role::Admin,
    };
    let today = chrono::Utc::now().date_naive();
    let problem = |e: crate::error::Error| anyhow::anyhow!("{e}");
    let selection = match entity {
        super::ExportEntity::Accounts => export::select_accounts(&pool, index.as_ref(), &operator, filter, format, today).await,
        super::ExportEntity::Payments => export::select_payments(&pool, index.as_ref(), &operator, filter, format).await,
    }
    .map_err(problem)?;
    let (source, ids) = (selection.source, selection.ids);
    let rows = ids.len() as u64;
    let bar = progress_bar(rows, "export rows");
    let started = Instant::now();
    let mut file = tokio::fs::File::create(out)
        .await
        .with_context(|| format!("creating {}", out.display()))?;
    let mut chunks = export::produce(pool, source, ids, format);
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        file.write_all(&chunk).await?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        bar.set_position(match format {
            export::Format::Csv => lines.saturating_sub(1).min(rows),
            export::Format::Xlsx => rows,
        });
    }
    file.flush().await?;
    bar.finish_and_clear();
    println!(
        "exported {rows} rows ({:.1} MiB) to {} in {:.1} s",
        bytes as f64 / 1048576.0,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How to read an imported file: the mode, the sheet (the first when `None`) and how its
/// text cells write amounts.
pub type Reading<'a> = (crate::service::imports::Mode, Option<&'a str>, Option<crate::import::Locale>);

/// Reads, stages and applies an import here, chunk by chunk, with a progress bar.
pub async fn import(
    settings: Settings,
    file: &std::path::Path,
    (mode, sheet, locale): Reading<'_>,
    actor: &str,
    errors_out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use crate::domain::job::JobStatus;
    use crate::domain::role::{Action, allows};
    use crate::jobs::import as runner;
    use crate::service::imports::{self as submission, ImportParams};
    let pool = connect(&settings).await?;
    let user = store::users::by_email(&pool, actor)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no user {actor}"))?;
    if user.disabled || !allows(user.role(), Action::CreateAccount) || !allows(user.role(), Action::UpdateAnyAccount) {
        bail!("{actor} may not import accounts (a manager or admin may)");
    }
    let bytes = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
    if bytes.len() as u64 > settings.import_max_bytes {
        bail!(
            "{} is larger than IMPORT_MAX_BYTES ({} bytes)",
            file.display(),
            settings.import_max_bytes
        );
    }
    let started = Instant::now();
    let max_rows = settings.import_max_rows;
    let wanted = sheet.map(str::to_owned);
    let sheet = tokio::task::spawn_blocking(move || crate::import::read_in(&bytes, wanted.as_deref(), max_rows, locale)).await??;
    let catalog = crate::service::fields::catalog(&mut *pool.acquire().await?).await?;
    let (mapping, duplicates) = submission::prepare(&sheet, mode, &catalog).map_err(|errors| {
        let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
        anyhow::anyhow!("{}", messages.join("; "))
    })?;
    if !mapping.unknown.is_empty() {
        eprintln!("ignoring unknown columns: {}", mapping.unknown.join(", "));
    }
    let params = ImportParams {
        mode,
        actor: user.id,
        region: settings.default_phone_region.clone(),
        locale,
        file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        format: sheet.format.as_str().to_owned(),
        sheet: sheet.name.clone(),
        headers: sheet.headers.clone(),
        mapping,
    };
    let mut tx = pool.begin().await?;
    let job = submission::stage(&mut tx, &params, &sheet.rows, &duplicates, JobStatus::Running).await?;
    tx.commit().await?;
    let bar = progress_bar(job.total as u64, "import rows");
    loop {
        let settled = runner::run_chunk(&pool, job.id, &params)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if settled == 0 {
            break;
        }
        let now = store::jobs::get(&pool, job.id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.set_position(now.map_or(0, |j| j.processed) as u64);
    }
    let done = crate::jobs::finish(&pool, &job)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the job ended elsewhere")?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&done.result.map(|r| r.0))?);
    println!(
        "import {} ({}) in {:.1} s: {} rows, {} failed",
        done.id,
        done.status.as_str(),
        started.elapsed().as_secs_f64(),
        done.total,
        done.failed
    );
    if let Some(out) = errors_out
        && done.failed > 0
    {
        let rows = store::imports::failed_all(&pool, done.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let bytes = crate::import::write::error_workbook(&params.headers, &rows).map_err(|e| anyhow::anyhow!(e))?;
        tokio::fs::write(out, bytes)
            .await
            .with_context(|| format!("writing {}", out.display()))?;
        println!("rejected rows written to {}", out.display());
    }
    Ok(())
}

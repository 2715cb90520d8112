//! Command line: `serve`, `migrate`, `users create`, `users reset-password`, `audit verify`
//! and the operations in [`ops`].

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Settings;
use crate::domain::role::Role;
use crate::service::credentials::issue_password_reset_by_email;
use crate::service::users::{CreateUser, UserView, create_user};
use crate::{store, telemetry};

pub mod extract;
pub mod ops;

#[derive(Debug, Parser)]
#[command(name = "arrears", version, about = "Search-first collections backend")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (migrates the database first) and, unless --no-sync, the sync worker.
    Serve {
        /// Run the API alone; another process (`arrears sync`) feeds the index.
        #[arg(long)]
        no_sync: bool,
    },
    /// Run only the sync worker(s) that keep the search index in step with SQL.
    Sync,
    /// Rebuild search indices from SQL with zero downtime.
    Reindex {
        #[arg(value_enum, default_value = "all")]
        entity: Entity,
        /// Elasticsearch: keep the previous generation after the alias swap (for a
        /// rollback); it stops receiving writes.
        #[arg(long)]
        keep_old: bool,
    },
    /// Compare ids and versions in SQL and in the index; exit 0 only when they match.
    Verify {
        /// Re-enqueue every difference for the sync worker.
        #[arg(long)]
        repair: bool,
    },
    /// Load realistic demo data.
    Seed {
        #[arg(long, default_value_t = 1000)]
        accounts: usize,
        /// Payments spread over the seeded accounts and the last year.
        #[arg(long, default_value_t = 0)]
        payments: usize,
        #[arg(long, default_value_t = 20)]
        agents: usize,
        /// Random seed, for repeatable data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Export accounts or payments (the list filters as a query string) to a file.
    Export {
        #[arg(value_enum)]
        entity: ExportEntity,
        #[arg(long, value_enum, default_value = "csv")]
        format: crate::service::exports::Format,
        #[arg(long)]
        out: std::path::PathBuf,
        /// List parameters, e.g. "status=delinquent&tags=vip".
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Import accounts from a spreadsheet (xlsx, xls, xlsb, ods or CSV) with progress.
    /// The job is recorded like an upload; if this process dies, the server resumes it.
    Import {
        file: std::path::PathBuf,
        #[arg(long, value_enum, default_value = "create")]
        mode: crate::service::imports::Mode,
        /// The sheet to read (default: the first).
        #[arg(long)]
        sheet: Option<String>,
        /// How the sheet's text cells write amounts: en-US (1,234.56), de-DE (1.234,56),
        /// fr-FR (1 234,56), en-GB, de-CH, es-ES, it-IT or nl-NL.
        #[arg(long, value_parser = crate::import::Locale::parse)]
        locale: Option<crate::import::Locale>,
        /// Email of the manager or admin the accounts are imported as.
        #[arg(long = "as")]
        actor: String,
        /// Where to write the rejected rows, ready to fix and import again.
        #[arg(long)]
        errors_out: Option<std::path::PathBuf>,
    },
    /// Check the database and the search backend (with Elasticsearch: version, health,
    /// privileges, templates, aliases, mappings, blocks, disk watermarks, rebuilds);
    /// exit 0 only when every check passes.
    Doctor {
        /// Drop the generations a rebuild that died left behind as write targets.
        #[arg(long)]
        fix: bool,
    },
    /// Derive the zone of every account that has none (`timezone_source` `unknown`, as
    /// the accounts written before zones were derived are) from its address and phone.
    DeriveZones,
    /// Apply database migrations and exit.
    Migrate,
    /// Read one document from standard input and write what processing keeps of it
    /// as JSON: the child process document processing runs, under resource limits.
    #[command(hide = true)]
    ExtractDocument {
        /// The document's kind, as kept (`pdf`, `docx` ...).
        kind: String,
        /// The most bytes read from standard input.
        #[arg(long)]
        max_bytes: u64,
    },
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Seal what is ready, then recompute every partition's hash chain; exit 0 only when
    /// no row was edited, removed or slipped in behind the sealer. Prints each chain's
    /// head: keep it elsewhere to detect a cut at the end later. Also reports rows that
    /// PostgreSQL counts as updated or deleted in spite of the append-only trigger.
    Verify {
        /// Record the updates and deletes reported now as looked into: later runs report
        /// only new ones.
        #[arg(long)]
        accept_writes: bool,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Entity {
    Accounts,
    Payments,
    /// The reporting indices (Elasticsearch only).
    Activities,
    Promises,
    Plans,
    KpiDays,
    /// Every index the backend keeps.
    All,
}

impl Entity {
    /// The entities asked for; `None` for every one the backend keeps.
    fn entities(self) -> Option<crate::domain::document::Entity> {
        use crate::domain::document::Entity as E;
        match self {
            Entity::Accounts => Some(E::Account),
            Entity::Payments => Some(E::Payment),
            Entity::Activities => Some(E::Activity),
            Entity::Promises => Some(E::Promise),
            Entity::Plans => Some(E::Plan),
            Entity::KpiDays => Some(E::KpiDay),
            Entity::All => None,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportEntity {
    Accounts,
    Payments,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from standard input (prompted on a terminal).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Issue a one-time password reset token for a user (good for an hour; a new one
    /// replaces the old) and print it: the user sets a new password with it.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.settings.log_format, cli.settings.query_timing);
    match cli.command {
        Command::Serve { no_sync } => {
            let mut settings = cli.settings;
            settings.sync_worker &= !no_sync;
            let app = Application::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await;
            Ok(())
        }
        Command::Sync => ops::sync(cli.settings).await,
        Command::Reindex { entity, keep_old } => {
            let mut settings = cli.settings;
            settings.elasticsearch_keep_old = keep_old;
            ops::reindex(settings, entity.entities()).await
        }
        Command::Verify { repair } => ops::verify(cli.settings, repair).await,
        Command::Seed {
            accounts,
            payments,
            agents,
            seed,
        } => ops::seed(cli.settings, accounts, payments, agents, seed).await,
        Command::Export {
            entity,
            format,
            out,
            filter,
        } => ops::export(cli.settings, entity, format, &out, &filter).await,
        Command::Import {
            file,
            mode,
            sheet,
            locale,
            actor,
            errors_out,
        } => ops::import(cli.settings, &file, (mode, sheet.as_deref(), locale), &actor, errors_out.as_deref()).await,
        Command::Doctor { fix } => ops::doctor(cli.settings, fix).await,
        Command::DeriveZones => ops::derive_zones(cli.settings).await,
        Command::ExtractDocument { kind, max_bytes } => extract::run(&kind, max_bytes),
        Command::Migrate => {
            let pool = store::connect(&cli.settings.database_url, 2).await?;
            store::migrate(&pool).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { accept_writes }) => ops::audit_verify(cli.settings, accept_writes).await,
        Command::Users(UsersCommand::Create { email, name, role }) => {
            let password = read_password()?;
            let pool = store::connect(&cli.settings.database_url, 2).await?;
            store::migrate(&pool).await?;
            let user = create_user(
                &pool,
                crate::auth::password::shared(),
                None,
                CreateUser::new(email, name, role, password),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&UserView::from(&user))?);
            Ok(())
        }
        Command::Users(UsersCommand::ResetPassword { email }) => {
            let pool = store::connect(&cli.settings.database_url, 2).await?;
            store::migrate(&pool).await?;
            let reset = issue_password_reset_by_email(&pool, &email)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&reset)?);
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading password")?;
        let again = rpassword::prompt_password("Repeat password: ").context("reading password")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(password)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn production_refuses_settings_that_leave_the_service_open() {
        let mut settings = super::Cli::try_parse_from(["arrears", "serve"]).unwrap().settings;
        settings.production = true;
        assert!(settings.unsafe_for_production().is_empty(), "the defaults are safe");
        settings.cors_origins = vec!["http://console.example".to_owned(), "*".to_owned()];
        settings.login_rate_limit_per_ip = 0;
        settings.access_token_ttl_secs = 86_400;
        let problems = settings.unsafe_for_production();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        settings.production = false;
        assert!(settings.unsafe_for_production().is_empty(), "development allows them");
    }
}

//! Command line: `serve`, `migrate`, `users create`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Settings;
use crate::domain::role::Role;
use crate::http::users::{CreateUser, create_user};
use crate::{store, telemetry};

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
    /// Run the HTTP API (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.settings.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(cli.settings).await?;
            app.run_until_stopped(shutdown_signal()).await;
            Ok(())
        }
        Command::Migrate => {
            let pool = store::connect(&cli.settings.database_url, 2).await?;
            store::migrate(&pool).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Users(UsersCommand::Create { email, name, role }) => {
            let password = read_password()?;
            let pool = store::connect(&cli.settings.database_url, 2).await?;
            store::migrate(&pool).await?;
            let user = create_user(&pool, CreateUser::new(email, name, role, password))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&crate::http::users::UserView::from(&user))?);
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

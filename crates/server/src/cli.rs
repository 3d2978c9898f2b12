//! `keygate` subcommands.
use crate::app::{self, anyhow_free::Result};
use crate::config::Config;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Self-hosted software licensing with a subscription gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve(Config),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage accounts directly in the database (no running server needed).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db"
    )]
    pub database_url: String,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and its first API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Print `{"account": {...}, "api_key": "kg_sk_..."}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(config) => {
            crate::telemetry::init(config.log_format);
            app::serve(config).await
        }
        Command::Migrate(db) => {
            crate::telemetry::init(crate::config::LogFormat::Text);
            let store = keygate_store::connect(&db.database_url).await?;
            store.migrate().await?;
            eprintln!("migrations applied ({})", store.engine());
            Ok(())
        }
        Command::Account {
            command: AccountCommand::Create { name, json, db },
        } => {
            let store = keygate_store::connect(&db.database_url).await?;
            store.migrate().await?;
            let (account, _key, secret) = store.create_account(&name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"account": account, "api_key": secret})
                );
            } else {
                println!("account  {} ({})", account.id, account.name);
                println!("api key  {secret}");
                println!("(the API key is shown only this once)");
            }
            Ok(())
        }
    }
}

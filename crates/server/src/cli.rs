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

// Parsed once at start: the size of `Serve` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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
    /// Work with license files, offline.
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Play a platform's signed scenario (lifecycle, renewal, refund) against a running Keygate
    /// with one of your integrations, and print each delivery's answer and the license state.
    Simulate(crate::simulate::SimulateArgs),
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Verify a signed license file offline. Exit code 0: valid; 1: refused (reason printed).
    Verify {
        /// The license file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// The account's public key: a file holding the JSON of
        /// `GET /v1/accounts/{id}/public-key`, or base64 keys one per line, or the key itself.
        #[arg(long)]
        public_key: String,
        /// The machine the file must be bound to.
        #[arg(long)]
        fingerprint: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
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
        /// Seals the account's signing key, as the server would.
        #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
        master_key: Option<String>,
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
            command:
                AccountCommand::Create {
                    name,
                    json,
                    db,
                    master_key,
                },
        } => {
            if let Some(key) = master_key.as_deref().filter(|k| !k.is_empty()) {
                crate::signing::check_master_key(key)?;
            }
            let store = keygate_store::connect(&db.database_url).await?;
            store.migrate().await?;
            let (account, _key, secret) = store.create_account(&name).await?;
            let signer = crate::signing::Signer::new(master_key.as_deref());
            store
                .ensure_signing_key(&account.id, signer.new_record(&account.id))
                .await?;
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
        Command::License {
            command:
                LicenseCommand::Verify {
                    file,
                    public_key,
                    fingerprint,
                    json,
                },
        } => verify_file(&file, &public_key, fingerprint.as_deref(), json),
        Command::Simulate(args) => {
            let outcome = crate::simulate::run(args).await?;
            if crate::simulate::print(&outcome) {
                Ok(())
            } else {
                Err("a delivery was refused".into())
            }
        }
    }
}

/// Offline: no database, no network.
fn verify_file(
    file: &std::path::Path,
    public_key: &str,
    fingerprint: Option<&str>,
    json: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let keys_text = match std::fs::read_to_string(public_key) {
        Ok(t) => t,
        Err(_) => public_key.to_string(),
    };
    let keys = keygate_licfile::KeyRing::from_public_key_document(&keys_text)
        .map_err(|e| format!("bad public key: {e}"))?;
    let now = keygate_domain::Timestamp::now().millis() / 1000;
    match keygate_licfile::verify_file(&text, &keys, now, fingerprint) {
        Ok(verified) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "key_id": verified.key_id,
                        "issued_at": verified.issued_at, "valid_until": verified.valid_until,
                        "payload": verified.payload})
                );
            } else {
                let license = &verified.payload["license"];
                println!(
                    "valid: license {} ({})",
                    license["key"].as_str().unwrap_or("?"),
                    license["status"].as_str().unwrap_or("?")
                );
                println!("signed by key {}", verified.key_id);
                println!(
                    "file valid until {}",
                    keygate_domain::Timestamp::from_unix_seconds(verified.valid_until)
                );
                if let Some(f) = &verified.fingerprint {
                    println!("bound to machine {f}");
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "code": e.code(), "message": e.to_string()})
                );
            } else {
                eprintln!("invalid: {} ({})", e, e.code());
            }
            std::process::exit(1);
        }
    }
}

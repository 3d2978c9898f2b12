use clap::{Args, ValueEnum};

/// Everything `keygate serve` is configured with: flags, or `KEYGATE_*` environment variables.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "KEYGATE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// `sqlite://PATH` (default, created on first start) or `postgres://...`.
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db"
    )]
    pub database_url: String,
    /// Enables the operator endpoint `POST /v1/accounts`; unset = off.
    #[arg(long, env = "KEYGATE_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,
    /// Encrypts platform secrets and signing keys at rest (AES-256-GCM).
    #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The URL the world reaches this server at, for the webhook URLs it shows.
    #[arg(long, env = "KEYGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Which client answers carry `Keygate-Signature`: `always`, or only answers to requests
    /// that send a `nonce` (apps that never verify signatures then do not pay for them).
    #[arg(
        long,
        env = "KEYGATE_SIGN_ANSWERS",
        value_enum,
        default_value = "always"
    )]
    pub sign_answers: SignAnswers,
    /// Log format.
    #[arg(long, env = "KEYGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignAnswers {
    Always,
    Nonce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// A configuration for tests and embedding: random local port, the given database.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Config {
            bind: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            root_token: None,
            master_key: None,
            public_url: None,
            sign_answers: SignAnswers::Always,
            log_format: LogFormat::Text,
        }
    }
}

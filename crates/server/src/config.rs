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
    /// Run the outbound webhook worker and the expiry sweeper in this process.
    #[arg(
        long,
        env = "KEYGATE_OUTBOUND_WORKER",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub outbound_worker: bool,
    /// Let outbound webhooks reach private, loopback and link-local addresses.
    #[arg(
        long,
        env = "KEYGATE_OUTBOUND_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub outbound_allow_private: bool,
    /// Seconds before each attempt of a delivery, comma-separated, one per attempt: the first
    /// attempt is immediate (write 0), each next number is the wait after a failed attempt.
    #[arg(
        long,
        env = "KEYGATE_OUTBOUND_RETRY_SCHEDULE",
        default_value = "0,5,300,1800,7200,18000,36000,86400",
        value_parser = RetrySchedule::parse
    )]
    pub outbound_retry_schedule: RetrySchedule,
    /// Time limit of one outbound request, connecting included (seconds).
    #[arg(long, env = "KEYGATE_OUTBOUND_TIMEOUT_SECONDS", default_value_t = 15.0)]
    pub outbound_timeout_seconds: f64,
    /// How often the outbound worker looks for due deliveries (milliseconds).
    #[arg(long, env = "KEYGATE_OUTBOUND_POLL_MS", default_value_t = 1000)]
    pub outbound_poll_ms: u64,
    /// Finished deliveries (and their attempts) are kept this many days in the delivery log.
    #[arg(long, env = "KEYGATE_OUTBOUND_RETENTION_DAYS", default_value_t = 30)]
    pub outbound_retention_days: u32,
    /// How often the sweeper looks for expired and soon-expiring licenses (seconds).
    #[arg(long, env = "KEYGATE_EXPIRY_SWEEP_SECONDS", default_value_t = 60.0)]
    pub expiry_sweep_seconds: f64,
    /// `license.expiring_soon` lead time (seconds before `expires_at`).
    #[arg(long, env = "KEYGATE_EXPIRING_SOON_SECONDS", default_value_t = 259_200)]
    pub expiring_soon_seconds: i64,
}

/// Delays before each attempt of an outbound delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule(pub Vec<std::time::Duration>);

impl RetrySchedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 30.0 * 86_400.0)
                    .map(std::time::Duration::from_secs_f64)
                    .ok_or_else(|| format!("`{s}` is not a number of seconds (0 to 30 days)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() || delays.len() > 50 {
            return Err("the schedule needs 1 to 50 delays".into());
        }
        Ok(RetrySchedule(delays))
    }
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
            outbound_worker: true,
            outbound_allow_private: false,
            outbound_retry_schedule: RetrySchedule::parse("0,5,300,1800,7200,18000,36000,86400")
                .expect("the default schedule parses"),
            outbound_timeout_seconds: 15.0,
            outbound_poll_ms: 1000,
            outbound_retention_days: 30,
            expiry_sweep_seconds: 60.0,
            expiring_soon_seconds: 259_200,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn outbound_settings_parse() {
        let cli = Cli::try_parse_from([
            "keygate",
            "serve",
            "--outbound-allow-private",
            "true",
            "--outbound-worker",
            "false",
            "--outbound-retry-schedule",
            "0, 1.5,60",
            "--expiring-soon-seconds",
            "3600",
        ])
        .unwrap();
        let Command::Serve(config) = cli.command else {
            panic!("serve expected");
        };
        assert!(config.outbound_allow_private);
        assert!(!config.outbound_worker);
        assert_eq!(
            config.outbound_retry_schedule.0,
            [0.0, 1.5, 60.0].map(std::time::Duration::from_secs_f64)
        );
        assert_eq!(config.expiring_soon_seconds, 3600);
        assert!(
            Cli::try_parse_from(["keygate", "serve", "--outbound-retry-schedule", "5,-1"]).is_err()
        );
    }
}

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
    /// Connections served at once; further ones wait in the kernel's backlog.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections from one client address at once; more are closed on arrival (0 = no cap:
    /// behind a reverse proxy every connection comes from the proxy).
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: u32,
    /// Time a client has to send a request's headers, from its first byte (seconds).
    #[arg(long, env = "KEYGATE_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub header_read_timeout_seconds: f64,
    /// Time a client has to send a request's body once its headers are in (seconds): 408.
    #[arg(long, env = "KEYGATE_BODY_READ_TIMEOUT_SECONDS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub body_read_timeout_seconds: f64,
    /// A keep-alive connection waiting for its next request is closed after this (seconds).
    #[arg(long, env = "KEYGATE_IDLE_TIMEOUT_SECONDS", default_value_t = 60.0, value_parser = positive_seconds)]
    pub idle_timeout_seconds: f64,
    /// Requests per second each client address may make to the client endpoints
    /// (`/v1/licenses/validate`, `activate`, ...), on average (0 = no limit): 429 beyond.
    #[arg(long, env = "KEYGATE_CLIENT_RATE_PER_SECOND", default_value_t = 20.0, value_parser = non_negative)]
    pub client_rate_per_second: f64,
    /// How many client-endpoint requests an address may make in a burst.
    #[arg(long, env = "KEYGATE_CLIENT_RATE_BURST", default_value_t = 200)]
    pub client_rate_burst: u32,
    /// Webhook deliveries per second each integration accepts, on average (0 = no limit).
    #[arg(long, env = "KEYGATE_WEBHOOK_RATE_PER_SECOND", default_value_t = 100.0, value_parser = non_negative)]
    pub webhook_rate_per_second: f64,
    /// How many webhook deliveries an integration accepts in a burst.
    #[arg(long, env = "KEYGATE_WEBHOOK_RATE_BURST", default_value_t = 2000)]
    pub webhook_rate_burst: u32,
    /// How often refused webhook deliveries kept in memory are written to the failure log
    /// (seconds; a clean stop writes them too).
    #[arg(long, env = "KEYGATE_FAILURE_LOG_FLUSH_SECONDS", default_value_t = 5.0, value_parser = positive_seconds)]
    pub failure_log_flush_seconds: f64,
    /// When set, `/metrics` asks for `Authorization: Bearer <this token>`.
    #[arg(long, env = "KEYGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// When set, `/metrics` is served on this address only, and no longer on `--bind`.
    #[arg(long, env = "KEYGATE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 86_400.0)
        .ok_or_else(|| format!("`{text}` is not a number of seconds (above 0, at most a day)"))
}

fn non_negative(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{text}` is not a number of at least 0"))
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
            max_connections: 1000,
            max_connections_per_ip: 256,
            header_read_timeout_seconds: 10.0,
            body_read_timeout_seconds: 30.0,
            idle_timeout_seconds: 60.0,
            client_rate_per_second: 20.0,
            client_rate_burst: 200,
            webhook_rate_per_second: 100.0,
            webhook_rate_burst: 2000,
            failure_log_flush_seconds: 5.0,
            metrics_token: None,
            metrics_addr: None,
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

    #[test]
    fn edge_limits_parse_and_refuse_nonsense() {
        let cli = Cli::try_parse_from([
            "keygate",
            "serve",
            "--max-connections",
            "64",
            "--max-connections-per-ip",
            "0",
            "--header-read-timeout-seconds",
            "2.5",
            "--client-rate-per-second",
            "0",
            "--metrics-addr",
            "127.0.0.1:9090",
        ])
        .unwrap();
        let Command::Serve(config) = cli.command else {
            panic!("serve expected");
        };
        assert_eq!(
            (config.max_connections, config.max_connections_per_ip),
            (64, 0)
        );
        assert_eq!(config.header_read_timeout_seconds, 2.5);
        assert_eq!(config.client_rate_per_second, 0.0);
        assert_eq!(config.metrics_addr.as_deref(), Some("127.0.0.1:9090"));
        for bad in [
            ["--max-connections", "0"],
            ["--header-read-timeout-seconds", "0"],
            ["--idle-timeout-seconds", "-1"],
            ["--body-read-timeout-seconds", "nan"],
            ["--webhook-rate-per-second", "-5"],
        ] {
            let args = ["keygate", "serve", bad[0], bad[1]];
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}

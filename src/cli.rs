//! Command-line definitions only (clap). Flags follow Prometheus exporter
//! conventions: dotted names, `--web.listen-address`, `--config.file`, …

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "aws-transfer-exporter",
    version,
    about = "Prometheus exporter that tells why AWS Transfer Family transfers fail, per cause, server and user",
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Daemon flags when no subcommand is given (same as `serve`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
// Parsed once at startup; boxing the daemon flags would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the daemon: poll CloudWatch Logs and serve /metrics (the default).
    Serve(ServeArgs),
    /// Classify CloudWatch events from files or stdin and print the cause table.
    Classify(ClassifyArgs),
}

/// Output of the `classify` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One row per (category, cause) with counts, servers, users and advice.
    Table,
    /// One JSON object per input event, in input order.
    Jsonl,
    /// The Prometheus exposition the daemon would serve for these events.
    Prometheus,
    /// The same in OpenMetrics 1.0.0 text (what a scraper asking for it gets).
    Openmetrics,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Files holding `aws logs filter-log-events` JSON output or JSON Lines
    /// events; `-` or none reads standard input.
    pub files: Vec<PathBuf>,

    /// What to print.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Log group assumed for events that carry no `logGroupName`
    /// (needed to find the server of legacy lines: `/aws/transfer/<server-id>`).
    #[arg(long = "log-group", value_name = "NAME")]
    pub log_group: Option<String>,

    /// Cap on distinct `user` label values per server (excess folds into `~other`).
    #[arg(long = "limits.max-users-per-server", value_name = "N",
          default_value_t = crate::metrics::DEFAULT_MAX_USERS_PER_SERVER)]
    pub max_users_per_server: usize,

    /// Print the table one line per cause with every column side by side
    /// (about 270 columns); the default fits 100 columns, with the advice
    /// wrapped under each cause.
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// YAML configuration file; flags override it.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Address to serve /metrics on (repeatable: one listener per address,
    /// e.g. loopback plus a pod address).
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_addresses: Vec<String>,

    /// exporter-toolkit web config file (TLS, basic auth, response
    /// headers) applied to every listener; re-read when it changes.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Serve `POST /-/reload` (re-read the config and web config files, as
    /// SIGHUP does). Off by default: anyone who can reach the listener could
    /// otherwise trigger reloads.
    #[arg(long = "web.enable-lifecycle")]
    pub web_enable_lifecycle: bool,

    /// Push receiver for Amazon Data Firehose (HTTP endpoint delivery of
    /// CloudWatch Logs subscriptions): listen address, e.g. :29191. Off
    /// unless given.
    #[arg(long = "firehose.listen-address", value_name = "ADDR")]
    pub firehose_listen_address: Option<String>,

    /// File of accepted Firehose access keys, one per non-empty line (list
    /// the old and the new key to rotate).
    #[arg(long = "firehose.access-key-file", value_name = "PATH")]
    pub firehose_access_key_file: Option<PathBuf>,

    /// Run the push receiver without an access key (anyone who reaches the
    /// listener can add counts). Logged loudly.
    #[arg(long = "firehose.allow-unauthenticated")]
    pub firehose_allow_unauthenticated: bool,

    /// Poll CloudWatch Logs (FilterLogEvents). `--poll.enabled=false` runs
    /// push only: no discovery, no polling.
    #[arg(long = "poll.enabled", value_name = "BOOL")]
    pub poll_enabled: Option<bool>,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,

    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// AWS Region of the single target defined by flags.
    #[arg(long = "aws.region", value_name = "REGION")]
    pub aws_region: Option<String>,

    /// Endpoint URL for CloudWatch Logs (VPC endpoints, tests).
    #[arg(long = "aws.endpoint-url", value_name = "URL")]
    pub aws_endpoint_url: Option<String>,

    /// Role to assume for the target (multi-account).
    #[arg(long = "aws.role-arn", value_name = "ARN")]
    pub aws_role_arn: Option<String>,

    /// Log group name prefix to discover (repeatable).
    #[arg(long = "logs.group-prefix", value_name = "PREFIX")]
    pub group_prefixes: Vec<String>,

    /// Explicit log group name (repeatable).
    #[arg(long = "logs.group", value_name = "NAME")]
    pub groups: Vec<String>,

    /// How far back to start on a group seen for the first time (e.g. 10m).
    #[arg(long = "logs.initial-lookback", value_name = "DURATION")]
    pub initial_lookback: Option<String>,

    /// How long after its timestamp an event may still become visible (e.g. 5m).
    #[arg(long = "logs.late-arrival-window", value_name = "DURATION")]
    pub late_arrival_window: Option<String>,

    /// Time between poll rounds of one group (e.g. 2s).
    #[arg(long = "poll.interval", value_name = "DURATION")]
    pub poll_interval: Option<String>,

    /// How often the group list is refreshed (e.g. 5m).
    #[arg(long = "logs.discovery-interval", value_name = "DURATION")]
    pub discovery_interval: Option<String>,

    /// Events per FilterLogEvents page (1 to 10000).
    #[arg(long = "logs.page-limit", value_name = "N")]
    pub page_limit: Option<i32>,

    /// Cap on FilterLogEvents + DescribeLogGroups calls per second, shared by
    /// every group of the target's account and Region.
    #[arg(long = "aws.api-rate-per-second", value_name = "RATE")]
    pub api_rate_per_second: Option<f64>,

    /// State file (checkpoints, remembered event ids, last sessions).
    #[arg(long = "state.path", value_name = "PATH")]
    pub state_path: Option<PathBuf>,

    /// Cap on distinct `user` label values per server (excess folds into `~other`).
    #[arg(long = "limits.max-users-per-server", value_name = "N")]
    pub max_users_per_server: Option<usize>,

    /// Validate the configuration (file and flags), print the result and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
}

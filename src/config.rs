//! Configuration in two stages: what the user wrote ([`RawConfig`], YAML with
//! unknown keys rejected, plus command-line flags laid over it), then
//! validation into a typed [`Config`]. Validation collects *every* problem
//! before failing, and each message names the key (`targets[1].poll_interval`,
//! or the flag that set it) and says how to fix it.
//!
//! Every default is a named constant below with the reason for its value.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::metrics::Limits;
use crate::source;

/// Default listen address. The Prometheus default-port allocation list has
/// had its exporter block (9100–9999) fully allocated since 2023; exporters
/// registered since then sit outside it. 29190 is in none of the list's
/// entries (the block, the "outside the standard ranges" table), is below the
/// Linux ephemeral range (32768+), so the kernel never hands it out to an
/// outgoing connection, and no well-known service uses it.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":29190";

/// Default metrics path: what every Prometheus scrape config assumes.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// Default log level: one line per lifecycle event and per problem, quiet
/// while things work.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Longest late-arrival window accepted. Remembered event ids are kept for
/// the window, so memory grows with it; CloudWatch makes events visible
/// within minutes, and a day is far beyond anything observed.
pub const MAX_LATE_ARRIVAL_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Shortest poll interval accepted: below this, the API budget is spent on
/// empty polls and the quota shared with people in the console runs out.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// FilterLogEvents accepts `limit` from 1 to 10,000.
pub const MAX_PAGE_LIMIT: i32 = 10_000;

/// Name of the target built from flags alone (no config file targets).
pub const FLAG_TARGET_NAME: &str = "default";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` lines, what Prometheus' own components print.
    Logfmt,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A validated target: one account + Region (+ optional role) to poll.
pub type Target = source::TargetSpec;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// One listener each; never empty.
    pub listen_addresses: Vec<SocketAddr>,
    /// `--web.config.file`: TLS, basic auth and headers for every listener
    /// (read by [`crate::web::Edge`], not here).
    pub web_config_file: Option<PathBuf>,
    pub telemetry_path: String,
    pub log_level: String,
    pub log_format: LogFormat,
    pub state_path: PathBuf,
    pub state_flush_interval: Duration,
    pub limits: Limits,
    pub pipeline: crate::pipeline::PipelineConfig,
    pub inventory: crate::inventory::InventoryConfig,
    pub probe: crate::probe::ProbeConfig,
    pub targets: Vec<Target>,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a config key such as `targets[1].poll_interval`, or a flag.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found; displayed as one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

// ---------------------------------------------------------------------------
// Stage 1: what the user wrote.
// ---------------------------------------------------------------------------

/// A scalar as written in YAML. Durations and numbers are accepted in any
/// scalar form so that validation, not the YAML parser, explains the mistake
/// (`2` for a duration: "has no unit; write 2s").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v}"),
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::Str(v) => write!(f, "{v:?}"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub web: RawWeb,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub attribution: RawAttribution,
    /// Transfer API inventory (see [`crate::inventory`]).
    #[serde(default)]
    pub inventory: crate::inventory::InventorySection,
    /// Endpoint reachability probe (see [`crate::probe`]).
    #[serde(default)]
    pub probe: crate::probe::ProbeSection,
    /// `None` when the file has no `targets` key (flags or defaults make
    /// one); `Some(vec![])` is an explicit empty list, which is an error.
    pub targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub listen_address: Option<Scalar>,
    pub telemetry_path: Option<Scalar>,
    /// The exporter-toolkit web config file (TLS, basic auth, headers).
    pub config_file: Option<Scalar>,
    /// Listen addresses after the first, from a repeated
    /// `--web.listen-address` (the file holds one address).
    #[serde(skip)]
    pub extra_listen_addresses: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<Scalar>,
    pub format: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub path: Option<Scalar>,
    pub flush_interval: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_users_per_server: Option<Scalar>,
    pub max_ids: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttribution {
    pub session_cache_size: Option<Scalar>,
    pub session_ttl: Option<Scalar>,
    pub recent_failures: Option<Scalar>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: Option<Scalar>,
    pub region: Option<Scalar>,
    pub endpoint_url: Option<Scalar>,
    pub role_arn: Option<Scalar>,
    pub log_group_prefixes: Option<Vec<Scalar>>,
    pub log_groups: Option<Vec<Scalar>>,
    pub initial_lookback: Option<Scalar>,
    pub late_arrival_window: Option<Scalar>,
    pub poll_interval: Option<Scalar>,
    pub discovery_interval: Option<Scalar>,
    pub page_limit: Option<Scalar>,
    pub api_rate_per_second: Option<Scalar>,
}

/// Which config keys were set by a flag, so messages name the flag the user
/// actually typed.
#[derive(Debug, Default)]
struct Origins(HashMap<String, &'static str>);

impl Origins {
    fn key(&self, key: &str) -> String {
        match self.0.get(key) {
            Some(flag) => format!("{flag} ({key})"),
            None => key.to_owned(),
        }
    }
}

/// Parses YAML text into the raw config. Unknown keys and type errors name
/// their path (`targets[0]: unknown field ...`).
pub fn parse_yaml(text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_norway::from_str::<Option<RawConfig>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            ConfigError::one(
                "config.file",
                format!("{e}; fix the YAML (see examples/config.yaml for every key)"),
            )
        })
}

/// Loads the configuration: the file named by `--config.file` (if any), the
/// flags laid over it, then validation. The Region falls back to
/// `AWS_REGION`/`AWS_DEFAULT_REGION`.
pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
    let raw = match &args.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(
                    "--config.file",
                    format!(
                        "cannot read {}: {e}; check the path and permissions",
                        path.display()
                    ),
                )
            })?;
            parse_yaml(&text)?
        }
        None => RawConfig::default(),
    };
    let env_region = std::env::var("AWS_REGION")
        .ok()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty());
    build(raw, args, env_region.as_deref())
}

/// Lays the flags over `raw` and validates. Pure apart from name resolution
/// of a host name in the listen address; `env_region` stands in for the
/// environment so tests control it.
pub fn build(
    mut raw: RawConfig,
    args: &ServeArgs,
    env_region: Option<&str>,
) -> Result<Config, ConfigError> {
    let mut origins = Origins::default();
    let mut problems = Vec::new();
    overlay_flags(&mut raw, args, &mut origins, &mut problems);
    validate(raw, &origins, env_region, problems)
}

fn s(v: &Option<String>) -> Option<Scalar> {
    v.as_ref().map(|x| Scalar::Str(x.clone()))
}

fn overlay_flags(
    raw: &mut RawConfig,
    args: &ServeArgs,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    let mut set =
        |slot: &mut Option<Scalar>, value: Option<Scalar>, key: &str, flag: &'static str| {
            if let Some(v) = value {
                *slot = Some(v);
                origins.0.insert(key.to_owned(), flag);
            }
        };
    // Repeatable: flags replace the file's address; the first is checked
    // here (the key in messages), every one in `validate`.
    set(
        &mut raw.web.listen_address,
        args.listen_addresses
            .first()
            .map(|a| Scalar::Str(a.clone())),
        "web.listen_address",
        "--web.listen-address",
    );
    if args.listen_addresses.len() > 1 {
        raw.web.extra_listen_addresses = args.listen_addresses[1..].to_vec();
    }
    set(
        &mut raw.web.config_file,
        args.web_config_file
            .as_ref()
            .map(|p| Scalar::Str(p.display().to_string())),
        "web.config_file",
        "--web.config.file",
    );
    set(
        &mut raw.web.telemetry_path,
        s(&args.telemetry_path),
        "web.telemetry_path",
        "--web.telemetry-path",
    );
    set(
        &mut raw.log.level,
        s(&args.log_level),
        "log.level",
        "--log.level",
    );
    set(
        &mut raw.log.format,
        s(&args.log_format),
        "log.format",
        "--log.format",
    );
    set(
        &mut raw.state.path,
        args.state_path
            .as_ref()
            .map(|p| Scalar::Str(p.display().to_string())),
        "state.path",
        "--state.path",
    );
    set(
        &mut raw.limits.max_users_per_server,
        args.max_users_per_server.map(|n| Scalar::Int(n as i64)),
        "limits.max_users_per_server",
        "--limits.max-users-per-server",
    );

    // Target flags describe one target: they fill the only target of the
    // file, or make one when the file has none.
    let target_flags: Vec<(&'static str, &'static str, Option<Scalar>)> = vec![
        ("region", "--aws.region", s(&args.aws_region)),
        (
            "endpoint_url",
            "--aws.endpoint-url",
            s(&args.aws_endpoint_url),
        ),
        ("role_arn", "--aws.role-arn", s(&args.aws_role_arn)),
        (
            "initial_lookback",
            "--logs.initial-lookback",
            s(&args.initial_lookback),
        ),
        (
            "late_arrival_window",
            "--logs.late-arrival-window",
            s(&args.late_arrival_window),
        ),
        ("poll_interval", "--poll.interval", s(&args.poll_interval)),
        (
            "discovery_interval",
            "--logs.discovery-interval",
            s(&args.discovery_interval),
        ),
        (
            "page_limit",
            "--logs.page-limit",
            args.page_limit.map(|n| Scalar::Int(n as i64)),
        ),
        (
            "api_rate_per_second",
            "--aws.api-rate-per-second",
            args.api_rate_per_second.map(Scalar::Float),
        ),
    ];
    let any_target_flag = target_flags.iter().any(|(_, _, v)| v.is_some())
        || !args.group_prefixes.is_empty()
        || !args.groups.is_empty();
    if !any_target_flag {
        return;
    }
    let targets = raw.targets.get_or_insert_with(Vec::new);
    if targets.len() > 1 {
        let used: Vec<&str> = target_flags
            .iter()
            .filter(|(_, _, v)| v.is_some())
            .map(|(_, f, _)| *f)
            .chain((!args.group_prefixes.is_empty()).then_some("--logs.group-prefix"))
            .chain((!args.groups.is_empty()).then_some("--logs.group"))
            .collect();
        problems.push(Problem {
            key: used.join(", "),
            message: format!(
                "target flags apply to a single target, but the config file has {} targets; \
                 set these keys per target in the file instead",
                targets.len()
            ),
        });
        return;
    }
    if targets.is_empty() {
        targets.push(RawTarget::default());
    }
    let t = &mut targets[0];
    for (field, flag, value) in target_flags {
        let Some(v) = value else { continue };
        let slot = match field {
            "region" => &mut t.region,
            "endpoint_url" => &mut t.endpoint_url,
            "role_arn" => &mut t.role_arn,
            "initial_lookback" => &mut t.initial_lookback,
            "late_arrival_window" => &mut t.late_arrival_window,
            "poll_interval" => &mut t.poll_interval,
            "discovery_interval" => &mut t.discovery_interval,
            "page_limit" => &mut t.page_limit,
            _ => &mut t.api_rate_per_second,
        };
        *slot = Some(v);
        origins.0.insert(format!("targets[0].{field}"), flag);
    }
    if !args.group_prefixes.is_empty() {
        t.log_group_prefixes = Some(
            args.group_prefixes
                .iter()
                .map(|p| Scalar::Str(p.clone()))
                .collect(),
        );
        for i in 0..args.group_prefixes.len() {
            origins.0.insert(
                format!("targets[0].log_group_prefixes[{i}]"),
                "--logs.group-prefix",
            );
        }
    }
    if !args.groups.is_empty() {
        t.log_groups = Some(args.groups.iter().map(|p| Scalar::Str(p.clone())).collect());
        for i in 0..args.groups.len() {
            origins
                .0
                .insert(format!("targets[0].log_groups[{i}]"), "--logs.group");
        }
    }
}

// ---------------------------------------------------------------------------
// Stage 2: validation.
// ---------------------------------------------------------------------------

struct Checker<'a> {
    origins: &'a Origins,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: self.origins.key(key),
            message: message.into(),
        });
    }

    fn string(&mut self, key: &str, v: Option<Scalar>) -> Option<String> {
        match v? {
            Scalar::Str(s) => Some(s),
            other => {
                self.bad(
                    key,
                    format!("expected a string, found {other}; quote the value"),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &str, v: Option<Scalar>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match v {
            Scalar::Str(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) => d,
                Err(e) => {
                    self.bad(
                        key,
                        format!(
                            "invalid duration {text:?} ({e}); write a number with a unit, e.g. \"30s\", \"5m\", \"1h\""
                        ),
                    );
                    default
                }
            },
            Scalar::Int(n) => {
                self.bad(
                    key,
                    format!("duration {n} has no unit; write e.g. \"{n}s\" or \"{n}m\""),
                );
                default
            }
            other => {
                self.bad(
                    key,
                    format!("expected a duration, found {other}; write e.g. \"30s\""),
                );
                default
            }
        }
    }

    fn positive_duration(&mut self, key: &str, v: Option<Scalar>, default: Duration) -> Duration {
        let d = self.duration(key, v, default);
        if d.is_zero() {
            self.bad(key, "must be longer than zero; e.g. \"30s\"");
            return default;
        }
        d
    }

    fn integer(&mut self, key: &str, v: Option<Scalar>, default: i64, min: i64, max: i64) -> i64 {
        let Some(v) = v else { return default };
        let n = match v {
            Scalar::Int(n) => n,
            Scalar::Str(ref t) if t.trim().parse::<i64>().is_ok() => {
                t.trim().parse().unwrap_or(default)
            }
            other => {
                self.bad(key, format!("expected a whole number, found {other}"));
                return default;
            }
        };
        if n < min || n > max {
            self.bad(
                key,
                format!("{n} is out of range; use a value from {min} to {max}"),
            );
            return default;
        }
        n
    }

    fn number(&mut self, key: &str, v: Option<Scalar>, default: f64) -> f64 {
        let Some(v) = v else { return default };
        let x = match v {
            Scalar::Int(n) => n as f64,
            Scalar::Float(x) => x,
            Scalar::Str(ref t) if t.trim().parse::<f64>().is_ok() => {
                t.trim().parse().unwrap_or(default)
            }
            other => {
                self.bad(key, format!("expected a number, found {other}"));
                return default;
            }
        };
        if !x.is_finite() || x <= 0.0 {
            self.bad(
                key,
                format!("{x} must be a number above zero, e.g. 2 or 0.5"),
            );
            return default;
        }
        x
    }
}

fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    if let Ok(a) = full.parse::<SocketAddr>() {
        return Ok(a);
    }
    match full.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{text:?} resolves to no address")),
        Err(e) => Err(format!(
            "invalid address {text:?} ({e}); write host:port or :port, e.g. \":29190\" or \"127.0.0.1:29190\""
        )),
    }
}

/// CloudWatch Logs group names: 1–512 characters of `[A-Za-z0-9._/#-]`.
fn valid_group_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '#' | '-'))
}

fn validate(
    raw: RawConfig,
    origins: &Origins,
    env_region: Option<&str>,
    problems: Vec<Problem>,
) -> Result<Config, ConfigError> {
    let mut c = Checker { origins, problems };

    // web
    let listen_text = c
        .string("web.listen_address", raw.web.listen_address)
        .unwrap_or_else(|| DEFAULT_LISTEN_ADDRESS.to_owned());
    let mut listen_addresses = Vec::new();
    for text in std::iter::once(&listen_text).chain(raw.web.extra_listen_addresses.iter()) {
        match parse_listen_address(text) {
            Ok(a) if a.port() != 0 && listen_addresses.contains(&a) => c.bad(
                "web.listen_address",
                format!("{a} is given twice; each listen address once"),
            ),
            Ok(a) => listen_addresses.push(a),
            Err(msg) => c.bad("web.listen_address", msg),
        }
    }
    let web_config_file = c
        .string("web.config_file", raw.web.config_file)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let telemetry_path = c
        .string("web.telemetry_path", raw.web.telemetry_path)
        .unwrap_or_else(|| DEFAULT_TELEMETRY_PATH.to_owned());
    if !telemetry_path.starts_with('/')
        || telemetry_path == "/"
        || telemetry_path.starts_with("/-/")
    {
        c.bad(
            "web.telemetry_path",
            format!(
                "{telemetry_path:?} must start with '/' and be neither '/' (the landing page) nor under '/-/' (health endpoints); e.g. \"/metrics\""
            ),
        );
    }

    // log
    let log_level = c
        .string("log.level", raw.log.level)
        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        c.bad(
            "log.level",
            format!("invalid level {log_level:?} ({e}); use error, warn, info, debug or trace"),
        );
    }
    let log_format = match c.string("log.format", raw.log.format).as_deref() {
        None | Some("logfmt") => LogFormat::Logfmt,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.bad(
                "log.format",
                format!("unknown format {other:?}; use \"logfmt\" or \"json\""),
            );
            LogFormat::Logfmt
        }
    };

    // state
    let state_path = PathBuf::from(
        c.string("state.path", raw.state.path)
            .unwrap_or_else(|| source::DEFAULT_STATE_PATH.to_owned()),
    );
    if state_path.as_os_str().is_empty() {
        c.bad(
            "state.path",
            "must not be empty; e.g. \"/var/lib/aws-transfer-exporter/state.json\"",
        );
    }
    let state_flush_interval = c.positive_duration(
        "state.flush_interval",
        raw.state.flush_interval,
        source::DEFAULT_STATE_FLUSH_INTERVAL,
    );

    // limits
    let d = Limits::default();
    let limits = Limits {
        max_users_per_server: c.integer(
            "limits.max_users_per_server",
            raw.limits.max_users_per_server,
            d.max_users_per_server as i64,
            1,
            1_000_000,
        ) as usize,
        max_ids: c.integer(
            "limits.max_ids",
            raw.limits.max_ids,
            d.max_ids as i64,
            1,
            1_000_000,
        ) as usize,
    };

    // attribution
    let pd = crate::pipeline::PipelineConfig::default();
    let pipeline = crate::pipeline::PipelineConfig {
        session_cache_size: c.integer(
            "attribution.session_cache_size",
            raw.attribution.session_cache_size,
            pd.session_cache_size as i64,
            1,
            10_000_000,
        ) as usize,
        session_ttl: c.positive_duration(
            "attribution.session_ttl",
            raw.attribution.session_ttl,
            pd.session_ttl,
        ),
        recent_failures: c.integer(
            "attribution.recent_failures",
            raw.attribution.recent_failures,
            pd.recent_failures as i64,
            0,
            10_000,
        ) as usize,
    };

    // inventory and probe validate themselves; their messages start with the key.
    let mut section_errors = Vec::new();
    let inventory = raw.inventory.validate(&mut section_errors);
    let probe = raw.probe.validate(&mut section_errors);
    for e in section_errors {
        match e.split_once(": ") {
            Some((key, msg)) => c.bad(key, msg),
            None => c.bad("config.file", e),
        }
    }

    // targets
    let raw_targets = match raw.targets {
        None => vec![RawTarget::default()],
        Some(t) if t.is_empty() => {
            c.bad(
                "targets",
                "the list is empty; add a target (at least `- region: eu-west-1`) or remove the key and pass --aws.region",
            );
            vec![]
        }
        Some(t) => t,
    };
    let mut targets = Vec::with_capacity(raw_targets.len());
    let mut names = HashSet::new();
    for (i, t) in raw_targets.into_iter().enumerate() {
        let k = |field: &str| format!("targets[{i}].{field}");
        let region = match c.string(&k("region"), t.region) {
            Some(r) => r,
            None => env_region.unwrap_or_default().to_owned(),
        };
        if region.is_empty() {
            c.bad(
                &k("region"),
                "no AWS Region; set it in the file, pass --aws.region, or set AWS_REGION",
            );
        } else if !region
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            || !region.contains('-')
        {
            c.bad(
                &k("region"),
                format!("{region:?} is not a Region name; e.g. \"eu-west-1\""),
            );
        }
        let name = c.string(&k("name"), t.name).unwrap_or_else(|| {
            if i == 0 && region.is_empty() {
                FLAG_TARGET_NAME.to_owned()
            } else if region.is_empty() {
                format!("target-{i}")
            } else {
                region.clone()
            }
        });
        if name.trim().is_empty() {
            c.bad(
                &k("name"),
                "must not be empty; name the target, e.g. \"prod-eu\"",
            );
        } else if !names.insert(name.clone()) {
            c.bad(
                &k("name"),
                format!("duplicate target name {name:?}; give each target a unique name (the default is the Region)"),
            );
        }
        let endpoint_url = c.string(&k("endpoint_url"), t.endpoint_url);
        if let Some(u) = &endpoint_url {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                c.bad(
                    &k("endpoint_url"),
                    format!("{u:?} is not a URL; write e.g. \"https://logs.eu-west-1.amazonaws.com\" or \"http://127.0.0.1:5000\""),
                );
            }
        }
        let role_arn = c.string(&k("role_arn"), t.role_arn);
        if let Some(r) = &role_arn {
            if !(r.starts_with("arn:aws") && r.contains(":iam::") && r.contains(":role/")) {
                c.bad(
                    &k("role_arn"),
                    format!("{r:?} is not an IAM role ARN; e.g. \"arn:aws:iam::111122223333:role/transfer-exporter\""),
                );
            }
        }
        let mut group_list = |field: &str, v: Option<Vec<Scalar>>, what: &str| -> Vec<String> {
            let mut out = Vec::new();
            for (j, item) in v.unwrap_or_default().into_iter().enumerate() {
                let key = format!("targets[{i}].{field}[{j}]");
                let Some(g) = c.string(&key, Some(item)) else {
                    continue;
                };
                let ok = !g.is_empty() && g.len() <= 512 && valid_group_chars(&g);
                if ok {
                    out.push(g);
                } else {
                    c.bad(
                        &key,
                        format!("{g:?} is not a valid log group {what} (1–512 characters of A-Z a-z 0-9 . _ / # -)"),
                    );
                }
            }
            out
        };
        let group_prefixes = match t.log_group_prefixes {
            None => vec![source::DEFAULT_GROUP_PREFIX.to_owned()],
            some => group_list("log_group_prefixes", some, "name prefix"),
        };
        let groups = group_list("log_groups", t.log_groups, "name");
        let initial_lookback = c.duration(
            &k("initial_lookback"),
            t.initial_lookback,
            source::DEFAULT_INITIAL_LOOKBACK,
        );
        let late_arrival_window = c.duration(
            &k("late_arrival_window"),
            t.late_arrival_window,
            source::DEFAULT_LATE_ARRIVAL_WINDOW,
        );
        if late_arrival_window > MAX_LATE_ARRIVAL_WINDOW {
            c.bad(
                &k("late_arrival_window"),
                format!(
                    "{} is longer than the maximum {}; remembered event ids are kept for the window",
                    humantime::format_duration(late_arrival_window),
                    humantime::format_duration(MAX_LATE_ARRIVAL_WINDOW)
                ),
            );
        }
        let poll_interval = c.positive_duration(
            &k("poll_interval"),
            t.poll_interval,
            source::DEFAULT_POLL_INTERVAL,
        );
        if !poll_interval.is_zero() && poll_interval < MIN_POLL_INTERVAL {
            c.bad(
                &k("poll_interval"),
                format!(
                    "{} is shorter than the minimum {}; use e.g. \"2s\"",
                    humantime::format_duration(poll_interval),
                    humantime::format_duration(MIN_POLL_INTERVAL)
                ),
            );
        }
        let discovery_interval = c.positive_duration(
            &k("discovery_interval"),
            t.discovery_interval,
            source::DEFAULT_DISCOVERY_INTERVAL,
        );
        let page_limit = c.integer(
            &k("page_limit"),
            t.page_limit,
            source::DEFAULT_PAGE_LIMIT as i64,
            1,
            MAX_PAGE_LIMIT as i64,
        ) as i32;
        let api_rate_per_second = c.number(
            &k("api_rate_per_second"),
            t.api_rate_per_second,
            source::DEFAULT_API_RATE_PER_SECOND,
        );
        if group_prefixes.is_empty() && groups.is_empty() {
            c.bad(
                &k("log_groups"),
                "nothing to poll: log_group_prefixes is empty and log_groups is not set; list groups or prefixes",
            );
        }
        targets.push(source::TargetSpec {
            name,
            region,
            endpoint_url,
            role_arn,
            group_prefixes,
            groups,
            initial_lookback,
            late_arrival_window,
            poll_interval,
            discovery_interval,
            page_limit,
            api_rate_per_second,
        });
    }

    if c.problems.is_empty() {
        Ok(Config {
            listen_addresses,
            web_config_file,
            telemetry_path,
            log_level,
            log_format,
            state_path,
            state_flush_interval,
            limits,
            pipeline,
            inventory,
            probe,
            targets,
        })
    } else {
        Err(ConfigError {
            problems: c.problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml(text: &str, args: &ServeArgs) -> Result<Config, ConfigError> {
        build(parse_yaml(text)?, args, Some("eu-west-1"))
    }

    /// Lines `# expect: <text>` in a fixture: each must occur in the error.
    pub(crate) fn expectations(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("# expect:"))
            .map(|s| s.trim().to_owned())
            .collect()
    }

    #[test]
    fn fixture_table() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/config");
        let mut seen = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .expect("tests/data/config exists")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            if name.ends_with(".ok.yaml") {
                seen += 1;
                if let Err(e) = from_yaml(&text, &ServeArgs::default()) {
                    panic!("{name}: expected valid, got:\n{e}\n--- input ---\n{text}");
                }
            } else if name.ends_with(".bad.yaml") {
                seen += 1;
                let expect = expectations(&text);
                assert!(!expect.is_empty(), "{name}: add a `# expect: <key>` line");
                match from_yaml(&text, &ServeArgs::default()) {
                    Ok(c) => panic!("{name}: expected an error, got {c:?}\n--- input ---\n{text}"),
                    Err(e) => {
                        let msg = e.to_string();
                        for want in &expect {
                            assert!(
                                msg.contains(want.as_str()),
                                "{name}: error does not mention {want:?}:\n{msg}\n--- input ---\n{text}"
                            );
                        }
                    }
                }
            }
        }
        assert!(
            seen >= 10,
            "expected the fixture table, found {seen} files in {}",
            dir.display()
        );
    }

    #[test]
    fn defaults_make_one_target_from_the_environment_region() {
        let c = from_yaml("", &ServeArgs::default()).unwrap();
        assert_eq!(c.targets.len(), 1);
        let t = &c.targets[0];
        assert_eq!(t.region, "eu-west-1");
        assert_eq!(
            t.group_prefixes,
            vec![source::DEFAULT_GROUP_PREFIX.to_owned()]
        );
        assert_eq!(t.poll_interval, source::DEFAULT_POLL_INTERVAL);
        assert_eq!(c.listen_addresses.len(), 1);
        assert_eq!(c.listen_addresses[0].port(), 29190);
        assert_eq!(c.web_config_file, None);
        assert_eq!(c.telemetry_path, "/metrics");
        assert_eq!(c.log_format, LogFormat::Logfmt);
    }

    #[test]
    fn no_region_anywhere_is_an_error_naming_the_flag_and_env() {
        let e = build(RawConfig::default(), &ServeArgs::default(), None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("targets[0].region"), "{msg}");
        assert!(
            msg.contains("--aws.region") && msg.contains("AWS_REGION"),
            "{msg}"
        );
    }

    #[test]
    fn one_command_line_is_enough_for_a_single_target() {
        let args = ServeArgs {
            aws_region: Some("us-east-1".into()),
            aws_endpoint_url: Some("http://127.0.0.1:5000".into()),
            group_prefixes: vec!["/aws/transfer/".into(), "/custom/".into()],
            groups: vec!["/shared/transfer".into()],
            initial_lookback: Some("1h".into()),
            poll_interval: Some("2s".into()),
            state_path: Some("/tmp/x.json".into()),
            listen_addresses: vec!["127.0.0.1:0".into()],
            ..Default::default()
        };
        let c = build(RawConfig::default(), &args, None).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.region, "us-east-1");
        assert_eq!(t.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(t.group_prefixes, vec!["/aws/transfer/", "/custom/"]);
        assert_eq!(t.groups, vec!["/shared/transfer"]);
        assert_eq!(t.initial_lookback, Duration::from_secs(3600));
        assert_eq!(t.poll_interval, Duration::from_secs(2));
        assert_eq!(c.state_path, PathBuf::from("/tmp/x.json"));
        assert_eq!(c.listen_addresses, vec!["127.0.0.1:0".parse().unwrap()]);
    }

    #[test]
    fn listen_address_is_repeatable_and_web_config_file_is_taken() {
        let args = ServeArgs {
            aws_region: Some("us-east-1".into()),
            listen_addresses: vec![
                "127.0.0.1:9001".into(),
                ":9002".into(),
                "127.0.0.1:0".into(),
                "127.0.0.1:0".into(),
            ],
            web_config_file: Some("/etc/ate/web.yml".into()),
            ..Default::default()
        };
        let c = build(RawConfig::default(), &args, None).unwrap();
        let want: Vec<SocketAddr> = [
            "127.0.0.1:9001",
            "0.0.0.0:9002",
            "127.0.0.1:0",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(c.listen_addresses, want);
        assert_eq!(c.web_config_file, Some(PathBuf::from("/etc/ate/web.yml")));

        // a duplicate and a bad one, both reported, naming the flag
        let args = ServeArgs {
            aws_region: Some("us-east-1".into()),
            listen_addresses: vec![
                "127.0.0.1:9001".into(),
                "127.0.0.1:9001".into(),
                "nonsense".into(),
            ],
            ..Default::default()
        };
        let e = build(RawConfig::default(), &args, None).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(
            e.problems
                .iter()
                .all(|p| p.key == "--web.listen-address (web.listen_address)"),
            "{e}"
        );

        // the file's web.config_file, overridden by the flag
        let raw = parse_yaml("web:\n  config_file: /from/file.yml\n").unwrap();
        let args = ServeArgs {
            aws_region: Some("us-east-1".into()),
            ..Default::default()
        };
        let c = build(raw, &args, None).unwrap();
        assert_eq!(c.web_config_file, Some(PathBuf::from("/from/file.yml")));
    }

    #[test]
    fn flags_override_the_file_and_errors_name_the_flag() {
        let yaml = "targets:\n  - region: eu-west-1\n    poll_interval: 30s\n";
        let args = ServeArgs {
            poll_interval: Some("5s".into()),
            ..Default::default()
        };
        let c = from_yaml(yaml, &args).unwrap();
        assert_eq!(c.targets[0].poll_interval, Duration::from_secs(5));

        let args = ServeArgs {
            poll_interval: Some("5 parsecs".into()),
            ..Default::default()
        };
        let msg = from_yaml(yaml, &args).unwrap_err().to_string();
        assert!(
            msg.contains("--poll.interval (targets[0].poll_interval)"),
            "{msg}"
        );
    }

    #[test]
    fn target_flags_with_several_file_targets_are_refused() {
        let yaml = "targets:\n  - {name: a, region: eu-west-1}\n  - {name: b, region: us-east-1}\n";
        let args = ServeArgs {
            aws_region: Some("eu-west-2".into()),
            ..Default::default()
        };
        let msg = from_yaml(yaml, &args).unwrap_err().to_string();
        assert!(
            msg.contains("--aws.region") && msg.contains("2 targets"),
            "{msg}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = "web:\n  telemetry_path: metrics\nlog:\n  format: xml\ntargets:\n  - region: eu-west-1\n    poll_interval: 2\n    page_limit: 0\n";
        let e = from_yaml(yaml, &ServeArgs::default()).unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "web.telemetry_path",
                "log.format",
                "targets[0].poll_interval",
                "targets[0].page_limit"
            ],
            "{e}"
        );
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(
            parse_listen_address(":9").unwrap(),
            "0.0.0.0:9".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(parse_listen_address("nonsense").is_err());
    }
}

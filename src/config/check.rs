//! Stage 2: the one checker. Every section (web, log, state, limits,
//! attribution, inventory, probe, targets) is read from the raw tree through
//! the same [`Checker`], so the same mistake gets the same words wherever it
//! is made, and every problem is collected before failing. A key the checker
//! never asked for is unknown: each one is reported with the keys that exist
//! there.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde_norway::{Mapping, Value};

use super::defaults::*;
use super::raw::{Origins, RawConfig};
use super::{Config, ConfigError, LogFormat, Problem};
use crate::inventory::{InventoryConfig, UsersMode};
use crate::metrics::Limits;
use crate::pipeline::PipelineConfig;
use crate::probe::{self, ProbeConfig, Protocol};
use crate::source::firehose::{self, FirehoseConfig};
use crate::source::TargetSpec;

/// Collects problems; reads values with one wording per kind of mistake.
pub struct Checker<'a> {
    origins: &'a Origins,
    pub problems: Vec<Problem>,
}

/// A mapping being read. Keys are taken one by one; [`Checker::finish`]
/// reports the keys nobody took.
pub struct Section {
    path: String,
    map: Mapping,
    known: Vec<&'static str>,
}

impl Section {
    fn key(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// Takes `field` out of the section (None when absent or null).
    pub fn take(&mut self, field: &'static str) -> Option<Value> {
        self.known.push(field);
        match self.map.remove(Value::String(field.to_owned())) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }
}

/// What a value is, in words, for "expected X, found Y".
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("{n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a tagged value {}", t.tag),
    }
}

impl<'a> Checker<'a> {
    pub fn new(origins: &'a Origins, problems: Vec<Problem>) -> Checker<'a> {
        Checker { origins, problems }
    }

    pub fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: self.origins.key(key),
            message: message.into(),
        });
    }

    /// The root of the document as a section.
    pub fn root(&mut self, raw: RawConfig) -> Section {
        Section {
            path: String::new(),
            map: raw.root,
            known: Vec::new(),
        }
    }

    /// A nested mapping (`web:`, `targets[0]`), empty when absent.
    pub fn section(&mut self, key: String, v: Option<Value>) -> Section {
        let map = match v {
            None => Mapping::new(),
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                self.bad(
                    &key,
                    format!(
                        "expected a mapping of keys, found {}; see examples/config.yaml",
                        kind(&other)
                    ),
                );
                Mapping::new()
            }
        };
        Section {
            path: key,
            map,
            known: Vec::new(),
        }
    }

    /// Reports every key of `s` that was not taken.
    pub fn finish(&mut self, s: Section) {
        let Section { path, map, known } = s;
        let at = Section {
            path,
            map: Mapping::new(),
            known: Vec::new(),
        };
        for (k, _) in map {
            let name = match &k {
                Value::String(s) => s.clone(),
                other => kind(other),
            };
            let mut known = known.clone();
            known.sort_unstable();
            known.dedup();
            self.bad(
                &at.key(&name),
                format!(
                    "unknown key; the keys here are: {} (see examples/config.yaml)",
                    known.join(", ")
                ),
            );
        }
    }

    /// A list (`targets`, `probe.targets`, `log_groups`), each element with
    /// its key (`targets[1]`).
    pub fn list(&mut self, key: &str, v: Option<Value>) -> Option<Vec<(String, Value)>> {
        match v? {
            Value::Sequence(items) => Some(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{key}[{i}]"), v))
                    .collect(),
            ),
            other => {
                self.bad(
                    key,
                    format!(
                        "expected a list (lines starting with \"- \"), found {}",
                        kind(&other)
                    ),
                );
                None
            }
        }
    }

    pub fn string(&mut self, key: &str, v: Option<Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s),
            other => {
                self.bad(
                    key,
                    format!("expected a string, found {}; quote the value", kind(&other)),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &str, v: Option<Value>, default: bool) -> bool {
        match v {
            None => default,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.bad(
                    key,
                    format!("expected true or false, found {}", kind(&other)),
                );
                default
            }
        }
    }

    /// A duration with a unit (`30s`, `5m`, `1h`). One wording for every
    /// section.
    pub fn duration(&mut self, key: &str, v: Option<Value>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match v {
            Value::String(text) => match humantime::parse_duration(text.trim()) {
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
            Value::Number(n) => {
                self.bad(
                    key,
                    format!("duration {n} has no unit; write e.g. \"{n}s\" or \"{n}m\""),
                );
                default
            }
            other => {
                self.bad(
                    key,
                    format!(
                        "expected a duration, found {}; write e.g. \"30s\"",
                        kind(&other)
                    ),
                );
                default
            }
        }
    }

    /// A duration above zero.
    pub fn positive_duration(
        &mut self,
        key: &str,
        v: Option<Value>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(key, v, default);
        if d.is_zero() {
            self.bad(key, "must be longer than zero; e.g. \"30s\"");
            return default;
        }
        d
    }

    pub fn integer(
        &mut self,
        key: &str,
        v: Option<Value>,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let Some(v) = v else { return default };
        let n = match &v {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or(default),
            Value::String(t) if t.trim().parse::<i64>().is_ok() => {
                t.trim().parse().unwrap_or(default)
            }
            other => {
                self.bad(
                    key,
                    format!("expected a whole number, found {}", kind(other)),
                );
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

    pub fn number(&mut self, key: &str, v: Option<Value>, default: f64) -> f64 {
        let Some(v) = v else { return default };
        let x = match &v {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(t) if t.trim().parse::<f64>().is_ok() => {
                t.trim().parse().unwrap_or(default)
            }
            other => {
                self.bad(key, format!("expected a number, found {}", kind(other)));
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

pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
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

/// Checks the whole raw tree into a [`Config`], or every problem found.
pub fn check(
    raw: RawConfig,
    origins: &Origins,
    env_region: Option<&str>,
    problems: Vec<Problem>,
) -> Result<Config, ConfigError> {
    let mut c = Checker::new(origins, problems);
    let mut root = c.root(raw);

    // web
    let v = root.take("web");
    let mut web = c.section("web".into(), v);
    // One address or a list of them (the flag is repeatable: loopback
    // plus a pod address, say).
    let v = web.take("listen_address");
    let listen_texts: Vec<(String, Value)> = match v {
        None => vec![(
            "web.listen_address".to_owned(),
            Value::String(DEFAULT_LISTEN_ADDRESS.to_owned()),
        )],
        Some(Value::Sequence(_)) => c.list("web.listen_address", v).unwrap_or_default(),
        Some(one) => vec![("web.listen_address".to_owned(), one)],
    };
    let mut listen_addresses: Vec<SocketAddr> = Vec::new();
    for (key, item) in listen_texts {
        let Some(text) = c.string(&key, Some(item)) else {
            continue;
        };
        match parse_listen_address(&text) {
            Ok(a) if a.port() != 0 && listen_addresses.contains(&a) => {
                c.bad(&key, format!("{a} is listed twice; list each address once"))
            }
            Ok(a) => listen_addresses.push(a),
            Err(msg) => c.bad(&key, msg),
        }
    }
    if listen_addresses.is_empty() {
        c.bad(
            "web.listen_address",
            "no address to listen on; write e.g. \":29190\" or \"127.0.0.1:29190\"",
        );
    }
    let v = web.take("config_file");
    let web_config_file = c.string("web.config_file", v).map(PathBuf::from);
    let v = web.take("telemetry_path");
    let telemetry_path = c
        .string("web.telemetry_path", v)
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
    // POST /-/reload, like Prometheus' --web.enable-lifecycle.
    let v = web.take("enable_lifecycle");
    let web_enable_lifecycle = c.boolean("web.enable_lifecycle", v, false);
    c.finish(web);

    // log
    let v = root.take("log");
    let mut log = c.section("log".into(), v);
    let v = log.take("level");
    let log_level = c
        .string("log.level", v)
        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        c.bad(
            "log.level",
            format!("invalid level {log_level:?} ({e}); use error, warn, info, debug or trace"),
        );
    }
    let v = log.take("format");
    let log_format = match c.string("log.format", v).as_deref() {
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
    c.finish(log);

    // state
    let v = root.take("state");
    let mut state = c.section("state".into(), v);
    let v = state.take("path");
    let state_path = PathBuf::from(
        c.string("state.path", v)
            .unwrap_or_else(|| DEFAULT_STATE_PATH.to_owned()),
    );
    if state_path.as_os_str().is_empty() {
        c.bad(
            "state.path",
            "must not be empty; e.g. \"/var/lib/aws-transfer-exporter/state.json\"",
        );
    }
    // A path that names anything but a regular file (a directory, a
    // socket) is refused here: the exporter writes a file at that path and
    // never renames, moves or deletes what it did not create.
    if let Ok(meta) = std::fs::metadata(&state_path) {
        if !meta.is_file() {
            c.bad(
                "state.path",
                format!(
                    "{} exists and is not a regular file (a directory?); name a file, e.g. \"{}\"",
                    state_path.display(),
                    state_path.join("aws-transfer-exporter.json").display()
                ),
            );
        }
    }
    let v = state.take("flush_interval");
    let state_flush_interval =
        c.positive_duration("state.flush_interval", v, DEFAULT_STATE_FLUSH_INTERVAL);
    c.finish(state);

    // limits
    let v = root.take("limits");
    let mut lim = c.section("limits".into(), v);
    let v = lim.take("max_users_per_server");
    let max_users_per_server = c.integer(
        "limits.max_users_per_server",
        v,
        DEFAULT_MAX_USERS_PER_SERVER as i64,
        1,
        1_000_000,
    ) as usize;
    let v = lim.take("max_ids");
    let max_ids = c.integer("limits.max_ids", v, DEFAULT_MAX_IDS as i64, 1, 1_000_000) as usize;
    c.finish(lim);
    let limits = Limits {
        max_users_per_server,
        max_ids,
    };

    // attribution
    let v = root.take("attribution");
    let mut at = c.section("attribution".into(), v);
    let v = at.take("session_cache_size");
    let session_cache_size = c.integer(
        "attribution.session_cache_size",
        v,
        DEFAULT_SESSION_CACHE_SIZE as i64,
        1,
        10_000_000,
    ) as usize;
    let v = at.take("session_ttl");
    let session_ttl = c.positive_duration("attribution.session_ttl", v, DEFAULT_SESSION_TTL);
    let v = at.take("recent_failures");
    let recent_failures = c.integer(
        "attribution.recent_failures",
        v,
        DEFAULT_RECENT_FAILURES as i64,
        0,
        10_000,
    ) as usize;
    c.finish(at);
    let pipeline = PipelineConfig {
        session_cache_size,
        session_ttl,
        recent_failures,
    };

    // poll: the CloudWatch poller can be switched off (push only).
    let v = root.take("poll");
    let mut poll = c.section("poll".into(), v);
    let v = poll.take("enabled");
    let poll_enabled = c.boolean("poll.enabled", v, true);
    // How each group is read (see `source::checkpoint`): every poll reads a
    // little behind its checkpoint, a slower sweep reads each stretch once
    // more after its late-arrival window has closed.
    let v = poll.take("overlap_floor");
    let overlap_floor = c.duration("poll.overlap_floor", v, DEFAULT_OVERLAP_FLOOR);
    let v = poll.take("sweep_interval");
    let sweep_interval = c.positive_duration("poll.sweep_interval", v, DEFAULT_SWEEP_INTERVAL);
    let v = poll.take("sweep_reach");
    let sweep_reach = v.map(|v| c.duration("poll.sweep_reach", Some(v), Duration::ZERO));
    c.finish(poll);

    let v = root.take("firehose");
    let firehose = check_firehose(&mut c, v);

    let v = root.take("inventory");
    let inventory = check_inventory(&mut c, v);
    let v = root.take("probe");
    let probe = check_probe(&mut c, v);
    let v = root.take("targets");
    let mut targets = check_targets(&mut c, v, env_region);
    let most = sweep_interval + MAX_LATE_ARRIVAL_WINDOW;
    if sweep_reach.is_some_and(|r| r > most) {
        c.bad(
            "poll.sweep_reach",
            format!(
                "{} is longer than the maximum {} (poll.sweep_interval plus the longest late-arrival window); event ids are remembered over the reach",
                humantime::format_duration(sweep_reach.unwrap_or_default()),
                humantime::format_duration(most),
            ),
        );
    }
    for (i, t) in targets.iter_mut().enumerate() {
        t.overlap_floor = overlap_floor;
        t.sweep_interval = sweep_interval;
        t.sweep_reach = sweep_reach;
        let least = sweep_interval + t.late_arrival_window;
        if sweep_reach.is_some_and(|r| r < least) {
            c.bad(
                "poll.sweep_reach",
                format!(
                    "{} is shorter than poll.sweep_interval ({}) plus targets[{i}].late_arrival_window ({}): events visible late within the window would fall between sweeps; use at least {} or remove the key (the default is exactly that)",
                    humantime::format_duration(sweep_reach.unwrap_or_default()),
                    humantime::format_duration(sweep_interval),
                    humantime::format_duration(t.late_arrival_window),
                    humantime::format_duration(least),
                ),
            );
        }
    }

    c.finish(root);
    if c.problems.is_empty() {
        Ok(Config {
            poll_enabled,
            firehose,
            listen_addresses,
            web_config_file,
            web_enable_lifecycle,
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

/// The push receiver: on when `firehose.listen_address` is set.
fn check_firehose(c: &mut Checker<'_>, v: Option<Value>) -> Option<FirehoseConfig> {
    let mut s = c.section("firehose".into(), v);
    let v = s.take("listen_address");
    let listen = c.string("firehose.listen_address", v);
    let v = s.take("access_key_file");
    let access_key_file = c.string("firehose.access_key_file", v).map(PathBuf::from);
    let v = s.take("allow_unauthenticated");
    let allow_unauthenticated = c.boolean("firehose.allow_unauthenticated", v, false);
    let v = s.take("max_body_bytes");
    let max_body_bytes = c.integer(
        "firehose.max_body_bytes",
        v,
        firehose::DEFAULT_MAX_BODY_BYTES as i64,
        1024,
        1 << 30,
    ) as usize;
    let v = s.take("max_decompressed_bytes");
    let max_decompressed_bytes = c.integer(
        "firehose.max_decompressed_bytes",
        v,
        firehose::DEFAULT_MAX_DECOMPRESSED_BYTES as i64,
        1024,
        4 << 30,
    ) as usize;
    let v = s.take("request_id_ttl");
    let request_id_ttl = c.positive_duration(
        "firehose.request_id_ttl",
        v,
        firehose::DEFAULT_REQUEST_ID_TTL,
    );
    let v = s.take("max_event_ids");
    let max_event_ids = c.integer(
        "firehose.max_event_ids",
        v,
        firehose::DEFAULT_MAX_EVENT_IDS as i64,
        1,
        100_000_000,
    ) as usize;
    let v = s.take("max_concurrent_requests");
    let max_concurrent_requests = c.integer(
        "firehose.max_concurrent_requests",
        v,
        firehose::DEFAULT_MAX_CONCURRENT_REQUESTS as i64,
        1,
        1024,
    ) as usize;
    c.finish(s);
    let text = listen?;
    let address = match parse_listen_address(&text) {
        Ok(a) => a,
        Err(msg) => {
            c.bad("firehose.listen_address", msg);
            return None;
        }
    };
    if access_key_file.is_none() && !allow_unauthenticated {
        c.bad(
            "firehose.access_key_file",
            "the push receiver needs an access key file (one key per line, the key set on the Firehose stream), or --firehose.allow-unauthenticated to accept anyone who reaches it",
        );
    }
    if let Some(p) = &access_key_file {
        if let Err(e) = std::fs::metadata(p) {
            c.bad(
                "firehose.access_key_file",
                format!(
                    "cannot read {}: {e}; check the path and permissions",
                    p.display()
                ),
            );
        }
    }
    let mut cfg = FirehoseConfig::new(address);
    cfg.access_key_file = access_key_file;
    cfg.allow_unauthenticated = allow_unauthenticated;
    cfg.max_body_bytes = max_body_bytes;
    cfg.max_decompressed_bytes = max_decompressed_bytes;
    cfg.request_id_ttl = request_id_ttl;
    cfg.max_event_ids = max_event_ids;
    cfg.max_concurrent_requests = max_concurrent_requests;
    Some(cfg)
}

fn check_inventory(c: &mut Checker<'_>, v: Option<Value>) -> InventoryConfig {
    let d = InventoryConfig::default();
    let mut s = c.section("inventory".into(), v);
    let v = s.take("enabled");
    let enabled = c.boolean("inventory.enabled", v, d.enabled);
    let v = s.take("interval");
    let interval = c.positive_duration("inventory.interval", v, d.interval);
    let v = s.take("users");
    let users = match c.string("inventory.users", v).as_deref() {
        None | Some("off") => UsersMode::Off,
        Some("user_count") => UsersMode::UserCount,
        Some("list_users") => UsersMode::ListUsers,
        Some(other) => {
            c.bad(
                "inventory.users",
                format!("unknown value {other:?}; use off, user_count or list_users"),
            );
            d.users
        }
    };
    let v = s.take("add_log_groups");
    let add_log_groups = c.boolean("inventory.add_log_groups", v, d.add_log_groups);
    let v = s.take("skip_legacy_duplicates");
    let skip_legacy_duplicates = c.boolean(
        "inventory.skip_legacy_duplicates",
        v,
        d.skip_legacy_duplicates,
    );
    c.finish(s);
    InventoryConfig {
        enabled,
        interval,
        users,
        add_log_groups,
        skip_legacy_duplicates,
    }
}

fn check_probe(c: &mut Checker<'_>, v: Option<Value>) -> ProbeConfig {
    let d = ProbeConfig::default();
    let mut s = c.section("probe".into(), v);
    let v = s.take("enabled");
    let enabled = c.boolean("probe.enabled", v, d.enabled);
    let v = s.take("interval");
    let interval = c.positive_duration("probe.interval", v, d.interval);
    let v = s.take("connect_timeout");
    let connect_timeout = c.positive_duration("probe.connect_timeout", v, d.connect_timeout);
    let v = s.take("banner_timeout");
    let banner_timeout = c.positive_duration("probe.banner_timeout", v, d.banner_timeout);
    let v = s.take("public_hostnames");
    let public_hostnames = v.map(|v| c.boolean("probe.public_hostnames", Some(v), false));
    let v = s.take("targets");
    let mut targets = Vec::new();
    let mut seen = HashSet::new();
    for (key, item) in c.list("probe.targets", v).unwrap_or_default() {
        let mut t = c.section(key.clone(), Some(item));
        let (sid, addr, proto) = (t.take("server_id"), t.take("address"), t.take("protocol"));
        c.finish(t);
        let server_id = match c.string(&format!("{key}.server_id"), sid) {
            Some(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                c.bad(
                    &format!("{key}.server_id"),
                    "missing; name the Transfer Family server (e.g. s-1234567890abcdef0) the endpoint belongs to",
                );
                continue;
            }
        };
        let protocol = match c.string(&format!("{key}.protocol"), proto) {
            None => Protocol::Sftp,
            Some(p) => match Protocol::from_name(&p) {
                Some(p) => p,
                None => {
                    c.bad(
                        &format!("{key}.protocol"),
                        format!("unknown protocol {p:?}; use sftp, ftp, ftps or ftps_implicit"),
                    );
                    continue;
                }
            },
        };
        let Some(address) = c.string(&format!("{key}.address"), addr) else {
            c.bad(
                &format!("{key}.address"),
                "missing; write host:port, e.g. \"10.0.1.5:22\"",
            );
            continue;
        };
        let (host, port) = match probe::split_address(&address) {
            Ok(v) => v,
            Err(why) => {
                c.bad(
                    &format!("{key}.address"),
                    format!("{address:?} {why}; write host:port, e.g. \"10.0.1.5:22\""),
                );
                continue;
            }
        };
        let target = probe::Target {
            server_id,
            host,
            port: port.unwrap_or(protocol.default_port()),
            protocol,
        };
        if !seen.insert((target.host.clone(), target.port)) {
            c.bad(
                &format!("{key}.address"),
                format!("{address:?} is listed twice; each endpoint is probed once"),
            );
            continue;
        }
        targets.push(target);
    }
    c.finish(s);
    ProbeConfig {
        enabled,
        interval,
        connect_timeout,
        banner_timeout,
        public_hostnames,
        targets,
    }
}

fn check_targets(
    c: &mut Checker<'_>,
    v: Option<Value>,
    env_region: Option<&str>,
) -> Vec<TargetSpec> {
    let raw_targets = match v {
        None => vec![("targets[0]".to_owned(), Value::Mapping(Mapping::new()))],
        some => match c.list("targets", some) {
            None => Vec::new(),
            Some(t) if t.is_empty() => {
                c.bad(
                    "targets",
                    "the list is empty; add a target (at least `- region: eu-west-1`) or remove the key and pass --aws.region",
                );
                Vec::new()
            }
            Some(t) => t,
        },
    };
    let mut targets = Vec::with_capacity(raw_targets.len());
    let mut names = HashSet::new();
    for (i, (tkey, item)) in raw_targets.into_iter().enumerate() {
        let mut t = c.section(tkey.clone(), Some(item));
        let k = |field: &str| format!("{tkey}.{field}");
        let v = t.take("region");
        let region = match c.string(&k("region"), v) {
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
        let v = t.take("name");
        let name = c.string(&k("name"), v).unwrap_or_else(|| {
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
        let v = t.take("endpoint_url");
        let endpoint_url = c.string(&k("endpoint_url"), v);
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
        let v = t.take("role_arn");
        let role_arn = c.string(&k("role_arn"), v);
        if let Some(r) = &role_arn {
            if !(r.starts_with("arn:aws") && r.contains(":iam::") && r.contains(":role/")) {
                c.bad(
                    &k("role_arn"),
                    format!("{r:?} is not an IAM role ARN; e.g. \"arn:aws:iam::111122223333:role/transfer-exporter\""),
                );
            }
        }
        let group_list = |c: &mut Checker<'_>, field: &str, v: Option<Value>, what: &str| {
            let mut out = Vec::new();
            for (key, item) in c.list(&k(field), v).unwrap_or_default() {
                let Some(g) = c.string(&key, Some(item)) else {
                    continue;
                };
                if !g.is_empty() && g.len() <= 512 && valid_group_chars(&g) {
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
        let group_prefixes = match t.take("log_group_prefixes") {
            None => vec![DEFAULT_GROUP_PREFIX.to_owned()],
            some => group_list(c, "log_group_prefixes", some, "name prefix"),
        };
        let v = t.take("log_groups");
        let groups = group_list(c, "log_groups", v, "name");
        let v = t.take("initial_lookback");
        let initial_lookback = c.duration(&k("initial_lookback"), v, DEFAULT_INITIAL_LOOKBACK);
        let v = t.take("late_arrival_window");
        let late_arrival_window =
            c.duration(&k("late_arrival_window"), v, DEFAULT_LATE_ARRIVAL_WINDOW);
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
        let v = t.take("poll_interval");
        let poll_interval = c.positive_duration(&k("poll_interval"), v, DEFAULT_POLL_INTERVAL);
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
        let v = t.take("discovery_interval");
        let discovery_interval =
            c.positive_duration(&k("discovery_interval"), v, DEFAULT_DISCOVERY_INTERVAL);
        let v = t.take("page_limit");
        let page_limit = c.integer(
            &k("page_limit"),
            v,
            DEFAULT_PAGE_LIMIT as i64,
            1,
            MAX_PAGE_LIMIT as i64,
        ) as i32;
        let v = t.take("api_rate_per_second");
        let api_rate_per_second =
            c.number(&k("api_rate_per_second"), v, DEFAULT_API_RATE_PER_SECOND);
        c.finish(t);
        if group_prefixes.is_empty() && groups.is_empty() {
            c.bad(
                &k("log_groups"),
                "nothing to poll: log_group_prefixes is empty and log_groups is not set; list groups or prefixes",
            );
        }
        targets.push(TargetSpec {
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
            // Set from the `poll` section by the caller.
            overlap_floor: DEFAULT_OVERLAP_FLOOR,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            sweep_reach: None,
        });
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServeArgs;

    /// Checks a file holding only `section:` with `body` indented under it.
    fn section(name: &str, body: &str) -> Result<Config, ConfigError> {
        let mut text = format!("{name}:\n");
        for l in body.lines() {
            text.push_str("  ");
            text.push_str(l);
            text.push('\n');
        }
        super::super::build(
            super::super::parse_yaml(&text)?,
            &ServeArgs::default(),
            Some("eu-west-1"),
        )
    }

    /// The problems of such a file, as `key: message` lines.
    fn problems(name: &str, body: &str) -> Vec<String> {
        match section(name, body) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn defaults_and_targets_validate() {
        let c = section(
            "probe",
            "interval: 30s\nconnect_timeout: 2s\ntargets:\n  - server_id: s-1\n    address: 127.0.0.1:2222\n  - server_id: s-2\n    address: \"[::1]\"\n    protocol: ftps_implicit\n  - server_id: s-3\n    address: vpce.example.internal\n    protocol: ftp\n",
        )
        .unwrap()
        .probe;
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.banner_timeout, DEFAULT_PROBE_BANNER_TIMEOUT);
        let got: Vec<(&str, u16, Protocol)> = c
            .targets
            .iter()
            .map(|t| (t.host.as_str(), t.port, t.protocol))
            .collect();
        assert_eq!(
            got,
            vec![
                ("127.0.0.1", 2222, Protocol::Sftp),
                ("::1", 990, Protocol::FtpsImplicit),
                ("vpce.example.internal", 21, Protocol::Ftp),
            ]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let table: &[(&str, &str)] = &[
            ("interval: 5x", "probe.interval:"),
            ("banner_timeout: 0s", "probe.banner_timeout:"),
            ("targets:\n  - address: 127.0.0.1:22", "probe.targets[0].server_id:"),
            ("targets:\n  - server_id: s-1", "probe.targets[0].address:"),
            ("targets:\n  - server_id: s-1\n    address: 127.0.0.1:0", "probe.targets[0].address:"),
            ("targets:\n  - server_id: s-1\n    address: h:99999", "probe.targets[0].address:"),
            ("targets:\n  - server_id: s-1\n    address: h\n    protocol: as2", "probe.targets[0].protocol:"),
            (
                "targets:\n  - server_id: s-1\n    address: h:22\n  - server_id: s-2\n    address: h:22",
                "probe.targets[1].address:",
            ),
        ];
        for (yaml, key) in table {
            let errors = problems("probe", yaml);
            assert!(
                errors.len() == 1 && errors[0].starts_with(key),
                "input {yaml:?}: want one error naming {key}, got {errors:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let errors = problems("probe", "intervall: 5s");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("probe.intervall:"), "{errors:?}");
        let errors = problems("probe", "targets:\n  - server_id: s\n    adress: h");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("probe.targets[0].adress: unknown key")),
            "{errors:?}"
        );
    }

    #[test]
    fn poll_section_sets_every_target_and_checks_the_reach() {
        let c = section("poll", "overlap_floor: 500ms\nsweep_interval: 30s").unwrap();
        let t = &c.targets[0];
        assert_eq!(t.overlap_floor, Duration::from_millis(500));
        assert_eq!(t.sweep_interval, Duration::from_secs(30));
        assert_eq!(t.sweep_reach, None);
        let timing = t.timing();
        assert_eq!(
            timing.sweep_reach_ms,
            (DEFAULT_LATE_ARRIVAL_WINDOW + Duration::from_secs(30)).as_millis() as i64,
            "the default reach is the window plus the sweep interval"
        );
        let c = section("poll", "sweep_reach: 20m").unwrap();
        assert_eq!(c.targets[0].sweep_reach, Some(Duration::from_secs(1200)));
        assert_eq!(c.targets[0].overlap_floor, DEFAULT_OVERLAP_FLOOR);
        assert_eq!(c.targets[0].sweep_interval, DEFAULT_SWEEP_INTERVAL);
        for (yaml, key) in [
            ("sweep_reach: 5m", "poll.sweep_reach:"), // < 1 m + the 5 m window
            ("sweep_interval: 0s", "poll.sweep_interval:"),
            ("overlap_floor: soon", "poll.overlap_floor:"),
            ("sweep: 1m", "poll.sweep:"),
        ] {
            let errors = problems("poll", yaml);
            assert!(
                errors.len() == 1 && errors[0].starts_with(key),
                "input {yaml:?}: {errors:?}"
            );
        }
        let errors = problems("poll", "sweep_reach: 5m");
        assert!(
            errors[0].contains("targets[0].late_arrival_window") && errors[0].contains("6m"),
            "names the window and the least reach: {errors:?}"
        );
    }

    #[test]
    fn section_validates_and_names_keys() {
        let c = section(
            "inventory",
            "interval: 1m\nusers: list_users\nadd_log_groups: false\nskip_legacy_duplicates: false",
        )
        .unwrap()
        .inventory;
        assert_eq!(
            c,
            InventoryConfig {
                enabled: true,
                interval: Duration::from_secs(60),
                users: UsersMode::ListUsers,
                add_log_groups: false,
                skip_legacy_duplicates: false,
            }
        );
        for (yaml, key) in [
            ("interval: soon", "inventory.interval:"),
            ("users: all", "inventory.users:"),
        ] {
            let errors = problems("inventory", yaml);
            assert!(
                errors.len() == 1 && errors[0].starts_with(key),
                "input {yaml:?}: {errors:?}"
            );
        }
        let errors = problems("inventory", "list_users: true");
        assert!(
            errors.len() == 1 && errors[0].starts_with("inventory.list_users: unknown key"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_state_path_that_is_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let errors = problems(
            "state",
            &format!("path: {:?}", dir.path().display().to_string()),
        );
        assert!(
            errors.len() == 1
                && errors[0].starts_with("state.path: ")
                && errors[0].contains("not a regular file"),
            "{errors:?}"
        );
        let file = dir.path().join("state.json");
        assert!(problems("state", &format!("path: {:?}", file.display().to_string())).is_empty());
    }

    /// Several mistakes in several sections: all reported in one run, and
    /// a bad duration has the same words in every section.
    #[test]
    fn every_mistake_of_every_section_at_once_in_one_wording() {
        let text = "webb: 1\nlog:\n  levl: info\ninventory:\n  interval: soon\nprobe:\n  targets:\n    - server_id: s-1\n      address: \"h:0\"\ntargets:\n  - region: eu-west-1\n    poll_interval: soon\n    colour: blue\n";
        let e = super::super::build(
            super::super::parse_yaml(text).unwrap(),
            &ServeArgs::default(),
            Some("eu-west-1"),
        )
        .unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "webb",
            "log.levl",
            "inventory.interval",
            "probe.targets[0].address",
            "targets[0].poll_interval",
            "targets[0].colour",
        ] {
            assert!(keys.contains(&want), "{want} missing from {e}");
        }
        let inv = &e.problems[keys
            .iter()
            .position(|k| *k == "inventory.interval")
            .unwrap()];
        let tgt = &e.problems[keys
            .iter()
            .position(|k| *k == "targets[0].poll_interval")
            .unwrap()];
        assert_eq!(inv.message, tgt.message, "one wording for a bad duration");
    }
}

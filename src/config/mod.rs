//! Configuration in two stages: what the user wrote ([`raw`]: the YAML tree
//! with the command-line flags laid over it, each flag declared once), then
//! the one checker ([`check`]) into a typed [`Config`]. The checker collects
//! *every* problem before failing (unknown keys included, all of them), and
//! each message names the key (`targets[1].poll_interval`, or the flag that
//! set it) and says how to fix it, in one wording per kind of mistake.
//!
//! Every default is a named constant in [`defaults`] with the reason for its
//! value.

pub mod check;
pub mod defaults;
pub mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::metrics::Limits;

pub use check::parse_listen_address;
pub use defaults::*;
pub use raw::{parse_yaml, RawConfig};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` lines, what Prometheus' own components print.
    Logfmt,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A validated target: one account + Region (+ optional role) to poll.
pub type Target = crate::source::TargetSpec;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Poll CloudWatch Logs (`poll.enabled`, default true); false runs push
    /// only.
    pub poll_enabled: bool,
    /// The Firehose push receiver, when `firehose.listen_address` is set.
    pub firehose: Option<crate::source::firehose::FirehoseConfig>,
    /// Every address the web edge listens on (at least one).
    pub listen_addresses: Vec<SocketAddr>,
    /// The exporter-toolkit web configuration (TLS, basic auth, headers)
    /// applied to every listener; `None` serves plain HTTP.
    pub web_config_file: Option<PathBuf>,
    /// Serve `POST /-/reload` (`web.enable_lifecycle`,
    /// `--web.enable-lifecycle`); SIGHUP reloads either way.
    pub web_enable_lifecycle: bool,
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
    pub(crate) fn one(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

// ---------------------------------------------------------------------------
// Loading: file, flags, check.
// ---------------------------------------------------------------------------

/// Loads the configuration: the file named by `--config.file` (if any), the
/// flags laid over it, then the checker. The Region falls back to
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

/// Lays the flags over `raw` and checks. Pure apart from name resolution
/// of a host name in the listen address; `env_region` stands in for the
/// environment so tests control it.
pub fn build(
    mut raw: RawConfig,
    args: &ServeArgs,
    env_region: Option<&str>,
) -> Result<Config, ConfigError> {
    let mut origins = raw::Origins::default();
    let mut problems = Vec::new();
    raw::overlay_flags(&mut raw, args, &mut origins, &mut problems);
    check::check(raw, &origins, env_region, problems)
}

impl Config {
    /// What `--config.check` prints: every setting, defaults filled in.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "configuration OK");
        for a in &self.listen_addresses {
            let _ = writeln!(out, "  listen_address: {a}");
        }
        if let Some(p) = &self.web_config_file {
            let _ = writeln!(out, "  web.config_file: {}", p.display());
        }
        let _ = writeln!(out, "  web.enable_lifecycle: {}", self.web_enable_lifecycle);
        let _ = writeln!(out, "  poll.enabled: {}", self.poll_enabled);
        if let Some(t) = self.targets.first() {
            let _ = writeln!(
                out,
                "  poll.overlap_floor: {}\n  poll.sweep_interval: {}\n  poll.sweep_reach: {}",
                humantime::format_duration(t.overlap_floor),
                humantime::format_duration(t.sweep_interval),
                t.sweep_reach.map_or_else(
                    || "late_arrival_window + sweep_interval".to_owned(),
                    |r| humantime::format_duration(r).to_string()
                ),
            );
        }
        match &self.firehose {
            Some(f) => {
                let _ = writeln!(
                    out,
                    "  firehose: listen_address={} access_key_file={} allow_unauthenticated={} max_body_bytes={}",
                    f.listen_address,
                    f.access_key_file
                        .as_ref()
                        .map_or("-".to_owned(), |p| p.display().to_string()),
                    f.allow_unauthenticated,
                    f.max_body_bytes
                );
            }
            None => {
                let _ = writeln!(out, "  firehose: off");
            }
        }
        let _ = writeln!(out, "  telemetry_path: {}", self.telemetry_path);
        let _ = writeln!(out, "  state.path: {}", self.state_path.display());
        for (i, t) in self.targets.iter().enumerate() {
            let _ = writeln!(
                out,
                "  targets[{i}]: name={} region={} endpoint_url={} role_arn={} log_group_prefixes={:?} log_groups={:?} poll_interval={} initial_lookback={} late_arrival_window={}",
                t.name,
                t.region,
                t.endpoint_url.as_deref().unwrap_or("-"),
                t.role_arn.as_deref().unwrap_or("-"),
                t.group_prefixes,
                t.groups,
                humantime::format_duration(t.poll_interval),
                humantime::format_duration(t.initial_lookback),
                humantime::format_duration(t.late_arrival_window),
            );
        }
        let _ = writeln!(
            out,
            "  limits: max_users_per_server={} max_ids={}",
            self.limits.max_users_per_server, self.limits.max_ids
        );
        let inv = &self.inventory;
        let _ = writeln!(
            out,
            "  inventory: enabled={} interval={} users={} add_log_groups={} skip_legacy_duplicates={}",
            inv.enabled,
            humantime::format_duration(inv.interval),
            inv.users.as_str(),
            inv.add_log_groups,
            inv.skip_legacy_duplicates,
        );
        let probe = &self.probe;
        let _ = writeln!(
            out,
            "  probe: enabled={} interval={} connect_timeout={} banner_timeout={} public_hostnames={} targets={}",
            probe.enabled,
            humantime::format_duration(probe.interval),
            humantime::format_duration(probe.connect_timeout),
            humantime::format_duration(probe.banner_timeout),
            probe
                .public_hostnames
                .map_or("auto (only without an endpoint URL)".to_owned(), |b| b.to_string()),
            probe.targets.len(),
        );
        out
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
        assert_eq!(t.group_prefixes, vec![DEFAULT_GROUP_PREFIX.to_owned()]);
        assert_eq!(t.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(c.listen_addresses[0].port(), 29190);
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
    fn enable_lifecycle_from_the_flag_or_the_file() {
        assert!(
            !from_yaml("", &ServeArgs::default())
                .unwrap()
                .web_enable_lifecycle
        );
        let on = ServeArgs {
            web_enable_lifecycle: true,
            ..Default::default()
        };
        assert!(from_yaml("", &on).unwrap().web_enable_lifecycle);
        let file = "web:\n  enable_lifecycle: true\n";
        assert!(
            from_yaml(file, &ServeArgs::default())
                .unwrap()
                .web_enable_lifecycle
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

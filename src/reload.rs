//! Hot reload: SIGHUP, and `POST /-/reload` with `--web.enable-lifecycle`,
//! re-read the config file (the command-line flags laid over it again, as at
//! the start) and the web config file, and apply them without a restart.
//!
//! What this module owns: the request path (a [`Handle`] that queues one
//! reload request at a time for the app, which runs them one after the
//! other), reading and checking the new configuration ([`read`]: every
//! problem of the YAML, the checker and the web config at once), the split
//! between what a reload applies and what needs a restart
//! ([`restart_only_changes`]), the `/-/reload` endpoint, and the two
//! metrics. The app ([`crate::app`]) does the switch itself: the polling
//! sources are handed over to a new generation that continues from their
//! in-memory progress (see [`crate::source::Sources::reload`]), so no
//! counter, checkpoint or remembered event id is lost.
//!
//! Applied by a reload: targets (log groups, prefixes, intervals, Region,
//! endpoint, role, API rate), `limits.*`, `inventory.*`, `probe.*`,
//! `web.enable_lifecycle`, and the contents of the web config file (users,
//! headers, certificates). Taking effect only at the next restart (applied
//! with a warning naming each key, the rest of the file is applied): the
//! listen addresses, the telemetry path, the web config file's path,
//! `log.*`, `state.*`, `poll.enabled`, `firehose.*` and `attribution.*`. Switching TLS on or off in the web config needs a
//! restart too; as the web config is all or nothing, such a reload fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use prometheus::{Gauge, Registry};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::clock::now_unix;
use crate::config::{self, Config};
use crate::web;

/// Reload requests waiting while one runs. More are refused with "busy":
/// each reload reads the files as they are when it runs, so a queue of
/// them adds nothing.
const QUEUE: usize = 8;

/// `aws_transfer_exporter_config_last_reload_*`, as Prometheus exports
/// about itself.
#[derive(Clone)]
pub struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge,
}

impl ReloadMetrics {
    /// Registers both gauges; the start counts as a successful load.
    pub fn new(reg: &Registry) -> ReloadMetrics {
        let successful = Gauge::new(
            "aws_transfer_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt succeeded (1) or failed (0, the previous configuration is running).",
        )
        .expect("valid metric");
        let success_timestamp = Gauge::new(
            "aws_transfer_exporter_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration load (the start, or a reload), Unix seconds.",
        )
        .expect("valid metric");
        reg.register(Box::new(successful.clone()))
            .expect("registered once");
        reg.register(Box::new(success_timestamp.clone()))
            .expect("registered once");
        let m = ReloadMetrics {
            successful,
            success_timestamp,
        };
        m.succeeded();
        m
    }

    pub fn succeeded(&self) {
        self.successful.set(1.0);
        self.success_timestamp.set(now_unix());
    }

    pub fn failed(&self) {
        self.successful.set(0.0);
    }
}

/// What a successful reload reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changed keys that take effect at the next restart.
    pub at_restart: Vec<&'static str>,
}

/// The answer to one reload: applied, or every problem found (the running
/// configuration is kept).
pub type Outcome = Result<Applied, Vec<String>>;

/// One reload request: where it came from (for the log), and where to send
/// the outcome (SIGHUP does not wait).
pub struct Request {
    pub origin: &'static str,
    pub reply: Option<oneshot::Sender<Outcome>>,
}

/// How the web endpoint and the signal handler ask the app to reload.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    lifecycle: Arc<AtomicBool>,
}

impl Handle {
    /// A handle and the receiving end the app serves requests from.
    pub fn new(lifecycle: bool) -> (Handle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Handle {
                tx,
                lifecycle: Arc::new(AtomicBool::new(lifecycle)),
            },
            rx,
        )
    }

    /// Whether `POST /-/reload` is served (`web.enable_lifecycle`; a reload
    /// may switch it).
    pub fn lifecycle_enabled(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire)
    }

    pub fn set_lifecycle(&self, on: bool) {
        self.lifecycle.store(on, Ordering::Release);
    }

    /// Asks for a reload and waits for its outcome. `Err` when the app
    /// cannot take it: stopping, or too many waiting.
    pub async fn reload(&self, origin: &'static str) -> Result<Outcome, &'static str> {
        let (reply, rx) = oneshot::channel();
        let req = Request {
            origin,
            reply: Some(reply),
        };
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "too many reloads waiting; try again",
            mpsc::error::TrySendError::Closed(_) => "the exporter is shutting down",
        })?;
        rx.await.map_err(|_| "the exporter is shutting down")
    }

    /// Asks for a reload without waiting (a signal): the outcome is logged.
    pub fn request(&self, origin: &'static str) {
        let req = Request {
            origin,
            reply: None,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(req) {
            tracing::warn!(
                origin,
                "reload not queued: too many reloads waiting (the queued ones read the files as they are now)"
            );
        }
    }
}

/// Reloads on every SIGHUP until `cancel` fires (the binary only: a test
/// running the app in-process must not take its test runner's signals).
pub async fn on_sighup(handle: Handle, cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reload with POST /-/reload (--web.enable-lifecycle)");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            handle.request("SIGHUP");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (handle, cancel);
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

fn response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/-/reload`: POST reloads when the lifecycle endpoints are on (200 when
/// applied, 500 listing every problem when the running configuration was
/// kept), 403 when they are off; any other method is 405.
pub async fn respond(handle: Option<&Handle>, method: &Method) -> Response<Full<Bytes>> {
    if method != Method::POST {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST /-/reload\n".to_owned(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let Some(handle) = handle.filter(|h| h.lifecycle_enabled()) else {
        return response(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled: start the exporter with --web.enable-lifecycle (or web.enable_lifecycle: true) to reload over HTTP, or send it SIGHUP\n".to_owned(),
        );
    };
    match handle.reload("POST /-/reload").await {
        Ok(Ok(applied)) => {
            let mut body = "configuration reloaded\n".to_owned();
            for key in &applied.at_restart {
                body.push_str(&format!(
                    "  {key}: changed; takes effect at the next restart\n"
                ));
            }
            response(StatusCode::OK, body)
        }
        Ok(Err(problems)) => {
            let mut body = format!(
                "reload failed; the running configuration is kept ({} problem{}):\n",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in &problems {
                body.push_str("  ");
                body.push_str(p);
                body.push('\n');
            }
            response(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        Err(why) => response(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Reads the configuration again as the start did (the file named by
/// `--config.file`, the flags laid over it), and the web config file the
/// running edge reads. Every problem of both, one line each, or the new
/// configuration.
pub fn read(args: &ServeArgs, edge: &web::Edge) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();
    let cfg = match config::load(args) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.extend(
                e.problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message)),
            );
            None
        }
    };
    if let Some(path) = edge.path() {
        match web::Edge::check(path) {
            Ok(_) => {
                // Checked above: only TLS on/off is left to compare.
                let tls = web::web_config::read(path).is_ok_and(|c| c.tls.is_some());
                if tls != edge.tls_enabled() {
                    problems.push(format!(
                        "web config file {}: tls_server_config is {} but the listeners {} TLS; switching TLS on or off needs a restart",
                        path.display(),
                        if tls { "set" } else { "absent" },
                        if edge.tls_enabled() { "serve" } else { "do not serve" }
                    ));
                }
            }
            Err(err) => {
                let at = format!("web config file {}", err.path.display());
                problems.extend(err.problems.iter().map(|p| {
                    if p.key.is_empty() {
                        format!("{at}: {}", p.message)
                    } else {
                        format!("{at}: {}: {}", p.key, p.message)
                    }
                }));
            }
        }
    }
    match cfg {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(problems),
    }
}

/// Keys whose change a reload cannot apply (they take effect at the next
/// restart), in file order.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(
        running.listen_addresses != new.listen_addresses,
        "web.listen_address",
    );
    check(
        running.web_config_file != new.web_config_file,
        "web.config_file",
    );
    check(
        running.telemetry_path != new.telemetry_path,
        "web.telemetry_path",
    );
    check(running.log_level != new.log_level, "log.level");
    check(running.log_format != new.log_format, "log.format");
    check(running.state_path != new.state_path, "state.path");
    check(
        running.state_flush_interval != new.state_flush_interval,
        "state.flush_interval",
    );
    check(
        format!("{:?}", running.pipeline) != format!("{:?}", new.pipeline),
        "attribution",
    );
    check(running.poll_enabled != new.poll_enabled, "poll.enabled");
    check(
        format!("{:?}", running.firehose) != format!("{:?}", new.firehose),
        "firehose",
    );
    keys
}

/// The configuration to run after a reload: `new`, with the settings that
/// only a restart changes kept as they run (so the next reload compares with
/// what actually runs).
pub fn keep_restart_only(running: &Config, mut new: Config) -> Config {
    new.listen_addresses = running.listen_addresses.clone();
    new.web_config_file = running.web_config_file.clone();
    new.telemetry_path = running.telemetry_path.clone();
    new.log_level = running.log_level.clone();
    new.log_format = running.log_format;
    new.state_path = running.state_path.clone();
    new.state_flush_interval = running.state_flush_interval;
    new.pipeline = running.pipeline.clone();
    new.poll_enabled = running.poll_enabled;
    new.firehose = running.firehose.clone();
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_for(path: &std::path::Path) -> ServeArgs {
        ServeArgs {
            config_file: Some(path.to_owned()),
            aws_region: None,
            ..Default::default()
        }
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const BASE: &str = "targets:\n  - name: t\n    region: eu-west-1\n    log_groups: [/a]\n";

    #[test]
    fn rereads_the_file_with_the_flags_laid_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.yaml", BASE);
        let mut args = args_for(&p);
        args.poll_interval = Some("7s".into());
        let c = read(&args, &web::Edge::plain()).unwrap();
        assert_eq!(c.targets[0].groups, vec!["/a"]);
        assert_eq!(c.targets[0].poll_interval.as_secs(), 7);
        // The file changes; the flag still wins over it.
        write(
            dir.path(),
            "c.yaml",
            "limits:\n  max_users_per_server: 3\ntargets:\n  - name: t\n    region: eu-west-1\n    log_groups: [/a, /b]\n    poll_interval: 30s\n",
        );
        let c = read(&args, &web::Edge::plain()).unwrap();
        assert_eq!(c.targets[0].groups, vec!["/a", "/b"]);
        assert_eq!(c.targets[0].poll_interval.as_secs(), 7);
        assert_eq!(c.limits.max_users_per_server, 3);
    }

    #[test]
    fn every_problem_of_a_bad_file_is_listed_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        // (file text, what the problems must mention)
        let table: &[(&str, &[&str])] = &[
            ("targets: [", &["config.file"]),
            (
                "limits:\n  max_users_per_server: 0\ntargets:\n  - region: eu-west-1\n    poll_interval: soon\n    colour: blue\n",
                &[
                    "limits.max_users_per_server",
                    "targets[0].poll_interval",
                    "targets[0].colour: unknown key",
                ],
            ),
        ];
        for (text, want) in table {
            let p = write(dir.path(), "c.yaml", text);
            let problems = read(&args_for(&p), &web::Edge::plain()).unwrap_err();
            for w in *want {
                assert!(
                    problems.iter().any(|l| l.contains(w)),
                    "input {text:?}: {w:?} missing from {problems:?}"
                );
            }
        }
        let missing = dir.path().join("gone.yaml");
        let problems = read(&args_for(&missing), &web::Edge::plain()).unwrap_err();
        assert!(problems[0].contains("cannot read"), "{problems:?}");
    }

    #[test]
    fn a_bad_web_config_is_a_problem_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.yaml", BASE);
        let w = write(dir.path(), "web.yml", "basic_auth_users: {}\n");
        let edge = web::Edge::load(&w).unwrap();
        assert!(read(&args_for(&p), &edge).is_ok());
        write(
            dir.path(),
            "web.yml",
            "basic_auth_users: {}\nbogus_key: 1\n",
        );
        let problems = read(&args_for(&p), &edge).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|l| l.starts_with("web config file") && l.contains("bogus_key")),
            "{problems:?}"
        );
        // Both files bad: both listed.
        write(dir.path(), "c.yaml", "webb: 1\n");
        let problems = read(&args_for(&p), &edge).unwrap_err();
        assert!(
            problems.iter().any(|l| l.starts_with("webb")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|l| l.contains("bogus_key")),
            "{problems:?}"
        );
    }

    #[test]
    fn restart_only_keys_are_named_and_kept_as_they_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.yaml", BASE);
        let running = read(&args_for(&p), &web::Edge::plain()).unwrap();
        write(
            dir.path(),
            "c.yaml",
            "web:\n  listen_address: 127.0.0.1:1234\n  enable_lifecycle: true\nstate:\n  path: /tmp/elsewhere.json\nlimits:\n  max_ids: 5\ntargets:\n  - name: t\n    region: eu-west-1\n    log_groups: [/a, /b]\n",
        );
        let new = read(&args_for(&p), &web::Edge::plain()).unwrap();
        assert_eq!(
            restart_only_changes(&running, &new),
            vec!["web.listen_address", "state.path"]
        );
        let kept = keep_restart_only(&running, new);
        assert_eq!(kept.listen_addresses, running.listen_addresses);
        assert_eq!(kept.state_path, running.state_path);
        // What a reload applies is taken.
        assert_eq!(kept.limits.max_ids, 5);
        assert!(kept.web_enable_lifecycle);
        assert_eq!(kept.targets[0].groups, vec!["/a", "/b"]);
        assert!(restart_only_changes(&running, &kept).is_empty());
    }
}

//! Runs the app in-process through its builder, with only the CloudWatch
//! Logs source, against a real moto server (or the fault proxy in front of
//! it), so the source's guarantees are tested with the real ingest boundary,
//! pipeline and metrics. Tests read the metrics through the same registry `/metrics`
//! renders.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_transfer_exporter::app::{App, Running};
use aws_transfer_exporter::cli::ServeArgs;
use aws_transfer_exporter::config;
use aws_transfer_exporter::metrics::{self, Metrics};
use aws_transfer_exporter::source::{Sources, TargetSpec};
use prometheus::Registry;

use crate::support::REGION;

/// A target with test-friendly defaults: fast polls, a generous budget.
pub fn target(endpoint: &str, prefixes: &[&str], groups: &[&str]) -> TargetSpec {
    TargetSpec {
        name: "test".to_owned(),
        region: REGION.to_owned(),
        endpoint_url: Some(endpoint.to_owned()),
        role_arn: None,
        group_prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        initial_lookback: Duration::from_secs(3600),
        late_arrival_window: Duration::from_secs(60),
        poll_interval: Duration::from_millis(500),
        discovery_interval: Duration::from_secs(2),
        page_limit: 10_000,
        api_rate_per_second: 50.0,
        // Short sweeps keep tests short; the reach defaults to the
        // window plus the sweep interval.
        overlap_floor: Duration::from_millis(500),
        sweep_interval: Duration::from_secs(2),
        sweep_reach: None,
    }
}

pub struct Harness {
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    /// The app's HTTP listener (`/metrics` there runs the scrape hooks).
    pub address: SocketAddr,
    running: Option<Running>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    pub fn start(targets: Vec<TargetSpec>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut h = Harness::start_at(targets, path);
        h._dir = Some(dir);
        h
    }

    /// Starts the app (through its builder, as `main` does) with only the
    /// CloudWatch source: no inventory, no probe, the state file at
    /// `state_path` (kept by the caller).
    pub fn start_at(targets: Vec<TargetSpec>, state_path: PathBuf) -> Harness {
        crate::support::fake_env();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let args = ServeArgs {
            listen_addresses: vec!["127.0.0.1:0".into()],
            aws_region: Some(REGION.into()),
            ..Default::default()
        };
        let raw = config::parse_yaml("inventory:\n  enabled: false\nprobe:\n  enabled: false\n")
            .expect("yaml");
        let mut cfg = config::build(raw, &args, None).expect("config");
        cfg.targets = targets;
        cfg.state_path = state_path;
        cfg.state_flush_interval = Duration::from_millis(200);
        let running = rt.block_on(App::new(cfg).start()).expect("app starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while running.sources().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "sources did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Harness {
            metrics: running.metrics().clone(),
            registry: running.registry().clone(),
            address: running.address(),
            running: Some(running),
            rt: Some(rt),
            _dir: None,
        }
    }

    /// The running CloudWatch source.
    pub fn sources(&self) -> Arc<Sources> {
        self.running
            .as_ref()
            .and_then(Running::sources)
            .expect("sources run until the harness stops")
    }

    /// Stops polling, waits for the tasks, writes the state file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Stops polling but keeps the metrics readable (for exact assertions).
    pub fn halt(&mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let (Some(rt), Some(running)) = (self.rt.take(), self.running.take()) {
            let stopped = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(15), running.shutdown()).await
            });
            assert!(
                matches!(stopped, Ok(Ok(_))) || std::thread::panicking(),
                "app did not stop cleanly: {stopped:?}"
            );
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// The registry rendered directly: the counters, without the gauges
    /// set at scrape time (see [`Self::scrape`]).
    pub fn render(&self) -> String {
        metrics::render(&self.registry)
    }

    /// `GET /metrics` from the app's listener: what Prometheus sees,
    /// including the gauges computed when scraped (lag, time since the last
    /// successful poll).
    pub fn scrape(&self) -> String {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let url = format!("http://{}/metrics", self.address);
        agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .expect("read /metrics")
    }

    /// `aws_transfer_events_total{server_id, activity="CONNECTED"}`: how
    /// many test events the pipeline counted for `server`.
    pub fn connected(&self, server: &str) -> u64 {
        self.metrics
            .events
            .with_label_values(&[server, "CONNECTED"])
            .get()
    }

    pub fn read(&self, group: &str) -> u64 {
        self.metrics.events_read.with_label_values(&[group]).get()
    }

    pub fn duplicates(&self, group: &str) -> u64 {
        self.metrics
            .events_duplicate
            .with_label_values(&[group])
            .get()
    }

    pub fn late(&self, group: &str) -> u64 {
        self.metrics.events_late.with_label_values(&[group]).get()
    }

    pub fn api(&self, operation: &str, outcome: &str) -> u64 {
        self.metrics
            .api_calls
            .with_label_values(&[operation, outcome])
            .get()
    }

    /// Successful polls of `group` so far (count of the poll histogram).
    pub fn polls(&self, group: &str) -> u64 {
        self.metrics
            .poll_duration
            .with_label_values(&[group])
            .get_sample_count()
    }

    /// Waits until `group` has completed `n` more successful polls.
    pub fn wait_polls(&self, group: &str, n: u64, timeout: Duration) {
        let start = self.polls(group);
        crate::support::wait_until(&format!("{n} more polls of {group}"), timeout, || {
            (self.polls(group) >= start + n).then_some(())
        });
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A server id no other test uses (server ids label the product metrics).
pub fn server_id() -> String {
    let n: u64 = rand::random::<u64>() & 0x0fff_ffff_ffff_ffff;
    format!("s-{n:017x}")
}

/// `n` CONNECTED events for `server`, stamped from `start_ms` on, `step_ms` apart.
pub fn connected_events(server: &str, n: usize, start_ms: i64, step_ms: i64) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            (
                start_ms + i as i64 * step_ms,
                crate::support::logs::shapes::connected(
                    server,
                    &format!("u{}", i % 7),
                    &format!("sess{i}"),
                ),
            )
        })
        .collect()
}

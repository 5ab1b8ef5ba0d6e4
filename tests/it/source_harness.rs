//! Drives the CloudWatch Logs source (`source::Sources`) directly against a
//! real moto server (or the fault proxy in front of it), with a real
//! pipeline and metrics, so the source's guarantees are tested at its own
//! boundary. Tests read the metrics through the same registry `/metrics`
//! renders.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use aws_transfer_exporter::metrics::{self, Limits, Metrics};
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};
use aws_transfer_exporter::source::{Sources, TargetSpec};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::{FAKE_AWS_ENV, REGION};

/// The SDK's default chain reads credentials from the environment: give the
/// test process the fake ones (and never the metadata endpoint) once.
fn fake_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in FAKE_AWS_ENV {
            std::env::set_var(k, v);
        }
    });
}

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
    }
}

pub struct Harness {
    pub sources: Sources,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    cancel: CancellationToken,
    tracker: TaskTracker,
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

    /// Starts with the state file at `state_path` (kept by the caller).
    pub fn start_at(targets: Vec<TargetSpec>, state_path: PathBuf) -> Harness {
        fake_env();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new();
        let metrics = Arc::new(Metrics::new(&registry, Limits::default()));
        let pipeline = Arc::new(Mutex::new(Pipeline::new(
            metrics.clone(),
            PipelineConfig::default(),
        )));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let sources = rt
            .block_on(Sources::start(
                targets,
                state_path,
                Duration::from_millis(200),
                pipeline,
                metrics.clone(),
                &tracker,
                cancel.clone(),
            ))
            .expect("sources start");
        Harness {
            sources,
            metrics,
            registry,
            cancel,
            tracker,
            rt: Some(rt),
            _dir: None,
        }
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
        if let Some(rt) = self.rt.take() {
            self.cancel.cancel();
            self.tracker.close();
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
                let _ = self.sources.flush_state().await;
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    pub fn render(&self) -> String {
        metrics::render(&self.registry)
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

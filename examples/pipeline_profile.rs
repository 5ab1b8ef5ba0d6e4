//! Runs the pipeline over the synthetic corpus once, for profilers:
//!
//!     cargo build --release --example pipeline_profile
//!     valgrind --tool=callgrind target/release/examples/pipeline_profile 20000 [passes]
//!
//! With several passes over the same corpus the later ones show the steady
//! state (every label series exists): subtract a 1-pass profile from a
//! 2-pass one to see it alone.
//!
//! With a third argument `serde`, runs the criterion bench's reference
//! instead (bare `serde_json::Value` parsing of the same messages), so the
//! two can be compared in instructions per event:
//!
//!     valgrind --tool=callgrind target/release/examples/pipeline_profile 20000 3 serde

use std::sync::Arc;

use aws_transfer_exporter::corpus;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let passes: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let reference = std::env::args().nth(3).as_deref() == Some("serde");
    let events = corpus::mixed(n, 42);
    let reg = prometheus::Registry::new();
    let mut p = Pipeline::new(
        Arc::new(Metrics::new(&reg, Limits::default())),
        PipelineConfig::default(),
    );
    let start = std::time::Instant::now();
    let mut failures = 0usize;
    for _ in 0..passes {
        for e in &events {
            if reference {
                let v = serde_json::from_str::<serde_json::Value>(&e.message).ok();
                failures += usize::from(std::hint::black_box(v).is_none());
            } else {
                failures += usize::from(p.process(e).cause.is_some());
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} events x {passes} passes, {failures} failures, {:.0} events/s",
        (n * passes) as f64 / secs
    );
}

//! What one state write costs, as a scrape (and the periodic flush) does
//! it: build the state from a snapshot (every group's progress, every
//! counter series), serialize it, and write it durably (temp file, fsync,
//! rename, fsync the directory) with the real `FileStore`.
//!
//! Progress per group: `IDS` remembered event ids (56-digit ids, as AWS
//! sends them) and one slice count per minute of the late-arrival window
//! (defaults: 300 ids, one event per second over the default 5-minute
//! window). Counters: the exporter's metrics with `SERIES` error series.
//!
//! Prints one `name value unit` line per figure. Usage:
//! `state_write DIR [IDS]`; DIR is where the file goes (on the disk the
//! daemon would use: the fsync is most of the cost).

use std::collections::BTreeMap;
use std::time::Instant;

use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::source::checkpoint::GroupProgress;
use aws_transfer_exporter::state::{FileStore, StateFile, StateStore, STATE_VERSION};
use prometheus::Registry;

const ROUNDS: usize = 10;

fn metrics_with(series: usize) -> Metrics {
    let m = Metrics::new(&Registry::new(), Limits::default());
    let causes = [
        ("auth", "unknown_user"),
        ("auth", "key_mismatch"),
        ("iam", "access_denied"),
        ("storage", "bucket_not_found"),
    ];
    for i in 0..series {
        let (cat, cause) = causes[i % causes.len()];
        m.errors
            .with_label_values(&[
                &format!("s-{:017x}", i / 500),
                &format!("user{:04}", i % 500),
                cat,
                cause,
            ])
            .inc_by(i as u64 + 1);
    }
    m
}

fn progress(ids: usize, now_ms: i64) -> GroupProgress {
    let mut p = GroupProgress::new(now_ms, 3_600_000);
    p.checkpoint_ms = now_ms;
    for i in 0..ids {
        let ts = now_ms - 300_000 + (i as i64 * 300_000 / ids.max(1) as i64);
        p.seen
            .insert(format!("{:056}", 3.7e55 as u128 / 7 + i as u128 * 7919), ts);
    }
    p.swept_to_ms = Some(now_ms - 300_000);
    p.kept_from_ms = Some(now_ms - 360_000);
    p.newest_event_ms = Some(now_ms);
    p
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: state_write DIR [IDS]"));
    let ids: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    std::fs::create_dir_all(&dir).expect("create DIR");
    let path = dir.join("state-write-bench.json");
    let store = FileStore::new(&path);
    let now_ms = 1_800_000_000_000;
    for (groups, series) in [(10usize, 0usize), (10, 100_000), (1000, 0), (1000, 100_000)] {
        let metrics = metrics_with(series);
        let p = progress(ids, now_ms);
        let (mut build, mut write) = (0.0f64, 0.0f64);
        let mut bytes = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let snap = metrics.snapshot();
            let groups_map: BTreeMap<String, GroupProgress> = (0..groups)
                .map(|g| (format!("/aws/transfer/s-{g:017x}"), p.clone()))
                .collect();
            let mut parts = BTreeMap::new();
            parts.insert(
                aws_transfer_exporter::state::CLOUDWATCH_SLOT.to_owned(),
                serde_json::json!({ "default": serde_json::to_value(groups_map).unwrap() }),
            );
            let mut state = StateFile {
                version: STATE_VERSION,
                saved_at_ms: now_ms,
                journal_epoch: 0,
                targets: BTreeMap::new(),
                parts,
                last_sessions: Vec::new(),
                counter_families: snap.saved_counters(),
                counters: Vec::new(),
            };
            build += t.elapsed().as_secs_f64();
            let t = Instant::now();
            store.save(&mut state).expect("write");
            write += t.elapsed().as_secs_f64();
            bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
        let tag = format!("groups={groups},series={series},ids_per_group={ids}");
        println!(
            "state_build{{{tag}}} {:.2} ms",
            build * 1000.0 / ROUNDS as f64
        );
        println!(
            "state_write{{{tag}}} {:.2} ms",
            write * 1000.0 / ROUNDS as f64
        );
        println!("state_file{{{tag}}} {:.0} KiB", bytes as f64 / 1024.0);
    }
    let _ = std::fs::remove_file(&path);
}

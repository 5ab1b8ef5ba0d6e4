//! What a state write costs per scrape, through the real `Persister` and
//! `FileStore`: a whole write (a process's first, and each compaction of
//! the journal) against the journal records that every later scrape
//! appends (only what changed since the scrape before).
//!
//! Model, per configuration (groups × counter series): every group gets
//! `RATE` events per second with AWS-shaped 56-digit ids, and a scrape
//! comes every `SCRAPE_S` seconds; between scrapes each group admits its
//! new events and completes a poll (checkpoint moves, old ids are
//! forgotten, exactly as the poller does through `GroupProgress`), and 1 %
//! of the counter series move. Groups run for 8 simulated minutes first
//! so the remembered ids are at their steady state (~the sweep reach plus
//! a poll interval of events). Then: one whole write, `ROUNDS` scrapes
//! (journal records; the compactions the journal asks for, done as the
//! periodic flush does them, between scrapes, are timed apart), the file
//! sizes, the time the next start takes to load the file and fold its
//! journal, and that next life's first write (a record when the journal it
//! loaded is intact).
//!
//! Prints one `name value unit` line per figure. Usage:
//! `state_write DIR [ROUNDS]`; DIR is where the files go (on the disk the
//! daemon would use: the fsync is much of the cost).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_transfer_exporter::ingest::Ingest;
use aws_transfer_exporter::metrics::{IntCounter, Limits, Metrics};
use aws_transfer_exporter::persist::{Persister, Progress, Saved};
use aws_transfer_exporter::pipeline::PipelineConfig;
use aws_transfer_exporter::source::checkpoint::{GroupProgress, ReadKind, Timing};
use aws_transfer_exporter::state::{journal_path, FileStore, StateStore, CLOUDWATCH_SLOT};
use prometheus::Registry;

const RATE: i64 = 1;
const SCRAPE_S: i64 = 15;

/// The defaults: W 5 min, floor 2 s, P 1 min, R 6 min.
const TIMING: Timing = Timing {
    late_window_ms: 300_000,
    overlap_floor_ms: 2_000,
    sweep_interval_ms: 60_000,
    sweep_reach_ms: 360_000,
};

/// The CloudWatch part's shape: one target, every group's progress, whole
/// or as patches (as `source::SavedProgress` saves them).
struct Groups(Vec<(String, Mutex<GroupProgress>)>);

impl Progress for Groups {
    fn slot(&self) -> &'static str {
        CLOUDWATCH_SLOT
    }
    fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value {
        let mut guards: Vec<_> = self.0.iter().map(|(_, p)| p.lock().unwrap()).collect();
        inner();
        let mut groups = serde_json::Map::new();
        for ((name, _), p) in self.0.iter().zip(&mut guards) {
            p.mark_saved();
            groups.insert(name.clone(), serde_json::to_value(&**p).unwrap());
        }
        serde_json::json!({ "default": groups })
    }
    fn save_changes_under(&self, inner: &mut dyn FnMut()) -> Saved {
        let mut guards: Vec<_> = self.0.iter().map(|(_, p)| p.lock().unwrap()).collect();
        inner();
        let mut groups = serde_json::Map::new();
        for ((name, _), p) in self.0.iter().zip(&mut guards) {
            if let Some(patch) = p.take_patch() {
                groups.insert(name.clone(), patch);
            }
        }
        Saved::Patch(serde_json::json!({ "default": groups }))
    }
}

fn counters(m: &Metrics, series: usize) -> Vec<IntCounter> {
    let causes = [
        ("auth", "unknown_user"),
        ("auth", "key_mismatch"),
        ("iam", "access_denied"),
        ("storage", "bucket_not_found"),
    ];
    (0..series)
        .map(|i| {
            let (cat, cause) = causes[i % causes.len()];
            let c = m.errors.with_label_values(&[
                &format!("s-{:017x}", i / 500),
                &format!("user{:04}", i % 500),
                cat,
                cause,
            ]);
            c.inc_by(i as u64 + 1);
            c
        })
        .collect()
}

/// `SCRAPE_S` seconds of events for every group, then a completed poll.
fn advance(groups: &Groups, now_ms: i64, next_id: &mut u128) {
    for (_, p) in &groups.0 {
        let mut p = p.lock().unwrap();
        let w = p.window(now_ms, &TIMING);
        for k in 0..SCRAPE_S * RATE {
            *next_id += 7919;
            let ts = now_ms - SCRAPE_S * 1000 + k * 1000 / RATE;
            p.admit(&w, &format!("{:056}", *next_id), ts, Some(ts + 400), None);
        }
        p.complete(&w, ReadKind::Poll, now_ms, &TIMING);
        if let Some(s) = p.sweep_due(now_ms, &TIMING) {
            p.complete(&s, ReadKind::Sweep, now_ms, &TIMING);
        }
    }
}

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: state_write DIR [ROUNDS]"));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    std::fs::create_dir_all(&dir).expect("create DIR");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (n_groups, series) in [(10usize, 0usize), (10, 100_000), (1000, 0), (1000, 100_000)] {
        let path = dir.join("state-write-bench.json");
        let journal = journal_path(&path);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&journal);
        let metrics = Arc::new(Metrics::new(&Registry::new(), Limits::default()));
        let handles = counters(&metrics, series);
        let ingest = Arc::new(Ingest::new(metrics.clone(), PipelineConfig::default()));
        let store = Arc::new(FileStore::new(&path));
        let persist = Persister::load(store.clone(), ingest, metrics.clone());
        let mut now_ms = 1_800_000_000_000i64;
        let groups = Arc::new(Groups(
            (0..n_groups)
                .map(|g| {
                    (
                        format!("/aws/transfer/s-{g:017x}"),
                        Mutex::new(GroupProgress::new(now_ms, 600_000)),
                    )
                })
                .collect(),
        ));
        let mut next_id = 3.7e55 as u128 / 7;
        for _ in 0..(8 * 60 / SCRAPE_S) {
            now_ms += SCRAPE_S * 1000;
            advance(&groups, now_ms, &mut next_id);
        }
        persist.register(groups.clone());
        let ids: usize = groups
            .0
            .iter()
            .map(|(_, p)| p.lock().unwrap().seen.len())
            .sum();

        let t = Instant::now();
        rt.block_on(persist.scrape());
        let whole_ms = t.elapsed().as_secs_f64() * 1000.0;
        let base_bytes = size(&path);

        let (mut record_ms, mut records, mut record_bytes) = (0.0f64, 0usize, 0u64);
        let (mut compact_ms, mut compactions) = (0.0f64, 0usize);
        let mut total_bytes = 0u64;
        for round in 0..rounds {
            now_ms += SCRAPE_S * 1000;
            advance(&groups, now_ms, &mut next_id);
            for c in handles.iter().skip(round % 100).step_by(100) {
                c.inc();
            }
            let journal_before = size(&journal);
            let t = Instant::now();
            rt.block_on(persist.scrape());
            record_ms += t.elapsed().as_secs_f64() * 1000.0;
            records += 1;
            let grew = size(&journal).saturating_sub(journal_before);
            record_bytes += grew;
            total_bytes += grew;
            // The periodic flush folds a heavy journal in (scrapes never wait
            // for that unless they arrive during it).
            if store.wants_compaction() {
                let t = Instant::now();
                rt.block_on(persist.flush()).expect("compaction");
                compact_ms += t.elapsed().as_secs_f64() * 1000.0;
                compactions += 1;
                total_bytes += size(&path);
            }
        }
        // What the next start reads: the base with the journal folded in.
        let journal_bytes = size(&journal);
        let t = Instant::now();
        let loaded = FileStore::new(&path).load();
        let load_ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(loaded.parts.contains_key(CLOUDWATCH_SLOT));
        drop(loaded);
        // The next life: load (counters resumed), restore the groups from
        // what was loaded, a poll interval of events, then its first scrape.
        // With the journal intact it appends a record instead of writing
        // the whole state.
        drop(persist);
        let metrics2 = Arc::new(Metrics::new(&Registry::new(), Limits::default()));
        let ingest2 = Arc::new(Ingest::new(metrics2.clone(), PipelineConfig::default()));
        let store2 = Arc::new(FileStore::new(&path));
        let persist2 = Persister::load(store2.clone(), ingest2, metrics2);
        let continued = !store2.wants_whole();
        let slot = persist2.saved(CLOUDWATCH_SLOT).expect("saved groups");
        let groups2 = Arc::new(Groups(
            groups
                .0
                .iter()
                .map(|(name, _)| {
                    let mut p: GroupProgress =
                        serde_json::from_value(slot["default"][name].clone()).expect("a group");
                    p.prune();
                    (name.clone(), Mutex::new(p))
                })
                .collect(),
        ));
        now_ms += SCRAPE_S * 1000;
        advance(&groups2, now_ms, &mut next_id);
        persist2.register(groups2);
        let journal_before = size(&journal);
        let t = Instant::now();
        rt.block_on(persist2.scrape());
        let restart_ms = t.elapsed().as_secs_f64() * 1000.0;
        let restart_bytes = if continued {
            size(&journal).saturating_sub(journal_before)
        } else {
            size(&path)
        };
        drop(persist2);
        let tag = format!("groups={n_groups},series={series},remembered_ids={ids}");
        println!(
            "state_first_write_after_restart{{{tag}}} {restart_ms:.2} ms, {:.1} KiB ({}; whole write {whole_ms:.2} ms: {:.1} x)",
            restart_bytes as f64 / 1024.0,
            if continued { "a journal record" } else { "whole" },
            whole_ms / restart_ms
        );
        println!(
            "state_load{{{tag}}} {load_ms:.2} ms (file {:.0} KiB + journal {:.0} KiB)",
            size(&path) as f64 / 1024.0,
            journal_bytes as f64 / 1024.0
        );
        println!("state_whole_write{{{tag}}} {whole_ms:.2} ms");
        println!(
            "state_whole_file{{{tag}}} {:.0} KiB",
            base_bytes as f64 / 1024.0
        );
        if records > 0 {
            println!(
                "state_journal_write{{{tag}}} {:.2} ms",
                record_ms / records as f64
            );
            println!(
                "state_journal_record{{{tag}}} {:.1} KiB",
                record_bytes as f64 / records as f64 / 1024.0
            );
            println!(
                "state_journal_speedup{{{tag}}} {:.1} x",
                whole_ms / (record_ms / records as f64)
            );
        }
        println!(
            "state_scrapes{{{tag}}} {rounds} scrapes ({records} records, {compactions} whole)"
        );
        println!(
            "state_bytes_per_scrape{{{tag}}} {:.1} KiB (whole file {:.0} KiB)",
            total_bytes as f64 / rounds as f64 / 1024.0,
            base_bytes as f64 / 1024.0
        );
        if compactions > 0 {
            println!(
                "state_compaction_write{{{tag}}} {:.2} ms",
                compact_ms / compactions as f64
            );
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&journal);
    }
}

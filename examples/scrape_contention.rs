//! Does a scrape stall ingestion? One thread counts the realistic corpus
//! through the ingest boundary (as a source does) for a few seconds, first
//! alone, then while a second thread scrapes back to back the way the
//! daemon answers `/metrics`: pause counting and copy every value
//! (`Ingest::quiesced` + `Metrics::copy_values`), then, with counting
//! resumed, order the series, build the state file's counter families and
//! serialize them (the write itself is `examples/state_write.rs`), and
//! encode the text exposition. The metrics hold `SERIES` error series
//! besides what the corpus creates.
//!
//! Three runs: alone, scraping once a second (a busy Prometheus pair
//! scrapes every 15 s or so: this is the stress case), and scraping back
//! to back (the worst case: on two cores the scraper then takes a core's
//! share of CPU from everything else). `counting_pause` is how long counting
//! was paused for the copy; `max_batch` the longest a batch of 1,000 events
//! took to count (what a source waits).
//!
//! Prints one `name value unit` line per figure (scripts/bench-summary.sh
//! collects them). Usage: `scrape_contention [SERIES] [SECONDS]`
//! (defaults 100000 and 4).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_transfer_exporter::corpus;
use aws_transfer_exporter::ingest::Ingest;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::pipeline::PipelineConfig;
use prometheus::Registry;

const BATCH: usize = 1000;

struct Run {
    events_per_s: f64,
    max_submit_ms: f64,
    scrapes: u64,
    max_pause_ms: f64,
    mean_scrape_ms: f64,
}

fn run(
    ingest: &Arc<Ingest>,
    events: &[aws_transfer_exporter::event::RawEvent],
    secs: f64,
    scrape_every: Option<Duration>,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = scrape_every.map(|every| {
        let (ingest, stop) = (ingest.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut n, mut max_pause, mut total) = (0u64, Duration::ZERO, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ((copy, pause), _sessions) = ingest.quiesced(|| {
                    let p = Instant::now();
                    (ingest.metrics().copy_values(), p.elapsed())
                });
                max_pause = max_pause.max(pause);
                let snap = copy.finish();
                let saved = serde_json::to_vec(&snap.saved_counters()).expect("serializes");
                let text = snap.text();
                std::hint::black_box((saved.len(), text.len()));
                let took = t.elapsed();
                total += took;
                n += 1;
                let deadline = Instant::now() + every.saturating_sub(took);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            (n, max_pause, total)
        })
    });
    let start = Instant::now();
    let (mut counted, mut max_submit) = (0usize, Duration::ZERO);
    'outer: loop {
        for chunk in events.chunks(BATCH) {
            let t = Instant::now();
            ingest.submit(chunk);
            max_submit = max_submit.max(t.elapsed());
            counted += chunk.len();
            if start.elapsed().as_secs_f64() >= secs {
                break 'outer;
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (scrapes, max_pause, total) =
        scraper
            .map(|h| h.join().expect("scraper"))
            .unwrap_or((0, Duration::ZERO, Duration::ZERO));
    Run {
        events_per_s: counted as f64 / took,
        max_submit_ms: max_submit.as_secs_f64() * 1000.0,
        scrapes,
        max_pause_ms: max_pause.as_secs_f64() * 1000.0,
        mean_scrape_ms: if scrapes > 0 {
            total.as_secs_f64() * 1000.0 / scrapes as f64
        } else {
            0.0
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let series: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4.0);
    let metrics = Arc::new(Metrics::new(&Registry::new(), Limits::default()));
    let causes = [
        ("auth", "unknown_user"),
        ("auth", "key_mismatch"),
        ("iam", "access_denied"),
        ("storage", "bucket_not_found"),
    ];
    for i in 0..series {
        let (cat, cause) = causes[i % causes.len()];
        metrics
            .errors
            .with_label_values(&[
                &format!("s-{:017x}", i / 500),
                &format!("user{:04}", i % 500),
                cat,
                cause,
            ])
            .inc();
    }
    let ingest = Arc::new(Ingest::new(metrics, PipelineConfig::default()));
    let events = corpus::mixed(100_000, 42);
    // Warm up: the corpus' own series and caches exist, as in a running daemon.
    ingest.submit(&events);
    let alone = run(&ingest, &events, secs, None);
    let every_s = run(&ingest, &events, secs, Some(Duration::from_secs(1)));
    let back_to_back = run(&ingest, &events, secs, Some(Duration::ZERO));
    let p = |name: &str, v: f64, unit: &str| println!("{name} {v:.3} {unit}");
    p("scrape_contention_series", series as f64, "series");
    p("ingest_alone", alone.events_per_s, "events/s");
    p("ingest_max_batch_alone", alone.max_submit_ms, "ms");
    for (tag, r) in [
        ("scrape_every_1s", &every_s),
        ("scrape_back_to_back", &back_to_back),
    ] {
        p(&format!("ingest_{tag}"), r.events_per_s, "events/s");
        p(
            &format!("ingest_{tag}_ratio"),
            r.events_per_s / alone.events_per_s,
            "x",
        );
        p(&format!("ingest_max_batch_{tag}"), r.max_submit_ms, "ms");
        p(&format!("{tag}_scrapes"), r.scrapes as f64, "scrapes");
        p(&format!("{tag}_mean_scrape"), r.mean_scrape_ms, "ms");
        p(&format!("{tag}_max_counting_pause"), r.max_pause_ms, "ms");
    }
}

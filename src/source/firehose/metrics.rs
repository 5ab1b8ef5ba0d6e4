//! The receiver's self-metrics, registered on the registry it is given (no
//! global registry). Every label value comes from a fixed set named here,
//! so nothing a sender writes can create a series.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// `outcome` values of `..._firehose_requests_total`.
pub const REQUEST_OUTCOMES: &[&str] = &[
    "ok",
    "unauthorized",
    "bad_request",
    "too_large",
    "unavailable",
];

/// `outcome` values of `..._firehose_records_total`. `empty` is a record
/// with no data (allowed by the contract; nothing to count).
pub const RECORD_OUTCOMES: &[&str] = &["data", "control", "undecodable", "duplicate", "empty"];

/// `kind` values of the dedup families.
pub const DEDUP_KINDS: &[&str] = &["request", "event"];

/// `encoding` values of `..._firehose_received_bytes_total`.
pub const ENCODINGS: &[&str] = &["compressed", "decompressed"];

/// Request duration buckets, seconds: a small request takes a millisecond,
/// a 64 MiB one a few seconds; Firehose gives up after 180 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0,
];

/// Every family of the receiver.
#[derive(Clone)]
pub struct FirehoseMetrics {
    /// `{outcome}` one per request answered on `POST /firehose`.
    pub requests: IntCounterVec,
    /// `{outcome}` one per record of an authenticated, well-formed request.
    pub records: IntCounterVec,
    /// Events handed to the ingest boundary (after deduplication).
    pub events: IntCounter,
    /// `{encoding}` body bytes as received (`compressed`, whatever the
    /// encoding) and subscription JSON after all decoding (`decompressed`).
    pub bytes: IntCounterVec,
    /// Time from the request's arrival to the answer.
    pub duration: Histogram,
    /// `{kind}` requests (request id seen) and events (event id seen) not
    /// counted again.
    pub dedup_hits: IntCounterVec,
    /// `{kind}` ids remembered now (bounded by the configured sizes).
    pub dedup_entries: IntGaugeVec,
}

impl FirehoseMetrics {
    /// Registers every family on `reg`; label series of the fixed sets are
    /// created at zero so rates work from the first scrape. Panics only on
    /// a programming error (a duplicate or malformed definition).
    pub fn new(reg: &Registry) -> FirehoseMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            reg.register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let m = FirehoseMetrics {
            requests: counter(
                "aws_transfer_exporter_firehose_requests_total",
                "Firehose delivery requests answered, by outcome (ok|unauthorized|bad_request|too_large|unavailable).",
                &["outcome"],
            ),
            records: counter(
                "aws_transfer_exporter_firehose_records_total",
                "Firehose records of accepted requests, by outcome (data|control|undecodable|duplicate|empty).",
                &["outcome"],
            ),
            events: {
                let c = IntCounter::new(
                    "aws_transfer_exporter_firehose_events_total",
                    "Log events received through Firehose and handed to the pipeline (duplicates excluded).",
                )
                .expect("valid metric definition");
                reg.register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            },
            bytes: counter(
                "aws_transfer_exporter_firehose_received_bytes_total",
                "Bytes received through Firehose: request bodies as sent (compressed) and subscription JSON after decoding (decompressed).",
                &["encoding"],
            ),
            duration: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "aws_transfer_exporter_firehose_request_duration_seconds",
                        "Time to answer a Firehose delivery request.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                )
                .expect("valid metric definition");
                reg.register(Box::new(h.clone()))
                    .expect("metric registered once");
                h
            },
            dedup_hits: counter(
                "aws_transfer_exporter_firehose_dedup_hits_total",
                "Firehose requests (kind=request) and events (kind=event) already counted, so not counted again.",
                &["kind"],
            ),
            dedup_entries: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "aws_transfer_exporter_firehose_dedup_entries",
                        "Request ids and event ids the Firehose receiver remembers now (bounded).",
                    ),
                    &["kind"],
                )
                .expect("valid metric definition");
                reg.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
        };
        for o in REQUEST_OUTCOMES {
            m.requests.with_label_values(&[*o]);
        }
        for o in RECORD_OUTCOMES {
            m.records.with_label_values(&[*o]);
        }
        for k in DEDUP_KINDS {
            m.dedup_hits.with_label_values(&[*k]);
            m.dedup_entries.with_label_values(&[*k]);
        }
        for e in ENCODINGS {
            m.bytes.with_label_values(&[*e]);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_with_zeroed_series() {
        let reg = Registry::new();
        let _m = FirehoseMetrics::new(&reg);
        let text = crate::metrics::render(&reg);
        for line in [
            r#"aws_transfer_exporter_firehose_requests_total{outcome="too_large"} 0"#,
            r#"aws_transfer_exporter_firehose_records_total{outcome="control"} 0"#,
            r#"aws_transfer_exporter_firehose_dedup_hits_total{kind="event"} 0"#,
            "aws_transfer_exporter_firehose_events_total 0",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    }
}

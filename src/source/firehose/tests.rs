//! The receiver's request processing without a socket: contract table,
//! exactly-once, and a property test over arbitrary bodies and records
//! (no panic, dedup memories within their bounds).

use std::sync::{Arc, Mutex};

use prometheus::Registry;
use proptest::prelude::*;

use super::decode::encode;
use super::*;
use crate::metrics::{Limits, Metrics};

struct Fixture {
    rx: Receiver,
    reg: Registry,
}

fn fixture(tune: impl FnOnce(&mut FirehoseConfig)) -> Fixture {
    let reg = Registry::new();
    let metrics = Arc::new(Metrics::new(&reg, Limits::default()));
    let pipeline = Arc::new(Mutex::new(Pipeline::new(metrics, Default::default())));
    let mut cfg = FirehoseConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.allow_unauthenticated = true;
    tune(&mut cfg);
    let rx = Receiver::new(
        cfg,
        Arc::new(PipelineSink(pipeline)),
        FirehoseMetrics::new(&reg),
    )
    .unwrap();
    Fixture { rx, reg }
}

impl Fixture {
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        let text = crate::metrics::render(&self.reg);
        let want = match label {
            Some((k, v)) => format!("{name}{{{k}=\"{v}\"}} "),
            None => format!("{name} "),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&want))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn product_events(&self) -> f64 {
        let text = crate::metrics::render(&self.reg);
        text.lines()
            .filter(|l| l.starts_with("aws_transfer_events_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn connected(server: &str, user: &str) -> String {
    format!(
        r#"{{"activity-type":"CONNECTED","resource-arn":"arn:aws:transfer:eu-west-1:111122223333:server/{server}","user":"{user}","session-id":"abc"}}"#
    )
}

fn record(group: &str, ids: std::ops::Range<u32>) -> String {
    let ev: Vec<(String, i64, String)> = ids
        .map(|i| {
            (
                i.to_string(),
                1_764_000_000_000 + i as i64,
                connected("s-0123456789abcdef0", "u"),
            )
        })
        .collect();
    encode::base64(&encode::gzip(
        encode::data_message(group, "s-0123456789abcdef0/u", &ev).as_bytes(),
    ))
}

#[test]
fn events_keep_their_own_timestamps_and_ids() {
    struct Capture(Mutex<Vec<RawEvent>>);
    impl EventSink for Capture {
        fn submit(&self, events: &[RawEvent]) {
            self.0.lock().unwrap().extend_from_slice(events);
        }
    }
    let cap = Arc::new(Capture(Mutex::new(Vec::new())));
    let mut cfg = FirehoseConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.allow_unauthenticated = true;
    let rx = Receiver::new(cfg, cap.clone(), FirehoseMetrics::new(&Registry::new())).unwrap();
    let body = encode::request_body("r1", 42, &[record("/g", 7..9)]);
    let ack = rx.process(false, body.as_bytes(), "").unwrap();
    assert_eq!(ack.events, 2);
    let got = cap.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].log_group, "/g");
    assert_eq!(got[0].log_stream, "s-0123456789abcdef0/u");
    assert_eq!(got[0].event_id, "7");
    assert_eq!(
        got[0].timestamp_ms, 1_764_000_000_007,
        "the event's time, not the request's"
    );
}

#[test]
fn contract_table() {
    let f = fixture(|c| c.max_body_bytes = 4096);
    // (case, gzip body?, body, expected: Ok(events) | Err(status))
    let big = "x".repeat(5000);
    type Case<'a> = (&'a str, bool, Vec<u8>, Result<u64, u16>);
    let cases: Vec<Case> = vec![
        (
            "plain body",
            false,
            encode::request_body("a", 1, &[record("/g", 0..3)]).into_bytes(),
            Ok(3),
        ),
        (
            "gzip body",
            true,
            encode::gzip(encode::request_body("b", 1, &[record("/g", 3..5)]).as_bytes()),
            Ok(2),
        ),
        (
            "no records",
            false,
            br#"{"requestId":"c","timestamp":1,"records":[]}"#.to_vec(),
            Ok(0),
        ),
        (
            "missing timestamp is fine",
            false,
            br#"{"requestId":"d","records":[]}"#.to_vec(),
            Ok(0),
        ),
        (
            "missing requestId",
            false,
            br#"{"timestamp":1,"records":[]}"#.to_vec(),
            Err(400),
        ),
        (
            "missing records",
            false,
            br#"{"requestId":"e","timestamp":1}"#.to_vec(),
            Err(400),
        ),
        ("not json", false, b"hello".to_vec(), Err(400)),
        ("empty body", false, Vec::new(), Err(400)),
        ("gzip header, plain body", true, b"{}".to_vec(), Err(400)),
        (
            "gzip body over the cap",
            true,
            encode::gzip(big.as_bytes()),
            Err(413),
        ),
    ];
    for (case, gzip, body, want) in cases {
        let got =
            f.rx.process(gzip, &body, "")
                .map(|a| a.events)
                .map_err(|(r, _)| r.status().as_u16());
        assert_eq!(got, want, "case {case:?}");
    }
    assert_eq!(f.product_events(), 5.0);
    assert_eq!(
        f.value("aws_transfer_exporter_firehose_events_total", None),
        5.0
    );
}

#[test]
fn retried_and_repeated_requests_count_once() {
    let f = fixture(|_| {});
    let body = encode::request_body("req-1", 1, &[record("/g", 0..4), record("/h", 0..2)]);
    let a = f.rx.process(false, body.as_bytes(), "").unwrap();
    assert_eq!((a.events, a.duplicate_request), (6, false));
    let b = f.rx.process(false, body.as_bytes(), "").unwrap();
    assert_eq!(
        (b.events, b.duplicate_request, b.records_duplicate),
        (0, true, 2)
    );
    let other = encode::request_body("req-2", 1, &[record("/g", 2..6)]);
    let c = f.rx.process(false, other.as_bytes(), "").unwrap();
    assert_eq!((c.events, c.events_duplicate, c.records_data), (2, 2, 1));
    // One record with every event seen is a duplicate record.
    let d =
        f.rx.process(
            false,
            encode::request_body("req-3", 1, &[record("/h", 0..2)]).as_bytes(),
            "",
        )
        .unwrap();
    assert_eq!((d.events, d.records_duplicate, d.records_data), (0, 1, 0));
    assert_eq!(f.product_events(), 8.0);
    assert_eq!(
        f.value(
            "aws_transfer_exporter_firehose_dedup_hits_total",
            Some(("kind", "request"))
        ),
        1.0
    );
    assert_eq!(
        f.value(
            "aws_transfer_exporter_firehose_dedup_hits_total",
            Some(("kind", "event"))
        ),
        4.0
    );
    assert_eq!(
        f.value(
            "aws_transfer_exporter_firehose_records_total",
            Some(("outcome", "duplicate"))
        ),
        3.0
    );
}

#[test]
fn shutdown_after_decoding_counts_nothing() {
    let f = fixture(|_| {});
    f.rx.begin_shutdown();
    let body = encode::request_body("late", 1, &[record("/g", 0..4)]);
    let err = f.rx.process(false, body.as_bytes(), "").unwrap_err();
    assert_eq!(err.0, Reject::ShuttingDown);
    assert_eq!(err.1.as_deref(), Some("late"));
    assert_eq!(f.product_events(), 0.0);
    assert_eq!(f.rx.dedup_sizes(), (0, 0));
    assert_eq!(
        f.value(
            "aws_transfer_exporter_firehose_records_total",
            Some(("outcome", "data"))
        ),
        0.0
    );
}

#[test]
fn refuses_to_start_without_a_key_file() {
    let mut cfg = FirehoseConfig::new("127.0.0.1:0".parse().unwrap());
    let err = Receiver::new(
        cfg.clone(),
        Arc::new(PipelineSink(Arc::new(Mutex::new(Pipeline::new(
            Arc::new(Metrics::new(&Registry::new(), Limits::default())),
            Default::default(),
        ))))),
        FirehoseMetrics::new(&Registry::new()),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, FirehoseError::NoAccessKey), "{err}");
    cfg.allow_unauthenticated = true;
    cfg.max_event_ids = 0;
    assert_eq!(
        cfg.validate(),
        vec!["firehose.max_event_ids must be positive".to_owned()]
    );
}

/// Arbitrary record payloads: garbage, near-gzip, near-JSON, real messages.
fn arb_record() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| encode::base64(&b)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|mut b| {
            b.splice(0..0, [0x1f, 0x8b, 0x08]);
            encode::base64(&b)
        }),
        ("[a-z/]{0,8}", 0u32..50, 1u32..20).prop_map(|(g, start, n)| record(&format!("/{g}"), start..start + n)),
        ("[a-z/]{0,8}", any::<String>(), prop_oneof![Just("DATA_MESSAGE"), Just("CONTROL_MESSAGE"), Just("X")])
            .prop_map(|(g, m, t)| encode::base64(format!(
                r#"{{"messageType":"{t}","logGroup":"{g}","logStream":"s","logEvents":[{{"id":{},"timestamp":1,"message":{}}}]}}"#,
                m.len(), serde_json::Value::from(m)).as_bytes())),
        (any::<u32>(), 1usize..8).prop_map(|(seed, cut)| {
            let mut g = encode::gzip(encode::data_message("/g", "s", &[(seed.to_string(), 1, "m".into())]).as_bytes());
            let keep = g.len().saturating_sub(cut);
            g.truncate(keep);
            encode::base64(&g)
        }),
    ]
}

fn arb_body() -> impl Strategy<Value = (bool, Vec<u8>)> {
    prop_oneof![
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..256)
        ),
        (
            "[a-z0-9-]{0,6}",
            proptest::collection::vec(arb_record(), 0..12),
            any::<bool>()
        )
            .prop_map(|(id, recs, gz)| {
                let body = encode::request_body(&id, 1, &recs);
                if gz {
                    (true, encode::gzip(body.as_bytes()))
                } else {
                    (false, body.into_bytes())
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(500),
        .. ProptestConfig::default()
    })]

    /// Whatever arrives: no panic, an answer from the contract's set, and
    /// the dedup memories never above their bounds.
    #[test]
    fn arbitrary_requests_never_panic_and_stay_bounded(bodies in proptest::collection::vec(arb_body(), 1..16)) {
        let f = fixture(|c| {
            c.max_body_bytes = 16 * 1024;
            c.max_decompressed_bytes = 32 * 1024;
            c.max_request_ids = 4;
            c.max_event_ids = 32;
        });
        for (gzip, body) in &bodies {
            match f.rx.process(*gzip, body, "") {
                Ok(_) => {}
                Err((r, _)) => prop_assert!(matches!(r.status().as_u16(), 400 | 413 | 503), "{r:?}"),
            }
            let (reqs, evs) = f.rx.dedup_sizes();
            prop_assert!(reqs <= 4, "request ids {reqs}");
            prop_assert!(evs <= 32, "event ids {evs}");
        }
    }
}

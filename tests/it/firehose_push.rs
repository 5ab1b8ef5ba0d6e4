//! The Firehose push receiver against real parts: events written to moto's
//! CloudWatch Logs reach a Kinesis stream in moto through a subscription
//! filter (moto writes the real gzipped subscription payload there); a
//! test-side Firehose sender reads those records and delivers them exactly
//! as the HTTP endpoint contract says (batching, `Content-Encoding: gzip`,
//! headers, access key, retries that keep the request id). The receiver
//! runs in-process on 127.0.0.1 with a real pipeline and metrics registry;
//! every assertion reads the exposition a scrape would see.
//!
//! Then the fault table, each row asserted on status and counters.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_transfer_exporter::event::RawEvent;
use aws_transfer_exporter::metrics::{self, Limits, Metrics};
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};
use aws_transfer_exporter::source::firehose::decode::encode;
use aws_transfer_exporter::source::firehose::{
    serve, EventSink, FirehoseConfig, FirehoseMetrics, PipelineSink, Receiver,
};
use prometheus::Registry;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::logs::shapes;
use crate::support::{exposition, html, now_ms, unique, Logs, Moto, REGION};

const A: &str = "s-0123456789abcdef0";
const B: &str = "s-0fedcba9876543210";
pub(crate) const KEY_OLD: &str = "old-key-6f1c9a";
const KEY_NEW: &str = "new-key-0b72de";
/// Every test bounds its wait on the receiver with this.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- the rig

/// An EventSink that can be made slow once (a receiver that takes longer
/// than the sender's timeout, while still counting the request).
struct SlowOnce {
    inner: PipelineSink,
    delay: Option<Duration>,
    done: AtomicBool,
}

impl EventSink for SlowOnce {
    fn submit(&self, events: &[RawEvent]) {
        if let Some(d) = self.delay {
            if !self.done.swap(true, Ordering::AcqRel) {
                std::thread::sleep(d);
            }
        }
        self.inner.submit(events);
    }
}

/// The receiver on 127.0.0.1:0 in its own runtime, with a real pipeline.
struct Rig {
    addr: SocketAddr,
    registry: Registry,
    cancel: CancellationToken,
    rt: Option<tokio::runtime::Runtime>,
    served: Option<tokio::task::JoinHandle<()>>,
    pub receiver: Receiver,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(tune: impl FnOnce(&mut FirehoseConfig)) -> Rig {
        Rig::start_with(tune, None)
    }

    fn start_with(tune: impl FnOnce(&mut FirehoseConfig), slow: Option<Duration>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("access-keys");
        std::fs::write(&keys, format!("{KEY_OLD}\n\n  {KEY_NEW}  \n")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new();
        let metrics = Arc::new(Metrics::new(&registry, Limits::default()));
        let pipeline = Arc::new(Mutex::new(Pipeline::new(
            metrics,
            PipelineConfig::default(),
        )));
        let sink = Arc::new(SlowOnce {
            inner: PipelineSink(pipeline),
            delay: slow,
            done: AtomicBool::new(false),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = FirehoseConfig::new(addr);
        cfg.access_key_file = Some(keys);
        tune(&mut cfg);
        let receiver = Receiver::new(cfg, sink, FirehoseMetrics::new(&registry)).unwrap();
        let cancel = CancellationToken::new();
        let served = rt.spawn(serve(listener, receiver.clone(), cancel.clone()));
        Rig {
            addr,
            registry,
            cancel,
            rt: Some(rt),
            served: Some(served),
            receiver,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/firehose", self.addr)
    }

    fn render(&self) -> String {
        metrics::render(&self.registry)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        exposition::value(&self.render(), name, labels).unwrap_or(0.0)
    }

    fn requests(&self, outcome: &str) -> f64 {
        self.value(
            "aws_transfer_exporter_firehose_requests_total",
            &[("outcome", outcome)],
        )
    }

    fn records(&self, outcome: &str) -> f64 {
        self.value(
            "aws_transfer_exporter_firehose_records_total",
            &[("outcome", outcome)],
        )
    }

    fn fh_events(&self) -> f64 {
        self.value("aws_transfer_exporter_firehose_events_total", &[])
    }

    fn product_events(&self) -> f64 {
        exposition::sum(&self.render(), "aws_transfer_events_total", &[])
    }

    fn dedup(&self, kind: &str) -> f64 {
        self.value(
            "aws_transfer_exporter_firehose_dedup_hits_total",
            &[("kind", kind)],
        )
    }

    /// Cancels the listener and waits (bounded) for it to drain.
    fn stop(&mut self) {
        self.cancel.cancel();
        if let (Some(rt), Some(served)) = (self.rt.as_ref(), self.served.take()) {
            let _ = rt.block_on(async { tokio::time::timeout(WAIT, served).await });
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- Kinesis in moto

/// Kinesis through moto's JSON API with plain HTTP. moto takes the Region
/// from the (unverified) SigV4 credential scope, so a fake one is sent.
pub(crate) struct Kinesis {
    agent: ureq::Agent,
    url: String,
}

pub(crate) const ACCOUNT: &str = "123456789012";

impl Kinesis {
    pub(crate) fn new(url: &str) -> Kinesis {
        Kinesis {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(20)))
                .http_status_as_error(false)
                .build()
                .into(),
            url: url.to_owned(),
        }
    }

    fn call(&self, target: &str, body: Value) -> Value {
        let mut resp = self
            .agent
            .post(&self.url)
            .header("X-Amz-Target", format!("Kinesis_20131202.{target}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                format!("AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/kinesis/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("Kinesis {target}: {e}"));
        let status = resp.status();
        let text = resp.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "Kinesis {target}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub(crate) fn create(&self, name: &str) -> String {
        self.call(
            "CreateStream",
            serde_json::json!({"StreamName": name, "ShardCount": 1}),
        );
        format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
    }

    /// Every record's data (base64-decoded: the gzip bytes CloudWatch wrote).
    pub(crate) fn read_all(&self, name: &str) -> Vec<Vec<u8>> {
        let d = self.call("DescribeStream", serde_json::json!({"StreamName": name}));
        let shard = d["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .unwrap()
            .to_owned();
        let it = self.call(
            "GetShardIterator",
            serde_json::json!({"StreamName": name, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
        );
        let mut iter = it["ShardIterator"].as_str().unwrap().to_owned();
        let mut out = Vec::new();
        for _ in 0..100 {
            let r = self.call(
                "GetRecords",
                serde_json::json!({"ShardIterator": iter, "Limit": 10000}),
            );
            let recs = r["Records"].as_array().cloned().unwrap_or_default();
            for rec in &recs {
                use base64::Engine as _;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(rec["Data"].as_str().unwrap())
                    .unwrap();
                out.push(data);
            }
            match r["NextShardIterator"].as_str() {
                Some(next) if !recs.is_empty() => iter = next.to_owned(),
                _ => break,
            }
        }
        out
    }
}

// ---------------------------------------------------------------- the sender

/// What one delivery attempt got.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attempt {
    Status(u16),
    Timeout,
    #[allow(dead_code)] // shown in assertion messages
    Io(String),
}

/// A test-side Firehose: delivers records per the HTTP endpoint contract.
pub(crate) struct Sender {
    url: String,
    key: Option<String>,
    gzip: bool,
    timeout: Duration,
    /// Firehose starts at 1 s and doubles; scaled down for tests.
    first_backoff: Duration,
    max_attempts: usize,
    pub(crate) records_per_request: usize,
}

/// One request as it went: its id and every attempt.
#[derive(Debug)]
pub(crate) struct Delivery {
    request_id: String,
    attempts: Vec<Attempt>,
    /// The parsed 200 answer.
    answer: Option<Value>,
}

fn request_id() -> String {
    let a: u128 = rand::random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Sender {
    pub(crate) fn new(url: &str, key: Option<&str>) -> Sender {
        Sender {
            url: url.to_owned(),
            key: key.map(str::to_owned),
            gzip: true,
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_millis(50),
            max_attempts: 8,
            records_per_request: 500,
        }
    }

    fn body(&self, request_id: &str, records: &[Vec<u8>]) -> Vec<u8> {
        let data: Vec<String> = records.iter().map(|r| encode::base64(r)).collect();
        let json = encode::request_body(request_id, now_ms(), &data);
        if self.gzip {
            encode::gzip(json.as_bytes())
        } else {
            json.into_bytes()
        }
    }

    /// One attempt with the contract's headers.
    fn send_once(&self, request_id: &str, body: &[u8]) -> (Attempt, Option<Value>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent
            .post(&self.url)
            .header("X-Amz-Firehose-Protocol-Version", "1.0")
            .header("X-Amz-Firehose-Request-Id", request_id)
            .header(
                "X-Amz-Firehose-Source-Arn",
                format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/transfer-logs"),
            )
            .header("Content-Type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("X-Amz-Firehose-Access-Key", k);
        }
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let has_len = resp.headers().contains_key("content-length");
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                assert_eq!(
                    ct, "application/json",
                    "answer content type ({status} {text})"
                );
                assert!(has_len, "answer has a Content-Length");
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("answer is JSON: {e}: {text:?}"));
                assert_eq!(v["requestId"], request_id, "answer echoes the request id");
                let ts = v["timestamp"].as_i64().expect("timestamp");
                assert!((ts - now_ms()).abs() < 60_000, "timestamp in ms: {ts}");
                (Attempt::Status(status), Some(v))
            }
            Err(ureq::Error::Timeout(_)) => (Attempt::Timeout, None),
            Err(e) => (Attempt::Io(e.to_string()), None),
        }
    }

    /// Delivers one request, retrying (same id, same body) on anything but
    /// 200 and 413, with doubling backoff.
    fn deliver_request(&self, request_id: &str, records: &[Vec<u8>]) -> Delivery {
        let body = self.body(request_id, records);
        let mut d = Delivery {
            request_id: request_id.to_owned(),
            attempts: Vec::new(),
            answer: None,
        };
        let mut backoff = self.first_backoff;
        for _ in 0..self.max_attempts {
            let (a, answer) = self.send_once(request_id, &body);
            let done = matches!(a, Attempt::Status(200) | Attempt::Status(413));
            d.attempts.push(a);
            if done {
                d.answer = answer;
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        d
    }

    /// Batches the records into requests and delivers each.
    pub(crate) fn deliver(&self, records: &[Vec<u8>]) -> Vec<Delivery> {
        records
            .chunks(self.records_per_request.max(1))
            .map(|batch| self.deliver_request(&request_id(), batch))
            .collect()
    }
}

pub(crate) fn delivered(ds: &[Delivery]) -> bool {
    ds.iter()
        .all(|d| d.attempts.last() == Some(&Attempt::Status(200)))
}

// ---------------------------------------------------------------- the scenario

fn unique_server_id() -> String {
    let n: u64 = rand::random::<u64>() & 0x0fff_ffff_ffff_ffff;
    format!("s-{n:017x}")
}

struct Scenario {
    legacy_server: String,
    stream: String,
}

/// The two-server scenario of the polling end-to-end test, in both log
/// formats, written to groups subscribed to a Kinesis stream.
fn write_scenario(moto: &Moto, logs: &Logs, kinesis: &Kinesis) -> Scenario {
    let stream = unique("fh");
    let arn = kinesis.create(&stream);
    let prefix = format!("/{}/", unique("fh"));
    let structured = format!("{prefix}structured");
    let legacy_server = unique_server_id();
    let legacy = format!("/aws/transfer/{legacy_server}");
    for g in [&structured, &legacy] {
        logs.create_group(g);
        logs.block_on(
            logs.client
                .put_subscription_filter()
                .log_group_name(g)
                .filter_name("to-firehose")
                .filter_pattern("")
                .destination_arn(&arn)
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/cwl-to-kinesis"))
                .send(),
        )
        .unwrap_or_else(|e| panic!("PutSubscriptionFilter {g}: {e:?} ({})", moto.url));
    }
    let t = now_ms() - 60_000;
    let (s1, s2) = ("26315c40e111fcf04b00", "bd7b5b22d6092852d0d8");
    logs.put_new(
        &structured,
        "ERRORS",
        &[
            (t, shapes::unknown_user(A, "mallory")),
            (t + 1, shapes::unknown_user(A, "mallory")),
            (t + 2, shapes::key_mismatch(A, "jdoe")),
            (t + 3, shapes::unknown_user(B, "eve")),
        ],
    );
    logs.put_new(
        &structured,
        &format!("{A}/jdoe"),
        &[
            (t + 10, shapes::connected(A, "jdoe", s1)),
            (t + 11, shapes::access_denied(A, s1)),
            (t + 12, shapes::close_upload(A, s1, 2048)),
        ],
    );
    logs.put_new(
        &structured,
        &format!("{B}/alice"),
        &[
            (t + 20, shapes::connected(B, "alice", s2)),
            (t + 21, shapes::assume_role(B, s2)),
            (t + 22, shapes::readdir(B, s2)),
        ],
    );
    logs.put_new(
        &legacy,
        "ERRORS",
        &[(
            t + 30,
            r#"ERRORS AUTH_FAILURE Method=publickey User=no-such-user Message="The user is unrecognized" SourceIP=203.0.113.50"#.to_owned(),
        )],
    );
    let ls = "bob.0a700c01575303e3";
    logs.put_new(
        &legacy,
        ls,
        &[
            (t + 40, format!("{ls} CONNECTED SourceIP=198.51.100.7 User=bob HomeDir=/example-bucket/bob Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-bob")),
            (t + 41, format!(r#"{ls} ERROR Message="Access denied" Operation=CLOSE Path=/example-bucket/bob/in/c.csv BytesIn=27"#)),
        ],
    );
    Scenario {
        legacy_server,
        stream,
    }
}

/// (metric, labels, value) the scenario must produce, exactly.
/// (metric name, labels, value).
type Expected = (&'static str, Vec<(&'static str, String)>, f64);

fn expected(c: &str) -> Vec<Expected> {
    let e = "aws_transfer_errors_total";
    let l = |v: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        v.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    vec![
        (
            e,
            l(&[
                ("server_id", A),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ]),
            2.0,
        ),
        (
            e,
            l(&[
                ("server_id", A),
                ("user", "jdoe"),
                ("category", "auth"),
                ("cause", "key_mismatch"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", B),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", A),
                ("user", "jdoe"),
                ("category", "iam"),
                ("cause", "access_denied"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", B),
                ("user", "alice"),
                ("category", "iam"),
                ("cause", "assume_role_failed"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", B),
                ("user", "alice"),
                ("category", "storage"),
                ("cause", "bucket_not_found"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", c),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ]),
            1.0,
        ),
        (
            e,
            l(&[
                ("server_id", c),
                ("user", "bob"),
                ("category", "iam"),
                ("cause", "access_denied"),
            ]),
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            l(&[("server_id", A), ("user", "jdoe")]),
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            l(&[("server_id", B), ("user", "alice")]),
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            l(&[("server_id", c), ("user", "bob")]),
            1.0,
        ),
        (
            "aws_transfer_files_total",
            l(&[("server_id", A), ("user", "jdoe"), ("direction", "upload")]),
            1.0,
        ),
        (
            "aws_transfer_bytes_total",
            l(&[("server_id", A), ("user", "jdoe"), ("direction", "upload")]),
            2048.0,
        ),
        (
            "aws_transfer_events_total",
            l(&[("server_id", A), ("activity", "AUTH_FAILURE")]),
            3.0,
        ),
        (
            "aws_transfer_events_total",
            l(&[("server_id", B), ("activity", "ERROR")]),
            2.0,
        ),
    ]
}

const SCENARIO_EVENTS: f64 = 13.0;
const SCENARIO_ERRORS: f64 = 9.0;

fn assert_scenario(rig: &Rig, sc: &Scenario) {
    let text = rig.render();
    for (name, labels, want) in expected(&sc.legacy_server) {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            exposition::value(&text, name, &labels),
            Some(want),
            "{name}{labels:?}\n{}",
            text.lines()
                .filter(|l| l.starts_with(name))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(
        exposition::sum(&text, "aws_transfer_errors_total", &[]),
        SCENARIO_ERRORS
    );
    assert_eq!(
        exposition::sum(&text, "aws_transfer_events_total", &[]),
        SCENARIO_EVENTS
    );
}

/// The records of the scenario, once moto has written every event to Kinesis.
fn scenario_records(kinesis: &Kinesis, sc: &Scenario) -> Vec<Vec<u8>> {
    crate::support::wait_until("subscription records in Kinesis", WAIT, || {
        let recs = kinesis.read_all(&sc.stream);
        let events: usize = recs.iter().map(|r| events_in(r)).sum();
        (events == SCENARIO_EVENTS as usize).then_some(recs)
    })
}

pub(crate) fn events_in(record: &[u8]) -> usize {
    let mut s = String::new();
    let _ = flate2::read::MultiGzDecoder::new(record).read_to_string(&mut s);
    serde_json::from_str::<Value>(&s)
        .ok()
        .and_then(|v| v["logEvents"].as_array().map(|a| a.len()))
        .unwrap_or(0)
}

// ---------------------------------------------------------------- end to end

#[test]
fn moto_subscription_through_firehose_counts_every_event_once() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let kinesis = Kinesis::new(&moto.url);
    let sc = write_scenario(moto, &logs, &kinesis);
    let records = scenario_records(&kinesis, &sc);
    assert!(
        records.iter().all(|r| r.starts_with(&[0x1f, 0x8b, 0x08])),
        "moto wrote gzip records"
    );
    let rig = Rig::start(|_| {});

    // Batches of two records per request, gzip body, the current key.
    let mut sender = Sender::new(&rig.url(), Some(KEY_OLD));
    sender.records_per_request = 2;
    let ds = sender.deliver(&records);
    assert!(delivered(&ds), "{ds:?}");
    assert!(ds.iter().all(|d| d.answer.is_some()));
    assert_scenario(&rig, &sc);
    let n_req = ds.len() as f64;
    assert_eq!(rig.requests("ok"), n_req);
    assert_eq!(rig.records("data"), records.len() as f64);
    assert_eq!(rig.fh_events(), SCENARIO_EVENTS);
    let text = rig.render();
    assert!(
        exposition::value(
            &text,
            "aws_transfer_exporter_firehose_received_bytes_total",
            &[("encoding", "decompressed")]
        )
        .unwrap_or(0.0)
            > 0.0
    );

    // The same events again, in new requests (another subscription, a
    // re-drive), uncompressed body this time: acknowledged, not counted.
    sender.gzip = false;
    sender.records_per_request = 100;
    let again = sender.deliver(&records);
    assert!(delivered(&again), "{again:?}");
    assert_scenario(&rig, &sc);
    assert_eq!(rig.dedup("event"), SCENARIO_EVENTS);
    assert_eq!(rig.records("duplicate"), records.len() as f64);

    // A retried request id (Firehose retrying after a lost answer).
    let retry = sender.deliver_request(&ds[0].request_id, &records[..2.min(records.len())]);
    assert_eq!(retry.attempts, vec![Attempt::Status(200)]);
    assert_eq!(rig.dedup("request"), 1.0);
    assert_scenario(&rig, &sc);
    assert_eq!(rig.fh_events(), SCENARIO_EVENTS);
}

#[test]
fn a_sender_that_times_out_and_retries_is_counted_once() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let kinesis = Kinesis::new(&moto.url);
    let sc = write_scenario(moto, &logs, &kinesis);
    let records = scenario_records(&kinesis, &sc);
    // The first submit takes 1.5 s; the sender gives up after 0.4 s.
    let rig = Rig::start_with(|_| {}, Some(Duration::from_millis(1500)));
    let mut sender = Sender::new(&rig.url(), Some(KEY_NEW));
    sender.timeout = Duration::from_millis(400);
    sender.first_backoff = Duration::from_millis(100);
    sender.max_attempts = 12;
    sender.records_per_request = 1000;
    let id = request_id();
    let d = sender.deliver_request(&id, &records);
    assert_eq!(d.attempts.first(), Some(&Attempt::Timeout), "{d:?}");
    assert_eq!(d.attempts.last(), Some(&Attempt::Status(200)), "{d:?}");
    // While the original was still being counted, a retry was told 503.
    assert!(
        d.attempts.contains(&Attempt::Status(503)),
        "a retry raced the original: {d:?}"
    );
    assert_scenario(&rig, &sc);
    assert_eq!(rig.fh_events(), SCENARIO_EVENTS);
    // The original is counted even though its answer was never read.
    assert!(rig.requests("ok") >= 1.0);
    assert_eq!(rig.dedup("request"), 1.0);
    assert!(rig.requests("unavailable") >= 1.0);
}

// ---------------------------------------------------------------- fault table

fn structured_record(group: &str, ids: std::ops::Range<u32>) -> Vec<u8> {
    let server = A;
    let events: Vec<(String, i64, String)> = ids
        .map(|i| {
            (
                format!("3691421059184521634567{i:04}"),
                1_764_000_000_000 + i as i64,
                shapes::unknown_user(server, "mallory"),
            )
        })
        .collect();
    encode::gzip(encode::data_message(group, "ERRORS", &events).as_bytes())
}

/// A raw HTTP/1.1 exchange: `head` (without the blank line), then each part
/// of the body written separately with `pause` between. Returns (status, body).
fn raw(addr: SocketAddr, head: &str, parts: &[&[u8]], pause: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(b"\r\n").unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        let _ = s.write_all(p);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn head(addr: SocketAddr, key: &str, len: usize, extra: &str) -> String {
    format!(
        "POST /firehose HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Firehose-Protocol-Version: 1.0\r\nX-Amz-Firehose-Request-Id: raw-1\r\nX-Amz-Firehose-Access-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}"
    )
}

/// Counters a fault must not move.
#[derive(Debug, PartialEq)]
struct Counted {
    product: f64,
    events: f64,
    data: f64,
}

fn counted(rig: &Rig) -> Counted {
    Counted {
        product: rig.product_events(),
        events: rig.fh_events(),
        data: rig.records("data"),
    }
}

#[test]
fn fault_table() {
    let rig = Rig::start(|c| c.max_body_bytes = 64 * 1024);
    let url = rig.url();
    let group = format!("/{}/structured", unique("fault"));
    let good = |ids: std::ops::Range<u32>| structured_record(&group, ids);

    // ---- authentication ----
    let before = counted(&rig);
    let once = |key: Option<&str>| {
        let mut s = Sender::new(&url, key);
        s.max_attempts = 1;
        let body = s.body("same-id", &[good(0..3)]);
        s.send_once("same-id", &body)
    };
    let (a_wrong, b_wrong) = once(Some("not-the-key"));
    let (a_prefix, _) = once(Some(&format!("{KEY_OLD}x")));
    let (a_missing, b_missing) = once(None);
    assert_eq!(a_wrong, Attempt::Status(401), "wrong key");
    assert_eq!(
        a_prefix,
        Attempt::Status(401),
        "a key with a listed key as prefix"
    );
    assert_eq!(a_missing, Attempt::Status(401), "missing key");
    assert_eq!(
        b_wrong.map(|v| v["errorMessage"].clone()),
        b_missing.map(|v| v["errorMessage"].clone()),
        "missing and wrong key get the same answer"
    );
    assert_eq!(
        counted(&rig),
        before,
        "nothing of an unauthenticated request is counted"
    );
    assert_eq!(rig.records("undecodable"), 0.0);
    assert_eq!(rig.requests("unauthorized"), 3.0);

    // ---- rotation: both listed keys are accepted ----
    for (key, ids) in [(KEY_OLD, 0..3), (KEY_NEW, 3..5)] {
        let d = Sender::new(&url, Some(key)).deliver_request(&request_id(), &[good(ids)]);
        assert_eq!(d.attempts, vec![Attempt::Status(200)], "key {key}");
    }
    assert_eq!(rig.fh_events(), 5.0);
    assert_eq!(rig.product_events(), 5.0);

    let s = Sender::new(&url, Some(KEY_NEW));
    // (case, records, want status, Δ fh events, Δ records{outcome})
    type Row<'a> = (&'a str, Vec<Vec<u8>>, u16, f64, &'a str, f64);
    let mut bomb_src = vec![b' '; 20 * 1024 * 1024];
    bomb_src[0] = b'{';
    let bomb = encode::gzip(&bomb_src);
    let rows: Vec<Row> = vec![
        (
            "control message",
            vec![encode::gzip(encode::control_message().as_bytes())],
            200,
            0.0,
            "control",
            1.0,
        ),
        (
            "record shorter than 3 bytes",
            vec![vec![0x1f, 0x8b]],
            200,
            0.0,
            "undecodable",
            1.0,
        ),
        ("empty record", vec![vec![]], 200, 0.0, "empty", 1.0),
        (
            "not gzip (and not JSON)",
            vec![b"ERRORS AUTH_FAILURE User=x".to_vec()],
            200,
            0.0,
            "undecodable",
            1.0,
        ),
        (
            "gzip bomb beside a good record",
            vec![bomb, good(5..7)],
            200,
            2.0,
            "undecodable",
            1.0,
        ),
        (
            "plain JSON record",
            vec![encode::data_message(
                &group,
                "ERRORS",
                &[(
                    "9000".into(),
                    1_764_000_000_000,
                    shapes::unknown_user(A, "x"),
                )],
            )
            .into_bytes()],
            200,
            1.0,
            "data",
            1.0,
        ),
    ];
    for (case, records, status, d_events, outcome, d_records) in rows {
        let (ev0, rec0) = (rig.fh_events(), rig.records(outcome));
        let d = s.deliver_request(&request_id(), &records);
        assert_eq!(d.attempts, vec![Attempt::Status(status)], "{case}");
        assert_eq!(rig.fh_events() - ev0, d_events, "{case}: events");
        assert_eq!(
            rig.records(outcome) - rec0,
            d_records,
            "{case}: records{{outcome={outcome}}}"
        );
    }

    // Not base64: built by hand (the sender always encodes).
    let und = rig.records("undecodable");
    let body = encode::request_body("nb64", now_ms(), &["%%%%".to_owned()]);
    let (st, _) = raw(
        rig.addr,
        &head(rig.addr, KEY_NEW, body.len(), ""),
        &[body.as_bytes()],
        Duration::ZERO,
    );
    assert_eq!(st, 200, "not base64: counted, acknowledged");
    assert_eq!(rig.records("undecodable") - und, 1.0);

    // ---- retried request id, same events in a new request ----
    let ev = rig.fh_events();
    let id = request_id();
    let first = s.deliver_request(&id, &[good(100..104)]);
    let retried = s.deliver_request(&id, &[good(100..104)]);
    assert_eq!((first.attempts.len(), retried.attempts.len()), (1, 1));
    assert_eq!(rig.fh_events() - ev, 4.0, "retried request id counted once");
    assert_eq!(rig.dedup("request"), 1.0);
    let fresh = s.deliver_request(&request_id(), &[good(100..104)]);
    assert_eq!(fresh.attempts, vec![Attempt::Status(200)]);
    assert_eq!(
        rig.fh_events() - ev,
        4.0,
        "same events in a new request counted once"
    );
    assert_eq!(rig.dedup("event"), 4.0);

    // ---- body over the cap: 413, by Content-Length and while streaming ----
    let before = counted(&rig);
    let too_large = rig.requests("too_large");
    let (st, _) = raw(
        rig.addr,
        &head(rig.addr, KEY_NEW, 10 * 1024 * 1024, ""),
        &[],
        Duration::ZERO,
    );
    assert_eq!(st, 413, "Content-Length over the cap");
    let chunk = vec![b'a'; 80 * 1024];
    let chunked_head = format!(
        "POST /firehose HTTP/1.1\r\nHost: {}\r\nX-Amz-Firehose-Access-Key: {KEY_NEW}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        rig.addr
    );
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk.clone(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let (st, _) = raw(
        rig.addr,
        &chunked_head,
        &[framed.as_slice()],
        Duration::ZERO,
    );
    assert_eq!(st, 413, "streamed body over the cap");
    // A gzip body that inflates past the cap is over the cap too.
    let inflating = encode::gzip(&vec![b' '; 1024 * 1024]);
    let (st, _) = raw(
        rig.addr,
        &head(
            rig.addr,
            KEY_NEW,
            inflating.len(),
            "Content-Encoding: gzip\r\n",
        ),
        &[inflating.as_slice()],
        Duration::ZERO,
    );
    assert_eq!(st, 413, "gzip body inflating past the cap");
    assert_eq!(rig.requests("too_large") - too_large, 3.0);
    assert_eq!(counted(&rig), before);

    // ---- not a Firehose request, truncated: 400 ----
    let bad = rig.requests("bad_request");
    let full = encode::request_body("trunc", now_ms(), &[encode::base64(&good(200..203))]);
    let cut = &full.as_bytes()[..full.len() / 2];
    let (st, body) = raw(
        rig.addr,
        &head(rig.addr, KEY_NEW, cut.len(), ""),
        &[cut],
        Duration::ZERO,
    );
    assert_eq!(st, 400, "truncated JSON body: {body}");
    assert!(body.contains("errorMessage"), "{body}");
    let gz = encode::gzip(full.as_bytes());
    let gz_cut = &gz[..gz.len() - 10];
    let (st, _) = raw(
        rig.addr,
        &head(
            rig.addr,
            KEY_NEW,
            gz_cut.len(),
            "Content-Encoding: gzip\r\n",
        ),
        &[gz_cut],
        Duration::ZERO,
    );
    assert_eq!(st, 400, "truncated gzip body");
    let not_firehose = br#"{"hello":"world"}"#;
    let (st, _) = raw(
        rig.addr,
        &head(rig.addr, KEY_NEW, not_firehose.len(), ""),
        &[&not_firehose[..]],
        Duration::ZERO,
    );
    assert_eq!(st, 400, "JSON that is not a delivery request");
    assert_eq!(rig.requests("bad_request") - bad, 3.0);
    assert_eq!(counted(&rig), before);

    // ---- health checks have their own path and are not bad requests ----
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WAIT))
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(format!("http://{}/-/healthy", rig.addr))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(rig.requests("bad_request") - bad, 3.0);

    // ---- the landing-page status ----
    let st = rig.receiver.status();
    assert_eq!(st.listen_address, rig.addr);
    assert!(st.last_request_ms.is_some());
    assert!(st.last_error.is_some());
    assert!(st.warning.is_none());
    // The last POST was the JSON that is not a delivery request (the health
    // check after it is not a delivery); the counts are the metrics'.
    assert_eq!(st.last_outcome, Some("bad_request"));
    for (outcome, n) in &st.requests {
        assert_eq!(*n as f64, rig.requests(outcome), "{outcome}");
    }
    // No key ever reaches the exposition.
    let text = rig.render();
    assert!(!text.contains(KEY_OLD) && !text.contains(KEY_NEW));
}

#[test]
fn shutdown_mid_request_answers_503_and_counts_nothing() {
    let mut rig = Rig::start(|_| {});
    let group = format!("/{}/structured", unique("shutdown"));
    let body = encode::request_body(
        "mid-1",
        now_ms(),
        &[encode::base64(&structured_record(&group, 0..5))],
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let addr = rig.addr;
    let h = head(addr, KEY_OLD, body.len(), "");
    let (first, rest) = (first.to_vec(), rest.to_vec());
    let client = std::thread::spawn(move || {
        raw(
            addr,
            &h,
            &[first.as_slice(), rest.as_slice()],
            Duration::from_millis(800),
        )
    });
    // Half the body is in; shut down while the rest is on its way.
    std::thread::sleep(Duration::from_millis(300));
    rig.cancel.cancel();
    let (status, body) = client.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(rig.requests("unavailable"), 1.0);
    assert_eq!(rig.fh_events(), 0.0);
    assert_eq!(rig.product_events(), 0.0);
    assert_eq!(rig.records("data"), 0.0);
    assert_eq!(
        rig.receiver.dedup_sizes(),
        (0, 0),
        "nothing remembered either"
    );
    let start = Instant::now();
    rig.stop();
    assert!(start.elapsed() < WAIT, "the listener drained");
}

#[test]
fn busy_receiver_answers_503_and_the_retry_is_counted() {
    let rig = Rig::start_with(
        |c| c.max_concurrent_requests = 1,
        Some(Duration::from_millis(1200)),
    );
    let group = format!("/{}/structured", unique("busy"));
    let url = rig.url();
    let slow_records = vec![structured_record(&group, 0..3)];
    let slow = std::thread::spawn(move || {
        Sender::new(&url, Some(KEY_OLD)).deliver_request(&request_id(), &slow_records)
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut s = Sender::new(&rig.url(), Some(KEY_OLD));
    s.first_backoff = Duration::from_millis(200);
    let d = s.deliver_request(&request_id(), &[structured_record(&group, 3..5)]);
    let first = slow.join().unwrap();
    assert_eq!(first.attempts, vec![Attempt::Status(200)]);
    assert_eq!(d.attempts.first(), Some(&Attempt::Status(503)), "{d:?}");
    assert_eq!(d.attempts.last(), Some(&Attempt::Status(200)), "{d:?}");
    assert_eq!(rig.fh_events(), 5.0);
}

#[test]
fn unauthenticated_mode_warns_on_the_status() {
    let rig = Rig::start(|c| {
        c.access_key_file = None;
        c.allow_unauthenticated = true;
    });
    let group = format!("/{}/structured", unique("open"));
    let d = Sender::new(&rig.url(), None)
        .deliver_request(&request_id(), &[structured_record(&group, 0..2)]);
    assert_eq!(d.attempts, vec![Attempt::Status(200)]);
    let st = rig.receiver.status();
    assert!(st.warning.is_some());
    assert_eq!(st.last_outcome, Some("ok"));
}

// ---------------------------------------------------------------- the daemon

/// The real binary, push only (`--poll.enabled=false`): the scenario's
/// subscription records delivered to its Firehose listener come out on its
/// `/metrics` exactly, it is ready without polling, and it never calls
/// FilterLogEvents.
#[test]
fn the_daemon_push_only_counts_the_scenario_and_never_polls() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let kinesis = Kinesis::new(&moto.url);
    let sc = write_scenario(moto, &logs, &kinesis);
    let records = scenario_records(&kinesis, &sc);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{KEY_OLD}\n{KEY_NEW}\n")).unwrap();
    let d = crate::support::Daemon::start(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        "--poll.enabled=false".into(),
        "--firehose.listen-address=127.0.0.1:0".into(),
        format!("--firehose.access-key-file={}", keys.display()),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);
    let push = crate::support::wait_until("the firehose listening line", WAIT, || {
        d.stderr()
            .lines()
            .filter(|l| l.contains("firehose receiver listening"))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|kv| kv.strip_prefix("listen_address="))
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
            })
    });
    crate::support::wait_until("ready without polling", WAIT, || {
        (d.get("/-/ready").0 == 200).then_some(())
    });
    let mut sender = Sender::new(&format!("http://{push}/firehose"), Some(KEY_NEW));
    sender.records_per_request = 3;
    let ds = sender.deliver(&records);
    assert!(delivered(&ds), "{ds:?}");
    d.wait_sum("aws_transfer_events_total", &[], SCENARIO_EVENTS, WAIT);
    let text = d.metrics();
    assert_eq!(
        exposition::sum(&text, "aws_transfer_errors_total", &[]),
        SCENARIO_ERRORS
    );
    assert_eq!(
        exposition::sum(
            &text,
            "aws_transfer_exporter_api_calls_total",
            &[("operation", "FilterLogEvents")]
        ),
        0.0,
        "push only never polls"
    );

    // The landing page: the push listener, its last request, no warning
    // (a key file is given), and the failures it delivered by cause.
    let (_, _, page) = d.get("/");
    let section = &page[html::at(&page, "id=\"push\"")..];
    assert!(
        section.contains(&format!("{push} (POST /firehose)")),
        "{section}"
    );
    assert!(
        section.contains("ago</span>, <span class=\"ok\">ok</span>"),
        "last request and its outcome:\n{section}"
    );
    assert!(!page.contains("class=\"alarm\""), "{page}");
    assert!(
        page.contains(&format!("Failures by cause ({SCENARIO_ERRORS})")),
        "{page}"
    );
}

/// Without a key file the receiver refuses to start (exit 2, naming the
/// key), unless `--firehose.allow-unauthenticated` says so.
#[test]
fn the_daemon_refuses_an_open_receiver_without_the_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _out, err) = crate::support::daemon::run_to_exit(
        &[
            format!("--aws.region={REGION}"),
            "--aws.endpoint-url=http://127.0.0.1:1".into(),
            "--poll.enabled=false".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            "--firehose.listen-address=127.0.0.1:0".into(),
            format!("--state.path={}", dir.path().join("s.json").display()),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(err.contains("firehose.access_key_file"), "{err}");
    assert!(err.contains("--firehose.allow-unauthenticated"), "{err}");

    // With the opt-out it runs, and says so loudly: in the log and at the
    // top of the landing page.
    let d = crate::support::Daemon::start(&[
        format!("--aws.region={REGION}"),
        "--aws.endpoint-url=http://127.0.0.1:1".into(),
        "--poll.enabled=false".into(),
        "--firehose.listen-address=127.0.0.1:0".into(),
        "--firehose.allow-unauthenticated".into(),
        format!("--state.path={}", dir.path().join("s.json").display()),
    ]);
    let (status, _, page) = d.get("/");
    assert_eq!(status, 200);
    let alarm = html::at(&page, "id=\"alarm-unauthenticated\"");
    assert!(alarm < html::at(&page, "id=\"causes\""), "at the top");
    assert!(
        html::text(&page[alarm..]).contains("WITHOUT an access key"),
        "{page}"
    );
    assert!(page[html::at(&page, "id=\"push\"")..].contains("NOT REQUIRED"));
    assert!(
        d.stderr()
            .lines()
            .any(|l| l.contains("level=warn") && l.contains("WITHOUT an access key")),
        "{}",
        d.stderr()
    );
}

/// kill -9 of a push-only daemon at random moments (the first four within
/// 1 s of start) while a sender delivers like Firehose (each request retried
/// with its id until it gets 200, across the restarts) and a scraper reads
/// `/metrics` like Prometheus: the receiver answers 200 only once the
/// request's counts are saved, and saves the finished request ids with
/// them, so every event is counted exactly once as the scraper sees it: no
/// acknowledged event lost, no retried request counted twice, no counter
/// ever going down.
#[test]
fn push_only_sigkill_at_random_points_counts_every_event_exactly_once() {
    use crate::daemon_restart::{Increase, SERVER};
    use rand::Rng;
    const LIVES: usize = 10;
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{KEY_NEW}\n")).unwrap();
    let port = crate::support::free_port();
    let args = vec![
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        "--poll.enabled=false".into(),
        format!("--firehose.listen-address=127.0.0.1:{port}"),
        format!("--firehose.access-key-file={}", keys.display()),
        "--limits.max-users-per-server=100000".into(),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ];
    let group = format!("/aws/transfer/{SERVER}");
    let stream = format!("{SERVER}/push");

    // The sender: 20 events per request, one request after another, each
    // retried (same id, same body) until it is acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = {
        let (stop, acked, retries) = (stop.clone(), acked.clone(), retries.clone());
        std::thread::spawn(move || {
            let mut s = Sender::new(&format!("http://127.0.0.1:{port}/firehose"), Some(KEY_NEW));
            s.timeout = Duration::from_secs(5);
            let give_up = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::Relaxed) {
                let base = acked.load(Ordering::Relaxed);
                let t = now_ms();
                let events: Vec<(String, i64, String)> = (base..base + 20)
                    .map(|i| {
                        (
                            format!("{i:056}"),
                            t,
                            shapes::connected(SERVER, &format!("u{i}"), &format!("{i:020x}")),
                        )
                    })
                    .collect();
                let record =
                    encode::gzip(encode::data_message(&group, &stream, &events).as_bytes());
                let id = request_id();
                let body = s.body(&id, &[record]);
                loop {
                    assert!(
                        Instant::now() < give_up,
                        "the sender could not deliver in time"
                    );
                    if s.send_once(&id, &body).0 == Attempt::Status(200) {
                        break;
                    }
                    retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
                acked.fetch_add(events.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let mut rng = rand::rng();
    let mut prom = Increase::default();
    // Lives that appended to the journal they loaded (their first write,
    // often an acknowledgement's, a record over what the last life saved).
    let mut continued = 0;
    for life in 0..LIVES {
        let mut d = crate::support::Daemon::start(&args);
        let max_ms = if life < 4 { 1000 } else { 3000 };
        let kill_at = Instant::now() + Duration::from_millis(rng.random_range(100..max_ms));
        while Instant::now() < kill_at {
            prom.observe(life, &d.metrics());
            std::thread::sleep(Duration::from_millis(rng.random_range(50..250)));
        }
        d.kill();
        if d.stderr().contains("state journal continued") {
            continued += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let d = crate::support::Daemon::start(&args);
    sender.join().expect("sender");
    let total = acked.load(Ordering::Relaxed);
    prom.observe_until_complete(LIVES, total, WAIT, || d.metrics());
    prom.assert_each_counted_once(total, &d.stderr_tail(30));
    assert!(
        retries.load(Ordering::Relaxed) > 0,
        "no request was ever retried: the kills did not exercise the retry path"
    );
    assert!(
        continued > 0,
        "no life continued the journal it loaded: that path went untested"
    );
    eprintln!(
        "push restart: {total} events over {LIVES} SIGKILLed lives + 1, {} retried attempts, each event counted exactly once as seen by the scraper; {continued} lives appended to the journal they loaded",
        retries.load(Ordering::Relaxed)
    );
}

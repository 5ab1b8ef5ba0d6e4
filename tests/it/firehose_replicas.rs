//! Several replicas give one replica's answers: the shipped scale layout
//! (README "Several replicas") proved end to end with real parts.
//!
//! Events are written to moto's CloudWatch Logs in five log groups; each
//! group's subscription filter sends the real gzipped payload to its
//! shard's Kinesis stream (two shards, by log group). The test-side Firehose
//! sender then delivers
//! - each shard's records to its own push-only replica (`--poll.enabled=false`),
//! - all records to a third, single replica.
//!
//! Two real Prometheus servers, one scraping both replicas and one the
//! single replica (both as job `aws-transfer-exporter`, as the dashboards
//! expect), load the shipped recording rules and the alerts (`for:`
//! shortened to 1s). Every dashboard query (template variables expanded per
//! server) and every rule expression is then evaluated at the same instant
//! on both, and the vectors must match after dropping `instance` and `job`:
//! the same label sets, no two series left with the same labels (a query
//! that keeps per-replica series), and the same values (within what the two
//! servers' different scrape and evaluation instants make rate() and
//! avg_over_time() extrapolate differently).
//!
//! The writes come in two phases, a seed (one of each kind of event, so
//! every series exists in every replica that will count it: increase()
//! cannot see a series' first sample) and a burst, so the rate panels and
//! the alerts have something to show. The shards share a server (A logs to
//! a group in each shard), so sums must add the replicas' counters and the
//! last-session gauge must be taken with max.
//!
//! A few panels measure the exporter processes themselves, not the data
//! (targets up, build, the replicas' own API calls): they are listed in
//! [`PER_PROCESS`] with the reason, and checked to differ as expected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::alerts_e2e::{dashboard_queries, rule_queries, shortened_alerts, Prometheus};
use crate::firehose_push::{delivered, events_in, Kinesis, Sender, ACCOUNT, KEY_OLD};
use crate::support::logs::shapes;
use crate::support::{now_ms, root, unique, wait_until, Daemon, Logs, Moto, REGION};

/// Bound on each wait (delivery, scrapes).
const WAIT: Duration = Duration::from_secs(30);

/// Panels about the exporter processes rather than the data: with two
/// replicas there are two processes, so these answer differently by
/// design. (dashboard panel title, why).
const PER_PROCESS: &[(&str, &str)] = &[
    (
        "Targets up",
        "counts scrape targets: 2 replicas are 2 targets",
    ),
    ("Build", "one series per process (by instance)"),
    (
        "variable \"instance\"",
        "the list of exporter processes to pick from",
    ),
    (
        "API calls by operation and outcome",
        "each replica makes its own inventory calls",
    ),
    (
        "API call latency p99",
        "each replica makes its own inventory calls",
    ),
    (
        "State-file writes",
        "each replica writes its own state file",
    ),
    (
        "State write latency p99",
        "each replica times its own state writes on its own disk",
    ),
];

/// Relative tolerance for values: the two Prometheus servers scrape and
/// evaluate at different instants (up to a second apart), which moves
/// rate()'s extrapolation over a series a few seconds old and the number
/// of samples avg_over_time() averages. A per-replica mistake (a counter
/// left per instance, a gauge summed instead of max) shows as a doubled
/// value or a different label set, far outside this.
const TOLERANCE: f64 = 0.25;

/// A push-only replica: the daemon binary and its Firehose listener.
struct Replica {
    daemon: Daemon,
    push: SocketAddr,
}

fn start_replica(moto: &Moto, dir: &std::path::Path, name: &str) -> Replica {
    let keys = dir.join("access-keys");
    if !keys.exists() {
        std::fs::write(&keys, format!("{KEY_OLD}\n")).unwrap();
    }
    let config = dir.join("config.yaml");
    if !config.exists() {
        std::fs::write(&config, "inventory:\n  interval: 2s\n").unwrap();
    }
    let daemon = Daemon::start(&[
        format!("--config.file={}", config.display()),
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        "--poll.enabled=false".into(),
        "--firehose.listen-address=127.0.0.1:0".into(),
        format!("--firehose.access-key-file={}", keys.display()),
        format!(
            "--state.path={}",
            dir.join(format!("{name}.json")).display()
        ),
    ]);
    let push = wait_until("the firehose listening line", WAIT, || {
        daemon
            .stderr()
            .lines()
            .filter(|l| l.contains("firehose receiver listening"))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|kv| kv.strip_prefix("listen_address="))
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
            })
    });
    Replica { daemon, push }
}

/// Transfer servers in moto (for the inventory's gauges, which every
/// replica exports); their ids are the servers the log events name.
fn create_servers(logs: &Logs, moto: &Moto, n: usize) -> Vec<String> {
    logs.block_on(async {
        let conf = aws_sdk_transfer::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&moto.url)
            .credentials_provider(aws_sdk_transfer::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        let client = aws_sdk_transfer::Client::from_conf(conf);
        let mut ids = Vec::new();
        for _ in 0..n {
            let out = client
                .create_server()
                .send()
                .await
                .expect("moto CreateServer");
            ids.push(out.server_id);
        }
        ids
    })
}

/// One PutLogEvents: (group, stream, events).
type Write = (String, String, Vec<(i64, String)>);

/// The scenario's log groups and which shard each belongs to.
struct Groups {
    /// (group, shard)
    all: Vec<(String, usize)>,
}

/// The writes of one phase. `burst` repeats the seed's kinds on the same
/// streams and sessions (every series it touches exists since the seed)
/// with counts far from every alert threshold's edge.
fn phase(g: &[(String, usize)], servers: &[String], burst: bool) -> Vec<Write> {
    let (a, b) = (&servers[0], &servers[1]);
    let (s1, s2) = (&g[0].0, &g[1].0);
    let legacy_c = &g[2].0;
    let connector = &g[3].0;
    let other_b = &g[4].0;
    let t = now_ms() - 30_000;
    let n = |seed: usize, more: usize| if burst { more } else { seed };
    let ts = |v: Vec<String>| -> Vec<(i64, String)> {
        v.into_iter()
            .enumerate()
            .map(|(i, m)| (t + i as i64, m))
            .collect()
    };
    let (jdoe_s, bob1_s, alice_s, bob2_s, carol_s) = (
        "1a2b3c4d5e6f7a8b9c01",
        "1a2b3c4d5e6f7a8b9c02",
        "1a2b3c4d5e6f7a8b9c03",
        "1a2b3c4d5e6f7a8b9c04",
        "1a2b3c4d5e6f7a8b9c05",
    );
    let mut w: Vec<Write> = Vec::new();
    // Shard 0, group s1: A's jdoe (IAM and bucket failures, an upload),
    // A's bob, B's carol; auth failures on A and B.
    let mut jdoe = vec![shapes::connected(a, "jdoe", jdoe_s)];
    jdoe.extend((0..n(1, 6)).map(|_| shapes::access_denied(a, jdoe_s)));
    jdoe.extend((0..n(1, 4)).map(|_| shapes::readdir(a, jdoe_s)));
    jdoe.extend((0..n(1, 4)).map(|_| shapes::assume_role(a, jdoe_s)));
    jdoe.push(shapes::close_upload(a, jdoe_s, 2048));
    w.push((s1.clone(), format!("{a}/jdoe"), ts(jdoe)));
    w.push((
        s1.clone(),
        format!("{a}/bob"),
        ts(vec![
            shapes::connected(a, "bob", bob1_s),
            shapes::close_upload(a, bob1_s, 100),
        ]),
    ));
    w.push((
        s1.clone(),
        format!("{b}/carol"),
        ts(vec![shapes::connected(b, "carol", carol_s)]),
    ));
    let mut errors1: Vec<String> = (0..n(1, 40))
        .map(|i| shapes::unknown_user(a, &format!("scan{i}")))
        .collect();
    errors1.extend((0..n(1, 2)).map(|_| shapes::unknown_user(b, "eve")));
    errors1.push(shapes::key_mismatch(a, "mallory"));
    // An ERROR whose session nobody announced: unattributed.
    errors1.push(format!(
        r#"{{"activity-type":"ERROR","resource-arn":"{}","message":"Access denied","session-id":"ffffffffffffffffffff"}}"#,
        shapes::arn(a)
    ));
    w.push((s1.clone(), "ERRORS".into(), ts(errors1)));

    // Shard 1, group s2: more of server A (alice, and bob again: the same
    // server and user in both shards), auth failures on A, a broken line.
    let mut alice = vec![shapes::connected(a, "alice", alice_s)];
    alice.extend((0..n(1, 3)).map(|_| shapes::access_denied(a, alice_s)));
    alice.push(shapes::close_upload(a, alice_s, 4096));
    w.push((s2.clone(), format!("{a}/alice"), ts(alice)));
    w.push((
        s2.clone(),
        format!("{a}/bob"),
        ts(vec![shapes::connected(a, "bob", bob2_s)]),
    ));
    let mut errors2: Vec<String> = (0..n(1, 30))
        .map(|i| shapes::unknown_user(a, &format!("probe{i}")))
        .collect();
    errors2.push(r#"{"activity-type": "ERROR", broken"#.to_owned());
    w.push((s2.clone(), "ERRORS".into(), ts(errors2)));

    // Shard 1, C's legacy group: a session and an unknown user.
    let ls = "dave.0a700c01575303e3";
    let mut legacy = vec![format!("{ls} CONNECTED SourceIP=198.51.100.7 User=dave HomeDir=/example-bucket/dave Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-dave")];
    legacy.extend((0..n(1, 5)).map(|_| format!(r#"{ls} ERROR Message="Access denied" Operation=CLOSE Path=/example-bucket/dave/in/c.csv BytesIn=27"#)));
    w.push((legacy_c.clone(), ls.into(), ts(legacy)));
    w.push((
        legacy_c.clone(),
        "ERRORS".into(),
        ts((0..n(1, 3))
            .map(|_| r#"ERRORS AUTH_FAILURE Method=publickey User=nobody Message="The user is unrecognized" SourceIP=203.0.113.50"#.to_owned())
            .collect()),
    ));

    // Shard 0, a connector's group: failures and successes.
    let conn = connector.rsplit('/').next().unwrap_or_default().to_owned();
    let mut ops: Vec<String> = (0..n(1, 4))
        .map(|i| format!(r#"{{"operation":"SEND","connector-id":"{conn}","transfer-id":"t{i}","file-transfer-id":"t{i}/f1","url":"sftp://partner.example","file-path":"/b/a.csv","status-code":"FAILED","failure-code":"CONNECTION_ERROR","failure-message":"Unknown Host"}}"#))
        .collect();
    ops.push(format!(r#"{{"operation":"SEND","connector-id":"{conn}","transfer-id":"ok","file-transfer-id":"ok/f1","url":"sftp://partner.example","file-path":"/b/b.csv","status-code":"COMPLETED","bytes":10}}"#));
    w.push((connector.clone(), conn.clone(), ts(ops)));

    // Shard 1, B's own group: AS2 and workflow events.
    let mut as2: Vec<String> = (0..n(1, 3))
        .map(|i| format!(r#"{{"as2-message-id":"m{i}","server-id":"{b}","agreement-id":"a-1","status-code":"FAILED","failure-code":"DECRYPT_FAILED","failure-message":"x","transfer-size":10}}"#))
        .collect();
    as2.push(format!(r#"{{"as2-message-id":"ok","server-id":"{b}","agreement-id":"a-1","status-code":"COMPLETED","transfer-size":10}}"#));
    w.push((other_b.clone(), "as2".into(), ts(as2)));
    let wf: Vec<String> = (0..n(1, 3))
        .map(|i| format!(r#"{{"type":"ExecutionErrored","details":{{}},"workflowId":"w-00000000000e2e001","executionId":"e{i}","transferDetails":{{"serverId":"{b}","username":"carol","sessionId":"{carol_s}"}}}}"#))
        .collect();
    w.push((
        other_b.clone(),
        "carol.w-00000000000e2e001.x".into(),
        ts(wf),
    ));
    w
}

/// Writes a phase, then reads each shard's new records from its stream
/// (all of them: the ones delivered before are skipped by count).
fn write_and_read(
    logs: &Logs,
    kinesis: &Kinesis,
    streams: &[String; 2],
    groups: &Groups,
    writes: &[Write],
    delivered_so_far: &mut [usize; 2],
) -> [Vec<Vec<u8>>; 2] {
    let mut want = [0usize; 2];
    for (group, stream, events) in writes {
        let shard = groups
            .all
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, s)| *s)
            .unwrap();
        want[shard] += events.len();
        logs.put_new(group, stream, events);
    }
    let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for shard in 0..2 {
        let recs = wait_until("subscription records in Kinesis", WAIT, || {
            let all = kinesis.read_all(&streams[shard]);
            let new: Vec<Vec<u8>> = all[delivered_so_far[shard].min(all.len())..].to_vec();
            let n: usize = new.iter().map(|r| events_in(r)).sum();
            (n == want[shard]).then_some(new)
        });
        delivered_so_far[shard] += recs.len();
        out[shard] = recs;
    }
    out
}

/// Delivers each shard's records to its replica and all to the single one.
fn deliver(records: &[Vec<Vec<u8>>; 2], replicas: &[Replica; 2], single: &Replica) {
    for (shard, recs) in records.iter().enumerate() {
        for target in [&replicas[shard], single] {
            let mut s = Sender::new(&format!("http://{}/firehose", target.push), Some(KEY_OLD));
            s.records_per_request = 4;
            let ds = s.deliver(recs);
            assert!(delivered(&ds), "shard {shard}: {ds:?}");
        }
    }
}

/// An instant query at `time` (seconds): the result, or Prometheus' error.
fn query_at(agent: &ureq::Agent, prom: &Prometheus, q: &str, time: f64) -> Result<Value, String> {
    let mut resp = agent
        .get(format!("{}/api/v1/query", prom.url))
        .query("query", q)
        .query("time", format!("{time:.3}"))
        .call()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"].clone())
}

/// A query's answer as {labels without instance and job: value}; an error
/// if two series are left with the same labels.
fn answer(data: &Value) -> Result<BTreeMap<String, f64>, String> {
    let num = |v: &Value| -> f64 {
        v[1].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let mut out = BTreeMap::new();
    match data["resultType"].as_str() {
        Some("vector") => {
            for s in data["result"].as_array().unwrap() {
                let mut labels: BTreeMap<String, String> =
                    serde_json::from_value(s["metric"].clone()).unwrap();
                labels.remove("instance");
                labels.remove("job");
                let key = format!("{labels:?}");
                if out.insert(key.clone(), num(&s["value"])).is_some() {
                    return Err(format!(
                        "two series with the same labels once instance/job are dropped: {key}"
                    ));
                }
            }
        }
        Some("scalar") => {
            out.insert("scalar".into(), num(&data["result"]));
        }
        other => return Err(format!("unexpected result type {other:?}")),
    }
    Ok(out)
}

/// Looser for the one-day baseline (`avg_over_time` of a recorded rate):
/// how many of its samples predate the burst depends on each server's
/// evaluation instants, a few seconds into a test. Still below the 0.5 a
/// doubled value would show; its input, the recorded rate, is held to
/// [`TOLERANCE`].
const TOLERANCE_BASELINE: f64 = 0.4;

fn same(a: f64, b: f64, tolerance: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs())
}

/// Queries that are wrong for replicas on purpose: the comparison must
/// catch them, or it proves nothing. (query, what goes wrong)
const MUST_DIFFER: &[(&str, &str)] = &[
    (
        "sum by (server_id, user) (aws_transfer_user_last_session_timestamp_seconds)",
        "a last-seen gauge summed instead of max: bob on server A is in both shards",
    ),
    (
        "aws_transfer_errors_total",
        "counters not summed: server A's unknown-user failures are in both replicas",
    ),
];

/// Why a query is not compared, if it measures the processes themselves.
fn per_process(what: &str) -> Option<&'static str> {
    PER_PROCESS
        .iter()
        .find(|(title, _)| what.contains(&format!("{title:?}")) || what.contains(title))
        .map(|(_, why)| *why)
}

#[test]
fn two_replicas_answer_every_dashboard_query_and_alert_like_one() {
    let started = Instant::now();
    let moto = Moto::start();
    let logs = Logs::new(&moto.url);
    let kinesis = Kinesis::new(&moto.url);
    let dir = tempfile::tempdir().unwrap();

    let servers = create_servers(&logs, &moto, 3);
    let prefix = format!("/{}/", unique("replicas"));
    let connector_group = "/aws/transfer/c-00000000000e2e001".to_owned();
    let groups = Groups {
        all: vec![
            (format!("{prefix}structured-1"), 0),
            (format!("{prefix}structured-2"), 1),
            (format!("/aws/transfer/{}", servers[2]), 1),
            (connector_group, 0),
            (format!("/aws/transfer/{}", servers[1]), 1),
        ],
    };
    let streams = [unique("shard-0"), unique("shard-1")];
    let arns = [kinesis.create(&streams[0]), kinesis.create(&streams[1])];
    for (g, shard) in &groups.all {
        logs.create_group(g);
        logs.block_on(
            logs.client
                .put_subscription_filter()
                .log_group_name(g)
                .filter_name("to-firehose")
                .filter_pattern("")
                .destination_arn(&arns[*shard])
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/cwl-to-kinesis"))
                .send(),
        )
        .unwrap_or_else(|e| panic!("PutSubscriptionFilter {g}: {e:?}"));
    }

    let mut dirs = Vec::new();
    for name in ["replica-0", "replica-1", "single"] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        dirs.push(d);
    }
    let replicas = [
        start_replica(&moto, &dirs[0], "replica-0"),
        start_replica(&moto, &dirs[1], "replica-1"),
    ];
    let single = start_replica(&moto, &dirs[2], "single");

    let rules_dir = root().join("deploy/prometheus");
    let alerts_text = std::fs::read_to_string(rules_dir.join("alerts.yaml")).unwrap();
    let short = dir.path().join("alerts-short.yaml");
    std::fs::write(&short, shortened_alerts(&alerts_text)).unwrap();
    let rule_files: Vec<PathBuf> = vec![rules_dir.join("recording.yaml"), short];
    let prom_dir = |n: &str| {
        let d = dir.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let p_replicas = Prometheus::start_targets(
        &prom_dir("prom-replicas"),
        &[
            replicas[0].daemon.addr.to_string(),
            replicas[1].daemon.addr.to_string(),
        ],
        &rule_files,
    );
    let p_single = Prometheus::start_targets(
        &prom_dir("prom-single"),
        &[single.daemon.addr.to_string()],
        &rule_files,
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    // Both Prometheus servers have scraped `total` Firehose events.
    let scraped = |total: usize| {
        for (name, p) in [("replicas", &p_replicas), ("single", &p_single)] {
            wait_until(&format!("{name}: {total} events scraped"), WAIT, || {
                let now = now_ms() as f64 / 1000.0;
                let d = query_at(
                    &agent,
                    p,
                    "sum(aws_transfer_exporter_firehose_events_total)",
                    now,
                )
                .ok()?;
                let v = answer(&d).ok()?.into_values().next()?;
                (v == total as f64).then_some(())
            });
        }
    };

    // ---- seed ----
    let mut so_far = [0usize; 2];
    let seed = phase(&groups.all, &servers, false);
    let records = write_and_read(&logs, &kinesis, &streams, &groups, &seed, &mut so_far);
    deliver(&records, &replicas, &single);
    let mut total: usize = seed.iter().map(|w| w.2.len()).sum();
    scraped(total);
    std::thread::sleep(Duration::from_secs(4)); // samples at the seed values

    // ---- burst ----
    let burst = phase(&groups.all, &servers, true);
    let records = write_and_read(&logs, &kinesis, &streams, &groups, &burst, &mut so_far);
    deliver(&records, &replicas, &single);
    total += burst.iter().map(|w| w.2.len()).sum::<usize>();
    scraped(total);
    // Rates settle, shortened alerts fire, inventory has been read.
    std::thread::sleep(Duration::from_secs(8));
    let at = now_ms() as f64 / 1000.0 - 1.0;

    // ---- every query, per server ----
    let mut queries: Vec<(String, String)> = Vec::new();
    for name in [
        "aws-transfer-overview",
        "aws-transfer-server",
        "aws-transfer-exporter-health",
    ] {
        queries.extend(dashboard_queries(
            &root().join(format!("grafana/dashboards/{name}.json")),
        ));
    }
    queries.extend(rule_queries(&rule_files));
    queries.push(("firing alerts".into(), "ALERTS".into()));
    let mut expanded: BTreeMap<String, String> = BTreeMap::new(); // query -> where
    for (what, expr) in &queries {
        for server in [&servers[0], &servers[2]] {
            let q = expr
                .replace("$server_id", server)
                .replace("$user", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m");
            expanded.entry(q).or_insert_with(|| what.clone());
        }
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut with_data = Vec::new();
    let mut skipped = BTreeMap::new();
    let mut max_deviation = (0.0f64, String::new());
    for (q, what) in &expanded {
        let r = query_at(&agent, &p_replicas, q, at).and_then(|d| answer(&d));
        let s = query_at(&agent, &p_single, q, at).and_then(|d| answer(&d));
        if let Some(why) = per_process(what) {
            skipped.insert(what.clone(), (why, r, s));
            continue;
        }
        compared += 1;
        let (r, s) = match (r, s) {
            (Ok(r), Ok(s)) => (r, s),
            (r, s) => {
                failures.push(format!("{what}: replicas {r:?}, single {s:?}\n    {q}"));
                continue;
            }
        };
        let keys_r: Vec<&String> = r.keys().collect();
        let keys_s: Vec<&String> = s.keys().collect();
        // A template variable (label_values) is the set of label values;
        // the count the query returns is only how it is asked here.
        let values_matter = !what.contains(": variable ");
        for (k, v) in r.iter().filter(|_| values_matter) {
            if let Some(w) = s.get(k) {
                if v.is_finite() && w.is_finite() && v != w {
                    let d = (v - w).abs() / v.abs().max(w.abs());
                    if d > max_deviation.0 {
                        max_deviation = (d, what.clone());
                    }
                }
            }
        }
        let tolerance = if q.contains("avg1d") {
            TOLERANCE_BASELINE
        } else {
            TOLERANCE
        };
        if keys_r != keys_s || (values_matter && r.iter().any(|(k, v)| !same(*v, s[k], tolerance)))
        {
            failures.push(format!(
                "{what}:\n    replicas {r:?}\n    single   {s:?}\n    {q}"
            ));
        } else if !s.is_empty() {
            with_data.push(what.clone());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} queries answer differently with two replicas:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The comparison can fail: deliberately wrong aggregations are caught.
    for (q, wrong) in MUST_DIFFER {
        let r = query_at(&agent, &p_replicas, q, at).and_then(|d| answer(&d));
        let s = query_at(&agent, &p_single, q, at).and_then(|d| answer(&d));
        let differ = match (&r, &s) {
            (Ok(r), Ok(s)) => {
                r.keys().ne(s.keys()) || r.iter().any(|(k, v)| !same(*v, s[k], TOLERANCE))
            }
            _ => true,
        };
        assert!(differ, "not caught: {wrong}\n    {q}\n    {r:?}\n    {s:?}");
    }

    // The per-process panels differ as they should, and are all still there.
    for (title, _) in PER_PROCESS {
        assert!(
            skipped.keys().any(|w| w.contains(title)),
            "PER_PROCESS lists {title:?}, which no dashboard has any more"
        );
    }
    let targets_up = skipped
        .iter()
        .find(|(w, _)| w.contains("Targets up"))
        .map(|(_, (_, r, s))| (r.clone(), s.clone()))
        .unwrap();
    assert_eq!(
        (
            targets_up.0.map(|m| m.into_values().sum::<f64>()),
            targets_up.1.map(|m| m.into_values().sum::<f64>())
        ),
        (Ok(2.0), Ok(1.0)),
        "two targets up for the replicas, one for the single"
    );

    // The comparison means something: the product panels and the alerts
    // that the scenario feeds have data.
    for must in [
        "Failures by cause (per minute)",
        "Time since last session",
        "Connector failures (per minute)",
        "AS2 messages (per minute)",
        "Workflow executions (per minute)",
        "Server inventory",
        "Unparsed events (per minute)",
        "Unattributed events (per minute)",
        "rule AWSTransferIAMAccessDenied",
        "rule AWSTransferConnectorFailures",
        "firing alerts",
    ] {
        assert!(
            with_data.iter().any(|w| w.contains(must)),
            "{must} had no data, so its comparison proves nothing; with data: {with_data:#?}"
        );
    }
    eprintln!(
        "replicas: {compared} queries compared ({} with data), {} per-process skipped, largest value deviation {:.1}% ({}), in {:?}",
        with_data.len(),
        skipped.len(),
        max_deviation.0 * 100.0,
        max_deviation.1,
        started.elapsed()
    );
}

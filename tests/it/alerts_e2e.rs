//! End to end for the shipped alerts and dashboards: moto (CloudWatch Logs
//! and Transfer APIs), the real daemon, and a real Prometheus scraping it
//! every second with `deploy/prometheus/recording.yaml` and a copy of
//! `alerts.yaml` whose `for:` durations are shortened to 1s (expressions and
//! thresholds unchanged).
//!
//! Asserts through Prometheus' HTTP API that the auth-failure spike, IAM and
//! bucket alerts fire for the noisy server and that the quiet server has no
//! alert; that every rule evaluates without error; that every PromQL query
//! of every dashboard panel and variable runs without error, and returns data
//! whenever every series it selects has data; and that every metric name the
//! dashboards and rules use is in the daemon's real `/metrics` output.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::logs::shapes;
use crate::support::{
    exposition, free_port, now_ms, root, unique, wait_until, Daemon, Logs, Moto, REGION,
};

const NOISY: &str = "s-00000000000e2e001";
const QUIET: &str = "s-00000000000e2e002";
const CROWDED: &str = "s-00000000000e2e003";
const CONNECTOR: &str = "c-00000000000e2e001";
const SESSION: &str = "26315c40e111fcf04b00";
const QUIET_SESSION: &str = "bd7b5b22d6092852d0d8";

/// Bound on each wait for Prometheus to see something (scrape and rule
/// evaluation every second; the daemon polls every second).
const WAIT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------ helpers

/// A real Prometheus on 127.0.0.1, killed on drop.
pub(crate) struct Prometheus {
    child: Child,
    pub(crate) url: String,
    agent: ureq::Agent,
}

impl Prometheus {
    fn start(dir: &Path, target: &str, rule_files: &[PathBuf]) -> Prometheus {
        Prometheus::start_targets(dir, &[target.to_owned()], rule_files)
    }

    /// Scrapes every target as one job, `aws-transfer-exporter` (several
    /// replicas of one deployment).
    pub(crate) fn start_targets(
        dir: &Path,
        targets: &[String],
        rule_files: &[PathBuf],
    ) -> Prometheus {
        let bin = which("prometheus").unwrap_or_else(|| {
            panic!("prometheus is not installed: apt-get install -y prometheus (scripts/check-deploy.sh does)")
        });
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}scrape_configs:\n  - job_name: aws-transfer-exporter\n    static_configs:\n      - targets: {}\n",
            rules.concat(),
            serde_json::to_string(targets).unwrap()
        );
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, config).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent,
        };
        wait_until("prometheus ready", Duration::from_secs(30), || {
            let r = p.agent.get(format!("{}/-/ready", p.url)).call().ok()?;
            r.status().is_success().then_some(())
        });
        p
    }

    pub(crate) fn api(&self, path: &str, query: Option<&str>) -> Value {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        let mut resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body = resp.body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// Runs an instant query: Ok(result array) or Err(Prometheus' error).
    fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", Some(q));
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(match &v["data"]["result"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()], // scalar
        })
    }

    fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts", None)["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// A listener on 127.0.0.1 that greets like an SSH server (for the probe),
/// stopped on drop.
struct SshBanner {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl SshBanner {
    fn start() -> SshBanner {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SshBanner { port, stop }
    }
}

impl Drop for SshBanner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `alerts.yaml` with every `for:` shortened to 1s; nothing else changed.
pub fn shortened_alerts(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("for:") {
                format!("{}for: 1s", &l[..l.len() - t.len()])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Words that are never metric names: operators, modifiers and the
/// aggregation operators (which may be followed by `by (...)`, not `(`).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];
const LABEL_LIST: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The vector selectors of a PromQL expression (`name{matchers}`, `name`, or
/// `{matchers}`), in order. A small scanner, enough for our own rules and
/// panels: skips strings, range brackets, function names and label lists.
pub fn selectors(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_string = |i: usize| -> usize {
        let q = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] != q {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        j + 1
    };
    let close = |i: usize, open: u8, shut: u8| -> usize {
        let mut depth = 0;
        let mut j = i;
        while j < b.len() {
            match b[j] {
                b'"' | b'\'' | b'`' => {
                    j = skip_string(j);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == shut => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        b.len()
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(i);
        } else if c == b'[' {
            i = close(i, b'[', b']');
        } else if c == b'{' {
            let end = close(i, b'{', b'}');
            out.push(expr[i..end].to_owned());
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let next = b.get(j).copied();
            if LABEL_LIST.contains(&word) {
                if next == Some(b'(') {
                    i = close(j, b'(', b')');
                }
            } else if KEYWORDS.contains(&word) || next == Some(b'(') {
                // keyword or function name
            } else if next == Some(b'{') {
                let end = close(j, b'{', b'}');
                out.push(format!("{word}{}", &expr[j..end]));
                i = end;
            } else {
                out.push(word.to_owned());
            }
        } else if c.is_ascii_digit() || c == b'.' {
            // numbers, including exponents and durations outside brackets
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The metric name of a selector, if it names one.
fn metric_name(selector: &str) -> Option<&str> {
    let name = selector.split('{').next().unwrap_or("");
    (!name.is_empty()).then_some(name)
}

/// Every (where, PromQL) of a dashboard: panel targets and variable queries
/// (`label_values(sel, label)` becomes `count by (label) (sel)`).
pub(crate) fn dashboard_queries(path: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("{file}: panel {:?} {}", p["title"], t["refId"]),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().unwrap();
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .expect("label_values()");
            let (sel, label) = inner.rsplit_once(',').unwrap();
            out.push((
                format!("{file}: variable {}", v["name"]),
                format!("count by ({}) ({})", label.trim(), sel.trim()),
            ));
        }
    }
    out
}

/// Every (where, PromQL) of the rule files.
pub(crate) fn rule_queries(files: &[PathBuf]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in files {
        let v: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for g in v["groups"].as_sequence().unwrap() {
            for r in g["rules"].as_sequence().unwrap() {
                let name = r
                    .get("alert")
                    .or_else(|| r.get("record"))
                    .and_then(|n| n.as_str())
                    .unwrap();
                out.push((
                    format!("rule {name}"),
                    r["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

fn substitute(expr: &str) -> String {
    expr.replace("$server_id", NOISY)
        .replace("$user", ".*")
        .replace("$instance", ".*")
        .replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
}

fn has_alert(alerts: &[Value], name: &str, labels: &[(&str, &str)], states: &[&str]) -> bool {
    alerts.iter().any(|a| {
        a["labels"]["alertname"] == name
            && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
            && states.iter().any(|s| a["state"] == *s)
    })
}

// ------------------------------------------------------------------ the test

#[test]
fn alerts_fire_and_every_dashboard_and_rule_query_runs_against_real_prometheus() {
    let started = Instant::now();
    let moto = Moto::start();
    let logs = Logs::new(&moto.url);
    let dir = tempfile::tempdir().unwrap();

    let prefix = format!("/{}/", unique("alerts-e2e"));
    let group = format!("{prefix}structured");
    logs.create_group(&group);

    // Transfer servers in moto's Transfer API, for the inventory metrics:
    // one with no logging, and one with both mechanisms (its structured
    // destination is the polled group), whose legacy copies are skipped.
    let dual = logs.block_on(async {
        let conf = aws_sdk_transfer::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&moto.url)
            .credentials_provider(aws_sdk_transfer::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        let client = aws_sdk_transfer::Client::from_conf(conf);
        client
            .create_server()
            .send()
            .await
            .expect("moto CreateServer");
        client
            .create_server()
            .logging_role("arn:aws:iam::123456789012:role/transfer-logging")
            .structured_log_destinations(format!(
                "arn:aws:logs:{REGION}:123456789012:log-group:{group}:*"
            ))
            .send()
            .await
            .expect("moto CreateServer with both logging mechanisms")
            .server_id
    });
    let dual_legacy_group = format!("/aws/transfer/{dual}");
    logs.create_group(&dual_legacy_group);
    logs.put_new(
        &dual_legacy_group,
        "ERRORS",
        &[(
            now_ms(),
            "ERRORS AUTH_FAILURE Method=publickey User=x Message=\"The user is unrecognized\""
                .to_owned(),
        )],
    );

    let errors = "ERRORS".to_owned();
    let jdoe = format!("{NOISY}/jdoe");
    let alice = format!("{QUIET}/alice");

    // Seed: one event of each kind, so every series exists in Prometheus
    // before the burst (increase() cannot see a series' first sample).
    let t = now_ms();
    logs.put_new(
        &group,
        &jdoe,
        &[
            (t, shapes::connected(NOISY, "jdoe", SESSION)),
            (t + 1, shapes::access_denied(NOISY, SESSION)),
            (t + 2, shapes::readdir(NOISY, SESSION)),
            (t + 3, shapes::assume_role(NOISY, SESSION)),
            (t + 4, shapes::close_upload(NOISY, SESSION, 2048)),
        ],
    );
    logs.put_new(
        &group,
        &alice,
        &[
            (t, shapes::connected(QUIET, "alice", QUIET_SESSION)),
            (t + 1, shapes::close_upload(QUIET, QUIET_SESSION, 100)),
        ],
    );
    let crowd: Vec<(i64, String)> = ["u1", "u2", "u3", "u4"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            (
                t + i as i64,
                shapes::connected(CROWDED, u, &format!("{:020x}", i + 1)),
            )
        })
        .collect();
    logs.put_new(&group, &format!("{CROWDED}/many"), &crowd);
    let other = [
        // connector: one failure, one success
        format!(
            r#"{{"operation":"SEND","connector-id":"{CONNECTOR}","transfer-id":"t1","file-transfer-id":"t1/f1","url":"sftp://partner.example","file-path":"/b/a.csv","status-code":"FAILED","failure-code":"CONNECTION_ERROR","failure-message":"Unknown Host"}}"#
        ),
        format!(
            r#"{{"operation":"SEND","connector-id":"{CONNECTOR}","transfer-id":"t2","file-transfer-id":"t2/f1","url":"sftp://partner.example","file-path":"/b/b.csv","status-code":"COMPLETED","bytes":10}}"#
        ),
        // AS2: one failure, one success
        format!(
            r#"{{"as2-message-id":"m1","server-id":"{NOISY}","agreement-id":"a-1","status-code":"FAILED","failure-code":"DECRYPT_FAILED","failure-message":"x","transfer-size":10}}"#
        ),
        format!(
            r#"{{"as2-message-id":"m2","server-id":"{NOISY}","agreement-id":"a-1","status-code":"COMPLETED","transfer-size":10}}"#
        ),
        // workflow: one errored, one completed
        format!(
            r#"{{"type":"ExecutionErrored","details":{{}},"workflowId":"w-00000000000e2e001","executionId":"e1","transferDetails":{{"serverId":"{NOISY}","username":"jdoe","sessionId":"{SESSION}"}}}}"#
        ),
        format!(
            r#"{{"type":"ExecutionCompleted","details":{{}},"workflowId":"w-00000000000e2e001","executionId":"e2","transferDetails":{{"serverId":"{NOISY}","username":"jdoe","sessionId":"{SESSION}"}}}}"#
        ),
        // unparseable, and an ERROR nobody can attribute
        r#"{"activity-type": "ERROR", broken"#.to_owned(),
        format!(
            r#"{{"activity-type":"ERROR","resource-arn":"{}","message":"Access denied","session-id":"ffffffffffffffffffff"}}"#,
            shapes::arn(NOISY)
        ),
        shapes::unknown_user(NOISY, "mallory"),
        shapes::key_mismatch(NOISY, "jdoe"),
        shapes::unknown_user(QUIET, "eve"),
    ];
    let other: Vec<(i64, String)> = other
        .into_iter()
        .enumerate()
        .map(|(i, m)| (t + i as i64, m))
        .collect();
    logs.put_new(&group, &errors, &other);

    // The daemon: flags for the target, a config file for inventory, probe
    // (one greeting listener, one closed port) and a small user cap.
    let banner = SshBanner::start();
    let banner2 = SshBanner::start();
    let closed = free_port();
    let config = format!(
        "limits:\n  max_users_per_server: 3\ninventory:\n  interval: 2s\nprobe:\n  interval: 1s\n  connect_timeout: 1s\n  banner_timeout: 1s\n  public_hostnames: false\n  targets:\n    - {{server_id: {NOISY}, address: \"127.0.0.1:{}\"}}\n    - {{server_id: {QUIET}, address: \"127.0.0.1:{}\"}}\n    - {{server_id: {CROWDED}, address: \"127.0.0.1:{closed}\"}}\n",
        banner.port, banner2.port
    );
    let cfg_path = dir.path().join("config.yaml");
    std::fs::write(&cfg_path, config).unwrap();
    let daemon = Daemon::start(&[
        format!("--config.file={}", cfg_path.display()),
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group-prefix={prefix}"),
        // A configured group that does not exist: poll errors (not_found).
        format!("--logs.group={prefix}missing"),
        format!("--logs.group={dual_legacy_group}"),
        "--poll.interval=1s".into(),
        "--logs.late-arrival-window=5s".into(),
        "--aws.api-rate-per-second=20".into(),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);

    // Prometheus with the real recording rules and shortened alerts.
    let rules_dir = root().join("deploy/prometheus");
    let alerts_text = std::fs::read_to_string(rules_dir.join("alerts.yaml")).unwrap();
    let short = dir.path().join("alerts-short.yaml");
    std::fs::write(&short, shortened_alerts(&alerts_text)).unwrap();
    let rule_files = vec![rules_dir.join("recording.yaml"), short];
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom = Prometheus::start(&prom_dir, &daemon.addr.to_string(), &rule_files);

    let seen = |q: &str| prom.query(q).map(|r| !r.is_empty()).unwrap_or(false);
    wait_until(
        "Prometheus to scrape the seeded failure series",
        WAIT,
        || {
            (seen(&format!(
                r#"aws_transfer_errors_total{{server_id="{NOISY}",cause="bucket_not_found"}}"#
            )) && seen(&format!(
                r#"aws_transfer_errors_total{{server_id="{NOISY}",cause="unknown_user"}}"#
            )) && seen(&format!(
                r#"aws_transfer_errors_total{{server_id="{NOISY}",cause="access_denied"}}"#
            )))
            .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3)); // a few samples at the seed values

    // The burst on NOISY: a scan (80 unknown users), and jdoe's transfers
    // failing on IAM and on a missing bucket. One late event (8 s old when
    // written, past the 5 s window) for the late-event audit.
    let t = now_ms();
    let scan: Vec<(i64, String)> = (0..80)
        .map(|i| (t + i, shapes::unknown_user(NOISY, &format!("scan{i}"))))
        .collect();
    logs.put_new(&group, &errors, &scan);
    let burst: Vec<(i64, String)> = (0..6)
        .flat_map(|i| {
            [
                (t + 2 * i, shapes::access_denied(NOISY, SESSION)),
                (t + 2 * i + 1, shapes::readdir(NOISY, SESSION)),
            ]
        })
        .collect();
    logs.put_new(&group, &jdoe, &burst);
    std::thread::sleep(Duration::from_secs(2));
    logs.put_new(
        &group,
        &alice,
        &[(
            now_ms() - 8_000,
            shapes::close_upload(QUIET, QUIET_SESSION, 1),
        )],
    );

    let want: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "AWSTransferAuthFailureSpike",
            vec![("server_id", NOISY), ("severity", "warning")],
        ),
        (
            "AWSTransferIAMAccessDenied",
            vec![
                ("server_id", NOISY),
                ("user", "jdoe"),
                ("severity", "critical"),
            ],
        ),
        (
            "AWSTransferBucketNotFound",
            vec![
                ("server_id", NOISY),
                ("user", "jdoe"),
                ("severity", "critical"),
            ],
        ),
    ];
    let alerts = wait_until("the spike, IAM and bucket alerts to fire", WAIT, || {
        let a = prom.alerts();
        want.iter()
            .all(|(n, l)| has_alert(&a, n, l, &["firing"]))
            .then_some(a)
    });
    for a in &alerts {
        if a["labels"]["server_id"] == NOISY {
            let ann = &a["annotations"];
            assert!(ann["summary"].as_str().unwrap().contains(NOISY), "{a}");
            assert!(
                ann["runbook_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("docs/runbooks.md#"),
                "{a}"
            );
        }
    }
    let spike = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "AWSTransferAuthFailureSpike")
        .unwrap();
    assert!(
        spike["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("Top cause: auth/unknown_user"),
        "the description names the top cause: {spike}"
    );
    let quiet: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["labels"]["server_id"] == QUIET)
        .collect();
    assert!(
        quiet.is_empty(),
        "the quiet server must have no alert: {quiet:?}"
    );

    // Every rule evaluates without error.
    let rules = prom.api("/api/v1/rules", None);
    let mut n_rules = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            n_rules += 1;
            assert_eq!(
                r["health"], "ok",
                "rule {} in {}: {}",
                r["name"], g["name"], r["lastError"]
            );
        }
    }
    assert_eq!(
        n_rules,
        rule_queries(&rule_files).len(),
        "Prometheus loaded every rule"
    );

    // Wait for the late-event audit and the label overflow, then take the
    // exposition used for the metric-name check.
    let metrics = wait_until("late events and label overflow in /metrics", WAIT, || {
        let m = daemon.metrics();
        (m.contains("aws_transfer_exporter_events_late_total{")
            && m.contains("aws_transfer_exporter_label_overflow_total{")
            && m.contains("aws_transfer_endpoint_probe_failures_total{")
            && m.contains("aws_transfer_server_info{")
            && m.contains("aws_transfer_exporter_poll_errors_total{"))
        .then_some(m)
    });
    std::thread::sleep(Duration::from_secs(3)); // let Prometheus scrape them

    // Every dashboard and rule query runs; panels whose data exists are not empty.
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
    let n_panels = queries.len();
    queries.extend(rule_queries(&rule_files));
    let mut failures = Vec::new();
    for (i, (what, expr)) in queries.iter().enumerate() {
        let q = substitute(expr);
        match prom.query(&q) {
            Err(e) => failures.push(format!("{what}: query error {e}\n    {q}")),
            Ok(r) if r.is_empty() && i < n_panels => {
                let sels = selectors(&q);
                let all_have_data = sels.iter().all(|s| seen(&format!("count({s})")));
                if all_have_data {
                    failures.push(format!(
                        "{what}: empty although every series it selects has data\n    {q}"
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );

    // Every metric name used is in the real /metrics output (recording rule
    // names must be defined in recording.yaml instead).
    // The dual-logging server's legacy copy was skipped, not counted.
    assert_eq!(
        exposition::value(
            &metrics,
            "aws_transfer_exporter_legacy_duplicates_skipped_total",
            &[("server_id", &dual)]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        exposition::sum(
            &metrics,
            "aws_transfer_errors_total",
            &[("server_id", &dual)]
        ),
        0.0
    );
    let exposed: BTreeSet<String> = exposition::parse(&metrics)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let recording =
        std::fs::read_to_string(root().join("deploy/prometheus/recording.yaml")).unwrap();
    let mut missing = BTreeSet::new();
    for (what, expr) in &queries {
        for s in selectors(expr) {
            let Some(name) = metric_name(&s) else {
                continue;
            };
            if name == "ALERTS" || name == "up" {
                continue; // Prometheus' own series
            }
            let known = if name.contains(':') {
                recording.contains(&format!("record: {name}"))
            } else {
                exposed.contains(name)
            };
            if !known {
                missing.insert(format!("{name} (in {what})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metric names not in the exporter's /metrics (or recording.yaml):\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "alerts e2e: {} queries checked in {:?}",
        queries.len(),
        started.elapsed()
    );
}

#[test]
fn selector_scanner_finds_names_and_skips_labels_strings_and_functions() {
    let got = selectors(
        r#"sort_desc(label_join(sum by (category, cause) (increase(aws_transfer_errors_total{server_id="s-1",user=~"a|b"}[5m])) > 0, "advice", "/", "category", "cause"))
           or on (server_id) group_left () x:y:z * 300 unless histogram_quantile(0.9, rate(h_bucket[1m])) and {__name__=~"a_(b|c)"}"#,
    );
    assert_eq!(
        got,
        vec![
            r#"aws_transfer_errors_total{server_id="s-1",user=~"a|b"}"#.to_owned(),
            "x:y:z".to_owned(),
            "h_bucket".to_owned(),
            r#"{__name__=~"a_(b|c)"}"#.to_owned(),
        ]
    );
}

#[test]
fn shortened_alerts_change_only_for_lines() {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let short = shortened_alerts(&text);
    let (a, b): (Vec<_>, Vec<_>) = text
        .lines()
        .zip(short.lines())
        .filter(|(x, y)| x != y)
        .unzip();
    assert!(!a.is_empty());
    assert!(
        a.iter().all(|l| l.trim_start().starts_with("for:")),
        "{a:?}"
    );
    assert!(b.iter().all(|l| l.trim() == "for: 1s"), "{b:?}");
}

//! End to end: events written to a real CloudWatch Logs API (moto) come out
//! as exact counter values on the real daemon's `/metrics`; health and
//! readiness; graceful shutdown; the exposition passes `promtool`.

use std::time::Duration;

use crate::support::daemon::run_to_exit;
use crate::support::logs::shapes;
use crate::support::{exposition, now_ms, unique, Daemon, Logs, Moto, REGION};

const A: &str = "s-0123456789abcdef0";
const B: &str = "s-0fedcba9876543210";

/// A legacy server id (`s-` + 17 hex digits) unique to this run, so its
/// `/aws/transfer/<id>` group never collides with another test's.
fn unique_server_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("s-{:017x}", (nanos ^ ((std::process::id() as u64) << 40)))
}

/// (metric name, labels, value).
type Expected<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

struct Scenario {
    prefix: String,
    structured: String,
    legacy: String,
    legacy_server: String,
}

/// Writes the two-server scenario: one structured group shared by servers A
/// and B (streams `ERRORS` and `<server-id>/<user>`), and one legacy group
/// `/aws/transfer/<C>` (streams `ERRORS` and `<user>.<session-id>`).
fn write_scenario(logs: &Logs) -> Scenario {
    let prefix = format!("/{}/", unique("e2e"));
    let structured = format!("{prefix}structured");
    let legacy_server = unique_server_id();
    let legacy = format!("/aws/transfer/{legacy_server}");
    let t = now_ms() - 60_000;
    logs.create_group(&structured);
    logs.create_group(&legacy);

    let s1 = "26315c40e111fcf04b00";
    let s2 = "bd7b5b22d6092852d0d8";
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
    let stream = "bob.0a700c01575303e3";
    logs.put_new(
        &legacy,
        stream,
        &[
            (t + 40, format!("{stream} CONNECTED SourceIP=198.51.100.7 User=bob HomeDir=/example-bucket/bob Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-bob")),
            (t + 41, format!(r#"{stream} ERROR Message="Access denied" Operation=CLOSE Path=/example-bucket/bob/in/c.csv BytesIn=27"#)),
        ],
    );
    Scenario {
        prefix,
        structured,
        legacy,
        legacy_server,
    }
}

fn daemon_args(moto: &Moto, sc: &Scenario, state: &std::path::Path) -> Vec<String> {
    vec![
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group-prefix={}", sc.prefix),
        format!("--logs.group={}", sc.legacy),
        "--poll.interval=1s".into(),
        "--aws.api-rate-per-second=20".into(),
        format!("--state.path={}", state.display()),
    ]
}

#[test]
fn two_servers_structured_and_legacy_give_exact_counts() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let sc = write_scenario(&logs);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::in_process(&daemon_args(moto, &sc, &dir.path().join("state.json")));

    let c = sc.legacy_server.as_str();
    let errors = "aws_transfer_errors_total";
    let expected: Vec<Expected> = vec![
        (
            errors,
            vec![
                ("server_id", A),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ],
            2.0,
        ),
        (
            errors,
            vec![
                ("server_id", A),
                ("user", "jdoe"),
                ("category", "auth"),
                ("cause", "key_mismatch"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", B),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", A),
                ("user", "jdoe"),
                ("category", "iam"),
                ("cause", "access_denied"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", B),
                ("user", "alice"),
                ("category", "iam"),
                ("cause", "assume_role_failed"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", B),
                ("user", "alice"),
                ("category", "storage"),
                ("cause", "bucket_not_found"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", c),
                ("user", ""),
                ("category", "auth"),
                ("cause", "unknown_user"),
            ],
            1.0,
        ),
        (
            errors,
            vec![
                ("server_id", c),
                ("user", "bob"),
                ("category", "iam"),
                ("cause", "access_denied"),
            ],
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            vec![("server_id", A), ("user", "jdoe")],
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            vec![("server_id", B), ("user", "alice")],
            1.0,
        ),
        (
            "aws_transfer_sessions_total",
            vec![("server_id", c), ("user", "bob")],
            1.0,
        ),
        (
            "aws_transfer_files_total",
            vec![("server_id", A), ("user", "jdoe"), ("direction", "upload")],
            1.0,
        ),
        (
            "aws_transfer_bytes_total",
            vec![("server_id", A), ("user", "jdoe"), ("direction", "upload")],
            2048.0,
        ),
        (
            "aws_transfer_events_total",
            vec![("server_id", A), ("activity", "AUTH_FAILURE")],
            3.0,
        ),
        (
            "aws_transfer_events_total",
            vec![("server_id", B), ("activity", "ERROR")],
            2.0,
        ),
    ];
    // Wait for the last event of each group, then compare everything.
    let text = d.wait_metrics(
        "every scenario event counted",
        "aws_transfer_",
        Duration::from_secs(60),
        |t| exposition::sum(t, "aws_transfer_events_total", &[]) == 13.0,
    );
    for (name, labels, want) in &expected {
        assert_eq!(
            exposition::value(&text, name, labels),
            Some(*want),
            "{name}{labels:?}\n{}",
            text.lines()
                .filter(|l| l.starts_with(name))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(
        exposition::sum(&text, errors, &[]),
        9.0,
        "no other errors counted"
    );
    assert_eq!(
        exposition::sum(&text, "aws_transfer_exporter_events_read_total", &[]),
        13.0,
        "read each event once"
    );
    for g in [&sc.structured, &sc.legacy] {
        assert!(
            exposition::value(
                &text,
                "aws_transfer_exporter_last_successful_poll_timestamp_seconds",
                &[("log_group", g)]
            )
            .is_some_and(|v| v > 0.0),
            "last successful poll of {g}"
        );
    }

    // A few more rounds change nothing (no double counting).
    std::thread::sleep(Duration::from_secs(3));
    let again = d.metrics();
    assert_eq!(
        exposition::sum(&again, "aws_transfer_events_total", &[]),
        13.0
    );
    assert_eq!(exposition::sum(&again, errors, &[]), 9.0);

    // Health, readiness, content type, the landing page, 404.
    let (status, ctype, _) = d.get("/metrics");
    assert_eq!(
        (status, ctype.as_str()),
        (200, "text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(d.get("/-/healthy").0, 200);
    assert_eq!(d.get("/-/ready").0, 200);
    assert_eq!(d.get("/nope").0, 404);
    let (status, ctype, page) = d.get("/");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(
        page.contains(&sc.structured) && page.contains(&sc.legacy),
        "{page}"
    );
    assert!(
        page.contains("assume_role_failed"),
        "recent failures on the page:\n{page}"
    );
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn exposition_passes_promtool() {
    let Ok(promtool) = which("promtool") else {
        eprintln!("promtool not installed (scripts/test-env.sh installs it); skipping");
        return;
    };
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let sc = write_scenario(&logs);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::in_process(&daemon_args(moto, &sc, &dir.path().join("state.json")));
    let text = d.wait_metrics(
        "events counted",
        "aws_transfer_events_total",
        Duration::from_secs(60),
        |t| exposition::sum(t, "aws_transfer_events_total", &[]) == 13.0,
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(cmd: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(cmd))
                .find(|f| f.is_file())
        })
        .ok_or(())
}

#[test]
fn not_ready_while_cloudwatch_is_unreachable_but_healthy() {
    // A port nothing listens on: discovery fails, so the first round never
    // completes; the daemon stays up, healthy, and says why it is not ready.
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::in_process(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={dead}"),
        "--logs.group-prefix=/nothing/".into(),
        "--poll.interval=1s".into(),
        format!("--state.path={}", dir.path().join("s.json").display()),
    ]);
    assert_eq!(d.get("/-/healthy").0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, body) = d.get("/-/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("first discovery and poll round"), "{body}");
}

#[test]
fn ready_turns_200_after_the_first_round() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = format!("/{}/g", unique("ready"));
    logs.create_group(&group);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::in_process(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group={group}"),
        "--logs.group-prefix=/none-such-prefix/".into(),
        "--poll.interval=1s".into(),
        format!("--state.path={}", dir.path().join("s.json").display()),
    ]);
    crate::support::wait_until("/-/ready == 200", Duration::from_secs(30), || {
        (d.get("/-/ready").0 == 200).then_some(())
    });
    // Once ready, the group has been polled successfully.
    let v = d.sample(
        "aws_transfer_exporter_last_successful_poll_timestamp_seconds",
        &[("log_group", &group)],
    );
    assert!(v.is_some_and(|v| v > 0.0), "{v:?}");
}

/// Two exporters must not share a state file: the second one's writes
/// would interleave with the first one's journal records. The second exits
/// non-zero naming `state.path` and the process holding it; the first runs
/// on, and once it has stopped the path is free again.
#[test]
fn a_second_exporter_on_the_same_state_path_exits_naming_it() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let sc = write_scenario(&logs);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = daemon_args(moto, &sc, &state);
    let mut first = Daemon::start(&args);
    first.wait_sum(
        "aws_transfer_events_total",
        &[],
        13.0,
        Duration::from_secs(60),
    );
    let (status, _out, err) = run_to_exit(&args, &[], Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{err}");
    for want in [
        format!(
            "state.path {} is in use by another running exporter",
            state.display()
        ),
        format!("pid {}", first.pid()),
        "give each exporter its own --state.path".to_owned(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("listening"), "nothing listened:\n{err}");
    // The first one is unaffected.
    let (code, _, body) = first.get("/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("aws_transfer_events_total"));
    first.terminate();
    let status = first.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // Free again: a new exporter takes the path and resumes its counters.
    let again = Daemon::start(&args);
    again.wait_sum(
        "aws_transfer_events_total",
        &[],
        13.0,
        Duration::from_secs(60),
    );
}

#[test]
fn sigterm_exits_zero_quickly_and_saves_state() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let sc = write_scenario(&logs);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut d = Daemon::start(&daemon_args(moto, &sc, &state));
    d.wait_sum(
        "aws_transfer_events_total",
        &[],
        13.0,
        Duration::from_secs(60),
    );
    let _ = std::fs::remove_file(&state); // whatever is there now must be rewritten at exit
    let start = std::time::Instant::now();
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(15)).unwrap_or_else(|| {
        panic!(
            "no exit within 15 s of SIGTERM; stderr:\n{}",
            d.stderr_tail(30)
        )
    });
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        d.stderr_tail(30)
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        state.is_file(),
        "state file {} not written at shutdown",
        state.display()
    );
    // The state file with its journal folded in, as the next start reads it.
    let saved = aws_transfer_exporter::state::StateStore::load(
        &aws_transfer_exporter::state::FileStore::new(&state),
    );
    let dump = serde_json::to_string(&saved).unwrap();
    assert!(
        dump.contains(&sc.structured) && dump.contains(&sc.legacy),
        "{dump}"
    );
    assert!(
        d.stderr().contains("msg=\"state saved\""),
        "{}",
        d.stderr_tail(20)
    );
}

#[test]
fn json_logs_carry_the_listening_address() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let (status, _out, err) = crate::support::daemon::run_to_exit(
        &[
            "--log.format=json".into(),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--aws.endpoint-url={dead}"),
            format!("--state.path={}", dir.path().join("s.json").display()),
            "--web.telemetry-path=/m".into(),
            "--log.level=info".into(),
            "--logs.group-prefix=/none/".into(),
        ],
        &[],
        Duration::from_secs(3),
    );
    assert!(status.is_none(), "daemon exited early: {status:?}\n{err}");
    let line = err
        .lines()
        .find(|l| l.contains("\"listening\""))
        .unwrap_or_else(|| panic!("no listening line:\n{err}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["message"], "listening");
    assert!(
        v["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{line}"
    );
}

//! Attack test for label values (issue 11): control characters and display
//! controls in any field that becomes a label, for every kind of event,
//! come out replaced by U+FFFD in the exposition the `classify` command (and
//! so the daemon) serves; the exposition passes `promtool check metrics`;
//! the cause table prints none of them either.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// What an attacker (or a corrupt log) puts into a field: NUL, newline, CR,
/// tab, an ANSI colour sequence, DEL, a C1 CSI, a right-to-left override.
const NASTY: &str = "\0|\n|\r|\t|\x1b[31m|\x7f|\u{9b}|\u{202e}|";
/// The same after the label rule: each such character becomes U+FFFD.
const CLEAN: &str = "\u{fffd}|\u{fffd}|\u{fffd}|\u{fffd}|\u{fffd}[31m|\u{fffd}|\u{fffd}|\u{fffd}|";

fn n(prefix: &str) -> String {
    format!("{prefix}{NASTY}")
}
fn c(prefix: &str) -> String {
    format!("{prefix}{CLEAN}")
}

/// A character no label value may contain after the rule.
fn unsafe_char(ch: char) -> bool {
    ch.is_control()
        || matches!(ch, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn event(group: &str, stream: &str, message: String) -> String {
    json!({"logGroupName": group, "logStreamName": stream, "timestamp": 1_764_000_000_000i64,
           "eventId": "1", "message": message})
    .to_string()
}

struct Case {
    kind: &'static str,
    events: Vec<String>,
    /// Whole exposition lines (series and value) that must be present.
    want: Vec<String>,
}

fn cases() -> Vec<Case> {
    let arn = format!(
        "arn:aws:transfer:eu-west-1\u{1b}:111122223333:server/{}",
        n("s-1")
    );
    let structured = |body: serde_json::Value| {
        let mut m = body;
        m["resource-arn"] = json!(arn);
        event("/aws/transfer/structured", &n("s-1/jd"), m.to_string())
    };
    let legacy_group = format!("/aws/transfer/{}", n("s-2"));
    let legacy_stream = format!("{}.0a700c01575303e3", n("ca"));
    vec![
        Case {
            kind: "structured",
            events: vec![
                structured(json!({"activity-type": "CONNECTED", "user": n("jd"), "session-id": "26315c40e111fcf04b00", "source-ip": "198.51.100.7"})),
                structured(json!({"activity-type": "AUTH_FAILURE", "method": "publickey", "user": n("jd"), "message": "RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ"})),
                // An admitted user's password failure takes the guarded (cleaned) label too.
                structured(json!({"activity-type": "AUTH_FAILURE", "method": "password", "user": n("jd"), "message": "Invalid user name or password"})),
                structured(json!({"activity-type": "AUTH_FAILURE", "method": "publickey", "user": n("stranger"), "message": "Authentication failure"})),
                structured(json!({"activity-type": "ERROR", "message": "Access denied", "session-id": "26315c40e111fcf04b00"})),
                structured(json!({"activity-type": n("NEW_FAILURE"), "session-id": "26315c40e111fcf04b00"})),
            ],
            want: vec![
                format!(r#"aws_transfer_sessions_total{{server_id="{}",user="{}"}} 1"#, c("s-1"), c("jd")),
                format!(r#"aws_transfer_errors_total{{category="auth",cause="key_mismatch",server_id="{}",user="{}"}} 1"#, c("s-1"), c("jd")),
                format!(r#"aws_transfer_errors_total{{category="auth",cause="invalid_password",server_id="{}",user="{}"}} 1"#, c("s-1"), c("jd")),
                format!(r#"aws_transfer_errors_total{{category="auth",cause="unknown_user",server_id="{}",user=""}} 1"#, c("s-1")),
                format!(r#"aws_transfer_errors_total{{category="iam",cause="access_denied",server_id="{}",user="{}"}} 1"#, c("s-1"), c("jd")),
                format!(r#"aws_transfer_events_total{{activity="~other",server_id="{}"}} 1"#, c("s-1")),
                format!(r#"aws_transfer_server_info{{account_id="111122223333",domain="",endpoint_type="",identity_provider_type="",protocols="",region="{}",server_id="{}"}} 1"#, "eu-west-1\u{fffd}", c("s-1")),
            ],
        },
        Case {
            kind: "legacy",
            events: vec![
                event(&legacy_group, &legacy_stream, format!(r#"CONNECTED SourceIP=198.51.100.7 User="{}" HomeDir=/b/carol"#, n("ca"))),
                event(&legacy_group, &legacy_stream, r#"ERROR Message="Access denied" Operation=CLOSE Path=/b/carol/c.csv"#.to_owned()),
            ],
            want: vec![
                format!(r#"aws_transfer_sessions_total{{server_id="{}",user="{}"}} 1"#, c("s-2"), c("ca")),
                format!(r#"aws_transfer_errors_total{{category="iam",cause="access_denied",server_id="{}",user="{}"}} 1"#, c("s-2"), c("ca")),
            ],
        },
        Case {
            kind: "connector",
            events: vec![
                event("/aws/transfer/c", "c", json!({"operation": "SEND", "connector-id": n("c-"), "status-code": "FAILED", "failure-code": "TIMEOUT_ERROR"}).to_string()),
                event("/aws/transfer/c", "c", json!({"operation": "SE\u{1b}ND", "connector-id": n("c-"), "status-code": "COMPLETED", "bytes": 10}).to_string()),
                event("/aws/transfer/c", "c", json!({"type": "ExecutionThrottled", "details": {}, "connectorId": n("c-")}).to_string()),
            ],
            want: vec![
                format!(r#"aws_transfer_connector_transfers_total{{connector_id="{}",operation="SEND",status="FAILED"}} 1"#, c("c-")),
                format!(r#"aws_transfer_connector_transfers_total{{connector_id="{}",operation="other",status="COMPLETED"}} 1"#, c("c-")),
                format!(r#"aws_transfer_connector_errors_total{{cause="timeout_error",connector_id="{}"}} 1"#, c("c-")),
                format!(r#"aws_transfer_connector_errors_total{{cause="throttled",connector_id="{}"}} 1"#, c("c-")),
            ],
        },
        Case {
            kind: "as2",
            events: vec![event("/aws/transfer/a", "as2", json!({"as2-message-id": "m", "server-id": n("s-3"), "agreement-id": "a", "status-code": "FAILED", "failure-code": "DECRYPT_FAILED"}).to_string())],
            want: vec![
                format!(r#"aws_transfer_as2_messages_total{{direction="inbound",resource_id="{}",status="FAILED"}} 1"#, c("s-3")),
                format!(r#"aws_transfer_as2_errors_total{{cause="decrypt_failed",direction="inbound",resource_id="{}"}} 1"#, c("s-3")),
            ],
        },
        Case {
            kind: "workflow",
            events: vec![
                event("/aws/transfer/w", "w", json!({"type": "StepErrored", "details": {"errorType": "BAD_REQUEST", "stepType": "COPY"}, "workflowId": n("w-"), "executionId": "e", "transferDetails": {"serverId": n("s-4"), "username": n("wu"), "sessionId": "x"}}).to_string()),
                event("/aws/transfer/w", "w", json!({"type": "ExecutionErrored", "details": {}, "workflowId": n("w-"), "executionId": "e"}).to_string()),
            ],
            want: vec![
                format!(r#"aws_transfer_errors_total{{category="workflow",cause="step_failed",server_id="{}",user="{}"}} 1"#, c("s-4"), c("wu")),
                format!(r#"aws_transfer_workflow_executions_total{{status="errored",workflow_id="{}"}} 1"#, c("w-")),
            ],
        },
    ]
}

/// Runs the real binary on `input` (stdin), bounded in time.
fn classify(args: &[&str], input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aws-transfer-exporter"))
        .arg("classify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "classify {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("output is UTF-8")
}

fn wait_bounded(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

#[test]
fn control_characters_in_every_event_kind_come_out_replaced() {
    let cases = cases();
    let input: String = cases
        .iter()
        .flat_map(|c| &c.events)
        .map(|e| format!("{e}\n"))
        .collect();
    let text = classify(&["--output", "prometheus"], &input);

    let mut failures = Vec::new();
    for case in &cases {
        for want in &case.want {
            if !text.lines().any(|l| l == want) {
                failures.push(format!(
                    "[{}] missing series\n  {want:?}\n  from input\n  {}",
                    case.kind,
                    case.events.join("\n  ")
                ));
            }
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // The encoder would write a newline as the two characters `\n`.
        if line.chars().any(unsafe_char) || line.contains("\\n") {
            failures.push(format!("unsafe label value in {line:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}\n--- exposition ---\n{text}",
        failures.len(),
        failures.join("\n")
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e}; install it with scripts/test-env.sh or apt-get install -y prometheus")
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = wait_bounded(promtool, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cause table shows server and user names too: a terminal must not
/// receive the attacker's escape sequences.
#[test]
fn cause_table_prints_no_control_characters() {
    let input: String = cases()
        .iter()
        .flat_map(|c| &c.events)
        .map(|e| format!("{e}\n"))
        .collect();
    let layouts: &[&[&str]] = &[&[], &["--wide"]];
    for args in layouts {
        let table = classify(args, &input);
        assert!(
            table.contains(&c("jd")),
            "{args:?}: user shown cleaned:\n{table}"
        );
        let bad: Vec<&str> = table
            .lines()
            .filter(|l| l.chars().any(unsafe_char))
            .collect();
        assert!(bad.is_empty(), "{args:?}: {bad:?}");
    }
}

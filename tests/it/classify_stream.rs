//! The `classify` command streams (issue 10): memory stays bounded whatever
//! the input size, for JSON Lines and for the `{"events": [...]}` document,
//! through stdin as through a file; invalid UTF-8 costs only the bytes it
//! spoils.

use std::io::{BufWriter, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Peak resident memory allowed to the command, whatever the input size.
const MAX_PEAK_RSS_KB: u64 = 64 * 1024;
/// Bytes of input generated for the memory test.
const INPUT_BYTES: usize = 200 * 1024 * 1024;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aws-transfer-exporter"))
}

/// `VmHWM` (peak resident set, kB) of a running process.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits for `child` within `limit`, sampling its peak RSS until it exits.
/// Returns (highest VmHWM seen in kB, stdout).
fn wait_sampling(mut child: Child, limit: Duration) -> (u64, Vec<u8>) {
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).map(|_| v)
    });
    let start = Instant::now();
    let mut peak = 0;
    loop {
        // VmHWM is a high-water mark: the last reading before exit is the
        // peak of the whole run up to that moment.
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "classify failed: {status}");
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("classify did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (peak, reader.join().unwrap().expect("read stdout"))
}

/// One structured event line, ~`pad` bytes longer than its minimum.
fn event_line(i: usize, pad: &str) -> String {
    let msg = format!(
        r#"{{"path":"/example-bucket/partner{u:02}/in/{pad}{i}.csv","activity-type":"CLOSE","resource-arn":"arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0","bytes-in":"{i}","session-id":"{i:020x}"}}"#,
        u = i % 40
    );
    serde_json::json!({
        "logGroupName": "/aws/transfer/structured",
        "logStreamName": format!("s-0123456789abcdef0/partner{:02}", i % 40),
        "timestamp": 1_764_000_000_000i64 + i as i64,
        "eventId": i.to_string(),
        "message": msg,
    })
    .to_string()
}

/// Sum of a counter family in an exposition.
fn sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Feeds ~200 MB through stdin, as JSON Lines and as one pretty-printed
/// `{"events": [...]}` document, and bounds the peak RSS of the command.
#[test]
fn classify_memory_stays_bounded_on_200_mb_through_stdin() {
    let pad = "x".repeat(1500);
    let line_len = event_line(0, &pad).len() + 1;
    let n = INPUT_BYTES / line_len;
    for document in [false, true] {
        let mut child = bin()
            .args(["classify", "--output", "prometheus", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start classify");
        let stdin = child.stdin.take().unwrap();
        let pad = pad.clone();
        let writer = std::thread::spawn(move || -> std::io::Result<usize> {
            let mut w = BufWriter::with_capacity(1 << 16, stdin);
            let mut bytes = 0;
            if document {
                w.write_all(b"{\n    \"events\": [\n")?;
            }
            for i in 0..n {
                let line = event_line(i, &pad);
                if document {
                    // The AWS CLI's indentation, one element per line.
                    let sep = if i + 1 == n { "\n" } else { ",\n" };
                    write!(w, "        {line}{sep}")?;
                } else {
                    writeln!(w, "{line}")?;
                }
                bytes += line.len() + 1;
            }
            if document {
                w.write_all(b"    ],\n    \"searchedLogStreams\": []\n}\n")?;
            }
            w.flush()?;
            Ok(bytes)
        });
        let (peak_kb, out) = wait_sampling(child, Duration::from_secs(600));
        let written = writer.join().unwrap().expect("write stdin");
        assert!(written >= INPUT_BYTES * 9 / 10, "{written} bytes written");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            sum(&text, "aws_transfer_events_total"),
            n as f64,
            "document={document}: every event counted"
        );
        assert!(
            peak_kb <= MAX_PEAK_RSS_KB,
            "document={document}: peak RSS {peak_kb} kB for {written} bytes of input (bound {MAX_PEAK_RSS_KB} kB)"
        );
        eprintln!("document={document}: {n} events, {written} bytes, peak RSS {peak_kb} kB");
    }
}

/// Invalid UTF-8 anywhere in stdin costs only the bytes themselves: every
/// line is processed, the bad bytes become U+FFFD, in the field where they
/// were.
#[test]
fn invalid_utf8_through_stdin_spoils_only_its_bytes() {
    let lines: Vec<Vec<u8>> = vec![
        br#"{"logGroupName":"/aws/transfer/s-0123456789abcdef0","logStreamName":"ERRORS","eventId":"1","message":"ERRORS AUTH_FAILURE Method=publickey User=x Message=\"The user is unrecognized\" SourceIP=203.0.113.50"}"#.to_vec(),
        // A lone continuation byte in the message.
        b"{\"logGroupName\":\"/aws/transfer/s-0123456789abcdef0\",\"logStreamName\":\"jd\xffoe.0a700c01575303e3\",\"eventId\":\"2\",\"message\":\"ERROR Message=\\\"Access denied\\\" Path=/b/\x80k\"}".to_vec(),
        // A truncated 3-byte character and an invalid lead byte.
        b"{\"logGroupName\":\"/aws/transfer/s-0123456789abcdef0\",\"eventId\":\"3\",\"message\":\"ERRORS AUTH_FAILURE Method=publickey User=\xe2\x82 Message=\\\"The user is unrecognized\\\" SourceIP=203.0.113.\xfe\"}".to_vec(),
        // Latin-1 text, as an old tool might write it.
        b"{\"logGroupName\":\"/aws/transfer/s-0123456789abcdef0\",\"logStreamName\":\"m\xfcller.0a700c01575303e3\",\"eventId\":\"4\",\"message\":\"CONNECTED User=m\xfcller\"}".to_vec(),
        br#"{"logGroupName":"/aws/transfer/s-0123456789abcdef0","eventId":"5","message":"ERRORS CONNECTION_REJECTED SourceIP=192.0.2.30"}"#.to_vec(),
    ];
    let mut input = Vec::new();
    for l in &lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let mut child = bin()
        .args(["classify", "--output", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start classify");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("classify did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap().expect("write stdin");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.is_empty(), "no line was skipped: {stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["1", "2", "3", "4", "5"],
        "every line processed, in order"
    );
    let r = '\u{fffd}';
    assert_eq!(events[0]["cause"], "unknown_user");
    assert_eq!(events[1]["cause"], "access_denied");
    assert_eq!(events[1]["user"], format!("jd{r}oe"));
    assert_eq!(events[1]["message"], "Access denied");
    assert_eq!(events[2]["cause"], "unknown_user");
    assert_eq!(events[2]["user"], format!("{r}"));
    assert_eq!(events[3]["activity"], "CONNECTED");
    assert_eq!(events[3]["user"], format!("m{r}ller"));
    assert_eq!(events[4]["cause"], "connection_rejected");
}

/// A file and stdin take the same path: the same bytes give the same output.
#[test]
fn a_file_and_stdin_give_the_same_output() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample.jsonl");
    let bytes = std::fs::read(&file).unwrap();
    for output in ["jsonl", "prometheus", "table"] {
        let from_file = bin()
            .args(["classify", "--output", output, file.to_str().unwrap()])
            .output()
            .unwrap();
        let mut child = bin()
            .args(["classify", "--output", output, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let from_stdin = child.wait_with_output().unwrap();
        assert!(from_file.status.success() && from_stdin.status.success());
        assert_eq!(
            String::from_utf8_lossy(&from_file.stdout),
            String::from_utf8_lossy(&from_stdin.stdout),
            "--output {output}"
        );
    }
}

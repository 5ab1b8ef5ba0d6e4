//! The `classify` command, run as the real binary over fixture files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aws-transfer-exporter"))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start binary");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait")
}

/// Drops the lines that change with every build.
fn stable(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|l| !l.starts_with("aws_transfer_exporter_build_info{"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Golden test of the metric contract: the exposition for the sample
/// fixture. Rewrite with `UPDATE_GOLDEN=1 cargo test --test it golden`.
#[test]
fn golden_prometheus_output_for_sample() {
    let out = run(
        &[
            "classify",
            "--output",
            "prometheus",
            data("sample.jsonl").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = stable(&String::from_utf8(out.stdout).expect("utf-8"));
    let golden = data("golden/sample.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden)
        .expect("golden file exists (create it with UPDATE_GOLDEN=1)");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|g| !want.lines().any(|l| l == *g))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "exposition differs from {}:\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}

/// Golden test of the OpenMetrics answer for the same fixture (Debian's
/// promtool reads only the text format, so the structure is pinned here and
/// checked in `web_edge`). Rewrite with `UPDATE_GOLDEN=1`.
#[test]
fn golden_openmetrics_output_for_sample() {
    let out = run(
        &[
            "classify",
            "--output",
            "openmetrics",
            data("sample.jsonl").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = stable(&String::from_utf8(out.stdout).expect("utf-8"));
    let golden = data("golden/sample.om.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden)
        .expect("golden file exists (create it with UPDATE_GOLDEN=1)");
    assert_eq!(
        got,
        want,
        "OpenMetrics exposition differs from {}",
        golden.display()
    );
    assert!(got.ends_with("# EOF\n"));
}

#[test]
fn jsonl_has_one_object_per_event_in_input_order() {
    let input = std::fs::read_to_string(data("sample.jsonl")).unwrap();
    let out = run(&["classify", "--output", "jsonl"], Some(&input));
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let inputs: Vec<serde_json::Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), inputs.len());
    for (o, i) in lines.iter().zip(&inputs) {
        assert_eq!(o["event_id"], i["eventId"], "order kept: {o}");
        for key in ["server_id", "user", "activity", "category", "cause"] {
            assert!(o.get(key).is_some(), "{key} present in {o}");
        }
    }
    let by_id = |id: &str| lines.iter().find(|o| o["event_id"] == id).unwrap().clone();
    // Event 7 (id "6") is the observed key-mismatch; event 10 (id "9") the AssumeRole failure.
    assert_eq!(by_id("6")["cause"], "key_mismatch");
    assert_eq!(by_id("6")["user"], "jdoe");
    assert_eq!(by_id("9")["cause"], "assume_role_failed");
    assert_eq!(
        by_id("0")["cause"],
        serde_json::Value::Null,
        "CONNECTED has no cause"
    );
    assert!(
        by_id("0").get("parse_error").is_none(),
        "parse_error only when unparsed"
    );
    let broken = lines
        .iter()
        .filter(|o| o.get("parse_error").is_some())
        .count();
    assert_eq!(broken, 2, "broken JSON and a Lambda line");
}

/// `--wide`: today's one-line-per-cause layout, every column side by side.
#[test]
fn table_names_causes_with_advice_and_parse_failures() {
    let out = run(
        &["classify", "--wide", data("sample.jsonl").to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |cause: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(cause))
            .unwrap_or_else(|| panic!("no row for {cause} in:\n{text}"))
            .to_owned()
    };
    assert!(
        row("iam/access_denied").trim_start().starts_with("3 "),
        "{text}"
    );
    assert!(row("auth/unknown_user").contains("No such user"), "{text}");
    assert!(row("storage/bucket_not_found").contains("bob"), "{text}");
    assert!(
        text.contains("unparseable messages: invalid_json=1 unknown_text=1"),
        "{text}"
    );
}

/// The default layout fits 100 columns: the same rows, counts, places and
/// advice as `--wide`, with the places and the advice wrapped under the row,
/// and the same totals.
#[test]
fn default_table_fits_100_columns_with_the_same_content_as_wide() {
    let file = data("sample.jsonl");
    let narrow = run(&["classify", file.to_str().unwrap()], None);
    let wide = run(&["classify", "--wide", file.to_str().unwrap()], None);
    assert!(narrow.status.success() && wide.status.success());
    let narrow = String::from_utf8(narrow.stdout).unwrap();
    let wide = String::from_utf8(wide.stdout).unwrap();
    for l in narrow.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}\n{narrow}",
            l.chars().count()
        );
    }
    assert!(
        wide.lines().any(|l| l.chars().count() > 100),
        "the sample's wide table is wider than 100 (else this test proves nothing)"
    );
    // Totals: the first line and the footer are the same in both layouts.
    assert_eq!(narrow.lines().next(), wide.lines().next());
    assert!(
        narrow.contains("unparseable messages: invalid_json=1 unknown_text=1"),
        "{narrow}"
    );
    // Every wide row appears in the narrow table: count and cause on the row
    // line, servers, users and advice (words in order) in the lines under it.
    let nlines: Vec<&str> = narrow.lines().collect();
    let mut rows = 0;
    for w in wide
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("COUNT"))
        .skip(1)
    {
        let cols: Vec<&str> = w
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if cols.len() < 5 {
            break;
        }
        rows += 1;
        let (count, cause, servers, users, advice) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let i = nlines
            .iter()
            .position(|l| l.split_whitespace().collect::<Vec<_>>() == [count, cause])
            .unwrap_or_else(|| panic!("no row `{count} {cause}` in:\n{narrow}"));
        let mut j = i + 1;
        let mut below = String::new();
        while j < nlines.len() && nlines[j].starts_with("       ") {
            below.push_str(nlines[j].trim());
            below.push(' ');
            j += 1;
        }
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat(&below).contains(&flat(advice)),
            "advice of {cause} under its row:\n{below}\nwant: {advice}"
        );
        for name in servers
            .split(',')
            .chain(users.split(','))
            .filter(|n| *n != "-")
        {
            assert!(below.contains(name), "{name} under {cause}:\n{below}");
        }
    }
    assert!(rows >= 8, "{rows} rows compared:\n{wide}");
}

#[test]
fn filter_log_events_document_and_default_log_group() {
    // The shape `aws logs filter-log-events` prints; legacy lines need the
    // group to find their server.
    let doc = r#"{"events":[
      {"logStreamName":"ERRORS","timestamp":1764000000000,"message":"ERRORS AUTH_FAILURE Method=publickey User=x Message=\"The user is unrecognized\" SourceIP=203.0.113.50","ingestionTime":1764000000100,"eventId":"3"},
      {"logStreamName":"jdoe.0a700c01575303e3","timestamp":1764000001000,"message":"jdoe.0a700c01575303e3 ERROR Message=\"Error performing readdir\"","eventId":"4"}
    ],"searchedLogStreams":[]}"#;
    let out = run(
        &[
            "classify",
            "--output",
            "jsonl",
            "--log-group",
            "/aws/transfer/s-0123456789abcdef0",
            "-",
        ],
        Some(doc),
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["cause"], "unknown_user");
    assert_eq!(lines[1]["cause"], "bucket_not_found");
    assert_eq!(lines[1]["server_id"], "s-0123456789abcdef0");
    assert_eq!(lines[1]["user"], "jdoe");
}

#[test]
fn bad_input_lines_are_reported_and_nothing_readable_fails() {
    let mixed = "not json at all\n{\"message\":\"ERRORS CONNECTION_REJECTED\"}\n";
    let out = run(&["classify", "--output", "jsonl"], Some(mixed));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-:1: not a CloudWatch event object"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);

    let out = run(&["classify"], Some("garbage\nmore garbage\n"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no events could be read"), "{stderr}");

    let out = run(&["classify", "/nonexistent/file.jsonl"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/file.jsonl"));
}

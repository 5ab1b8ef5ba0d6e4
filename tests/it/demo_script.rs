//! `scripts/demo.sh` as a user runs it with output redirected (issue 11):
//! it ends with the per-cause table and its advice, says why unknown users
//! carry no user label, says the landing page is not kept up (no `--keep`),
//! and writes no ANSI escape. Real moto, real daemon, real `classify`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::root;

/// Kills the demo's whole process group (moto, the exporter, python) if
/// the test ends before the script does.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // A process group id is the pid of its first member: never 0 or 1,
        // which would mean "this group" or "everything".
        if self.0 <= 1 {
            return;
        }
        let group = format!("-{}", self.0);
        // `--` is required: procps-ng 4.0.2's kill(1) reads `-TERM -17521`
        // as kill(-1, SIGTERM), every process we may signal (strace shows
        // it), which once took the whole CI run down with it.
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn demo_ends_with_the_cause_table_and_writes_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.txt");
    let err_path = dir.path().join("err.txt");
    let mut child = Command::new("bash")
        .arg(root().join("scripts/demo.sh"))
        .current_dir(root())
        .env(
            "DEMO_EXPORTER_BIN",
            env!("CARGO_BIN_EXE_aws-transfer-exporter"),
        )
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start scripts/demo.sh");
    let _group = Group(child.id() as i32);

    // Installing moto on a fresh machine takes about a minute; the demo
    // itself about ten seconds.
    let limit = Duration::from_secs(300);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "demo did not finish within {limit:?}; output so far:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut raw = Vec::new();
    std::fs::File::open(&out_path)
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let out = String::from_utf8_lossy(&raw);
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "demo failed ({status}):\n{out}\n{err}");

    assert!(
        !raw.contains(&0x1b) && !err.as_bytes().contains(&0x1b),
        "ESC byte in redirected output:\n{out:?}"
    );
    // The per-cause table, with its totals, checked against the daemon.
    for want in [
        "demo: the daemon counted 7 server failures; the table below has the same",
        "14 events: 7 failures, 7 other events, 0 unparseable",
        "COUNT  CAUSE",
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "missing {want:?} in:\n{out}"
        );
    }
    let row = |cause: &str| -> (String, String) {
        let lines: Vec<&str> = out.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.split_whitespace().nth(1) == Some(cause))
            .unwrap_or_else(|| panic!("no row for {cause} in:\n{out}"));
        // The lines under the row, with the wrapping undone.
        let below = lines[i + 1..(i + 5).min(lines.len())]
            .iter()
            .take_while(|l| l.starts_with("       "))
            .flat_map(|l| l.split_whitespace())
            .collect::<Vec<_>>()
            .join(" ");
        (lines[i].to_owned(), below)
    };
    for (cause, count, detail) in [
        ("iam/access_denied", "2", "add the missing actions"),
        ("auth/unknown_user", "2", "No such user on this server"),
        ("auth/key_mismatch", "1", "compare the logged fingerprint"),
        ("iam/assume_role_failed", "1", "restore the trust policy"),
        ("storage/bucket_not_found", "1", "users: bob"),
    ] {
        let (head, below) = row(cause);
        assert_eq!(
            head.split_whitespace().next(),
            Some(count),
            "{cause}: {head}"
        );
        assert!(
            below.contains(detail),
            "{cause}: {detail:?} under the row:\n{below}"
        );
    }
    for l in out.lines() {
        assert!(
            l.chars().count() <= 100 || l.starts_with("  aws_transfer"),
            "wider than 100: {l}"
        );
    }
    assert!(
        out.contains("why auth/unknown_user shows no user"),
        "the unknown-user note:\n{out}"
    );
    assert!(
        out.contains("the exporter stops now; run scripts/demo.sh --keep"),
        "no landing page URL without --keep:\n{out}"
    );
    assert!(!out.contains("landing page with the advice"), "{out}");
}

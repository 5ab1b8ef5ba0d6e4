//! Signals to a process group must end kill(1)'s options with `--`.
//!
//! procps-ng 4.0.2's kill(1) (Debian 12) reads the group argument of
//! `kill -TERM -17521` by its first digit: kill(-1, SIGTERM), every process
//! the caller may signal. Run as root in CI, one test's cleanup killed the
//! whole run. This check reads the tests and scripts and fails on any kill
//! of a negative pid that is not preceded by `--`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::root;

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, exts, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
        {
            out.push(p);
        }
    }
}

/// The places in `text` (1-based lines) where a negative pid is formed
/// for kill(1) without `--` before it in the same statement.
fn unguarded(text: &str, shell: bool) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if shell {
            let code = line.split('#').next().unwrap_or("");
            let words: Vec<&str> = code.split_whitespace().collect();
            for (k, w) in words.iter().enumerate() {
                if *w != "kill" {
                    continue;
                }
                let args = &words[k + 1..];
                let dashdash = args.iter().position(|a| *a == "--");
                let negative = args.iter().position(|a| {
                    a.starts_with("-$") || a.starts_with("\"-$") || a.starts_with("-\"$")
                });
                if let Some(n) = negative {
                    if dashdash.is_none_or(|d| d > n) {
                        bad.push(i + 1);
                    }
                }
            }
        } else if line.contains("format!(\"-{") {
            // A negative pid built for a command line: the statement that
            // uses it (this line and the next ten) must pass "--".
            let window = lines[i..(i + 12).min(lines.len())].join("\n");
            if window.contains("\"kill\"") && !window.contains("\"--\"") {
                bad.push(i + 1);
            }
        }
    }
    bad
}

#[test]
fn the_checker_finds_the_form_that_killed_every_process() {
    let rust = "let g = format!(\"-{}\", pid);\nCommand::new(\"kill\").args([\"-TERM\", &g]);\n";
    assert_eq!(unguarded(rust, false), vec![1]);
    let fixed =
        "let g = format!(\"-{}\", pid);\nCommand::new(\"kill\").args([\"-TERM\", \"--\", &g]);\n";
    assert!(unguarded(fixed, false).is_empty());
    assert_eq!(unguarded("kill -TERM -$PGID\n", true), vec![1]);
    assert!(unguarded("kill -TERM -- -$PGID\nkill \"$PID\"\n", true).is_empty());
}

#[test]
fn every_kill_of_a_process_group_in_tests_and_scripts_passes_double_dash() {
    let root = root();
    let mut rs = Vec::new();
    files(&root.join("tests"), &["rs"], &mut rs);
    let mut sh = Vec::new();
    for dir in ["scripts", ".ci", "deploy"] {
        if root.join(dir).is_dir() {
            files(&root.join(dir), &["sh"], &mut sh);
        }
    }
    sh.push(root.join(".ci/run"));
    let mut problems = Vec::new();
    for (paths, shell) in [(&rs, false), (&sh, true)] {
        for p in paths {
            if p.ends_with("kill_hygiene.rs") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(p) else {
                continue;
            };
            for line in unguarded(&text, shell) {
                problems.push(format!(
                    "{}:{line}",
                    p.strip_prefix(&root).unwrap_or(p).display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "kill of a negative pid without `--` (procps-ng reads it as -1, everything): {problems:?}"
    );
}

/// The reason for the rule, shown on this machine's own kill(1) when it is
/// procps-ng: with `--` the group reaches the system call whole. Checked
/// with strace, which makes the call fail (EPERM) so nothing is signalled.
#[test]
fn with_double_dash_the_whole_group_id_reaches_the_system_call() {
    let has = |c: &str| {
        Command::new(c)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("strace") {
        eprintln!("strace not installed: skipping the system-call check");
        return;
    }
    let out = Command::new("strace")
        .args(["-e", "trace=kill", "-e", "inject=kill:error=EPERM"])
        .args(["kill", "-TERM", "--", "-987654"])
        .output()
        .expect("run strace");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("kill(-987654, SIGTERM)"),
        "kill -TERM -- -987654 did not reach kill(-987654):\n{text}"
    );
}

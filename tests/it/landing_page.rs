//! The landing page answers the operator's question (issue 11): the daemon,
//! fed real events through moto, shows failures per cause and server since
//! the start first — counts equal to the events written, the advice of the
//! classification table — then the recent failures, with hostile and long
//! fields escaped and shortened (full text on hover); the AWS API and log
//! group sections say what they should. Where Chromium is installed, a real
//! browser parses the page (`--dump-dom`) and takes a screenshot.
//!
//! Also: `build_info`'s revision is the checkout's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_transfer_exporter::web::landing::{escape, NAME_CHARS};

use crate::support::html::{at, rows, text};
use crate::support::logs::shapes;
use crate::support::{now_ms, root, unique, Daemon, Logs, Moto, REGION};

const A: &str = "s-0a1b2c3d4e5f60718";
const B: &str = "s-0f1e2d3c4b5a69788";

/// A user name no real account has: markup, controls, a bidi override, and
/// longer than the page shows.
fn hostile_user() -> String {
    format!(
        "<img src=x onerror=alert(1)>\u{0}\n\u{1b}[31m\u{202e}{}",
        "x".repeat(60)
    )
}

/// The advice the classification table gives a cause.
fn advice(category: &str, cause: &str) -> &'static str {
    aws_transfer_exporter::classify::vocabulary()
        .into_iter()
        .find(|c| c.category == category && c.cause == cause)
        .unwrap_or_else(|| panic!("{category}/{cause} in the table"))
        .advice
}

#[test]
fn the_page_summarizes_real_failures_by_cause_and_server_first() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let prefix = format!("/{}/", unique("landing"));
    let group = format!("{prefix}structured");
    logs.create_group(&group);
    let t = now_ms() - 60_000;
    let key_mismatch = |user: &str| {
        serde_json::json!({
            "method": "publickey", "activity-type": "AUTH_FAILURE",
            "source-ip": "198.51.100.7", "resource-arn": shapes::arn(A),
            "message": "RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ",
            "user": user,
        })
        .to_string()
    };
    logs.put_new(
        &group,
        "ERRORS",
        &[
            (t, shapes::unknown_user(A, "mallory")),
            (t + 1, shapes::unknown_user(A, "mallory")),
            (t + 2, shapes::unknown_user(A, "trudy")),
            (t + 3, shapes::unknown_user(B, "eve")),
            (t + 4, key_mismatch(&hostile_user())),
            (t + 5, key_mismatch(&hostile_user())),
        ],
    );
    let session = "26315c40e111fcf04b00";
    logs.put_new(
        &group,
        &format!("{A}/jdoe"),
        &[
            (t + 10, shapes::connected(A, "jdoe", session)),
            (t + 11, shapes::access_denied(A, session)),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::in_process(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group-prefix={prefix}"),
        "--poll.interval=1s".into(),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);
    d.wait_sum(
        "aws_transfer_errors_total",
        &[],
        7.0,
        Duration::from_secs(30),
    );
    let (status, ctype, page) = d.get("/");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");

    // The summary comes first, the recent failures below it.
    assert!(at(&page, "id=\"causes\"") < at(&page, "id=\"recent\""));
    assert!(at(&page, "id=\"recent\"") < at(&page, "id=\"aws-apis\""));
    assert!(page.contains("Failures by cause (7)"), "{page}");

    // Per cause (most first) and per server, the counts of the events
    // written, and the classification table's advice.
    let summary: Vec<Vec<String>> = rows(&page, "summary")
        .iter()
        .map(|r| r.iter().map(|c| text(c)).collect())
        .collect();
    let stamp = |ms: i64| aws_transfer_exporter::web::landing::utc(ms);
    let want: Vec<Vec<String>> = vec![
        vec![
            "unknown_userauth".into(),
            "4".into(),
            advice("auth", "unknown_user").into(),
            A.into(),
            "3".into(),
            stamp(t + 2),
        ],
        vec![B.into(), "1".into(), stamp(t + 3)],
        vec![
            "key_mismatchauth".into(),
            "2".into(),
            advice("auth", "key_mismatch").into(),
            A.into(),
            "2".into(),
            stamp(t + 5),
        ],
        vec![
            "access_deniediam".into(),
            "1".into(),
            advice("iam", "access_denied").into(),
            A.into(),
            "1".into(),
            stamp(t + 11),
        ],
    ];
    assert_eq!(summary, want, "{page}");

    // The recent failures: all seven, newest first, hostile names escaped
    // and shortened with the full (escaped) name on hover.
    let recent = rows(&page, "recent");
    assert_eq!(recent.len(), 7, "{page}");
    let mut causes: Vec<String> = recent
        .iter()
        .map(|r| text(&r[3]).split(' ').next().unwrap_or("").to_owned())
        .collect();
    causes.sort();
    assert_eq!(
        causes,
        [
            "access_denied",
            "key_mismatch",
            "key_mismatch",
            "unknown_user",
            "unknown_user",
            "unknown_user",
            "unknown_user"
        ]
    );
    let user = hostile_user();
    assert!(
        page.contains(&format!("title=\"{}\"", escape(&user))),
        "{page}"
    );
    let shown: String = user.chars().take(NAME_CHARS - 1).collect();
    assert!(page.contains(&format!("{}…</span>", escape(&shown))));
    assert!(!page.contains("<img"), "markup from a log reached the page");
    assert!(
        page.contains(r"\u{0}\u{a}\u{1b}[31m\u{202e}"),
        "controls shown"
    );
    assert!(
        !page.chars().any(|c| c != '\n' && c.is_control()),
        "a raw control character in the page"
    );

    // The AWS APIs this target uses, and the polled group with its poll
    // health apart from the age of its newest event.
    let apis = rows(&page, "apis");
    let logs_row = apis
        .iter()
        .find(|r| text(&r[1]) == "logs")
        .unwrap_or_else(|| panic!("a logs row: {apis:?}"));
    assert_eq!(text(&logs_row[0]), REGION);
    assert_eq!(text(&logs_row[2]), "up", "{logs_row:?}");
    assert!(apis.iter().any(|r| text(&r[1]) == "transfer"), "{apis:?}");
    let groups = rows(&page, "groups");
    let g = groups
        .iter()
        .find(|r| text(&r[1]) == group)
        .unwrap_or_else(|| panic!("{group} listed: {groups:?}"));
    assert!(text(&g[2]).ends_with(" ago"), "last successful poll: {g:?}");
    assert!(text(&g[3]).ends_with(" ago"), "newest event seen: {g:?}");
    assert!(page.contains("a quiet server is not falling behind"));
    assert!(page.contains(&format!(
        "revision <code>{}</code>",
        aws_transfer_exporter::metrics::REVISION
    )));

    if let Some(chromium) = chromium() {
        in_a_browser(&chromium, &d.url("/"), dir.path());
    }
}

/// Chromium's binary, when installed (Debian: `chromium`).
fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

/// Runs headless Chromium on `url` with `args`, bounded in time; its stdout.
/// Everything but 127.0.0.1 is unreachable for it: names resolve to
/// nothing and any other request goes to a dead proxy; background
/// networking is off.
fn headless(chromium: &str, url: &str, profile: &Path, args: &[&str]) -> Vec<u8> {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--window-size=1400,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("HOME", profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("reader")
}

/// The page as a real browser parses it: the summary table before the
/// recent failures, no element from a log, and a screenshot that renders.
fn in_a_browser(chromium: &str, url: &str, scratch: &Path) {
    let profile = scratch.join("chromium");
    std::fs::create_dir_all(&profile).unwrap();
    let dom =
        String::from_utf8_lossy(&headless(chromium, url, &profile, &["--dump-dom"])).into_owned();
    assert!(
        at(&dom, "<table class=\"summary\">") < at(&dom, "<table class=\"recent\">"),
        "{dom}"
    );
    assert!(
        !dom.contains("<img"),
        "the browser built an element from a log"
    );
    assert!(!dom.contains("<script"), "no script on the page");
    let png = scratch.join("landing.png");
    headless(
        chromium,
        url,
        &profile,
        &[
            &format!("--screenshot={}", png.display()),
            "--hide-scrollbars",
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(bytes.len() > 20_000, "a rendered page, not a blank one");
    if let Ok(keep) = std::env::var("LANDING_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("copy the screenshot");
    }
}

/// `aws_transfer_exporter_build_info{revision}` is the checkout's short
/// commit id when built in a git checkout (build.rs), not `unknown`.
#[test]
fn build_info_revision_is_the_checkouts() {
    let Some(head) = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    else {
        eprintln!("not a git checkout (or no git): nothing to compare");
        return;
    };
    if std::env::var_os("GIT_REVISION").is_some() {
        eprintln!("GIT_REVISION is set for the build: it wins over git");
        return;
    }
    assert_eq!(aws_transfer_exporter::metrics::REVISION, head);
    let out = Command::new(crate::support::daemon::BIN)
        .args(["classify", "--output", "prometheus"])
        .arg(root().join("tests/data/sample.jsonl"))
        .output()
        .expect("run classify");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("aws_transfer_exporter_build_info{"))
        .unwrap_or_else(|| panic!("build_info in:\n{text}"));
    assert!(
        line.contains(&format!("revision=\"{head}\"")),
        "{line} (HEAD is {head})"
    );
}

//! Access problems are a first-class state (issue 11): the real daemon with
//! **no** AWS credentials at all (environment cleared of `AWS_*` but a
//! Region, empty config and credentials files, instance metadata off,
//! moto's endpoint on 127.0.0.1, so nothing can leave the machine) says so
//! within seconds for both APIs — `api_calls_total{outcome="credentials"}`,
//! `target_up` 0, one WARN per API with the fix, no Debug dump, no
//! misleading budget warning — and a second run with credentials is up.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::daemon::BIN;
use crate::support::{exposition, html, Daemon, Moto, REGION};

/// The bound: the problem shows within ten seconds.
const WITHIN: Duration = Duration::from_secs(10);

/// Credentials of the second run: distinctive, so a test can tell whether
/// they reached the log.
const KEY_ID: &str = "AKIDPROBE7Q2W9E4R";
const SECRET: &str = "secretprobe-5f1e0c9a7b3d";

/// A command with nothing of the developer's environment: no `AWS_*` but
/// the Region and the metadata switch, `HOME` and both AWS files in a
/// scratch directory (the files empty), plus `extra`.
fn bare_command(moto: &Moto, home: &std::path::Path, extra: &[(&str, &str)]) -> Command {
    let config = home.join("aws-config");
    let credentials = home.join("aws-credentials");
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("HOME", home)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.args([
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        "--logs.group-prefix=/aws/transfer/".to_owned(),
        "--poll.interval=1s".to_owned(),
        "--log.level=debug".to_owned(),
        "--web.listen-address=127.0.0.1:0".to_owned(),
        format!("--state.path={}", home.join("state.json").display()),
    ]);
    cmd.stdin(std::process::Stdio::null());
    cmd
}

fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition::sum(text, name, labels)
}

#[test]
fn no_credentials_is_said_plainly_for_both_apis_and_credentials_bring_it_up() {
    let moto = Moto::shared();
    let home = tempfile::tempdir().unwrap();

    // ---- run 1: no credentials anywhere ----
    let started = Instant::now();
    let d = Daemon::spawn(bare_command(moto, home.path(), &[]));
    let up = |api| [("target", REGION), ("api", api)];
    let text = d.wait_metrics(
        "credentials outcomes and target_up 0 for both APIs",
        "aws_transfer_exporter_",
        WITHIN.saturating_sub(started.elapsed()),
        |t| {
            sum(
                t,
                "aws_transfer_exporter_api_calls_total",
                &[
                    ("operation", "DescribeLogGroups"),
                    ("outcome", "credentials"),
                ],
            ) >= 1.0
                && sum(
                    t,
                    "aws_transfer_exporter_api_calls_total",
                    &[("operation", "ListServers"), ("outcome", "credentials")],
                ) >= 1.0
                && exposition::value(t, "aws_transfer_exporter_target_up", &up("logs")) == Some(0.0)
                && exposition::value(t, "aws_transfer_exporter_target_up", &up("transfer"))
                    == Some(0.0)
        },
    );
    // The landing page names the problem and the fix for each API, at the
    // top and in its AWS API section.
    let (status, _, page) = d.get("/");
    assert_eq!(status, 200);
    assert!(started.elapsed() < WITHIN, "{:?}", started.elapsed());
    let alarm = html::at(&page, "id=\"alarm-apis\"");
    assert!(alarm < html::at(&page, "id=\"causes\""), "at the top");
    let apis = html::rows(&page, "apis");
    for api in ["logs", "transfer"] {
        let row = apis
            .iter()
            .find(|r| html::text(&r[1]) == api)
            .unwrap_or_else(|| panic!("{api} in the AWS API section:\n{page}"));
        assert_eq!(html::text(&row[0]), REGION);
        assert_eq!(html::text(&row[2]), "failing: credentials", "{row:?}");
        assert!(html::text(&row[3]).parse::<u64>().unwrap() >= 1, "{row:?}");
        assert!(
            html::text(&row[7]).starts_with("no AWS credentials found"),
            "the fix: {row:?}"
        );
    }
    // Credentials are not a network blip: nothing counted as transient, and
    // no attempt was retried with backoff.
    assert_eq!(
        sum(
            &text,
            "aws_transfer_exporter_api_calls_total",
            &[("outcome", "transient")]
        ),
        0.0,
        "{text}"
    );
    // A few rounds more, to see that the state is said once, not per call.
    std::thread::sleep(Duration::from_secs(3));
    let text = d.metrics();
    let log = d.stderr();
    assert!(
        sum(
            &text,
            "aws_transfer_exporter_api_calls_total",
            &[
                ("operation", "DescribeLogGroups"),
                ("outcome", "credentials")
            ]
        ) >= 2.0,
        "discovery keeps trying each round:\n{text}"
    );
    assert!(
        !log.contains("API budget cannot poll every group"),
        "errors, not the budget, failed the round:\n{log}"
    );
    for api in ["logs", "transfer"] {
        let warns: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("level=warn")
                    && l.contains("AWS API calls failing")
                    && l.contains(&format!("api={api}"))
            })
            .collect();
        assert_eq!(warns.len(), 1, "one WARN for {api}:\n{log}");
        assert!(warns[0].contains("outcome=credentials"), "{}", warns[0]);
        assert!(
            warns[0].contains("no AWS credentials found"),
            "the fix: {}",
            warns[0]
        );
        assert!(
            warns[0].contains(&format!("target_name={REGION}")),
            "{}",
            warns[0]
        );
    }
    for debug_dump in [
        "CredentialsNotLoaded",
        "ConnectorError {",
        "DispatchFailure(",
    ] {
        assert!(
            !log.contains(debug_dump),
            "Debug dump ({debug_dump}) in the log:\n{log}"
        );
    }
    drop(d);

    // ---- run 2: the same, with credentials ----
    let started = Instant::now();
    // A fresh home: the first run's state (and the counters it saved) stays
    // with the first run.
    let home = tempfile::tempdir().unwrap();
    let d = Daemon::spawn(bare_command(
        moto,
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    ));
    let text = d.wait_metrics(
        "target_up 1 for both APIs",
        "aws_transfer_exporter_target_up",
        WITHIN.saturating_sub(started.elapsed()),
        |t| {
            exposition::value(t, "aws_transfer_exporter_target_up", &up("logs")) == Some(1.0)
                && exposition::value(t, "aws_transfer_exporter_target_up", &up("transfer"))
                    == Some(1.0)
        },
    );
    assert_eq!(
        sum(
            &text,
            "aws_transfer_exporter_api_calls_total",
            &[("outcome", "credentials")]
        ),
        0.0,
        "{text}"
    );
    let log = d.stderr();
    assert!(!log.contains("AWS API calls failing"), "{log}");
    let (_, _, page) = d.get("/");
    assert!(!page.contains("id=\"alarm-apis\""), "{page}");
    let states: Vec<String> = html::rows(&page, "apis")
        .iter()
        .map(|r| html::text(&r[2]))
        .collect();
    assert_eq!(states, ["up", "up"], "{page}");
    for secret in [KEY_ID, SECRET] {
        assert!(
            !log.contains(secret),
            "a credential reached the log:\n{log}"
        );
        assert!(!text.contains(secret), "a credential reached /metrics");
    }
}

/// Issue 12: at `--log.level trace` (and with a full directive asking for
/// the SDK's signing traces) neither the access key id nor the secret, nor
/// the session token, reaches the log, while real signed calls are made.
#[test]
fn trace_logs_never_carry_the_credentials() {
    let moto = Moto::shared();
    for level in ["trace", "trace,aws_sigv4=trace,aws_smithy_runtime=trace"] {
        let home = tempfile::tempdir().unwrap();
        // bare_command's arguments and environment, with this log level.
        let mut cmd = bare_command(
            moto,
            home.path(),
            &[
                ("AWS_ACCESS_KEY_ID", KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_SESSION_TOKEN", "tokenprobe-9d8c7b6a5e4f"),
            ],
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| !a.starts_with("--log.level"))
            .chain([format!("--log.level={level}")])
            .collect();
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        cmd = Command::new(BIN);
        cmd.env_clear().args(&args);
        for (k, v) in envs {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.stdin(std::process::Stdio::null());
        let d = Daemon::spawn(cmd);
        let text = d.wait_metrics(
            "signed calls made",
            "aws_transfer_exporter_api_calls_total",
            Duration::from_secs(20),
            |t| {
                sum(
                    t,
                    "aws_transfer_exporter_api_calls_total",
                    &[("outcome", "success")],
                ) >= 2.0
            },
        );
        assert!(text.contains("aws_transfer_exporter_api_calls_total"));
        let log = d.stderr();
        assert!(
            log.contains("level=trace") || log.contains("level=debug"),
            "{level}: the log is verbose:\n{}",
            d.stderr_tail(5)
        );
        for secret in [KEY_ID, SECRET, "tokenprobe-9d8c7b6a5e4f"] {
            assert!(
                !log.contains(secret),
                "{level}: {secret} reached the log:\n{}",
                log.lines()
                    .filter(|l| l.contains(secret))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

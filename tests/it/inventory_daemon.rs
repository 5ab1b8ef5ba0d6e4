//! Inventory, probe and silent partners through the real daemon binary,
//! against its own moto (Transfer + CloudWatch Logs on one port) and a real
//! sshd on 127.0.0.1:
//! - a server whose structured destination is a custom-named group gets
//!   that group polled with no group in the config, and its events counted;
//! - a server with no logging shows `mechanism="none"`;
//! - an explicit probe target (derived public hostnames switched off) shows
//!   `aws_transfer_endpoint_up` 1 on `/metrics`;
//! - the silent-partner gauge survives a restart through the state file,
//!   even when the event that set it can no longer be read.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_transfer::types::{Domain, EndpointType, IdentityProviderType, Protocol};

use crate::probe_listeners::Sshd;
use crate::support::faultproxy::FaultProxy;
use crate::support::logs::shapes;
use crate::support::{exposition, now_ms, unique, Daemon, Logs, Moto, REGION};

/// The account moto puts in every ARN.
pub(crate) const MOTO_ACCOUNT: &str = "123456789012";
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/transfer-logging";
/// Bound on the daemon reaching an expected /metrics state.
const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn transfer_client(moto: &Moto) -> aws_sdk_transfer::Client {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_transfer::config::SharedCredentialsProvider::new(
            aws_sdk_transfer::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_transfer::Client::new(&sdk)
}

/// A CONNECTED event in the structured shape, with moto's account in the ARN.
fn connected(server: &str, user: &str, session: &str) -> String {
    shapes::connected(server, user, session).replace("111122223333", MOTO_ACCOUNT)
}

/// A public SFTP server in moto with the given logging role and structured
/// destination (either may be absent); its id.
pub(crate) fn create_server(
    logs: &Logs,
    client: &aws_sdk_transfer::Client,
    role: Option<&str>,
    destination: Option<&str>,
) -> String {
    let req = client
        .create_server()
        .endpoint_type(EndpointType::Public)
        .domain(Domain::S3)
        .identity_provider_type(IdentityProviderType::ServiceManaged)
        .protocols(Protocol::Sftp)
        .set_logging_role(role.map(str::to_owned))
        .set_structured_log_destinations(destination.map(|d| vec![d.to_owned()]));
    logs.block_on(req.send()).expect("CreateServer").server_id
}

#[test]
fn structured_destination_is_polled_without_config_and_probe_reports_up() {
    let moto = Moto::start(); // own instance: ListServers sees only this test's servers
    let client = transfer_client(&moto);
    let logs = Logs::new(&moto.url);

    // A custom-named group, outside any prefix the daemon discovers.
    let group = format!("/{}/partners", unique("inv"));
    logs.create_group(&group);
    let dest = format!("arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:{group}:*");
    let structured = create_server(&logs, &client, Some(ROLE), Some(&dest));
    let blind = create_server(&logs, &client, None, None);

    let t = now_ms() - 30_000;
    logs.put_new(
        &group,
        &format!("{structured}/alice"),
        &[(t, connected(&structured, "alice", "0123456789abcdef0123"))],
    );

    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "probe:\n  interval: 1s\n  connect_timeout: 1s\n  banner_timeout: 1s\n  public_hostnames: false\n  targets:\n    - server_id: {blind}\n      address: 127.0.0.1:{}\n",
            sshd.port
        ),
    )
    .unwrap();
    let d = Daemon::start(&[
        format!("--config.file={}", config.display()),
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        "--logs.group-prefix=/none-such-prefix/".into(),
        "--poll.interval=1s".into(),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);

    // The event in the structured group was counted: the group was polled.
    d.wait_sum(
        "aws_transfer_sessions_total",
        &[("server_id", &structured), ("user", "alice")],
        1.0,
        WAIT,
    );
    let text = d.metrics();
    let v = |name: &str, labels: &[(&str, &str)]| exposition::value(&text, name, labels);
    assert_eq!(
        v(
            "aws_transfer_server_logging_configured",
            &[("server_id", &blind), ("mechanism", "none")]
        ),
        Some(1.0),
        "{text}"
    );
    for mech in ["logging_role", "structured"] {
        assert_eq!(
            v(
                "aws_transfer_server_logging_configured",
                &[("server_id", &structured), ("mechanism", mech)]
            ),
            Some(1.0),
            "{mech}\n{text}"
        );
    }
    assert_eq!(
        v(
            "aws_transfer_server_info",
            &[
                ("server_id", &structured),
                ("account_id", MOTO_ACCOUNT),
                ("protocols", "SFTP")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        v("aws_transfer_server_online", &[("server_id", &blind)]),
        Some(1.0)
    );
    assert!(
        exposition::sum(
            &text,
            "aws_transfer_exporter_api_calls_total",
            &[("operation", "ListServers"), ("outcome", "success")]
        ) >= 1.0,
        "{text}"
    );

    // The explicit probe target (the real sshd) is up.
    let port = sshd.port.to_string();
    d.wait_sum(
        "aws_transfer_endpoint_up",
        &[
            ("server_id", &blind),
            ("endpoint", "127.0.0.1"),
            ("port", &port),
        ],
        1.0,
        WAIT,
    );
    // No derived public hostname was ever probed.
    let text = d.metrics();
    assert!(!text.contains("amazonaws.com"), "{text}");
}

#[test]
fn silent_partner_gauge_survives_a_restart() {
    let moto = Moto::start();
    let logs = Logs::new(&moto.url);
    let server = "s-0aaaaaaaaaaaa5e55";
    let group = format!("/{}/silent", unique("partner"));
    logs.create_group(&group);
    // A partner that connected 90 s ago (whole seconds, so the gauge is exact).
    let t = (now_ms() / 1000 - 90) * 1000;
    logs.put_new(
        &group,
        &format!("{server}/jdoe"),
        &[(t, connected(server, "jdoe", "feedfacefeedfacefeed"))],
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = |groups: &[&str]| {
        let mut a = vec![
            format!("--aws.region={REGION}"),
            format!("--aws.endpoint-url={}", moto.url),
            "--logs.group-prefix=/none-such-prefix/".into(),
            "--poll.interval=1s".into(),
            format!("--state.path={}", state.display()),
        ];
        a.extend(groups.iter().map(|g| format!("--logs.group={g}")));
        a
    };
    let labels = [("server_id", server), ("user", "jdoe")];
    let want = (t / 1000) as f64;

    let mut first = Daemon::start(&args(&[&group]));
    first.wait_sum(
        "aws_transfer_user_last_session_timestamp_seconds",
        &labels,
        want,
        WAIT,
    );
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", first.stderr_tail(20));

    // The event can no longer be read: the group is gone, and the second
    // life is not even told about it. Only the state file remembers jdoe.
    logs.delete_group(&group);
    let second = Daemon::start(&args(&[]));
    second.wait_sum(
        "aws_transfer_user_last_session_timestamp_seconds",
        &labels,
        want,
        WAIT,
    );
    let text = second.metrics();
    assert_eq!(
        exposition::value(&text, "aws_transfer_sessions_total", &labels),
        Some(1.0),
        "the session counter resumed from the state file and the second life counted nothing again (the group is gone), so the gauge came from the state file:\n{text}"
    );
}

/// A server with both a logging role and a structured destination: AWS
/// delivers each event twice (a legacy line in `/aws/transfer/<id>`, JSON in
/// the structured group, different event ids). The daemon counts it once
/// and counts the skipped legacy copy, from its very first poll on; a server
/// with a logging role only keeps its legacy lines.
#[test]
fn dual_logging_server_counts_each_event_once() {
    let moto = Moto::start();
    let client = transfer_client(&moto);
    let logs = Logs::new(&moto.url);
    let structured_group = format!("/{}/dual", unique("inv"));
    logs.create_group(&structured_group);
    let dest = format!("arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:{structured_group}:*");
    let dual = create_server(&logs, &client, Some(ROLE), Some(&dest));
    let legacy_only = create_server(&logs, &client, Some(ROLE), None);
    for s in [&dual, &legacy_only] {
        logs.create_group(&format!("/aws/transfer/{s}"));
    }

    // The copies are in CloudWatch before the daemon's first start: they
    // are read by its very first poll (the initial look-back), which must
    // already know the dual server from the inventory.
    let t = now_ms() - 30_000;
    let legacy = |user: &str| {
        format!("ERRORS AUTH_FAILURE Method=publickey User={user} Message=\"The user is unrecognized\" SourceIP=203.0.113.50")
    };
    let json = shapes::unknown_user(&dual, "mallory").replace("111122223333", MOTO_ACCOUNT);
    logs.put_new(&structured_group, "ERRORS", &[(t, json)]);
    logs.put_new(
        &format!("/aws/transfer/{dual}"),
        "ERRORS",
        &[(t, legacy("mallory"))],
    );
    logs.put_new(
        &format!("/aws/transfer/{legacy_only}"),
        "ERRORS",
        &[(t, legacy("eve"))],
    );

    // The Transfer API answers slowly (2 s, through a proxy in front of
    // moto) while CloudWatch Logs answers at once: polling must still wait
    // for the inventory, or the first poll would count the legacy copy.
    let proxy = FaultProxy::start_disturbing(&moto.url, &["ListServers"]);
    proxy.faults.delay_ms.store(2_000, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", proxy.url),
        "--logs.group-prefix=/aws/transfer/".into(),
        "--poll.interval=1s".into(),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);
    let skipped = [("server_id", dual.as_str())];
    d.wait_sum(
        "aws_transfer_exporter_legacy_duplicates_skipped_total",
        &skipped,
        1.0,
        WAIT,
    );
    d.wait_sum(
        "aws_transfer_errors_total",
        &[
            ("server_id", legacy_only.as_str()),
            ("cause", "unknown_user"),
        ],
        1.0,
        WAIT,
    );
    d.wait_sum(
        "aws_transfer_errors_total",
        &[("server_id", dual.as_str()), ("cause", "unknown_user")],
        1.0,
        WAIT,
    );
    // Three more poll rounds: the copy is never counted late either.
    std::thread::sleep(Duration::from_secs(3));
    let text = d.metrics();
    for server in [&dual, &legacy_only] {
        assert_eq!(
            exposition::sum(
                &text,
                "aws_transfer_errors_total",
                &[("server_id", server.as_str()), ("cause", "unknown_user")]
            ),
            1.0,
            "{server}\n{text}"
        );
    }
    assert_eq!(
        exposition::sum(
            &text,
            "aws_transfer_exporter_legacy_duplicates_skipped_total",
            &[]
        ),
        1.0,
        "{text}"
    );
}

/// A listener on 127.0.0.1 that accepts connections and never answers (an
/// API endpoint behind a black hole). Stops on drop.
struct BlackHole {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((sock, _)) => held.push(sock),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BlackHole {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polling waits for the first inventory view, but boundedly: two targets
/// whose Transfer API never answers cost one 10 s timeout together (the
/// first views are taken in parallel), not one each, and each is logged.
#[test]
fn first_inventory_wait_is_bounded_and_parallel() {
    let hole = BlackHole::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let target = |name: &str| {
        format!(
            "  - name: {name}\n    region: {REGION}\n    endpoint_url: http://127.0.0.1:{}\n    log_group_prefixes: []\n    log_groups: [/aws/transfer/s-0123456789abcdef0]\n",
            hole.port
        )
    };
    std::fs::write(
        &config,
        format!(
            "probe:\n  enabled: false\ntargets:\n{}{}",
            target("a"),
            target("b")
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let d = Daemon::start(&[
        format!("--config.file={}", config.display()),
        format!("--state.path={}", dir.path().join("state.json").display()),
    ]);
    let deadline = started + Duration::from_secs(40);
    let timed_out = |err: &str| err.matches("first inventory refresh timed out").count();
    while timed_out(&d.stderr()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both targets' first inventory waits should have timed out:\n{}",
            d.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(17),
        "two 10 s waits in parallel took {waited:?} (in sequence: >= 20 s)"
    );
    // The HTTP server answered all along (it starts before the wait).
    assert_eq!(d.get("/-/healthy").0, 200);
}

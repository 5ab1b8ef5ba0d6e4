//! The inventory against moto's real Transfer API on 127.0.0.1: servers
//! created with and without a logging role and structured destinations show
//! up as the right metrics; ListUsers (HTTP 500 in moto) is a counted,
//! non-fatal failure; deleted servers lose their series; structured
//! destinations reach the group sink as log-group names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_transfer::types::{Domain, EndpointType, IdentityProviderType, Protocol};
use aws_transfer_exporter::inventory::{self, Inventory, InventoryConfig, UsersMode};
use aws_transfer_exporter::metrics::{render, Limits, Metrics};
use prometheus::Registry;

use crate::support::{exposition, Moto, REGION};

/// The account moto puts in every ARN.
const MOTO_ACCOUNT: &str = "123456789012";
/// Bound on any one inventory refresh against a local moto.
const REFRESH_BOUND: Duration = Duration::from_secs(20);

/// An SDK config for moto built by hand: fixed fake credentials, a Region,
/// no provider chain at all (so nothing can reach the metadata address),
/// and no SDK retries (every attempt is one counted call, as in the daemon).
fn sdk_config(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_transfer::config::SharedCredentialsProvider::new(
            aws_sdk_transfer::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

fn destination(group: &str) -> String {
    format!("arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:{group}:*")
}

struct Fixture {
    _moto: Moto,
    client: aws_sdk_transfer::Client,
    sdk: aws_config::SdkConfig,
    /// structured + logging role, SFTP and FTPS
    both: String,
    /// no logging at all
    blind: String,
    /// logging role only
    role: String,
    /// structured only, custom group
    structured: String,
}

const ROLE: &str = "arn:aws:iam::123456789012:role/transfer-logging";

async fn fixture() -> Fixture {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let sdk = sdk_config(&moto);
    let client = aws_sdk_transfer::Client::new(&sdk);
    let create = |role: Option<&str>, dests: Vec<String>, protocols: Vec<Protocol>| {
        let client = client.clone();
        let role = role.map(str::to_owned);
        async move {
            client
                .create_server()
                .endpoint_type(EndpointType::Public)
                .domain(Domain::S3)
                .identity_provider_type(IdentityProviderType::ServiceManaged)
                .set_protocols(Some(protocols))
                .set_logging_role(role)
                .set_structured_log_destinations((!dests.is_empty()).then_some(dests))
                .send()
                .await
                .expect("moto CreateServer")
                .server_id
        }
    };
    let both = create(
        Some(ROLE),
        vec![destination("/custom/partners")],
        vec![Protocol::Sftp, Protocol::Ftps],
    )
    .await;
    let blind = create(None, vec![], vec![Protocol::Sftp]).await;
    let role = create(Some(ROLE), vec![], vec![Protocol::Sftp]).await;
    let structured = create(
        None,
        vec![format!(
            "arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:shared-transfer-logs"
        )],
        vec![Protocol::Sftp],
    )
    .await;
    Fixture {
        _moto: moto,
        client,
        sdk,
        both,
        blind,
        role,
        structured,
    }
}

/// Every series of `family` as (sorted labels, value).
fn lines(text: &str, family: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let mut out: Vec<_> = exposition::parse(text)
        .into_iter()
        .filter(|s| s.name == family)
        .map(|s| {
            let mut l = s.labels;
            l.sort();
            (l, s.value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_metrics_match_the_servers_created() {
    let f = fixture().await;
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let cfg = InventoryConfig {
        users: UsersMode::UserCount,
        ..InventoryConfig::default()
    };
    // One user on the first server, so user_count is not trivially zero.
    f.client
        .create_user()
        .server_id(&f.both)
        .user_name("alice")
        .role(ROLE)
        .send()
        .await
        .expect("moto CreateUser");

    let mut inv = Inventory::new(&f.sdk, m.clone(), cfg);
    let servers = tokio::time::timeout(REFRESH_BOUND, inv.refresh())
        .await
        .expect("bounded")
        .expect("refresh succeeds");
    assert_eq!(servers.len(), 4);
    let text = render(&reg);

    // server_info: exact label sets.
    let info = lines(&text, "aws_transfer_server_info");
    assert_eq!(info.len(), 4, "{text}");
    let want_both = labels(&[
        ("server_id", &f.both),
        ("region", REGION),
        ("account_id", MOTO_ACCOUNT),
        ("endpoint_type", "PUBLIC"),
        ("protocols", "SFTP,FTPS"),
        ("identity_provider_type", "SERVICE_MANAGED"),
        ("domain", "S3"),
    ]);
    assert!(
        info.contains(&(want_both.clone(), 1.0)),
        "want {want_both:?}\n{text}"
    );

    // online: moto's servers are ONLINE.
    for id in [&f.both, &f.blind, &f.role, &f.structured] {
        assert_eq!(m.server_online.with_label_values(&[id]).get(), 1, "{id}");
    }

    // logging mechanisms: exactly these series.
    let got = lines(&text, "aws_transfer_server_logging_configured");
    let mut want: Vec<(Vec<(String, String)>, f64)> = [
        (&f.both, "logging_role"),
        (&f.both, "structured"),
        (&f.blind, "none"),
        (&f.role, "logging_role"),
        (&f.structured, "structured"),
    ]
    .iter()
    .map(|(id, mech)| (labels(&[("server_id", id), ("mechanism", mech)]), 1.0))
    .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "{text}");

    // user counts from DescribeServer's UserCount.
    assert_eq!(m.server_users.with_label_values(&[&f.both]).get(), 1);
    assert_eq!(m.server_users.with_label_values(&[&f.blind]).get(), 0);

    // Self-metrics: one ListServers page, one DescribeServer per server.
    assert_eq!(
        m.api_calls
            .with_label_values(&["ListServers", "success"])
            .get(),
        1
    );
    assert_eq!(
        m.api_calls
            .with_label_values(&["DescribeServer", "success"])
            .get(),
        4
    );

    // Log groups handed to the poller.
    let groups: std::collections::BTreeSet<String> =
        servers.iter().flat_map(|s| s.log_groups()).collect();
    assert_eq!(
        groups.into_iter().collect::<Vec<_>>(),
        vec![
            "/custom/partners".to_owned(),
            "shared-transfer-logs".to_owned()
        ]
    );

    // A deleted server loses every series; the others keep theirs.
    f.client
        .delete_server()
        .server_id(&f.role)
        .send()
        .await
        .expect("moto DeleteServer");
    tokio::time::timeout(REFRESH_BOUND, inv.refresh())
        .await
        .expect("bounded")
        .expect("second refresh");
    let text = render(&reg);
    assert!(
        !text.contains(&f.role),
        "deleted server still exported:\n{text}"
    );
    assert_eq!(lines(&text, "aws_transfer_server_info").len(), 3, "{text}");
    assert_eq!(m.server_online.with_label_values(&[&f.blind]).get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_users_failure_is_counted_and_not_fatal() {
    let f = fixture().await;
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let cfg = InventoryConfig {
        users: UsersMode::ListUsers,
        ..InventoryConfig::default()
    };
    let mut inv = Inventory::new(&f.sdk, m.clone(), cfg);
    let servers = tokio::time::timeout(REFRESH_BOUND, inv.refresh())
        .await
        .expect("bounded")
        .expect("a failing ListUsers does not fail the refresh");
    assert_eq!(servers.len(), 4);
    // moto answers HTTP 500: counted once per server (no SDK retries here),
    // as a transient outcome.
    assert_eq!(
        m.api_calls
            .with_label_values(&["ListUsers", "transient"])
            .get(),
        4,
        "{}",
        render(&reg)
    );
    // Nothing is invented: no user count without an answer...
    let text = render(&reg);
    assert!(
        lines(&text, "aws_transfer_server_users").is_empty(),
        "{text}"
    );
    // ...and everything else is there.
    assert_eq!(lines(&text, "aws_transfer_server_info").len(), 4, "{text}");
    assert_eq!(
        m.server_logging_configured
            .with_label_values(&[&f.blind, "none"])
            .get(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_task_feeds_the_group_sink_and_the_watch() {
    let f = fixture().await;
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let got: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink_got = got.clone();
    let sink: inventory::GroupSink = Arc::new(move |groups| sink_got.lock().unwrap().push(groups));
    let tracker = tokio_util::task::TaskTracker::new();
    let token = tokio_util::sync::CancellationToken::new();
    let inv = Inventory::new(
        &f.sdk,
        m.clone(),
        InventoryConfig {
            interval: Duration::from_millis(300),
            ..InventoryConfig::default()
        },
    );
    let mut rx = inventory::spawn(&tracker, token.clone(), inv, Some(sink), None);
    tokio::time::timeout(REFRESH_BOUND, rx.changed())
        .await
        .expect("a first view within the bound")
        .unwrap();
    assert_eq!(rx.borrow().len(), 4);
    let first = got.lock().unwrap().first().cloned().expect("sink called");
    assert_eq!(
        first,
        vec![
            "/custom/partners".to_owned(),
            "shared-transfer-logs".to_owned()
        ]
    );
    token.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("inventory task drains after cancellation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_is_counted_and_keeps_the_last_view() {
    let f = fixture().await;
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let mut inv = Inventory::new(&f.sdk, m.clone(), InventoryConfig::default());
    inv.refresh().await.expect("first refresh");
    drop(f); // moto is gone (killed by its guard)
    let err = tokio::time::timeout(REFRESH_BOUND, inv.refresh())
        .await
        .expect("bounded")
        .expect_err("refresh fails without an API");
    assert_eq!(err.outcome, "transient", "{err}");
    assert_eq!(
        m.api_calls
            .with_label_values(&["ListServers", "transient"])
            .get(),
        1
    );
    let text = render(&reg);
    assert_eq!(
        lines(&text, "aws_transfer_server_info").len(),
        4,
        "last known view kept:\n{text}"
    );
}

/// The one fault this module injects: DescribeServer answers HTTP 500 while
/// `fail` is set; every other call is forwarded to moto unchanged. A
/// hand-written proxy in front of the real server, loopback only; its
/// runtime (and listener) stop when it is dropped.
struct DescribeFaultProxy {
    url: String,
    fail: Arc<std::sync::atomic::AtomicBool>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for DescribeFaultProxy {
    fn drop(&mut self) {
        // Tests drop it from async code: stop without blocking.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl DescribeFaultProxy {
    fn start(upstream: &str) -> DescribeFaultProxy {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        use std::sync::atomic::Ordering;

        assert!(upstream.starts_with("http://127.0.0.1:"), "loopback only");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (fail2, upstream) = (fail.clone(), upstream.to_owned());
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (fail, upstream) = (fail2.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (fail, upstream) = (fail.clone(), upstream.clone());
                        async move {
                            let target = req
                                .headers()
                                .get("x-amz-target")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            if fail.load(Ordering::Relaxed) && target.ends_with(".DescribeServer") {
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(500)
                                        .header("content-type", "application/x-amz-json-1.1")
                                        .body(Full::new(Bytes::from_static(
                                            br#"{"__type":"InternalServiceError","message":"injected"}"#,
                                        )))
                                        .unwrap(),
                                );
                            }
                            let path = req.uri().path().to_owned();
                            let headers: Vec<(String, String)> = req
                                .headers()
                                .iter()
                                .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length" | "connection"))
                                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                                .collect();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let resp = tokio::task::spawn_blocking(move || {
                                let mut b = ureq::http::Request::builder()
                                    .method("POST")
                                    .uri(format!("{upstream}{path}"));
                                for (k, v) in &headers {
                                    b = b.header(k, v);
                                }
                                let agent: ureq::Agent = ureq::Agent::config_builder()
                                    .http_status_as_error(false)
                                    .timeout_global(Some(Duration::from_secs(10)))
                                    .build()
                                    .into();
                                let mut r = agent.run(b.body(body.to_vec()).unwrap()).unwrap();
                                let status = r.status().as_u16();
                                (status, r.body_mut().read_to_vec().unwrap())
                            })
                            .await
                            .unwrap();
                            Ok(hyper::Response::builder()
                                .status(resp.0)
                                .header("content-type", "application/x-amz-json-1.1")
                                .body(Full::new(Bytes::from(resp.1)))
                                .unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        DescribeFaultProxy {
            url,
            fail,
            rt: Some(rt),
        }
    }
}

/// A DescribeServer that fails once must not turn a server with structured
/// logging into `mechanism="none"` (a false "blind" alert): what only
/// DescribeServer says comes from the last good view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_failure_keeps_the_last_known_logging_details() {
    let f = fixture().await;
    let proxy = tokio::task::spawn_blocking({
        let url = f._moto.url.clone();
        move || DescribeFaultProxy::start(&url)
    })
    .await
    .unwrap();
    let sdk = f.sdk.to_builder().endpoint_url(&proxy.url).build();
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let mut inv = Inventory::new(&sdk, m.clone(), InventoryConfig::default());
    inv.refresh().await.expect("first refresh");
    let before = lines(&render(&reg), "aws_transfer_server_logging_configured");

    proxy.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::timeout(REFRESH_BOUND, inv.refresh())
        .await
        .expect("bounded")
        .expect("DescribeServer failures do not fail the refresh");
    let text = render(&reg);
    assert_eq!(
        m.api_calls
            .with_label_values(&["DescribeServer", "transient"])
            .get(),
        4,
        "{text}"
    );
    assert_eq!(
        lines(&text, "aws_transfer_server_logging_configured"),
        before,
        "mechanisms unchanged:\n{text}"
    );
    let info = lines(&text, "aws_transfer_server_info");
    assert!(
        info.iter()
            .any(|(l, _)| l.contains(&("protocols".to_owned(), "SFTP,FTPS".to_owned()))),
        "protocols kept:\n{text}"
    );
    drop(proxy);
}

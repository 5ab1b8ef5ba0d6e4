//! A fault-injecting HTTP proxy in front of a real moto server: the one
//! hand-written fake the tests allow. It forwards every request to moto and,
//! for the operations it is told to disturb, may instead answer
//! `ThrottlingException` (HTTP 400, as CloudWatch Logs does), a 5xx, or
//! answer late. It records when every call arrived, per operation, so tests
//! can check the exporter's call rate against its budget.
//!
//! Listens on 127.0.0.1 only; forwards to 127.0.0.1 only. Stopped on drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;

/// What to do to disturbed operations. Changeable while running.
#[derive(Debug, Default)]
pub struct Faults {
    /// Per mille of calls answered with ThrottlingException (500 = half).
    pub throttle_per_mille: AtomicU32,
    /// The next N calls are answered with a 5xx.
    pub error_burst: AtomicU32,
    /// Delay added before forwarding, milliseconds.
    pub delay_ms: AtomicU64,
}

/// One call seen by the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// `FilterLogEvents`, `DescribeLogGroups`, … (from `X-Amz-Target`).
    pub operation: String,
    /// What the proxy answered: "forwarded", "throttled", "5xx".
    pub fate: &'static str,
}

pub struct FaultProxy {
    pub url: String,
    pub faults: Arc<Faults>,
    /// The operations it disturbs.
    disturbed: Arc<Vec<String>>,
    calls: Arc<Mutex<Vec<Call>>>,
    rt: Option<tokio::runtime::Runtime>,
}

/// What moto answered: status, headers, body.
type Upstream = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Operations [`FaultProxy::start`] disturbs; everything else (test setup
/// writes, the Transfer API) passes.
const DISTURBED: &[&str] = &["FilterLogEvents", "DescribeLogGroups"];

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. moto's `http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        Self::start_disturbing(upstream, DISTURBED)
    }

    /// A proxy that disturbs only `operations` (e.g. `ListServers`).
    pub fn start_disturbing(upstream: &str, operations: &[&str]) -> FaultProxy {
        let disturbed: Arc<Vec<String>> =
            Arc::new(operations.iter().map(|o| o.to_string()).collect());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr: SocketAddr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults::default());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        assert!(
            upstream.starts_with("http://127.0.0.1:"),
            "loopback only: {upstream}"
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let (f2, c2, d2) = (faults.clone(), calls.clone(), disturbed.clone());
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (f, c, d, up, agent) = (
                    f2.clone(),
                    c2.clone(),
                    d2.clone(),
                    upstream.clone(),
                    agent.clone(),
                );
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(
                            req,
                            f.clone(),
                            c.clone(),
                            d.clone(),
                            up.clone(),
                            agent.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultProxy {
            url: format!("http://{addr}"),
            faults,
            disturbed,
            calls,
            rt: Some(rt),
        }
    }

    /// Every call seen so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls per fate ("forwarded", "throttled", "5xx") for one operation.
    pub fn fates(&self, operation: &str) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        for c in self.calls().iter().filter(|c| c.operation == operation) {
            *m.entry(c.fate).or_insert(0) += 1;
        }
        m
    }

    /// The most calls of the disturbed operations that started within any
    /// `span`-long interval.
    pub fn max_calls_within(&self, span: Duration) -> usize {
        let mut at: Vec<Instant> = self
            .calls()
            .iter()
            .filter(|c| self.disturbed.contains(&c.operation))
            .map(|c| c.at)
            .collect();
        at.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..at.len() {
            while at[hi].duration_since(at[lo]) >= span {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    faults: Arc<Faults>,
    calls: Arc<Mutex<Vec<Call>>>,
    disturbed_ops: Arc<Vec<String>>,
    upstream: String,
    agent: ureq::Agent,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let disturbed = disturbed_ops.contains(&operation);
    let record = |fate: &'static str| {
        calls.lock().unwrap().push(Call {
            at: arrived,
            operation: operation.clone(),
            fate,
        });
    };
    if disturbed {
        let delay = faults.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let burst = faults
            .error_burst
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if burst.is_ok() {
            record("5xx");
            return Ok(if rand::rng().random_bool(0.5) {
                json(
                    503,
                    r#"{"__type":"ServiceUnavailableException","message":"Service unavailable (injected)"}"#,
                )
            } else {
                json(500, r#"{"message":"Internal error (injected)"}"#)
            });
        }
        let p = faults.throttle_per_mille.load(Ordering::Relaxed);
        if p > 0 && rand::rng().random_range(0..1000) < p {
            record("throttled");
            return Ok(json(
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ));
        }
    }
    record("forwarded");
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding"
            )
        })
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(json(400, r#"{"message":"bad request body"}"#)),
    };
    let url = format!("{upstream}{path}");
    let forwarded = tokio::task::spawn_blocking(move || -> Result<Upstream, String> {
        let mut b = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        for (k, v) in &headers {
            b = b.header(k.as_str(), v.as_slice());
        }
        let request = b.body(body.to_vec()).map_err(|e| e.to_string())?;
        let mut resp = agent.run(request).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let hs = resp
            .headers()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                )
            })
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let data = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok((status, hs, data))
    })
    .await;
    Ok(match forwarded {
        Ok(Ok((status, hs, data))) => {
            let mut r = Response::builder().status(status);
            for (k, v) in hs {
                r = r.header(k, v);
            }
            r.body(Full::new(Bytes::from(data))).unwrap()
        }
        Ok(Err(e)) => json(502, &serde_json::json!({ "message": e }).to_string()),
        Err(e) => json(
            502,
            &serde_json::json!({ "message": e.to_string() }).to_string(),
        ),
    })
}

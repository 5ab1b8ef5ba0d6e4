//! The HTTP server (hyper 1.x): `/metrics` (or the configured telemetry
//! path), `/-/healthy`, `/-/ready`, and `/`, the landing page
//! ([`crate::web::landing`]). Anything else is 404.
//!
//! The server knows nothing of CloudWatch or the pipeline: it reads them
//! through [`View`], which the daemon implements, so the page and the
//! routing are testable on their own.
//!
//! The web edge ([`crate::web`]) sits in front: each connection completes
//! its TLS handshake there (when the web config has TLS), each request is
//! admitted there (basic auth), and every response gets the configured
//! headers. `/metrics` answers OpenMetrics or text 0.0.4 by `Accept`, gzipped
//! when `Accept-Encoding` allows.
//!
//! Shutdown: when the token is cancelled the listener closes, and every open
//! connection finishes the request it is serving (hyper's graceful
//! shutdown); the daemon waits for them on its task tracker, under its drain
//! deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_TYPE, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::Registry;

use crate::clock::now_unix;
use crate::web::{self, encode, landing};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::web::listener::HEADER_READ_TIMEOUT;

pub use crate::web::landing::{
    escape, ApiFailureRow, ApiRow, CauseRow, CauseServerRow, FailureRow, GroupRow, PushRow,
    TargetRow, MAX_GROUPS_ON_PAGE,
};

/// A boxed future (the `View` trait is object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the server needs to know about the rest of the daemon.
pub trait View: Send + Sync + 'static {
    /// True once the first complete discovery + poll round has finished.
    fn is_ready(&self) -> bool;
    fn groups(&self) -> Vec<GroupRow>;
    /// Newest first.
    fn recent_failures(&self) -> Vec<FailureRow>;
    /// Failures per cause and server since the start, most first.
    fn cause_summary(&self) -> Vec<CauseRow> {
        Vec::new()
    }
    /// Each target's use of each AWS API, with its last error.
    fn api_status(&self) -> Vec<ApiRow> {
        Vec::new()
    }
    /// The targets of the running configuration (a reload changes them).
    fn targets(&self) -> Vec<TargetRow> {
        Vec::new()
    }
    /// The Firehose push receiver, when it is on.
    fn push_status(&self) -> Option<PushRow> {
        None
    }
    /// When the daemon started, Unix seconds.
    fn started_unix(&self) -> Option<f64> {
        None
    }
    /// For `/metrics`: the snapshot to serve, after the state behind it has
    /// been saved (see `crate::persist::Persister::scrape`); `None` renders
    /// the registry as it is.
    fn scrape(&self) -> BoxFuture<'_, Option<crate::metrics::Snapshot>> {
        Box::pin(async { None })
    }
    /// Called right before `/metrics` is rendered: sets the gauges whose
    /// value depends on the time of the scrape (lag, time since the last
    /// successful poll), so they grow during an outage.
    fn before_scrape(&self) {}
}

/// Everything a request handler reads.
pub struct AppState {
    pub registry: Registry,
    pub telemetry_path: String,
    pub view: Arc<dyn View>,
    /// TLS, basic auth and response headers, shared by every listener.
    pub web: Arc<web::Edge>,
    /// `/-/reload` (see [`crate::reload::respond`]); `None` answers 403.
    pub reload: Option<crate::reload::Handle>,
}

/// Accepts connections on `listener` until `cancel` fires; each connection
/// is a task on `tracker` that finishes its in-flight request on shutdown.
pub async fn serve(
    listener: web::Listener,
    state: Arc<AppState>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    web::listener::serve_connections(&listener, &tracker, &cancel, "web", move |req| {
        let state = state.clone();
        async move { handle(&state, req).await }
    })
    .await;
    tracing::debug!("listener closed");
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Admits (basic auth) and routes one request; every answer, a 401
/// included, gets the web config's headers.
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let admitted = match state.web.authorize(req.headers()).await {
        Ok(a) => a,
        Err(unauthorized) => return unauthorized,
    };
    let mut r = route(state, req.method(), req.uri().path(), req.headers()).await;
    admitted.apply_headers(r.headers_mut());
    r
}

fn header(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn route(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if path == "/-/reload" {
        return crate::reload::respond(state.reload.as_ref(), method).await;
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = response(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = if path == state.telemetry_path {
        // Rendering 100k series takes tens of milliseconds: keep it off the
        // async workers so health checks stay fast during a scrape.
        // Time-dependent gauges first (the hook may wait briefly for a
        // poller's lock, so off the async workers), then the snapshot that
        // is saved and served.
        let view = state.view.clone();
        let _ = tokio::task::spawn_blocking(move || view.before_scrape()).await;
        let snapshot = state.view.scrape().await;
        let registry = state.registry.clone();
        let format = encode::negotiate(header(headers, ACCEPT));
        let gzip = encode::accepts_gzip(header(headers, ACCEPT_ENCODING));
        let render = move || {
            // The snapshot saved for this scrape (see View::scrape), or the
            // registry as it is.
            let snapshot = snapshot
                .unwrap_or_else(|| crate::metrics::Snapshot::from_families(registry.gather()));
            let (content_type, text) = match format {
                encode::Format::Text => (crate::metrics::CONTENT_TYPE, snapshot.text()),
                encode::Format::OpenMetrics => (
                    encode::OPENMETRICS_CONTENT_TYPE,
                    encode::openmetrics_snapshot(&snapshot),
                ),
            };
            drop(snapshot);
            let body = if gzip {
                encode::gzip(text.as_bytes())
            } else {
                text.into_bytes()
            };
            (content_type, body)
        };
        match tokio::task::spawn_blocking(render).await {
            Ok((content_type, body)) => {
                let mut r = response(StatusCode::OK, content_type, body);
                let h = r.headers_mut();
                h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
                if gzip {
                    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                r
            }
            Err(err) => {
                tracing::error!(error = %err, "rendering metrics failed");
                response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    "rendering metrics failed\n",
                )
            }
        }
    } else {
        match path {
            "/-/healthy" => response(StatusCode::OK, TEXT, "Healthy\n"),
            "/-/ready" => {
                if state.view.is_ready() {
                    response(StatusCode::OK, TEXT, "Ready\n")
                } else {
                    response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        "Not ready: the first discovery and poll round has not finished\n",
                    )
                }
            }
            "/" => response(StatusCode::OK, HTML, landing_page(state, now_unix())),
            _ => response(StatusCode::NOT_FOUND, TEXT, "not found\n"),
        }
    };
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Renders the landing page ([`crate::web::landing`]) from the daemon's
/// view. `now` is Unix seconds (a parameter for tests).
pub fn landing_page(state: &AppState, now: f64) -> String {
    let v = &state.view;
    let page = landing::Page {
        telemetry_path: state.telemetry_path.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: crate::metrics::REVISION.to_owned(),
        ready: v.is_ready(),
        started_unix: v.started_unix(),
        targets: v.targets(),
        causes: v.cause_summary(),
        failures: v.recent_failures(),
        apis: v.api_status(),
        groups: v.groups(),
        push: v.push_status(),
    };
    landing::render(&page, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        ready: bool,
    }

    impl View for Fake {
        fn is_ready(&self) -> bool {
            self.ready
        }
        fn groups(&self) -> Vec<GroupRow> {
            vec![GroupRow {
                target: "default".into(),
                log_group: "/aws/transfer/s-1<b>".into(),
                last_poll_unix: Some(990.0),
                newest_event_ms: Some(997_000),
                last_error: None,
            }]
        }
        fn recent_failures(&self) -> Vec<FailureRow> {
            vec![FailureRow {
                timestamp_ms: 1_700_000_000_000,
                log_group: "/g".into(),
                server_id: "s-1".into(),
                user: "<script>alert(1)</script>".into(),
                category: "auth".into(),
                cause: "unknown_user".into(),
                advice: "check the user exists & is on this server".into(),
                message: "Authentication failure \"x\"".into(),
            }]
        }
        fn cause_summary(&self) -> Vec<CauseRow> {
            vec![CauseRow {
                category: "auth".into(),
                cause: "unknown_user".into(),
                advice: "check the user exists & is on this server".into(),
                total: 1,
                servers: vec![CauseServerRow {
                    server_id: "s-1".into(),
                    count: 1,
                    last_ms: 1_700_000_000_000,
                }],
            }]
        }
        fn targets(&self) -> Vec<TargetRow> {
            vec![TargetRow {
                name: "default".into(),
                region: "eu-west-1".into(),
                endpoint_url: None,
                role_arn: None,
            }]
        }
        fn push_status(&self) -> Option<PushRow> {
            Some(PushRow {
                listen_address: "127.0.0.1:9".into(),
                path: "/firehose".into(),
                unauthenticated_warning: Some("open".into()),
                ..PushRow::default()
            })
        }
    }

    fn state(ready: bool) -> AppState {
        AppState {
            registry: Registry::new(),
            telemetry_path: "/metrics".into(),
            view: Arc::new(Fake { ready }),
            web: Arc::new(web::Edge::plain()),
            reload: None,
        }
    }

    #[test]
    fn landing_page_escapes_log_content() {
        let page = landing_page(&state(true), 1000.0);
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("/aws/transfer/s-1&lt;b&gt;"), "{page}");
        assert!(
            page.contains("check the user exists &amp; is on this server"),
            "{page}"
        );
        assert!(page.contains("10 s ago"), "{page}");
        assert!(page.contains("2023-11-14T22:13:20Z"), "{page}");
        // Every part of the view reaches the page.
        assert!(page.contains("Failures by cause (1)"), "{page}");
        assert!(page.contains("127.0.0.1:9 (POST /firehose)"), "{page}");
        assert!(page.contains("id=\"alarm-unauthenticated\""), "{page}");
        let revision = format!("revision <code>{}</code>", crate::metrics::REVISION);
        assert!(page.contains(&revision), "{page}");
    }

    #[tokio::test]
    async fn routes() {
        let s = state(false);
        let get = Method::GET;
        let none = HeaderMap::new();
        assert_eq!(
            route(&s, &get, "/metrics", &none).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&s, &get, "/metrics", &none).await.headers()[CONTENT_TYPE],
            crate::metrics::CONTENT_TYPE
        );
        assert_eq!(
            route(&s, &get, "/-/healthy", &none).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&s, &get, "/-/ready", &none).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            route(&state(true), &get, "/-/ready", &none).await.status(),
            StatusCode::OK
        );
        assert_eq!(route(&s, &get, "/", &none).await.status(), StatusCode::OK);
        assert_eq!(
            route(&s, &get, "/nope", &none).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&s, &Method::POST, "/metrics", &none).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn metrics_default_answer_is_the_text_render_and_negotiates() {
        let s = state(true);
        let reg_text = crate::metrics::render(&s.registry);
        let body = |r: Response<Full<Bytes>>| async move {
            use http_body_util::BodyExt as _;
            r.into_body().collect().await.unwrap().to_bytes()
        };
        // No Accept, curl's */*: byte for byte the text render.
        for accept in [None, Some("*/*")] {
            let mut h = HeaderMap::new();
            if let Some(a) = accept {
                h.insert(ACCEPT, HeaderValue::from_static(a));
            }
            let r = route(&s, &Method::GET, "/metrics", &h).await;
            assert_eq!(r.headers()[CONTENT_TYPE], crate::metrics::CONTENT_TYPE);
            assert!(r.headers().get(CONTENT_ENCODING).is_none());
            assert_eq!(body(r).await, reg_text.as_bytes(), "{accept:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/openmetrics-text"),
        );
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let r = route(&s, &Method::GET, "/metrics", &h).await;
        assert_eq!(r.headers()[CONTENT_TYPE], encode::OPENMETRICS_CONTENT_TYPE);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    }

    #[test]
    fn escape_covers_the_five() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

//! The web edge: everything between a TCP connection and a route handler.
//!
//! - [`web_config`]: the exporter-toolkit web config file (`--web.config.file`),
//!   checked strictly, every problem reported at once.
//! - [`tls`]: the rustls server config built from it.
//! - [`auth`]: basic authentication against bcrypt hashes.
//! - [`listener`]: accept TCP, complete TLS under a deadline.
//! - [`encode`]: `/metrics` negotiation (text 0.0.4 or OpenMetrics 1.0.0) and gzip.
//! - [`landing`]: the landing page (`/`), rendered from what the daemon shows it.
//!
//! One [`Edge`] is built at startup from the web config file and shared
//! by every listener. It re-reads the web config file and the certificate,
//! key and client CA files when they change (checked on each new connection
//! and each request: a `stat` per file), so certificates rotate and users
//! change without a restart. A change that does not load (a half-written
//! key, a typo) keeps the running configuration and is logged once, with
//! the reason; the next change is tried again. Switching TLS on or off
//! needs a restart: a listener's scheme is part of its address for every
//! scraper.
//!
//! Secrets never reach a log line: passwords, hashes and key material are
//! held in [`web_config::Secret`] and no message quotes them.

pub mod auth;
pub mod encode;
pub mod landing;
pub mod listener;
pub mod tls;
pub mod web_config;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Response, StatusCode};

pub use listener::{handshake, Conn, HandshakeError, Listener};
pub use web_config::{WebConfig, WebConfigError};

use web_config::Problem;

/// What the edge enforces right now: one consistent snapshot, taken per
/// connection (TLS) and per request (users, headers).
pub struct Loaded {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub users: auth::Users,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Loaded {
    fn plain() -> Loaded {
        Loaded {
            tls: None,
            users: auth::Users::default(),
            headers: Vec::new(),
        }
    }

    /// Adds the configured headers to a response's headers.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
    }
}

/// A file's identity and version: a rename over it changes the inode, a
/// rewrite in place the size or mtime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    dev: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt as _;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        #[cfg(unix)]
        ino: m.ino(),
        #[cfg(unix)]
        dev: m.dev(),
    })
}

struct State {
    loaded: Arc<Loaded>,
    /// The files the current (or last failed) load read, as they were then.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    /// The last reload failure, logged once until it changes.
    last_error: Option<String>,
}

/// The web edge shared by every listener. See the module docs.
pub struct Edge {
    /// `None`: no web config: plain HTTP, no auth, no extra headers.
    path: Option<PathBuf>,
    tls_on: bool,
    state: Mutex<State>,
    auth: auth::Authenticator,
}

type Stamps = Vec<(PathBuf, Option<Stamp>)>;

/// Reads the web config file and everything it names into a snapshot. The
/// stamps of the files read come back whatever the outcome (taken before
/// reading, so a change during the read is seen next time).
fn load(path: &Path) -> (Result<(Loaded, WebConfig), WebConfigError>, Stamps) {
    let mut stamps = vec![(path.to_owned(), stamp(path))];
    let config = match web_config::read(path) {
        Ok(c) => c,
        Err(e) => return (Err(e), stamps),
    };
    let mut tls = None;
    if let Some(t) = &config.tls {
        stamps.extend(t.files().map(|p| (p.to_owned(), stamp(p))));
        match tls::server_config(t) {
            Ok(c) => tls = Some(c),
            Err(problems) => {
                let err = WebConfigError {
                    path: path.to_owned(),
                    problems,
                };
                return (Err(err), stamps);
            }
        }
    }
    let loaded = Loaded {
        tls,
        users: auth::Users::new(&config.users),
        headers: config.headers.clone(),
    };
    (Ok((loaded, config)), stamps)
}

impl Edge {
    /// No web config: plain HTTP, no authentication.
    pub fn plain() -> Edge {
        Edge {
            path: None,
            tls_on: false,
            state: Mutex::new(State {
                loaded: Arc::new(Loaded::plain()),
                stamps: Vec::new(),
                last_error: None,
            }),
            auth: auth::Authenticator::new(),
        }
    }

    /// Loads the web config file at `path` (and the certificates it names).
    /// Every problem is in the error.
    pub fn load(path: &Path) -> Result<Edge, WebConfigError> {
        let (result, stamps) = load(path);
        let (loaded, _) = result?;
        Ok(Edge {
            path: Some(path.to_owned()),
            tls_on: loaded.tls.is_some(),
            state: Mutex::new(State {
                loaded: Arc::new(loaded),
                stamps,
                last_error: None,
            }),
            auth: auth::Authenticator::new(),
        })
    }

    /// `Edge::plain()` for `None`, else [`Edge::load`].
    pub fn from_file(path: Option<&Path>) -> Result<Edge, WebConfigError> {
        match path {
            None => Ok(Edge::plain()),
            Some(p) => Edge::load(p),
        }
    }

    /// Checks the web config file the way [`Edge::load`] would, returning a
    /// one-line summary without secrets (for `--config.check`).
    pub fn check(path: &Path) -> Result<String, WebConfigError> {
        let (result, _) = load(path);
        Ok(summary(&result?.1))
    }

    /// Whether listeners speak TLS (fixed at startup).
    pub fn tls_enabled(&self) -> bool {
        self.tls_on
    }

    /// The web config file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The snapshot to enforce now, reloaded first if a file changed.
    pub fn current(&self) -> Arc<Loaded> {
        let Some(path) = &self.path else {
            return self.state.lock().expect("edge state").loaded.clone();
        };
        let mut st = self.state.lock().expect("edge state");
        let changed = st.stamps.iter().any(|(p, s)| stamp(p) != *s);
        if !changed {
            return st.loaded.clone();
        }
        let (result, mut stamps) = load(path);
        // A file watched before but not named now is still watched, so a
        // fix that only touches it is seen.
        for (p, _) in &st.stamps {
            if !stamps.iter().any(|(q, _)| q == p) {
                stamps.push((p.clone(), stamp(p)));
            }
        }
        // Remember what was read, so the same broken files are not re-read
        // on every connection; the next change tries again.
        st.stamps = stamps;
        match result {
            Ok((loaded, _)) if loaded.tls.is_some() == self.tls_on => {
                st.loaded = Arc::new(loaded);
                st.last_error = None;
                tracing::info!(path = %path.display(), "web config reloaded");
            }
            Ok(_) => self.reload_failed(
                &mut st,
                "switching TLS on or off needs a restart".to_owned(),
            ),
            Err(err) => self.reload_failed(&mut st, err.to_string()),
        }
        st.loaded.clone()
    }

    fn reload_failed(&self, st: &mut State, error: String) {
        if st.last_error.as_deref() != Some(error.as_str()) {
            tracing::warn!(
                path = %self.path.as_deref().unwrap_or(Path::new("")).display(),
                error = %error,
                "web config reload failed; keeping the running web config"
            );
            st.last_error = Some(error);
        }
    }

    /// Admits a request: `Ok(snapshot)` (whose headers the response must
    /// get, see [`Loaded::apply_headers`]) or `Err(401 response)`, already
    /// carrying the configured headers and `WWW-Authenticate: Basic`.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<Loaded>, Response<Full<Bytes>>> {
        let loaded = self.current();
        if loaded.users.is_empty()
            || self
                .auth
                .check(&loaded.users, headers.get(AUTHORIZATION))
                .await
        {
            return Ok(loaded);
        }
        let mut r = Response::new(Full::new(Bytes::from_static(b"Unauthorized\n")));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        loaded.apply_headers(h);
        Err(r)
    }
}

/// A one-line description of a web config, without secrets.
pub fn summary(c: &WebConfig) -> String {
    let tls = match &c.tls {
        None => "TLS off".to_owned(),
        Some(t) => format!(
            "TLS on ({:?}..{:?}, client auth {:?})",
            t.min_version, t.max_version, t.client_auth
        ),
    };
    let names: Vec<&str> = c.headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{tls}; basic auth {}; headers: {}",
        if c.users.is_empty() {
            "off".to_owned()
        } else {
            format!("{} user(s)", c.users.len())
        },
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// The problem list of a [`WebConfigError`], for callers that merge it into
/// their own report.
pub fn problems(err: &WebConfigError) -> &[Problem] {
    &err.problems
}

//! The exporter-toolkit web configuration file (`--web.config.file`), the
//! format node_exporter and most Prometheus exporters read: TLS, basic-auth
//! users and a few response headers for every listener.
//!
//! Two stages, as for the main config: the YAML is walked key by key (so an
//! unknown key is named, and *every* problem is collected before failing),
//! then checked into a typed [`WebConfig`]. Keys of the toolkit format that
//! rustls or this server cannot honour (`cipher_suites`, `curve_preferences`,
//! `prefer_server_cipher_suites`, `client_allowed_sans`, `rate_limit`,
//! `http2: true`, TLS 1.0/1.1) are errors that say so, never silently
//! ignored: a user who wrote them expects them to hold.
//!
//! Relative paths are resolved against the directory of the web config file,
//! as the toolkit does, so the file and its certificates can move together.
//!
//! Secrets (bcrypt hashes, inline keys) live in [`Secret`], whose `Debug`
//! prints a placeholder, and no error message ever quotes a value of a
//! secret key.

use std::fmt;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use serde_norway::{Mapping, Value};

/// A string that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself; call sites are the few places that need it
    /// (bcrypt verification, key parsing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where PEM data comes from: a file (re-read when it changes) or inline
/// text in the web config (`cert`, `key`, `client_ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(Secret),
}

impl Pem {
    /// The file to watch for changes, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Pem::File(p) => Some(p),
            Pem::Inline(_) => None,
        }
    }
}

/// `client_auth_type`, with the toolkit's (Go's) names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA (the handshake signature still is).
    RequireAnyClientCert,
    /// Not required; verified against `client_ca_file` when given.
    VerifyClientCertIfGiven,
    /// Required and verified against `client_ca_file`: the only setting that
    /// authenticates clients.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static [&'static str] = &[
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ];

    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "NoClientCert" | "" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is the toolkit's old name, still accepted there.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether certificates are checked against the client CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version rustls can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_server_config`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_auth: ClientAuth,
    pub client_ca: Option<Pem>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

impl TlsSettings {
    /// Files whose change should reload the TLS configuration.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Pem::file)
    }
}

/// One `basic_auth_users` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// The bcrypt hash (checked to parse as one).
    pub hash: Secret,
    /// Its cost, for the dummy verification of unknown users.
    pub cost: u32,
}

/// The checked web configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Empty: no authentication.
    pub users: Vec<User>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// One problem in the web config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `tls_server_config.min_version`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found in one web config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::error::Error for WebConfigError {}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid web config file {} ({n} problem{})",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.key.is_empty() {
                write!(f, "\n  {}", p.message)?;
            } else {
                write!(f, "\n  {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

/// The headers the toolkit lets a web config set, with the values it
/// accepts (`None`: any value). Kept to the toolkit's list on purpose, so a
/// web config means the same thing for every exporter.
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

const TOP_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
];

const TLS_KEYS: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
];

/// Reads and checks the web config file at `path`.
pub fn read(path: &Path) -> Result<WebConfig, WebConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(err) => Err(WebConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                key: String::new(),
                message: format!("cannot read the file: {err}"),
            }],
        }),
    }
}

/// Checks `text`, the content of the web config file at `path` (relative
/// paths inside resolve against `path`'s directory).
pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut c = Checker {
        dir,
        problems: Vec::new(),
    };
    let config = match serde_norway::from_str::<Value>(text) {
        Ok(v) => c.top(&v),
        Err(err) => {
            // serde_norway's syntax errors quote a position, not the content.
            c.bad("", format!("not valid YAML: {err}"));
            WebConfig::default()
        }
    };
    if c.problems.is_empty() {
        Ok(config)
    } else {
        Err(WebConfigError {
            path: path.to_owned(),
            problems: c.problems,
        })
    }
}

struct Checker {
    dir: PathBuf,
    problems: Vec<Problem>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Checker {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The entries of a mapping with string keys; `None` (and a problem) if
    /// `v` is something else. Null is an empty mapping, as in the toolkit.
    fn mapping<'v>(&mut self, key: &str, v: &'v Value) -> Option<Vec<(String, &'v Value)>> {
        let m: &Mapping = match v {
            Value::Null => return Some(Vec::new()),
            Value::Mapping(m) => m,
            other => {
                self.bad(key, format!("expected a mapping, found {}", kind(other)));
                return None;
            }
        };
        let mut out = Vec::with_capacity(m.len());
        for (k, v) in m {
            match k {
                Value::String(s) => out.push((s.clone(), v)),
                other => self.bad(key, format!("keys must be strings, found {}", kind(other))),
            }
        }
        Some(out)
    }

    /// A string value; null is `None`. `secret` keeps the value out of the
    /// message (there is nothing to quote anyway, but the rule is simple).
    fn string(&mut self, key: &str, v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => {
                self.bad(key, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    fn path(&mut self, key: &str, v: &Value) -> Option<PathBuf> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            return None;
        }
        let p = PathBuf::from(s);
        Some(if p.is_absolute() { p } else { self.dir.join(p) })
    }

    fn unknown(&mut self, key: &str, known: &[&str]) {
        self.bad(
            key,
            format!("unknown key; known keys here are {}", known.join(", ")),
        );
    }

    fn top(&mut self, v: &Value) -> WebConfig {
        let mut config = WebConfig::default();
        let Some(entries) = self.mapping("", v) else {
            return config;
        };
        for (k, v) in entries {
            match k.as_str() {
                "tls_server_config" => config.tls = self.tls(&k, v),
                "http_server_config" => config.headers = self.http(&k, v),
                "basic_auth_users" => config.users = self.users(&k, v),
                "rate_limit" => self.bad(
                    &k,
                    "not supported by this exporter (put a rate-limiting proxy in front of it); remove the key",
                ),
                _ => self.unknown(&k, TOP_KEYS),
            }
        }
        config
    }

    fn tls(&mut self, parent: &str, v: &Value) -> Option<TlsSettings> {
        let entries = self.mapping(parent, v)?;
        let mut cert = None;
        let mut cert_file = None;
        let mut key = None;
        let mut key_file = None;
        let mut client_ca = None;
        let mut client_ca_file = None;
        let mut client_auth_text = None;
        let mut client_auth = Some(ClientAuth::NoClientCert);
        let mut min_version = Some(TlsVersion::Tls12);
        let mut max_version = Some(TlsVersion::Tls13);
        for (k, v) in entries {
            let full = join(parent, &k);
            match k.as_str() {
                "cert" => cert = self.string(&full, v).filter(|s| !s.is_empty()),
                "key" => {
                    key = self
                        .string(&full, v)
                        .filter(|s| !s.is_empty())
                        .map(Secret::new)
                }
                "client_ca" => client_ca = self.string(&full, v).filter(|s| !s.is_empty()),
                "cert_file" => cert_file = self.path(&full, v),
                "key_file" => key_file = self.path(&full, v),
                "client_ca_file" => client_ca_file = self.path(&full, v),
                "client_auth_type" => {
                    let s = self.string(&full, v).unwrap_or_default();
                    client_auth = ClientAuth::parse(&s);
                    if client_auth.is_none() {
                        self.bad(
                            &full,
                            format!(
                                "unknown client auth type {s:?}; use one of {}",
                                ClientAuth::NAMES.join(", ")
                            ),
                        );
                    }
                    if !s.is_empty() {
                        client_auth_text = Some(s);
                    }
                }
                "min_version" => min_version = self.version(&full, v, TlsVersion::Tls12),
                "max_version" => max_version = self.version(&full, v, TlsVersion::Tls13),
                "cipher_suites" | "curve_preferences" | "prefer_server_cipher_suites" => {
                    self.bad(
                        &full,
                        "not supported: rustls offers only its own modern cipher suites and curves, in its own order; remove the key",
                    );
                }
                "client_allowed_sans" => {
                    self.bad(
                        &full,
                        "not supported by this exporter: restrict clients with a dedicated client CA (client_ca_file with RequireAndVerifyClientCert); remove the key",
                    );
                }
                _ => self.unknown(&full, TLS_KEYS),
            }
        }
        // As in the toolkit: TLS is on when any of these is set; an empty
        // `tls_server_config` means plain HTTP.
        let enabled = cert.is_some()
            || cert_file.is_some()
            || key.is_some()
            || key_file.is_some()
            || client_ca.is_some()
            || client_ca_file.is_some()
            || client_auth_text.is_some();
        if !enabled {
            return None;
        }
        let cert = self.one_of(
            parent,
            "cert",
            cert.map(Secret::new),
            "cert_file",
            cert_file,
        );
        let key = self.one_of(parent, "key", key, "key_file", key_file);
        let client_ca = match (client_ca, client_ca_file) {
            (Some(_), Some(_)) => {
                self.bad(
                    &join(parent, "client_ca"),
                    "set either client_ca or client_ca_file, not both",
                );
                None
            }
            (Some(text), None) => Some(Pem::Inline(Secret::new(text))),
            (None, Some(p)) => Some(Pem::File(p)),
            (None, None) => None,
        };
        if let Some(auth) = client_auth {
            if auth == ClientAuth::NoClientCert && client_ca.is_some() {
                self.bad(
                    &join(parent, "client_auth_type"),
                    "a client CA is configured but client_auth_type is NoClientCert; set RequireAndVerifyClientCert (or remove the CA)",
                );
            }
            if auth.verifies() && client_ca.is_none() {
                self.bad(
                    &join(parent, "client_ca_file"),
                    format!("client_auth_type {auth:?} verifies client certificates and needs the CA that issued them; set client_ca_file"),
                );
            }
        }
        if let (Some(min), Some(max)) = (min_version, max_version) {
            if min > max {
                self.bad(
                    &join(parent, "min_version"),
                    "min_version is above max_version",
                );
            }
        }
        Some(TlsSettings {
            cert: cert?,
            key: key?,
            client_auth: client_auth?,
            client_ca,
            min_version: min_version?,
            max_version: max_version?,
        })
    }

    /// Exactly one of an inline value and a file.
    fn one_of(
        &mut self,
        parent: &str,
        inline_key: &str,
        inline: Option<Secret>,
        file_key: &str,
        file: Option<PathBuf>,
    ) -> Option<Pem> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.bad(
                    &join(parent, file_key),
                    format!("set either {inline_key} or {file_key}, not both"),
                );
                None
            }
            (Some(s), None) => Some(Pem::Inline(s)),
            (None, Some(p)) => Some(Pem::File(p)),
            (None, None) => {
                self.bad(
                    &join(parent, file_key),
                    format!("TLS is configured but {file_key} (or {inline_key}) is missing"),
                );
                None
            }
        }
    }

    fn version(&mut self, key: &str, v: &Value, default: TlsVersion) -> Option<TlsVersion> {
        let Some(s) = self.string(key, v) else {
            return Some(default);
        };
        match s.as_str() {
            "" => Some(default),
            "TLS12" => Some(TlsVersion::Tls12),
            "TLS13" => Some(TlsVersion::Tls13),
            "TLS10" | "TLS11" => {
                self.bad(
                    key,
                    format!("{s} is not supported: rustls implements TLS 1.2 and 1.3 only; use TLS12 or TLS13"),
                );
                None
            }
            _ => {
                self.bad(
                    key,
                    format!("unknown TLS version {s:?}; use TLS12 or TLS13"),
                );
                None
            }
        }
    }

    fn users(&mut self, parent: &str, v: &Value) -> Vec<User> {
        let Some(entries) = self.mapping(parent, v) else {
            return Vec::new();
        };
        let mut users = Vec::with_capacity(entries.len());
        for (name, v) in entries {
            // The key names the user (not secret); the value is never quoted.
            let full = join(parent, &name);
            if name.is_empty() || name.contains(':') {
                self.bad(
                    &full,
                    "a user name must be non-empty and cannot contain ':' (basic auth separates user and password with it)",
                );
                continue;
            }
            let hash = match v {
                Value::String(s) => s.clone(),
                other => {
                    self.bad(
                        &full,
                        format!("expected a bcrypt hash string, found {}", kind(other)),
                    );
                    continue;
                }
            };
            match hash.parse::<bcrypt::HashParts>() {
                Ok(parts) => users.push(User {
                    name,
                    hash: Secret::new(hash),
                    cost: parts.get_cost(),
                }),
                Err(_) => self.bad(
                    &full,
                    "not a bcrypt hash (expected $2y$<cost>$…, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
                ),
            }
        }
        users
    }

    fn http(&mut self, parent: &str, v: &Value) -> Vec<(HeaderName, HeaderValue)> {
        let Some(entries) = self.mapping(parent, v) else {
            return Vec::new();
        };
        let mut headers = Vec::new();
        for (k, v) in entries {
            let full = join(parent, &k);
            match k.as_str() {
                "headers" => headers = self.headers(&full, v),
                "http2" => match v {
                    Value::Bool(false) | Value::Null => {}
                    Value::Bool(true) => self.bad(
                        &full,
                        "HTTP/2 is not served by this exporter (HTTP/1.1 only; clients fall back to it); set false or remove the key",
                    ),
                    other => self.bad(&full, format!("expected a boolean, found {}", kind(other))),
                },
                _ => self.unknown(&full, &["headers", "http2"]),
            }
        }
        headers
    }

    fn headers(&mut self, parent: &str, v: &Value) -> Vec<(HeaderName, HeaderValue)> {
        let Some(entries) = self.mapping(parent, v) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let full = join(parent, &k);
            let Some((name, allowed)) = HEADERS.iter().find(|(n, _)| *n == k) else {
                let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
                self.bad(
                    &full,
                    format!(
                        "this header cannot be configured; the toolkit allows {}",
                        names.join(", ")
                    ),
                );
                continue;
            };
            let Some(value) = self.string(&full, v) else {
                continue;
            };
            // "Unset if blank", as documented by the toolkit.
            if value.is_empty() {
                continue;
            }
            if let Some(allowed) = allowed {
                if !allowed.contains(&value.as_str()) {
                    self.bad(
                        &full,
                        format!("invalid value {value:?}; use one of {}", allowed.join(", ")),
                    );
                    continue;
                }
            }
            match HeaderValue::from_str(&value) {
                Ok(hv) => out.push((HeaderName::from_static(lower(name)), hv)),
                Err(_) => self.bad(&full, "not a valid header value (control characters?)"),
            }
        }
        out
    }
}

/// `HeaderName::from_static` needs lower case.
fn lower(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real bcrypt hash (cost 4, password "secret"), made once with the bcrypt crate.
    fn hash() -> String {
        bcrypt::hash("secret", 4).unwrap()
    }

    fn ok(text: &str) -> WebConfig {
        parse(text, Path::new("/etc/ate/web.yml")).unwrap_or_else(|e| panic!("{text}\n=> {e}"))
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new("/etc/ate/web.yml")) {
            Ok(c) => panic!("{text}\n=> accepted: {c:?}"),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn empty_file_and_empty_sections_mean_plain_http_without_auth() {
        for text in [
            "",
            "{}",
            "tls_server_config: {}",
            "tls_server_config:\nbasic_auth_users:\n",
            "http_server_config: {headers: {}}",
        ] {
            assert_eq!(ok(text), WebConfig::default(), "{text}");
        }
    }

    #[test]
    fn full_config_resolves_relative_paths_against_the_file() {
        let text = format!(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /abs/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nbasic_auth_users:\n  alice: '{}'\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
            hash()
        );
        let c = ok(&text);
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Pem::File("/etc/ate/tls/server.crt".into()));
        assert_eq!(tls.key, Pem::File("/abs/server.key".into()));
        assert_eq!(tls.client_ca, Some(Pem::File("/etc/ate/ca.pem".into())));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.users[0].name, "alice");
        assert_eq!(c.users[0].cost, 4);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.headers[0].0, "x-frame-options");
    }

    #[test]
    fn relative_to_a_bare_file_name_is_the_working_directory() {
        let c = parse(
            "tls_server_config: {cert_file: a.crt, key_file: a.key}",
            Path::new("web.yml"),
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().cert, Pem::File("./a.crt".into()));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        // (input, keys that must be named, in order)
        let cases: &[(&str, &[&str])] = &[
            ("bogus: 1", &["bogus"]),
            ("tls_server_config: {cert_file: a, key_file: b, nope: 1}", &["tls_server_config.nope"]),
            ("rate_limit: {interval: 1s}", &["rate_limit"]),
            (
                "tls_server_config: {cert_file: a, key_file: b, cipher_suites: [X], curve_preferences: [X25519], prefer_server_cipher_suites: true, client_allowed_sans: [x]}",
                &[
                    "tls_server_config.cipher_suites",
                    "tls_server_config.curve_preferences",
                    "tls_server_config.prefer_server_cipher_suites",
                    "tls_server_config.client_allowed_sans",
                ],
            ),
            ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS11}", &["tls_server_config.min_version"]),
            ("tls_server_config: {cert_file: a, key_file: b, max_version: TLS10}", &["tls_server_config.max_version"]),
            ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}", &["tls_server_config.min_version"]),
            ("tls_server_config: {cert_file: a}", &["tls_server_config.key_file"]),
            ("tls_server_config: {key_file: a}", &["tls_server_config.cert_file"]),
            ("tls_server_config: {cert_file: a, cert: x, key_file: b}", &["tls_server_config.cert_file"]),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}", &["tls_server_config.client_auth_type"]),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert}", &["tls_server_config.client_ca_file"]),
            ("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}", &["tls_server_config.client_auth_type"]),
            ("basic_auth_users: {alice: plaintext}", &["basic_auth_users.alice"]),
            ("basic_auth_users: {'a:b': x}", &["basic_auth_users.a:b"]),
            ("basic_auth_users: [alice]", &["basic_auth_users"]),
            ("http_server_config: {http2: true}", &["http_server_config.http2"]),
            ("http_server_config: {headers: {Server: x}}", &["http_server_config.headers.Server"]),
            ("http_server_config: {headers: {X-Frame-Options: allow}}", &["http_server_config.headers.X-Frame-Options"]),
            ("http_server_config: {headers: {X-Content-Type-Options: sniff}}", &["http_server_config.headers.X-Content-Type-Options"]),
            // several at once, all reported
            (
                "bogus: 1\ntls_server_config: {cert_file: a, key_file: b, min_version: TLS10, extra: 1}\nbasic_auth_users: {bob: nohash}",
                &["bogus", "tls_server_config.min_version", "tls_server_config.extra", "basic_auth_users.bob"],
            ),
        ];
        for (text, keys) in cases {
            let got: Vec<String> = problems(text).into_iter().map(|p| p.key).collect();
            assert_eq!(&got, keys, "input: {text}");
        }
    }

    #[test]
    fn messages_name_the_reason_and_never_quote_a_secret() {
        let p = problems("tls_server_config: {cert_file: a, key_file: b, min_version: TLS11}");
        assert!(
            p[0].message
                .contains("rustls implements TLS 1.2 and 1.3 only"),
            "{p:?}"
        );
        let p = problems("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [X]}");
        assert!(p[0].message.contains("not supported"), "{p:?}");
        let p = problems("bogus: 1");
        assert!(p[0].message.contains("unknown key"), "{p:?}");
        let p = problems("basic_auth_users: {alice: 'hunter2-not-a-hash'}");
        assert!(!p[0].message.contains("hunter2"), "{p:?}");
        let text = format!(
            "tls_server_config: {{cert_file: a, key: 'PRIVATE-KEY-MATERIAL', key_file: b}}\nbasic_auth_users: {{alice: '{}'}}",
            hash()
        );
        let e = parse(&text, Path::new("w.yml")).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("PRIVATE-KEY-MATERIAL"), "{shown}");
        assert!(!shown.contains("$2"), "{shown}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let c = ok(&format!("basic_auth_users: {{alice: '{}'}}", hash()));
        let shown = format!("{c:?}");
        assert!(shown.contains("<secret>"), "{shown}");
        assert!(!shown.contains("$2"), "{shown}");
    }

    #[test]
    fn old_client_auth_name_and_inline_pem_are_accepted() {
        let c =
            ok("tls_server_config: {cert: CERT, key: KEY, client_auth_type: RequireClientCert}");
        let tls = c.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::RequireAnyClientCert);
        assert!(matches!(tls.cert, Pem::Inline(_)));
        assert_eq!(tls.files().count(), 0);
    }
}

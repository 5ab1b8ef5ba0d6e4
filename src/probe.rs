//! Endpoint reachability probe: a small built-in blackbox probe.
//!
//! Why: when a security group or network ACL drops a client's packets,
//! Transfer Family never sees the connection and writes **no log at all**.
//! The log pipeline cannot see that failure; a probe can, for the network
//! path *from where the exporter runs* (not from every client: a rule that
//! blocks one partner's address range and allows ours stays invisible here;
//! the silent-partner gauge `aws_transfer_user_last_session_timestamp_seconds`
//! covers that case).
//!
//! On every interval, for each target: resolve, open TCP with a timeout, and
//! read what the protocol says first:
//! - SFTP: the SSH identification line (`SSH-2.0-…`, RFC 4253 §4.2; lines
//!   before it are allowed and skipped);
//! - FTP: the `220` greeting (multi-line `220-` replies are followed);
//! - FTPS (explicit, port 21): the greeting, then `AUTH TLS` → `234`, then a
//!   TLS handshake;
//! - FTPS (implicit, port 990): a TLS handshake, then the greeting.
//!
//! The TLS handshake checks that a TLS server answers and completes a
//! handshake; it does **not** judge the certificate (an FTPS server's
//! certificate names the customer's domain, not the hostname we probe, so
//! verifying it would raise false alarms). Certificate expiry is out of
//! scope here.
//!
//! Failures fall in a fixed set of reasons ([`Reason`]), so the label is
//! bounded. Targets are either explicit (`probe.targets`, e.g. VPC endpoint
//! addresses) or derived from the inventory: the public hostname
//! `<server-id>.server.transfer.<region>.amazonaws.com` of each ONLINE
//! server whose endpoint is reachable from the internet, only when
//! `probe.public_hostnames` allows it (see [`ProbeConfig::public_hostnames`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inventory::ServerSummary;
use crate::metrics::Metrics;

pub use crate::config::defaults::DEFAULT_PROBE_BANNER_TIMEOUT as DEFAULT_BANNER_TIMEOUT;
pub use crate::config::defaults::DEFAULT_PROBE_CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT;
pub use crate::config::defaults::DEFAULT_PROBE_INTERVAL as DEFAULT_INTERVAL;
/// Most bytes read while looking for a greeting. RFC 4253 caps the SSH
/// identification line at 255 bytes and allows a few lines before it; a
/// peer that sends more than this without a proper greeting is not the
/// server we expect.
const MAX_GREETING_BYTES: usize = 2048;

/// Why a probe failed. A fixed set: the `reason` label never grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The hostname did not resolve (or resolving timed out).
    Dns,
    /// The connection was actively rejected: RST, or ICMP unreachable.
    Refused,
    /// No answer to the TCP handshake within the connect timeout: the
    /// signature of a security group or NACL that drops packets.
    ConnectTimeout,
    /// Connected, but no complete greeting within the banner timeout.
    BannerTimeout,
    /// Connected, but what came back is not the protocol's greeting (or the
    /// peer closed the connection first).
    BadBanner,
    /// FTPS: `AUTH TLS` refused, or the TLS handshake failed.
    Tls,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Dns,
        Reason::Refused,
        Reason::ConnectTimeout,
        Reason::BannerTimeout,
        Reason::BadBanner,
        Reason::Tls,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Refused => "refused",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::BannerTimeout => "banner_timeout",
            Reason::BadBanner => "bad_banner",
            Reason::Tls => "tls",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the probe speaks to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// SSH identification line.
    Sftp,
    /// FTP `220` greeting.
    Ftp,
    /// Explicit FTPS: greeting, `AUTH TLS`, TLS handshake.
    Ftps,
    /// Implicit FTPS: TLS handshake first, then the greeting.
    FtpsImplicit,
}

impl Protocol {
    /// The port Transfer Family listens on for this protocol.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Sftp => 22,
            Protocol::Ftp | Protocol::Ftps => 21,
            Protocol::FtpsImplicit => 990,
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "sftp" => Some(Protocol::Sftp),
            "ftp" => Some(Protocol::Ftp),
            "ftps" => Some(Protocol::Ftps),
            "ftps_implicit" => Some(Protocol::FtpsImplicit),
            _ => None,
        }
    }
}

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The server the endpoint belongs to (label `server_id`).
    pub server_id: String,
    /// Hostname or IP address (label `endpoint`).
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
}

// ---------------------------------------------------------------------------
// Configuration (checked by `crate::config`).

/// Validated probe settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub connect_timeout: Duration,
    pub banner_timeout: Duration,
    /// `None`: derive public hostnames only for targets that use the real
    /// AWS API (no endpoint URL override). `Some(b)`: as configured.
    pub public_hostnames: Option<bool>,
    pub targets: Vec<Target>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            interval: DEFAULT_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            banner_timeout: DEFAULT_BANNER_TIMEOUT,
            public_hostnames: None,
            targets: Vec::new(),
        }
    }
}

impl ProbeConfig {
    /// Whether hostnames are derived for a target whose API endpoint URL
    /// override is `endpoint_url`. Unset `public_hostnames` means "only
    /// against the real AWS API": no endpoint override in the config, nor in
    /// the environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_TRANSFER`,
    /// which the SDK honours too), so a run against a local API never
    /// resolves an AWS host name.
    pub fn derive_public_hostnames(&self, endpoint_url: Option<&str>) -> bool {
        let env_override = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_TRANSFER"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        self.derive_with(endpoint_url, env_override)
    }

    fn derive_with(&self, endpoint_url: Option<&str>, env_override: bool) -> bool {
        self.public_hostnames
            .unwrap_or(endpoint_url.is_none() && !env_override)
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or a bare IPv6 address.
pub fn split_address(addr: &str) -> Result<(String, Option<u16>), String> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err("is empty".into());
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((host, tail)) = rest.split_once(']') else {
            return Err("has '[' without ']'".into());
        };
        return match tail {
            "" => Ok((host.to_owned(), None)),
            t => match t.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(p)) if p != 0 => Ok((host.to_owned(), Some(p))),
                _ => Err(format!("has a bad port {t:?}")),
            },
        };
    }
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((addr.to_owned(), None));
    }
    match addr.rsplit_once(':') {
        None => Ok((addr.to_owned(), None)),
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) if p != 0 && !host.is_empty() => Ok((host.to_owned(), Some(p))),
            _ => Err(format!("has a bad port {port:?} (1-65535)")),
        },
    }
}

// ---------------------------------------------------------------------------
// Targets derived from the inventory.

/// The public hostname AWS gives a server.
pub fn public_hostname(server_id: &str, region: &str) -> String {
    format!("{server_id}.server.transfer.{region}.amazonaws.com")
}

/// Targets for the ONLINE, internet-facing servers of an inventory: one per
/// probe-able protocol (AS2 has no greeting to read and is skipped). FTPS is
/// probed as explicit FTPS on port 21, the way Transfer Family serves it.
/// Internal VPC endpoints have no public name: list their addresses in
/// `probe.targets`.
pub fn derived_targets(servers: &[ServerSummary]) -> Vec<Target> {
    let mut out = Vec::new();
    for s in servers {
        if !s.online || !s.internet_facing() {
            continue;
        }
        let host = public_hostname(&s.server_id, &s.region);
        for p in &s.protocols {
            let protocol = match p.as_str() {
                "SFTP" => Protocol::Sftp,
                "FTP" => Protocol::Ftp,
                "FTPS" => Protocol::Ftps,
                _ => continue,
            };
            out.push(Target {
                server_id: s.server_id.clone(),
                host: host.clone(),
                port: protocol.default_port(),
                protocol,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// One probe.

/// What one probe found.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub duration: Duration,
    /// The greeting line on success; the reason and a detail for the log on
    /// failure.
    pub outcome: Result<String, (Reason, String)>,
}

/// Probes one target. Never panics; bounded by `connect_timeout +
/// banner_timeout` (plus a little scheduling).
pub async fn probe(
    target: &Target,
    connect_timeout: Duration,
    banner_timeout: Duration,
) -> ProbeResult {
    let start = Instant::now();
    let outcome = probe_inner(target, connect_timeout, banner_timeout).await;
    ProbeResult {
        duration: start.elapsed(),
        outcome,
    }
}

async fn probe_inner(
    target: &Target,
    connect_timeout: Duration,
    banner_timeout: Duration,
) -> Result<String, (Reason, String)> {
    let deadline = Instant::now() + connect_timeout;
    let stream = connect(target, deadline).await?;
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(banner_timeout, converse(stream, target)).await {
        Ok(r) => r,
        Err(_) => Err((
            Reason::BannerTimeout,
            format!("no complete greeting within {banner_timeout:?}"),
        )),
    }
}

async fn connect(target: &Target, deadline: Instant) -> Result<TcpStream, (Reason, String)> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let addrs: Vec<SocketAddr> = match target.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match tokio::time::timeout(left(), lookup).await {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(e)) => return Err((Reason::Dns, format!("resolving {}: {e}", target.host))),
                Err(_) => {
                    return Err((Reason::Dns, format!("resolving {} timed out", target.host)))
                }
            }
        }
    };
    if addrs.is_empty() {
        return Err((
            Reason::Dns,
            format!("{} resolved to no address", target.host),
        ));
    }
    let mut last = (Reason::Refused, String::new());
    for addr in addrs {
        match tokio::time::timeout(left(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::TimedOut => Reason::ConnectTimeout,
                    // RST, ICMP unreachable, local policy: all "rejected".
                    _ => Reason::Refused,
                };
                last = (reason, format!("connecting to {addr}: {e}"));
            }
            Err(_) => {
                return Err((
                    Reason::ConnectTimeout,
                    format!("connecting to {addr}: no answer in time"),
                ))
            }
        }
    }
    Err(last)
}

/// Speaks the protocol's opening over a connected stream.
async fn converse(mut stream: TcpStream, target: &Target) -> Result<String, (Reason, String)> {
    match target.protocol {
        Protocol::Sftp => read_ssh_banner(&mut stream).await,
        Protocol::Ftp => read_ftp_reply(&mut stream, "220").await,
        Protocol::Ftps => {
            let greeting = read_ftp_reply(&mut stream, "220").await?;
            stream
                .write_all(b"AUTH TLS\r\n")
                .await
                .map_err(|e| (Reason::Tls, format!("sending AUTH TLS: {e}")))?;
            read_ftp_reply(&mut stream, "234")
                .await
                .map_err(|(r, d)| match r {
                    Reason::BadBanner => (Reason::Tls, format!("AUTH TLS refused: {d}")),
                    r => (r, d),
                })?;
            tls::handshake(stream, &target.host).await?;
            Ok(greeting)
        }
        Protocol::FtpsImplicit => {
            let mut tls = tls::handshake(stream, &target.host).await?;
            read_ftp_reply(&mut tls, "220").await
        }
    }
}

/// Reads one line (up to `\n`), bounded by what is left of
/// [`MAX_GREETING_BYTES`]. `Ok(None)` at EOF before a full line.
async fn read_line<S: AsyncRead + Unpin>(
    s: &mut S,
    budget: &mut usize,
) -> Result<Option<Vec<u8>>, (Reason, String)> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if *budget == 0 {
            return Err((
                Reason::BadBanner,
                format!("no greeting in the first {MAX_GREETING_BYTES} bytes"),
            ));
        }
        // Byte-at-a-time is fine here: greetings are a few dozen bytes and
        // reading no further than the line keeps the stream usable for TLS.
        match s.read(&mut byte).await {
            Ok(0) => return Ok(None),
            Ok(_) => {
                *budget -= 1;
                if byte[0] == b'\n' {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(Some(line));
                }
                line.push(byte[0]);
            }
            Err(e) => return Err((Reason::BadBanner, format!("reading the greeting: {e}"))),
        }
    }
}

/// A short, printable excerpt of bytes for the log (never a label).
fn excerpt(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&b[..b.len().min(80)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("{s:?}")
}

async fn read_ssh_banner<S: AsyncRead + Unpin>(s: &mut S) -> Result<String, (Reason, String)> {
    let mut budget = MAX_GREETING_BYTES;
    let mut first: Option<Vec<u8>> = None;
    loop {
        let Some(line) = read_line(s, &mut budget).await? else {
            return Err((
                Reason::BadBanner,
                match first {
                    None => "closed before sending anything".to_owned(),
                    Some(f) => format!(
                        "closed without an SSH identification; first line {}",
                        excerpt(&f)
                    ),
                },
            ));
        };
        if line.starts_with(b"SSH-") {
            if line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-") {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            return Err((
                Reason::BadBanner,
                format!("unsupported SSH version {}", excerpt(&line)),
            ));
        }
        // RFC 4253 allows other lines before the identification, but a
        // binary blob is not one of them: fail fast on it.
        if line.iter().any(|&b| b == 0 || (b < 0x20 && b != b'\t')) {
            return Err((
                Reason::BadBanner,
                format!("not an SSH server: {}", excerpt(&line)),
            ));
        }
        first.get_or_insert(line);
    }
}

/// Reads an FTP reply and checks its code (`220` greeting, `234` AUTH TLS).
/// Follows multi-line replies (`220-…` up to `220 …`).
async fn read_ftp_reply<S: AsyncRead + Unpin>(
    s: &mut S,
    want: &str,
) -> Result<String, (Reason, String)> {
    let mut budget = MAX_GREETING_BYTES;
    let Some(first) = read_line(s, &mut budget).await? else {
        return Err((
            Reason::BadBanner,
            "closed before sending a reply".to_owned(),
        ));
    };
    let code_ok = |l: &[u8]| l.len() >= 4 && &l[..3] == want.as_bytes();
    if !code_ok(&first) || !(first[3] == b' ' || first[3] == b'-') {
        return Err((
            Reason::BadBanner,
            format!("expected {want}, got {}", excerpt(&first)),
        ));
    }
    if first[3] == b'-' {
        loop {
            let Some(line) = read_line(s, &mut budget).await? else {
                return Err((
                    Reason::BadBanner,
                    "closed inside a multi-line reply".to_owned(),
                ));
            };
            if code_ok(&line) && line[3] == b' ' {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&first).into_owned())
}

mod tls {
    //! A TLS handshake that checks the server speaks TLS, not who it is.
    use std::sync::{Arc, OnceLock};

    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::{
        aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
    use tokio_rustls::{client::TlsStream, TlsConnector};

    use super::Reason;

    /// Accepts any certificate chain but still checks the handshake
    /// signatures, so a completed handshake means a real TLS server with the
    /// key of the certificate it showed. See the module docs for why the
    /// certificate itself is not judged.
    #[derive(Debug)]
    struct AnyCert(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn connector() -> Result<TlsConnector, String> {
        static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        CONFIG
            .get_or_init(|| {
                let provider = Arc::new(aws_lc_rs::default_provider());
                let cfg = ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                    .with_no_client_auth();
                Ok(Arc::new(cfg))
            })
            .clone()
            .map(TlsConnector::from)
    }

    pub(super) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        host: &str,
    ) -> Result<TlsStream<S>, (Reason, String)> {
        let connector = connector().map_err(|e| (Reason::Tls, format!("TLS setup: {e}")))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| (Reason::Tls, format!("TLS server name {host:?}: {e}")))?;
        connector
            .connect(name, stream)
            .await
            .map_err(|e| (Reason::Tls, format!("TLS handshake: {e}")))
    }
}

// ---------------------------------------------------------------------------
// Recording and the background task.

/// Updates the endpoint metrics for one probe result.
pub fn record(metrics: &Metrics, target: &Target, result: &ProbeResult) {
    let port = target.port.to_string();
    let labels = [
        target.server_id.as_str(),
        target.host.as_str(),
        port.as_str(),
    ];
    metrics
        .endpoint_probe_duration
        .with_label_values(&labels)
        .set(result.duration.as_secs_f64());
    match &result.outcome {
        Ok(_) => metrics.endpoint_up.with_label_values(&labels).set(1),
        Err((reason, _)) => {
            metrics.endpoint_up.with_label_values(&labels).set(0);
            metrics
                .endpoint_probe_failures
                .with_label_values(&[target.server_id.as_str(), reason.as_str()])
                .inc();
        }
    }
}

/// Removes the endpoint series of a target no longer probed (server
/// deleted, stopped, or taken out of the config).
pub fn forget(metrics: &Metrics, target: &Target) {
    let port = target.port.to_string();
    let labels = [
        target.server_id.as_str(),
        target.host.as_str(),
        port.as_str(),
    ];
    let _ = metrics.endpoint_up.remove_label_values(&labels);
    let _ = metrics.endpoint_probe_duration.remove_label_values(&labels);
}

/// Where the prober learns about servers: the inventory's latest view, and
/// whether hostnames may be derived from it for that target.
#[derive(Clone)]
pub struct InventoryFeed {
    pub servers: watch::Receiver<Arc<Vec<ServerSummary>>>,
    pub derive_public_hostnames: bool,
}

/// Runs one round: probes every target concurrently and records the results.
pub async fn round(metrics: &Metrics, cfg: &ProbeConfig, targets: &[Target]) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let t = t.clone();
        let (ct, bt) = (cfg.connect_timeout, cfg.banner_timeout);
        set.spawn(async move { (i, probe(&t, ct, bt).await) });
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; targets.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            results[i] = Some(r);
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (t, r) in targets.iter().zip(results) {
        // A probe task cannot panic by construction; if one did, count it
        // as a failed connection rather than losing the round.
        let r = r.unwrap_or(ProbeResult {
            duration: Duration::ZERO,
            outcome: Err((Reason::Refused, "probe task failed".into())),
        });
        if let Ok(greeting) = &r.outcome {
            tracing::debug!(server_id = %t.server_id, endpoint = %t.host, port = t.port,
                greeting = %greeting, "probe succeeded");
        }
        record(metrics, t, &r);
        out.push(r);
    }
    out
}

/// The current target list: explicit targets first, then derived ones for
/// endpoints not already listed.
pub fn current_targets(cfg: &ProbeConfig, feeds: &[InventoryFeed]) -> Vec<Target> {
    let mut out = cfg.targets.clone();
    let mut seen: HashSet<(String, u16)> = out.iter().map(|t| (t.host.clone(), t.port)).collect();
    for feed in feeds.iter().filter(|f| f.derive_public_hostnames) {
        let servers = feed.servers.borrow().clone();
        for t in derived_targets(&servers) {
            if seen.insert((t.host.clone(), t.port)) {
                out.push(t);
            }
        }
    }
    out
}

/// Spawns the prober on `tracker`: a round every `cfg.interval` until
/// `token` is cancelled. Does nothing when the probe is disabled.
pub fn spawn(
    tracker: &TaskTracker,
    token: CancellationToken,
    metrics: Arc<Metrics>,
    cfg: ProbeConfig,
    feeds: Vec<InventoryFeed>,
) {
    if !cfg.enabled {
        return;
    }
    tracker.spawn(async move {
        let mut previous: HashSet<Target> = HashSet::new();
        let mut last: HashMap<Target, Option<Reason>> = HashMap::new();
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let targets = current_targets(&cfg, &feeds);
            let now: HashSet<Target> = targets.iter().cloned().collect();
            for gone in previous.difference(&now) {
                forget(&metrics, gone);
            }
            previous = now;
            let results = tokio::select! {
                _ = token.cancelled() => break,
                r = round(&metrics, &cfg, &targets) => r,
            };
            // Log changes only: a dead endpoint must not print a warning
            // every interval for days (the metrics carry the steady state).
            last.retain(|t, _| previous.contains(t));
            for (t, r) in targets.iter().zip(&results) {
                let reason = r.outcome.as_ref().err().map(|(reason, _)| *reason);
                let before = last.insert(t.clone(), reason);
                match (&r.outcome, before) {
                    (Err((reason, detail)), b) if b != Some(Some(*reason)) => tracing::warn!(
                        server_id = %t.server_id, endpoint = %t.host, port = t.port,
                        reason = %reason, error = %detail, "endpoint probe failed"
                    ),
                    (Ok(_), Some(Some(_))) => tracing::info!(
                        server_id = %t.server_id, endpoint = %t.host, port = t.port,
                        "endpoint reachable again"
                    ),
                    _ => {}
                }
            }
        }
        tracing::debug!("prober stopped");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hostnames_default_follows_the_endpoint_override() {
        let c = ProbeConfig::default();
        assert!(c.derive_with(None, false));
        assert!(!c.derive_with(Some("http://127.0.0.1:5000"), false));
        assert!(
            !c.derive_with(None, true),
            "AWS_ENDPOINT_URL in the environment"
        );
        let c = ProbeConfig {
            public_hostnames: Some(false),
            ..ProbeConfig::default()
        };
        assert!(!c.derive_with(None, false));
        let c = ProbeConfig {
            public_hostnames: Some(true),
            ..ProbeConfig::default()
        };
        assert!(c.derive_with(Some("http://127.0.0.1:5000"), true));
    }

    #[test]
    fn derived_targets_only_for_online_internet_facing_servers() {
        let server =
            |id: &str, online: bool, endpoint_type: &str, eips: usize, protocols: &[&str]| {
                ServerSummary {
                    server_id: id.into(),
                    region: "eu-west-1".into(),
                    online,
                    endpoint_type: endpoint_type.into(),
                    address_allocation_ids: vec!["eipalloc-1".into(); eips],
                    protocols: protocols.iter().map(|p| p.to_string()).collect(),
                    ..Default::default()
                }
            };
        let servers = [
            server("s-public", true, "PUBLIC", 0, &["SFTP", "FTPS", "AS2"]),
            server("s-stopped", false, "PUBLIC", 0, &["SFTP"]),
            server("s-vpc-eip", true, "VPC", 1, &["FTP"]),
            server("s-vpc-internal", true, "VPC", 0, &["SFTP"]),
        ];
        let got: Vec<(String, u16, Protocol)> = derived_targets(&servers)
            .into_iter()
            .map(|t| (t.host, t.port, t.protocol))
            .collect();
        let host = |id: &str| format!("{id}.server.transfer.eu-west-1.amazonaws.com");
        assert_eq!(
            got,
            vec![
                (host("s-public"), 22, Protocol::Sftp),
                (host("s-public"), 21, Protocol::Ftps),
                (host("s-vpc-eip"), 21, Protocol::Ftp),
            ]
        );
    }

    #[test]
    fn reasons_are_the_documented_set() {
        let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "dns",
                "refused",
                "connect_timeout",
                "banner_timeout",
                "bad_banner",
                "tls"
            ]
        );
    }

    #[tokio::test]
    async fn greeting_parsers() {
        let table: &[(&[u8], bool, Result<&str, Reason>)] = &[
            (
                b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n",
                true,
                Ok("SSH-2.0-OpenSSH_9.2p1 Debian"),
            ),
            (b"hello\r\nSSH-1.99-x\r\n", true, Ok("SSH-1.99-x")),
            (b"SSH-1.5-old\r\n", true, Err(Reason::BadBanner)),
            (b"\x00\x01\x02garbage\n", true, Err(Reason::BadBanner)),
            (b"", true, Err(Reason::BadBanner)),
            (b"220 ready\r\n", false, Ok("220 ready")),
            (
                b"220-welcome\r\n220-more\r\n220 ready\r\n",
                false,
                Ok("220-welcome"),
            ),
            (b"421 too many\r\n", false, Err(Reason::BadBanner)),
            (b"22", false, Err(Reason::BadBanner)),
        ];
        for (input, ssh, want) in table {
            let mut r: &[u8] = input;
            let got = if *ssh {
                read_ssh_banner(&mut r).await
            } else {
                read_ftp_reply(&mut r, "220").await
            };
            let got = got.as_deref().map_err(|(r, _)| *r);
            assert_eq!(
                got,
                want.as_ref().map(|s| *s).map_err(|r| *r),
                "input {:?}",
                excerpt(input)
            );
        }
    }

    #[tokio::test]
    async fn endless_lines_are_bad_banner_not_a_hang() {
        let long = vec![b'a'; MAX_GREETING_BYTES + 10];
        let mut r: &[u8] = &long;
        let got = read_ssh_banner(&mut r).await.map_err(|(r, _)| r);
        assert_eq!(got, Err(Reason::BadBanner));
    }
}

//! The web edge end to end: the real daemon with `--web.config.file`,
//! certificates made by `openssl` in a temporary directory, bcrypt hashes
//! made here, and real clients (`curl`, `openssl s_client`, `gzip`,
//! `promtool`, and a real Prometheus) on 127.0.0.1.
//!
//! The daemon's CloudWatch endpoint is a dead local port: it stays up,
//! healthy and serving, which is all the edge needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::daemon::run_to_exit;
use crate::support::{free_port, wait_until, Daemon, REGION};

/// Bound on every external command (curl, openssl, promtool).
const CMD_TIMEOUT: Duration = Duration::from_secs(20);

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

// ------------------------------------------------------------------ helpers

/// Runs `cmd` with `stdin` and a deadline; kills it when the deadline passes.
fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(CMD_TIMEOUT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within {CMD_TIMEOUT:?}");
        }
    };
    let _ = writer.join();
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run(Command::new("openssl").current_dir(dir).args(args), b"");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed server certificate for 127.0.0.1 (`name`.crt/.key).
fn server_cert(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A client CA (`ca.crt`) and a client certificate it signed (`client.crt`/`.key`).
fn client_ca_and_cert(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test client CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=scraper",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ],
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ],
    );
}

/// A bcrypt hash in the `$2y$` form `htpasswd -B` writes (the toolkit's docs).
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

/// Starts the daemon with a web config file and returns it.
fn daemon(web_config: &Path, state_dir: &Path) -> Daemon {
    daemon_with(web_config, state_dir, &[])
}

fn daemon_with(web_config: &Path, state_dir: &Path, extra: &[&str]) -> Daemon {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut args = vec![
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={dead}"),
        "--logs.group-prefix=/nothing/".into(),
        "--poll.interval=1s".into(),
        format!("--state.path={}", state_dir.join("s.json").display()),
        format!("--web.config.file={}", web_config.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Daemon::start(&args)
}

/// One curl answer.
struct Answer {
    /// 0 when no HTTP answer came (curl failed).
    status: u16,
    curl_exit: i32,
    headers: String,
    body: Vec<u8>,
    stderr: String,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

fn curl(url: &str, args: &[&str]) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let body = dir.path().join("b");
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D"])
            .arg(&headers)
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .args(args)
            .arg(url),
        b"",
    );
    Answer {
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        curl_exit: out.status.code().unwrap_or(-1),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `openssl s_client` against `addr`: (handshake completed, output).
fn s_client(addr: &str, args: &[&str]) -> (bool, String) {
    let out = run(
        Command::new("openssl")
            .args(["s_client", "-connect", addr, "-servername", "localhost"])
            .args(args),
        b"",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // s_client prints the negotiated cipher only after a complete handshake.
    let ok =
        out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

/// SHA-256 fingerprint of the certificate the server presents.
fn served_fingerprint(addr: &str) -> String {
    let (ok, text) = s_client(addr, &["-showcerts"]);
    assert!(ok, "handshake failed:\n{text}");
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    let out = run(
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256"]),
        &text.as_bytes()[begin..end],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn file_fingerprint(cert: &Path) -> String {
    let out = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
        b"",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn promtool_check(text: &[u8]) {
    let out = run(Command::new("promtool").args(["check", "metrics"]), text);
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let out = run(Command::new("gzip").arg("-dc"), data);
    assert!(
        out.status.success(),
        "gzip -dc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Tls {
    dir: tempfile::TempDir,
    web_config: PathBuf,
}

/// A directory with a server certificate, a client CA and client
/// certificate, and a web config with TLS and one basic-auth user. The
/// paths in the web config are relative (resolved against its directory).
fn tls_setup(extra_tls: &str) -> Tls {
    let dir = tempfile::tempdir().unwrap();
    server_cert(dir.path(), "server");
    client_ca_and_cert(dir.path());
    let web_config = dir.path().join("web.yml");
    std::fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra_tls}\
basic_auth_users:\n  {USER}: '{}'\n\
http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n    X-Frame-Options: deny\n",
            bcrypt_hash(PASSWORD)
        ),
    )
    .unwrap();
    Tls { dir, web_config }
}

// -------------------------------------------------------------------- tests

#[test]
fn tls_and_basic_auth_cases() {
    let t = tls_setup("");
    // At trace level, so the secret check at the end covers every log line
    // the edge, hyper and rustls can write.
    let d = daemon_with(&t.web_config, t.dir.path(), &["--log.level=trace"]);
    let addr = d.addr.to_string();
    let url = |p: &str| format!("https://{addr}{p}");
    let ca = t.dir.path().join("server.crt");
    let ca = ca.to_str().unwrap();
    let good = format!("{USER}:{PASSWORD}");

    // Plain HTTP to the TLS listener: a clear 400, not a hang or a reset.
    let a = curl(&format!("http://{addr}/metrics"), &[]);
    assert_eq!(a.status, 400, "plain HTTP: {} {}", a.text(), a.stderr);
    assert!(
        a.text().contains("HTTP request to an HTTPS server"),
        "{}",
        a.text()
    );

    // No credentials: 401 with the challenge and the configured headers.
    let a = curl(&url("/metrics"), &["--cacert", ca]);
    assert_eq!(a.status, 401, "{}", a.stderr);
    assert_eq!(
        a.header("www-authenticate").as_deref(),
        Some("Basic"),
        "{}",
        a.headers
    );
    assert_eq!(
        a.header("x-frame-options").as_deref(),
        Some("deny"),
        "{}",
        a.headers
    );

    // Wrong password, unknown user: 401.
    let a = curl(
        &url("/metrics"),
        &["--cacert", ca, "-u", &format!("{USER}:wrong")],
    );
    assert_eq!(a.status, 401, "wrong password");
    let a = curl(
        &url("/metrics"),
        &["--cacert", ca, "-u", &format!("mallory:{PASSWORD}")],
    );
    assert_eq!(a.status, 401, "unknown user");

    // Correct: 200 on every route, with the configured headers.
    for path in ["/metrics", "/-/healthy", "/"] {
        let a = curl(&url(path), &["--cacert", ca, "-u", &good]);
        assert_eq!(a.status, 200, "{path}: {} {}", a.text(), a.stderr);
        assert_eq!(
            a.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            a.header("x-frame-options").as_deref(),
            Some("deny"),
            "{path}"
        );
    }
    // Every route is behind auth, not just /metrics.
    for path in ["/-/healthy", "/-/ready", "/", "/nope"] {
        assert_eq!(curl(&url(path), &["--cacert", ca]).status, 401, "{path}");
    }

    // The text format through TLS passes promtool, plain and gunzipped, and
    // the gzip answer decodes to the plain one.
    let plain = curl(&url("/metrics"), &["--cacert", ca, "-u", &good]);
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(plain.header("content-encoding").is_none());
    promtool_check(&plain.body);
    let zipped = curl(
        &url("/metrics"),
        &["--cacert", ca, "-u", &good, "-H", "Accept-Encoding: gzip"],
    );
    assert_eq!(zipped.status, 200);
    assert_eq!(
        zipped.header("content-encoding").as_deref(),
        Some("gzip"),
        "{}",
        zipped.headers
    );
    assert_eq!(&zipped.body[..2], &[0x1f, 0x8b], "gzip magic");
    let unzipped = gunzip(&zipped.body);
    promtool_check(&unzipped);
    assert_eq!(
        strip_volatile(&String::from_utf8(unzipped).unwrap()),
        strip_volatile(&plain.text()),
        "gunzipped answer differs from the plain one"
    );

    // Nothing secret in the daemon's log: not the password, not the
    // Authorization header's base64, not the hash, not the key.
    let log = d.stderr();
    let header = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &good);
    let key = std::fs::read_to_string(t.dir.path().join("server.key")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(log.lines().count() > 10, "trace logging is on:\n{log}");
    for secret in [PASSWORD, &header, "$2y$", "PRIVATE KEY", key_line] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

/// Drops the samples that may move between two scrapes (timings, counts of
/// API calls and polls), keeping every line's name so the comparison still
/// covers the structure.
fn strip_volatile(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with('#') {
                l.to_owned()
            } else {
                l.rsplit_once(' ').map_or(l, |(k, _)| k).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn openmetrics_answer_structure() {
    let t = tls_setup("");
    let d = daemon(&t.web_config, t.dir.path());
    let url = format!("https://{}/metrics", d.addr);
    let ca = t.dir.path().join("server.crt");
    let args = [
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        &format!("{USER}:{PASSWORD}"),
    ];
    // Wait until the daemon has tried AWS (the dead endpoint), so the API
    // call counter and histogram have samples.
    wait_until("API calls counted", Duration::from_secs(60), || {
        let t = curl(&url, &args).text();
        (t.contains("aws_transfer_exporter_api_calls_total{")
            && t.contains("aws_transfer_exporter_api_call_duration_seconds_bucket{"))
        .then_some(())
    });
    let om_accept = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let mut a_args = args.to_vec();
    a_args.extend(["-H", om_accept]);
    let a = curl(&url, &a_args);
    assert_eq!(a.status, 200, "{}", a.stderr);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = a.text();
    check_openmetrics(&om);

    // gzip applies to OpenMetrics too.
    a_args.extend(["-H", "Accept-Encoding: gzip"]);
    let z = curl(&url, &a_args);
    assert_eq!(z.header("content-encoding").as_deref(), Some("gzip"));
    check_openmetrics(&String::from_utf8(gunzip(&z.body)).unwrap());
}

/// The OpenMetrics structure Debian's promtool cannot check for us.
fn check_openmetrics(om: &str) {
    let lines: Vec<&str> = om.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "last line");
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1);
    let mut counters = Vec::new();
    // (family, type) of the last TYPE line: samples follow their family.
    let mut current: Option<(String, String)> = None;
    for l in &lines {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "unknown"].contains(&kind),
                "{l}"
            );
            if kind == "counter" {
                assert!(
                    !name.ends_with("_total"),
                    "counter family named by its base name: {l}"
                );
                counters.push(name.to_owned());
            }
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if let Some(rest) = l.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').unwrap();
            assert!(name.ends_with(&format!("_{unit}")), "{l}");
            assert_eq!(Some(name), current.as_ref().map(|c| c.0.as_str()), "{l}");
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {l}"));
        let name = l.split(['{', ' ']).next().unwrap();
        let allowed: Vec<String> = match kind.as_str() {
            "counter" => vec![format!("{family}_total")],
            "histogram" => ["_bucket", "_count", "_sum"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            _ => vec![family.clone()],
        };
        assert!(
            allowed.iter().any(|a| a == name),
            "sample {l} under family {family} ({kind})"
        );
    }
    // A counter the daemon always has once it has called AWS.
    assert!(
        counters
            .iter()
            .any(|c| c == "aws_transfer_exporter_api_calls"),
        "counters: {counters:?}"
    );
    // The histogram the daemon always has (API call latency) is complete.
    let hist = "aws_transfer_exporter_api_call_duration_seconds";
    assert!(om.contains(&format!("# TYPE {hist} histogram")), "{om}");
    assert!(om.contains(&format!("# UNIT {hist} seconds")), "{om}");
}

#[test]
fn client_certificates_under_require_and_verify() {
    let t = tls_setup("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
    let d = daemon(&t.web_config, t.dir.path());
    let url = format!("https://{}/-/healthy", d.addr);
    let dir = t.dir.path();
    let ca = dir.join("server.crt");
    let cred = format!("{USER}:{PASSWORD}");

    // Without a client certificate: the handshake fails, no HTTP answer.
    let a = curl(&url, &["--cacert", ca.to_str().unwrap(), "-u", &cred]);
    assert_eq!(
        a.status,
        0,
        "answered without a client certificate: {}",
        a.text()
    );
    assert_ne!(a.curl_exit, 0);
    // openssl's own client, sending a request: under TLS 1.3 its side of
    // the handshake can complete before the server's alert arrives, so what
    // must hold is that no HTTP answer ever comes back.
    let out = run(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &d.addr.to_string(),
            "-servername",
            "localhost",
            "-quiet",
        ]),
        b"GET /-/healthy HTTP/1.0\r\nHost: localhost\r\n\r\n",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("HTTP/1."),
        "s_client without cert got an HTTP answer:\n{text}"
    );

    // With one signed by the client CA: 200.
    let a = curl(
        &url,
        &[
            "--cacert",
            ca.to_str().unwrap(),
            "--cert",
            dir.join("client.crt").to_str().unwrap(),
            "--key",
            dir.join("client.key").to_str().unwrap(),
            "-u",
            &cred,
        ],
    );
    assert_eq!(a.status, 200, "{} {}", a.text(), a.stderr);

    // A certificate from elsewhere (self-signed): refused.
    server_cert(dir, "stranger");
    let a = curl(
        &url,
        &[
            "--cacert",
            ca.to_str().unwrap(),
            "--cert",
            dir.join("stranger.crt").to_str().unwrap(),
            "--key",
            dir.join("stranger.key").to_str().unwrap(),
            "-u",
            &cred,
        ],
    );
    assert_eq!(a.status, 0, "answered a stranger's certificate");
}

#[test]
fn tls_versions_below_min_version_are_refused() {
    let t = tls_setup("  min_version: TLS13\n");
    let d = daemon(&t.web_config, t.dir.path());
    let addr = d.addr.to_string();
    // SECLEVEL=0 lets the *client* offer TLS 1.1, so the refusal we see is
    // the server's.
    let (ok, text) = s_client(&addr, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 accepted:\n{text}");
    assert!(
        !text.contains("no protocols available"),
        "the client refused, not the server:\n{text}"
    );
    let (ok, text) = s_client(&addr, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 accepted under min_version TLS13:\n{text}");
    assert!(
        text.contains("alert protocol version") || text.contains("protocol version"),
        "{text}"
    );
    let (ok, text) = s_client(&addr, &["-tls1_3"]);
    assert!(ok, "TLS 1.3 refused:\n{text}");
    assert!(text.contains("TLSv1.3"), "{text}");
}

#[test]
fn tls12_is_the_default_floor_and_tls11_is_refused() {
    let t = tls_setup("");
    let d = daemon(&t.web_config, t.dir.path());
    let addr = d.addr.to_string();
    let (ok, text) = s_client(&addr, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 accepted:\n{text}");
    let (ok, text) = s_client(&addr, &["-tls1_2"]);
    assert!(ok, "TLS 1.2 refused:\n{text}");
}

#[test]
fn replacing_the_certificate_files_changes_the_next_connections_certificate() {
    let t = tls_setup("");
    let d = daemon(&t.web_config, t.dir.path());
    let addr = d.addr.to_string();
    let dir = t.dir.path();
    let first = served_fingerprint(&addr);
    assert_eq!(first, file_fingerprint(&dir.join("server.crt")));

    // Rotate the way cert-manager and certbot do: new files, renamed over.
    server_cert(dir, "next");
    std::fs::rename(dir.join("next.key"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("next.crt"), dir.join("server.crt")).unwrap();
    let second = served_fingerprint(&addr);
    assert_ne!(second, first, "still the old certificate");
    assert_eq!(second, file_fingerprint(&dir.join("server.crt")));

    // A broken rotation (certificate without its key) keeps the last good
    // certificate, logs once, and the fix is picked up.
    server_cert(dir, "third");
    std::fs::copy(dir.join("third.crt"), dir.join("server.crt")).unwrap();
    assert_eq!(
        served_fingerprint(&addr),
        second,
        "a mismatched pair must not be used"
    );
    assert_eq!(served_fingerprint(&addr), second);
    std::fs::copy(dir.join("third.key"), dir.join("server.key")).unwrap();
    let third = served_fingerprint(&addr);
    assert_eq!(third, file_fingerprint(&dir.join("third.crt")));
    let log = d.stderr();
    assert_eq!(
        log.matches("web config reload failed").count(),
        1,
        "one warning for the broken pair:\n{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "{log}");

    // Users are re-read too: a new password applies without a restart.
    let ca = dir.join("server.crt");
    let ca = ca.to_str().unwrap();
    let text = std::fs::read_to_string(&t.web_config).unwrap();
    let old_hash = text.lines().find(|l| l.contains(USER)).unwrap().to_owned();
    std::fs::write(
        &t.web_config,
        text.replace(
            &old_hash,
            &format!("  {USER}: '{}'", bcrypt_hash("new password")),
        ),
    )
    .unwrap();
    let url = format!("https://{addr}/-/healthy");
    wait_until("new password accepted", Duration::from_secs(10), || {
        (curl(
            &url,
            &["--cacert", ca, "-u", &format!("{USER}:new password")],
        )
        .status
            == 200)
            .then_some(())
    });
    assert_eq!(
        curl(&url, &["--cacert", ca, "-u", &format!("{USER}:{PASSWORD}")]).status,
        401
    );
}

#[test]
fn bad_web_config_fails_startup_naming_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n  min_version: TLS11\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  surprise: 1\nbasic_auth_users:\n  bob: 'not-a-hash-hunter2'\nbogus_top: 1\n",
    )
    .unwrap();
    let (status, _out, err) = run_to_exit(
        &[
            format!("--aws.region={REGION}"),
            "--web.listen-address=127.0.0.1:0".into(),
            format!("--state.path={}", dir.path().join("s.json").display()),
            format!("--web.config.file={}", web.display()),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{err}");
    for key in [
        "tls_server_config.min_version",
        "tls_server_config.cipher_suites",
        "tls_server_config.surprise",
        "basic_auth_users.bob",
        "bogus_top",
        "unknown key",
        "not supported",
    ] {
        assert!(err.contains(key), "{key:?} not named:\n{err}");
    }
    assert!(!err.contains("hunter2"), "a secret in the message:\n{err}");
    assert!(!err.contains("msg=listening"), "{err}");

    // --config.check reports the same, and summarises a good one.
    let t = tls_setup("");
    let (status, out, err) = run_to_exit(
        &[
            format!("--aws.region={REGION}"),
            "--config.check".into(),
            format!("--web.config.file={}", t.web_config.display()),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{out}\n{err}"
    );
    assert!(out.contains("TLS on") && out.contains("1 user(s)"), "{out}");
    assert!(!out.contains("$2y$"), "{out}");
}

#[test]
fn several_listen_addresses_each_serve_under_the_web_config() {
    let t = tls_setup("");
    let ca = t.dir.path().join("server.crt");
    let (p1, p2) = (free_port(), free_port());
    let dead = format!("http://127.0.0.1:{}", free_port());
    let d = Daemon::start(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={dead}"),
        "--logs.group-prefix=/nothing/".into(),
        format!("--state.path={}", t.dir.path().join("s.json").display()),
        format!("--web.config.file={}", t.web_config.display()),
        format!("--web.listen-address=127.0.0.1:{p1}"),
        format!("--web.listen-address=127.0.0.1:{p2}"),
    ]);
    wait_until("two listening lines", Duration::from_secs(10), || {
        (d.stderr().matches("msg=listening").count() == 2).then_some(())
    });
    for p in [p1, p2] {
        let url = format!("https://127.0.0.1:{p}/-/healthy");
        let a = curl(
            &url,
            &[
                "--cacert",
                ca.to_str().unwrap(),
                "-u",
                &format!("{USER}:{PASSWORD}"),
            ],
        );
        assert_eq!(a.status, 200, "port {p}: {}", a.stderr);
        assert_eq!(
            curl(&url, &["--cacert", ca.to_str().unwrap()]).status,
            401,
            "port {p}"
        );
    }
}

#[test]
fn without_a_web_config_the_default_answer_is_unchanged_and_gzip_works() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let d = Daemon::start(&[
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={dead}"),
        "--logs.group-prefix=/nothing/".into(),
        format!("--state.path={}", dir.path().join("s.json").display()),
    ]);
    // The two scrapes compared below must have the same series: wait until
    // the start's first calls of both APIs have been made (the set of
    // series stops growing), or a scrape in between sees one more family.
    d.wait_metrics(
        "the first calls of both APIs",
        "aws_transfer_exporter_api_calls_total",
        Duration::from_secs(20),
        |t| {
            ["DescribeLogGroups", "ListServers"].iter().all(|op| {
                t.contains(&format!(
                    "aws_transfer_exporter_api_calls_total{{operation=\"{op}\""
                ))
            })
        },
    );
    let url = format!("http://{}/metrics", d.addr);
    let plain = curl(&url, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let zipped = curl(&url, &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(zipped.header("content-encoding").as_deref(), Some("gzip"));
    let unzipped = gunzip(&zipped.body);
    promtool_check(&unzipped);
    assert_eq!(
        strip_volatile(&String::from_utf8(unzipped).unwrap()),
        strip_volatile(&plain.text())
    );
    // curl's default Accept (*/*) gets text, and no auth is asked.
    assert!(plain.header("www-authenticate").is_none());
}

// ------------------------------------------------------- real Prometheus

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|f| f.is_file())
    })
}

/// A real Prometheus scraping `target` over TLS with basic auth, killed on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: &str, ca: &Path, password: &str) -> Prometheus {
        let bin = which("prometheus")
            .expect("prometheus is not installed: apt-get install -y prometheus");
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: edge\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: {USER}\n      password: '{password}'\n    static_configs:\n      - targets: ['{target}']\n",
                ca.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("prometheus ready", Duration::from_secs(30), || {
            (curl(&format!("{}/-/ready", p.url), &[]).status == 200).then_some(())
        });
        p
    }

    /// The value of an instant query with one result, if any.
    fn value(&self, q: &str) -> Option<f64> {
        let a = curl(
            &format!("{}/api/v1/query", self.url),
            &["-G", "--data-urlencode", &format!("query={q}")],
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

#[test]
fn real_prometheus_scrapes_over_tls_with_basic_auth() {
    let t = tls_setup("");
    let d = daemon(&t.web_config, t.dir.path());
    let ca = t.dir.path().join("server.crt");
    let target = d.addr.to_string();

    let good_dir = tempfile::tempdir().unwrap();
    let good = Prometheus::start(good_dir.path(), &target, &ca, PASSWORD);
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = Prometheus::start(bad_dir.path(), &target, &ca, "wrong password");

    let up = wait_until(
        "up == 1 with the right password",
        Duration::from_secs(30),
        || good.value("up").filter(|v| *v == 1.0),
    );
    assert_eq!(up, 1.0);
    // Prometheus asks for OpenMetrics first: the scraped series prove it parsed.
    let calls = wait_until("a counter scraped", Duration::from_secs(30), || {
        good.value("count(aws_transfer_exporter_build_info)")
    });
    assert_eq!(calls, 1.0);
    let down = wait_until(
        "up == 0 with a wrong password",
        Duration::from_secs(30),
        || bad.value("up").filter(|v| *v == 0.0),
    );
    assert_eq!(down, 0.0);
}

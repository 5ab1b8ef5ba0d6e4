//! The endpoint probe against real listeners on 127.0.0.1: a real OpenSSH
//! server (good banner), a closed port (refused), a listener that accepts
//! and never speaks (banner_timeout), one that sends garbage (bad_banner),
//! a full accept queue (connect_timeout), a TLS handshake against a
//! non-TLS server (tls), implicit FTPS against a real TLS server
//! (`openssl s_server`), and explicit FTPS with `AUTH TLS` refused (tls).
//! The fault listeners are hand-written on purpose:
//! they *are* the faults. Every timeout is short and every process is killed
//! by a guard.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_transfer_exporter::metrics::{render, Limits, Metrics};
use aws_transfer_exporter::probe::{self, ProbeConfig, Protocol, Reason, Target};
use prometheus::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::{free_port, wait_until};

/// Short bounds: every listener here is local, so anything slower than this
/// is the behaviour under test.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BANNER_TIMEOUT: Duration = Duration::from_millis(400);
/// Outer bound on any single probe in these tests.
const PROBE_BOUND: Duration = Duration::from_secs(5);

fn target(port: u16, protocol: Protocol) -> Target {
    Target {
        server_id: "s-0000000000000test".into(),
        host: "127.0.0.1".into(),
        port,
        protocol,
    }
}

async fn probe_once(t: &Target) -> probe::ProbeResult {
    tokio::time::timeout(
        PROBE_BOUND,
        probe::probe(t, CONNECT_TIMEOUT, BANNER_TIMEOUT),
    )
    .await
    .expect("the probe bounds its own time")
}

fn reason(r: &probe::ProbeResult) -> Option<Reason> {
    r.outcome.as_ref().err().map(|(r, _)| *r)
}

/// A real sshd on a high loopback port with a generated host key, killed on
/// drop. As root it runs as `nobody` (sshd refuses to run as root without
/// its system privilege-separation directory, and unprivileged is the point).
pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub(crate) fn start() -> Sshd {
        let sshd = PathBuf::from("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: run scripts/test-env.sh (installs openssh-server)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .expect("run ssh-keygen");
        assert!(st.success(), "ssh-keygen failed");
        let conf = dir.path().join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\nStrictModes no\n",
                key.display()
            ),
        )
        .unwrap();
        let root = is_root();
        if root {
            // Let `nobody` read its own key and config.
            let st = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success());
        }
        let port = free_port();
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&sshd);
            c
        } else {
            Command::new(&sshd)
        };
        let child = cmd
            .args(["-D", "-e", "-f"])
            .arg(&conf)
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        let mut s = Sshd {
            child,
            port,
            _dir: dir,
        };
        wait_until("sshd to listen", Duration::from_secs(10), || {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sshd exited early: {status}");
            }
            std::net::TcpStream::connect(("127.0.0.1", s.port)).ok()
        });
        s
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    // `id -u` rather than libc: no new dependency for one bit.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_banner_is_up_and_recorded() {
    let sshd = Sshd::start();
    let t = target(sshd.port, Protocol::Sftp);
    let r = probe_once(&t).await;
    let banner = r.outcome.as_ref().expect("sshd answers with a banner");
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");

    // Through a round: the metrics a user scrapes.
    let reg = Registry::new();
    let m = Metrics::new(&reg, Limits::default());
    let cfg = ProbeConfig {
        connect_timeout: CONNECT_TIMEOUT,
        banner_timeout: BANNER_TIMEOUT,
        ..ProbeConfig::default()
    };
    probe::round(&m, &cfg, std::slice::from_ref(&t)).await;
    let text = render(&reg);
    let port = sshd.port.to_string();
    let labels = [t.server_id.as_str(), "127.0.0.1", port.as_str()];
    assert_eq!(m.endpoint_up.with_label_values(&labels).get(), 1, "{text}");
    let d = m.endpoint_probe_duration.with_label_values(&labels).get();
    assert!(d > 0.0 && d < PROBE_BOUND.as_secs_f64(), "duration {d}");
    assert!(
        !text.contains("aws_transfer_endpoint_probe_failures_total{"),
        "no failure recorded:\n{text}"
    );

    // TLS spoken to an SSH server fails as `tls`, not as a hang.
    let r = probe_once(&target(sshd.port, Protocol::FtpsImplicit)).await;
    assert_eq!(reason(&r), Some(Reason::Tls), "{:?}", r.outcome);
    // FTP spoken to an SSH server: the greeting is not `220`.
    let r = probe_once(&target(sshd.port, Protocol::Ftp)).await;
    assert_eq!(reason(&r), Some(Reason::BadBanner), "{:?}", r.outcome);
}

#[tokio::test]
async fn closed_port_is_refused_and_counted() {
    let port = free_port(); // bound and released: nothing listens now
    let t = target(port, Protocol::Sftp);
    let reg = Registry::new();
    let m = Metrics::new(&reg, Limits::default());
    let cfg = ProbeConfig {
        connect_timeout: CONNECT_TIMEOUT,
        banner_timeout: BANNER_TIMEOUT,
        ..ProbeConfig::default()
    };
    let results = probe::round(&m, &cfg, std::slice::from_ref(&t)).await;
    assert_eq!(
        reason(&results[0]),
        Some(Reason::Refused),
        "{:?}",
        results[0].outcome
    );
    let port_s = port.to_string();
    assert_eq!(
        m.endpoint_up
            .with_label_values(&[t.server_id.as_str(), "127.0.0.1", port_s.as_str()])
            .get(),
        0
    );
    assert_eq!(
        m.endpoint_probe_failures
            .with_label_values(&[t.server_id.as_str(), "refused"])
            .get(),
        1
    );
}

#[tokio::test]
async fn silent_listener_is_banner_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    // Accept and hold the connection open without a word.
    let server = tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(sock);
    });
    let started = Instant::now();
    let r = probe_once(&target(port, Protocol::Sftp)).await;
    assert_eq!(reason(&r), Some(Reason::BannerTimeout), "{:?}", r.outcome);
    assert!(
        started.elapsed() < BANNER_TIMEOUT + Duration::from_secs(2),
        "bounded by the banner timeout"
    );
    server.abort();
}

#[tokio::test]
async fn garbage_is_bad_banner() {
    let table: &[(&[u8], Protocol)] = &[
        (b"\x00\xff\x13garbage\r\n", Protocol::Sftp),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", Protocol::Sftp), // closes without SSH-
        (b"SSH-1.5-ancient\r\n", Protocol::Sftp),
        (b"500 go away\r\n", Protocol::Ftp),
        (b"", Protocol::Sftp), // accept and close at once
    ];
    for (bytes, protocol) in table {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let payload = bytes.to_vec();
        let server = tokio::spawn(async move {
            let (mut sock, _) = l.accept().await.unwrap();
            let _ = sock.write_all(&payload).await;
            let _ = sock.shutdown().await;
        });
        let r = probe_once(&target(port, *protocol)).await;
        assert_eq!(
            reason(&r),
            Some(Reason::BadBanner),
            "payload {:?} ({protocol:?}): {:?}",
            String::from_utf8_lossy(bytes),
            r.outcome
        );
        server.abort();
    }
}

/// A full accept queue drops further SYNs on Linux (tcp_abort_on_overflow
/// is 0 by default): the same silence a security group produces.
#[tokio::test]
async fn dropped_syn_is_connect_timeout() {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap(); // never accepted
    let port = l.local_addr().unwrap().port();
    // Fill the queue; each of these completes its handshake or stays in SYN.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let r = probe_once(&target(port, Protocol::Sftp)).await;
    // A kernel that answers anyway would make this a banner timeout: both
    // are "no greeting", but only connect_timeout proves the SYN was dropped.
    assert_eq!(reason(&r), Some(Reason::ConnectTimeout), "{:?}", r.outcome);
    drop(fillers);
    drop(l);
}

/// A failed lookup maps to `dns`. The name holds a NUL byte, so it fails
/// inside the process before any resolver is asked: no test may send a DNS
/// query off this machine.
#[tokio::test]
async fn failed_lookup_is_dns_without_a_query() {
    let t = Target {
        server_id: "s-0000000000000test".into(),
        host: "no\0such".into(),
        port: 22,
        protocol: Protocol::Sftp,
    };
    let r = probe_once(&t).await;
    assert_eq!(reason(&r), Some(Reason::Dns), "{:?}", r.outcome);
}

#[tokio::test]
async fn prober_task_reports_up_and_stops_on_cancel() {
    let sshd = Sshd::start();
    let reg = Registry::new();
    let m = Arc::new(Metrics::new(&reg, Limits::default()));
    let cfg = ProbeConfig {
        interval: Duration::from_millis(200),
        connect_timeout: CONNECT_TIMEOUT,
        banner_timeout: BANNER_TIMEOUT,
        public_hostnames: Some(false),
        targets: vec![target(sshd.port, Protocol::Sftp)],
        ..ProbeConfig::default()
    };
    let tracker = tokio_util::task::TaskTracker::new();
    let token = tokio_util::sync::CancellationToken::new();
    probe::spawn(&tracker, token.clone(), m.clone(), cfg, Vec::new());
    let port = sshd.port.to_string();
    let labels = ["s-0000000000000test", "127.0.0.1", port.as_str()];
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.endpoint_up.with_label_values(&labels).get() != 1 {
        assert!(Instant::now() < deadline, "prober never reported up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .expect("prober drains within 2 s of cancellation");
}

/// A real TLS server (`openssl s_server`, self-signed certificate generated
/// here) for implicit FTPS: the probe completes the handshake, then reads
/// the `220` greeting through TLS. The greeting is queued on s_server's
/// stdin before the probe connects; s_server forwards it once the
/// handshake is done.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(greeting: &str) -> TlsServer {
        use std::io::{BufRead, Write};
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=ftps.test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl req");
        assert!(st.success(), "openssl req failed");
        let port = free_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-naccept", "1", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(greeting.as_bytes())
            .unwrap();
        // s_server prints ACCEPT once it listens; wait for it (bounded by
        // the guard below: the read ends when the process is killed).
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains("ACCEPT") {
                    let _ = tx.send(());
                }
            }
        });
        let s = TlsServer {
            child,
            port,
            _dir: dir,
        };
        rx.recv_timeout(Duration::from_secs(10))
            .expect("openssl s_server listening within 10 s");
        s
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn implicit_ftps_handshake_and_greeting_against_a_real_tls_server() {
    let server = TlsServer::start("220 FTPS ready\r\n");
    let r = probe_once(&target(server.port, Protocol::FtpsImplicit)).await;
    assert_eq!(
        r.outcome.as_deref().map_err(|e| e.clone()),
        Ok("220 FTPS ready"),
        "handshake then greeting"
    );
}

/// Explicit FTPS whose server refuses `AUTH TLS` (a fault listener: a
/// plain FTP greeting, then `504`) fails as `tls`.
#[tokio::test]
async fn explicit_ftps_refused_auth_tls_is_tls() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = l.accept().await.unwrap();
        sock.write_all(b"220 plain FTP only\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut sock, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"AUTH TLS\r\n");
        sock.write_all(b"504 Security mechanism not implemented\r\n")
            .await
            .unwrap();
    });
    let r = probe_once(&target(port, Protocol::Ftps)).await;
    assert_eq!(reason(&r), Some(Reason::Tls), "{:?}", r.outcome);
    server.await.expect("listener saw AUTH TLS");
}

//! Shared test harness: a moto server, SDK helpers to write log events, a
//! guard around the real daemon binary, and a Prometheus exposition parser.
//! Other test modules use these freely.

#![allow(dead_code)] // not every test module uses every helper

pub mod daemon;
pub mod exposition;
pub mod faultproxy;
pub mod html;
pub mod logs;
pub mod moto;

pub use daemon::Daemon;
pub use logs::Logs;
pub use moto::Moto;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The crate root (where `.venv-test` and `tests/data` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`
/// and the last value `describe` gives.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Now in milliseconds since the epoch (CloudWatch timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The fake credentials, Region and switches every child process gets, so
/// nothing ever reaches the cloud metadata address or a real profile.
pub const FAKE_AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "eu-west-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// The SDK's default chain reads credentials from the environment: give the
/// test process the fake ones (and never the metadata endpoint) once, for
/// the tests that run the app in-process.
pub fn fake_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in FAKE_AWS_ENV {
            std::env::set_var(k, v);
        }
    });
}

/// The Region the tests use.
pub const REGION: &str = "eu-west-1";

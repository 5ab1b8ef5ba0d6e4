//! A moto server (a real CloudWatch Logs API) on 127.0.0.1.
//!
//! [`Moto::shared`] starts one per test binary; tests isolate themselves by
//! unique log-group names and never reset it. [`Moto::start`] gives a test
//! its own server, killed on drop.
//!
//! The server runs under a small Python watchdog that exits when the test
//! process is gone, so even the shared server (a static, never dropped)
//! cannot outlive the test binary.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, root};

/// moto is ready in ~2 s; give a loaded 2-core machine room.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub url: String,
}

/// Runs moto's server and exits when the parent (the test binary) dies.
const WATCHDOG: &str = r#"
import os, sys, threading, time
parent = os.getppid()
def watch():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

impl Moto {
    /// Starts a new moto server on a free port and waits until it answers.
    pub fn start() -> Moto {
        let python = root().join(".venv-test/bin/python");
        let server = root().join(".venv-test/bin/moto_server");
        if !python.exists() || !server.exists() {
            panic!(
                "{} is missing: run scripts/test-env.sh to create the test environment (moto in .venv-test)",
                server.display()
            );
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let child = Command::new(&python)
                .arg("-c")
                .arg(WATCHDOG)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto_server");
            let mut moto = Moto {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
            };
            match moto.wait_ready() {
                Ok(()) => return moto,
                Err(e) => last_err = e, // port raced away, or slow start: retry
            }
        }
        panic!("moto did not start: {last_err}");
    }

    /// One server for the whole test binary.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .http_status_as_error(false)
            .build()
            .into();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited early with {status}"));
            }
            if let Ok(resp) = agent.get(format!("{}/moto-api/", self.url)).call() {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "not ready on port {} after {STARTUP_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

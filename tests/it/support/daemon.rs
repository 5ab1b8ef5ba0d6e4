//! A guard around the daemon: either the real binary (started with
//! arguments and the fake AWS environment; the bound address read from its
//! `listening` log line; killed on drop), or the same app run in-process
//! through the app builder ([`Daemon::in_process`]; shut down on drop). The
//! binary is used where the binary itself is tested (flags, exit codes,
//! signals, log output); everything else runs in-process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{exposition, FAKE_AWS_ENV};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_aws-transfer-exporter");

/// How long the daemon may take to log its `listening` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What runs the daemon.
enum Runner {
    Child(Child),
    InProcess(Option<(tokio::runtime::Runtime, aws_transfer_exporter::app::Running)>),
}

pub struct Daemon {
    runner: Runner,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

/// The fake-credential environment plus `extra`; nothing inherited from
/// the developer's AWS setup.
pub fn command(args: &[String], extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    // Safety net: an SDK client without an explicit endpoint (a test that
    // forgot --aws.endpoint-url) reaches a dead local port, never AWS.
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
    for (k, v) in FAKE_AWS_ENV.iter().chain(extra_env) {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Extracts `address=<ip:port>` from a logfmt `listening` line.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("address="))
        .and_then(|a| a.trim_matches('"').parse().ok())
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1:0 (unless `args` name a listen
    /// address) and waits for its `listening` line. Panics with the
    /// daemon's stderr if it exits first.
    pub fn start(args: &[String]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Daemon {
        let mut args = args.to_vec();
        if !args.iter().any(|a| a.starts_with("--web.listen-address")) {
            args.push("--web.listen-address=127.0.0.1:0".into());
        }
        Daemon::spawn(command(&args, env))
    }

    /// Starts the daemon from a prepared command (a test that needs an
    /// environment other than [`command`]'s; it must name a listen address)
    /// and waits for its `listening` line.
    pub fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the daemon binary");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().expect("piped stderr");
            let lines = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(a) = listening_address(&line) {
                        let _ = tx.send(a);
                    }
                    if std::env::var_os("DAEMON_LOG").is_some() {
                        eprintln!("[daemon] {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "daemon exited with {status} before listening; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "daemon did not log `listening` within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Daemon {
            runner: Runner::Child(child),
            addr,
            stderr,
            agent,
        }
    }

    /// Runs the app in this process through the app builder, with the
    /// arguments parsed as `main` parses them (the fake AWS environment is
    /// set in this process once). Logs are not captured.
    pub fn in_process(args: &[String]) -> Daemon {
        use aws_transfer_exporter::app::App;
        use aws_transfer_exporter::cli::Cli;
        use clap::Parser as _;
        super::fake_env();
        let mut argv = vec!["aws-transfer-exporter".to_owned()];
        argv.extend(args.iter().cloned());
        if !args.iter().any(|a| a.starts_with("--web.listen-address")) {
            argv.push("--web.listen-address=127.0.0.1:0".into());
        }
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let cfg = aws_transfer_exporter::config::load(&cli.serve)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = rt
            .block_on(App::new(cfg).reload_from(cli.serve.clone()).start())
            .unwrap_or_else(|e| panic!("app did not start: {e:#}"));
        let addr = running.address();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Daemon {
            runner: Runner::InProcess(Some((rt, running))),
            addr,
            stderr: Arc::new(Mutex::new(vec![
                "(in-process daemon: logs are not captured)".to_owned(),
            ])),
            agent,
        }
    }

    fn child(&self) -> &Child {
        match &self.runner {
            Runner::Child(c) => c,
            Runner::InProcess(_) => panic!("signals and exit codes are tested with the binary"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`: (status, content type, body).
    pub fn get(&self, path: &str) -> (u16, String, String) {
        let mut resp = self
            .agent
            .get(self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; stderr:\n{}", self.stderr()));
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .expect("read body");
        (status, ctype, body)
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    /// The value of one sample (see [`exposition::value`]).
    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        exposition::value(&self.metrics(), name, labels)
    }

    /// Polls `/metrics` until `check` accepts it, or panics after `timeout`
    /// showing the last exposition lines that mention `name_hint`.
    pub fn wait_metrics(
        &self,
        what: &str,
        name_hint: &str,
        timeout: Duration,
        mut check: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics();
            if check(&text) {
                return text;
            }
            if Instant::now() >= deadline {
                let relevant: Vec<&str> = text.lines().filter(|l| l.contains(name_hint)).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last {name_hint} lines:\n{}\n--- daemon stderr (tail) ---\n{}",
                    relevant.join("\n"),
                    self.stderr_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the sum of the matching samples equals `want`.
    pub fn wait_sum(&self, name: &str, labels: &[(&str, &str)], want: f64, timeout: Duration) {
        self.wait_metrics(&format!("{name}{labels:?} == {want}"), name, timeout, |t| {
            exposition::sum(t, name, labels) == want
        });
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn stderr_tail(&self, n: usize) -> String {
        let lines = self.stderr.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -HUP {pid} failed");
    }

    /// `method path` with an empty body: (status, body).
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let url = self.url(path);
        let result = match method {
            "POST" => self.agent.post(&url).send_empty(),
            "PUT" => self.agent.put(&url).send_empty(),
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            other => panic!("request: method {other} not supported here"),
        };
        let mut resp =
            result.unwrap_or_else(|e| panic!("{method} {path}: {e}; stderr:\n{}", self.stderr()));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().expect("read body");
        (status, body)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid} failed");
    }

    /// SIGKILL and reap (in-process: shut down).
    pub fn kill(&mut self) {
        match &mut self.runner {
            Runner::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Runner::InProcess(app) => {
                if let Some((rt, running)) = app.take() {
                    let _ = rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(15), running.shutdown()).await
                    });
                    rt.shutdown_timeout(Duration::from_secs(2));
                }
            }
        }
    }

    /// Waits for the process to exit, up to `timeout`; `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let Runner::Child(child) = &mut self.runner else {
            panic!("exit statuses are tested with the binary");
        };
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the binary to completion (for commands that exit by themselves),
/// killing it after `timeout`. Returns (status, stdout, stderr).
pub fn run_to_exit(
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the daemon binary");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, t_out.join().unwrap(), t_err.join().unwrap())
}

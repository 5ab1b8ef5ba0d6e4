//! CPU while idle with 100 log groups: the real source (SDK client, token
//! bucket, pollers, state-file flusher) polling 100 groups on a moto server
//! where nothing new arrives, with the default settings (2 API calls/s, so a
//! round of 100 groups takes ~50 s: the budget, not the interval, paces it).
//! Measures this process's CPU time (user+system, /proc/self/stat) over a
//! steady-state span after the first round; moto runs in its own process
//! and is not counted.
//!
//!     cargo bench --bench source_idle            # 60 s measured
//!     IDLE_SECONDS=120 cargo bench --bench source_idle
//!
//! Needs the test venv (`.venv-test` with moto). Loopback only; fake
//! credentials; the metadata endpoint disabled.

use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_transfer_exporter::app::App;
use aws_transfer_exporter::cli::ServeArgs;
use aws_transfer_exporter::config;
use aws_transfer_exporter::metrics::Metrics;
use aws_transfer_exporter::source::{self, TargetSpec};

const GROUPS: usize = 100;

/// `cargo test --all-targets` runs this binary without `--bench`: then it
/// is a smoke test (5 groups, 3 s idle, 1 s polls, a larger budget) that proves the
/// bench still works without spending two minutes of every CI run.
const SMOKE_GROUPS: usize = 5;

struct Moto(Child);
impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User+system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // fields after the ")" of the command name; utime and stime are 14 and 15
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // CLK_TCK is 100 on Linux
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list
    }
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ] {
        std::env::set_var(k, v);
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    let groups = if smoke { SMOKE_GROUPS } else { GROUPS };
    let measure = Duration::from_secs(
        std::env::var("IDLE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if smoke { 3 } else { 60 }),
    );
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _moto = Moto(
        Command::new(root.join(".venv-test/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (python3 -m venv .venv-test && .venv-test/bin/pip install 'moto[server]')"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(&url)
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .build();
    let client = aws_sdk_cloudwatchlogs::Client::from_conf(conf);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = 0;
        while i < groups {
            let g = format!("/aws/transfer/s-{i:017x}");
            match client.create_log_group().log_group_name(&g).send().await {
                Ok(_) => i += 1,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("moto not ready: {e:?}"),
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let target = TargetSpec {
        name: "bench".into(),
        region: "eu-west-1".into(),
        endpoint_url: Some(url),
        role_arn: None,
        group_prefixes: vec![source::DEFAULT_GROUP_PREFIX.into()],
        groups: vec![],
        initial_lookback: source::DEFAULT_INITIAL_LOOKBACK,
        late_arrival_window: source::DEFAULT_LATE_ARRIVAL_WINDOW,
        poll_interval: if smoke {
            Duration::from_secs(1)
        } else {
            source::DEFAULT_POLL_INTERVAL
        },
        discovery_interval: source::DEFAULT_DISCOVERY_INTERVAL,
        page_limit: source::DEFAULT_PAGE_LIMIT,
        api_rate_per_second: if smoke {
            20.0
        } else {
            source::DEFAULT_API_RATE_PER_SECOND
        },
        overlap_floor: source::DEFAULT_OVERLAP_FLOOR,
        sweep_interval: source::DEFAULT_SWEEP_INTERVAL,
        sweep_reach: None,
    };
    // Assembled by the app builder, as `main` does, with only the source.
    let args = ServeArgs {
        listen_addresses: vec!["127.0.0.1:0".into()],
        aws_region: Some("eu-west-1".into()),
        ..Default::default()
    };
    let raw =
        config::parse_yaml("inventory:\n  enabled: false\nprobe:\n  enabled: false\n").unwrap();
    let mut cfg = config::build(raw, &args, None).unwrap();
    cfg.targets = vec![target];
    cfg.state_path = dir.path().join("state.json");
    let running = rt.block_on(App::new(cfg).start()).unwrap();
    let metrics = running.metrics().clone();
    let t0 = Instant::now();
    while !running.is_ready() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "first round did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let calls = |m: &Metrics| {
        m.api_calls
            .with_label_values(&["FilterLogEvents", "success"])
            .get()
            + m.api_calls
                .with_label_values(&["DescribeLogGroups", "success"])
                .get()
    };
    println!(
        "first round of {groups} groups: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let (cpu0, calls0, w0) = (cpu_seconds(), calls(&metrics), Instant::now());
    std::thread::sleep(measure);
    let (cpu1, calls1, wall) = (cpu_seconds(), calls(&metrics), w0.elapsed().as_secs_f64());
    println!(
        "idle with {groups} groups over {wall:.0} s: CPU {:.2} s = {:.2} % of one core; {} API calls ({:.2}/s); effective poll interval {:.0} s",
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / wall,
        calls1 - calls0,
        (calls1 - calls0) as f64 / wall,
        metrics.poll_interval.get()
    );
    assert!(calls1 > calls0, "the pollers kept polling while idle");
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(15), running.shutdown()).await;
    });
}

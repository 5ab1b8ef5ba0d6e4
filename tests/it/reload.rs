//! Hot reload of the real daemon binary against moto, under load: a writer
//! keeps adding events to two log groups, a scraper reads `/metrics` like
//! Prometheus, and the config file changes under the daemon (a new log
//! group, a new limit). Reloaded by SIGHUP and by `POST /-/reload`
//! (`--web.enable-lifecycle`): the new group is polled and counted, the new
//! limit applies, no counter goes down, and every event written is counted
//! exactly once. A broken file changes nothing and the reload metric says 0;
//! without the flag the endpoint answers 403.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::logs::shapes;
use crate::support::{exposition, now_ms, unique, wait_until, Daemon, Logs, Moto, REGION};

/// The server of the group polled from the start.
const SERVER_A: &str = "s-0aaaaaaaaaaaaaaa1";
/// The server of the group the reload adds.
const SERVER_B: &str = "s-0bbbbbbbbbbbbbbb2";
/// Users of server B; more than the reloaded cap.
const B_USERS: usize = 5;
/// `limits.max_users_per_server` after the reload.
const NEW_CAP: usize = 2;

const RELOAD_OK: &str = "aws_transfer_exporter_config_last_reload_successful";
const RELOAD_TS: &str = "aws_transfer_exporter_config_last_reload_success_timestamp_seconds";

/// The config file: group A, or A and B with the lower cap.
fn config(moto: &str, groups: &[&str], cap: usize) -> String {
    let list: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
    format!(
        "state:\n  flush_interval: 1s\nlimits:\n  max_users_per_server: {cap}\ninventory:\n  enabled: false\nprobe:\n  enabled: false\ntargets:\n  - name: moto\n    region: {REGION}\n    endpoint_url: \"{moto}\"\n    log_groups: [{}]\n    log_group_prefixes: [\"/none-such-prefix/\"]\n    poll_interval: 500ms\n    api_rate_per_second: 50\n",
        list.join(", ")
    )
}

/// Every counter sample (`*_total`), by name and labels.
fn counters(text: &str) -> BTreeMap<String, f64> {
    exposition::parse(text)
        .into_iter()
        .filter(|s| s.name.ends_with("_total"))
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (format!("{}{{{}}}", s.name, labels.join(",")), s.value)
        })
        .collect()
}

fn connected(text: &str, server: &str) -> f64 {
    exposition::value(
        text,
        "aws_transfer_events_total",
        &[("server_id", server), ("activity", "CONNECTED")],
    )
    .unwrap_or(0.0)
}

/// A writer adding CONNECTED events to both groups until stopped (group B
/// is written from the start: its events before the reload are read when
/// the reload adds it).
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<[AtomicUsize; 2]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(logs: Arc<Logs>, a: &str, b: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let groups = [
            (a.to_owned(), format!("{SERVER_A}/many"), SERVER_A),
            (b.to_owned(), format!("{SERVER_B}/many"), SERVER_B),
        ];
        for (g, s, _) in &groups {
            logs.create_stream(g, s);
        }
        let thread = {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    for (k, (group, stream, server)) in groups.iter().enumerate() {
                        let t = now_ms();
                        let batch: Vec<(i64, String)> = (0..10)
                            .map(|j| {
                                let i = n + j;
                                let user = match k {
                                    0 => format!("a{}", i % 2),
                                    _ => format!("b{}", i % B_USERS),
                                };
                                (t, shapes::connected(server, &user, &format!("{k}{i:019x}")))
                            })
                            .collect();
                        logs.put(group, stream, &batch);
                        written[k].fetch_add(batch.len(), Ordering::Relaxed);
                    }
                    n += 10;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Writer {
            stop,
            written,
            thread: Some(thread),
        }
    }

    fn written(&self) -> (usize, usize) {
        (
            self.written[0].load(Ordering::Relaxed),
            self.written[1].load(Ordering::Relaxed),
        )
    }

    fn finish(&mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer thread");
        }
        self.written()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Scrapes every 200 ms and records every counter that went down.
struct Scraper {
    stop: Arc<AtomicBool>,
    drops: Arc<Mutex<Vec<String>>>,
    scrapes: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(url: String) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(Mutex::new(Vec::new()));
        let scrapes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, drops, scrapes) = (stop.clone(), drops.clone(), scrapes.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut last: BTreeMap<String, f64> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut r) = agent.get(&url).call() {
                        if let Ok(text) =
                            r.body_mut().with_config().limit(64 << 20).read_to_string()
                        {
                            let now = counters(&text);
                            for (k, prev) in &last {
                                match now.get(k) {
                                    Some(v) if v >= prev => {}
                                    v => {
                                        drops.lock().unwrap().push(format!("{k}: {prev} -> {v:?}"))
                                    }
                                }
                            }
                            last = now;
                            scrapes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Scraper {
            stop,
            drops,
            scrapes,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("scraper thread");
        }
        (
            self.scrapes.load(Ordering::Relaxed),
            self.drops.lock().unwrap().clone(),
        )
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How the reload is asked for.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Sighup,
    Post,
}

fn start_daemon(config_path: &Path, state: &Path, lifecycle: bool) -> Daemon {
    let mut args = vec![
        format!("--config.file={}", config_path.display()),
        // A flag: laid over the file again by every reload.
        format!("--state.path={}", state.display()),
    ];
    if lifecycle {
        args.push("--web.enable-lifecycle".into());
    }
    Daemon::start(&args)
}

fn trigger(d: &Daemon, how: Trigger) {
    match how {
        Trigger::Sighup => d.hangup(),
        Trigger::Post => {
            let (status, body) = d.request("POST", "/-/reload");
            assert_eq!(status, 200, "POST /-/reload: {body}\n{}", d.stderr_tail(30));
            assert!(body.contains("configuration reloaded"), "{body}");
        }
    }
}

fn reload_under_load(how: Trigger) {
    let moto = Moto::shared();
    let logs = Arc::new(Logs::new(&moto.url));
    let id = unique("reload");
    let (group_a, group_b) = (format!("/{id}/a"), format!("/{id}/b"));
    logs.create_group(&group_a);
    logs.create_group(&group_b);
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    std::fs::write(&cfg_path, config(&moto.url, &[&group_a], 100)).unwrap();
    let d = start_daemon(&cfg_path, &state, matches!(how, Trigger::Post));

    let mut writer = Writer::start(logs.clone(), &group_a, &group_b);
    let mut scraper = Scraper::start(d.url("/metrics"));
    wait_until("group A counted", Duration::from_secs(30), || {
        (connected(&d.metrics(), SERVER_A) >= 50.0).then_some(())
    });
    let before = d.metrics();
    assert_eq!(
        connected(&before, SERVER_B),
        0.0,
        "group B is not polled yet"
    );
    assert_eq!(exposition::value(&before, RELOAD_OK, &[]), Some(1.0));
    let started_ts = exposition::value(&before, RELOAD_TS, &[]).expect("set at start");
    assert!(started_ts > 0.0);

    std::fs::write(&cfg_path, config(&moto.url, &[&group_a, &group_b], NEW_CAP)).unwrap();
    // The timestamp has one-second resolution in what we compare below.
    std::thread::sleep(Duration::from_millis(1100));
    trigger(&d, how);

    // The new group is polled and counted, under the new cap.
    let after = d.wait_metrics(
        "group B counted after the reload",
        "aws_transfer_sessions_total",
        Duration::from_secs(30),
        |text| connected(text, SERVER_B) >= 50.0,
    );
    assert_eq!(exposition::value(&after, RELOAD_OK, &[]), Some(1.0));
    let reloaded_ts = exposition::value(&after, RELOAD_TS, &[]).unwrap();
    assert!(reloaded_ts > started_ts, "{reloaded_ts} > {started_ts}");
    let mut b_users: Vec<String> = exposition::parse(&after)
        .into_iter()
        .filter(|s| s.matches("aws_transfer_sessions_total", &[("server_id", SERVER_B)]))
        .map(|s| s.label("user").unwrap_or("").to_owned())
        .collect();
    b_users.sort();
    assert_eq!(
        b_users.len(),
        NEW_CAP + 1,
        "{NEW_CAP} users and ~other under the reloaded cap: {b_users:?}"
    );
    assert!(b_users.iter().any(|u| u == "~other"), "{b_users:?}");
    assert!(
        exposition::sum(&after, "aws_transfer_exporter_label_overflow_total", &[]) > 0.0,
        "overflow counted"
    );

    if matches!(how, Trigger::Post) {
        // Several reloads at once, still under load: each is answered, and
        // they run one after the other (each "reloading" line is followed
        // by its "reloaded" line before the next starts).
        std::thread::scope(|sc| {
            let posts: Vec<_> = (0..4)
                .map(|_| sc.spawn(|| d.request("POST", "/-/reload")))
                .collect();
            for p in posts {
                let (status, body) = p.join().expect("POST thread");
                assert_eq!(status, 200, "{body}");
            }
        });
        let log = wait_until("five reloads logged", Duration::from_secs(10), || {
            let log = d.stderr();
            (log.matches("msg=\"configuration reloaded\"").count() >= 5).then_some(log)
        });
        let steps: Vec<&str> = log
            .lines()
            .filter_map(|l| {
                if l.contains("msg=\"reloading the configuration\"") {
                    Some("start")
                } else if l.contains("msg=\"configuration reloaded\"") {
                    Some("done")
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(steps, ["start", "done"].repeat(5), "reloads overlapped");
    }

    // Keep the load on for a few more rounds, then let it drain: every
    // event written is counted exactly once.
    std::thread::sleep(Duration::from_secs(2));
    let (wa, wb) = writer.finish();
    let text = wait_until("every event counted", Duration::from_secs(30), || {
        let t = d.metrics();
        (connected(&t, SERVER_A) >= wa as f64 && connected(&t, SERVER_B) >= wb as f64).then_some(t)
    });
    // Two more poll rounds: nothing is counted a second time.
    std::thread::sleep(Duration::from_secs(2));
    let last = d.metrics();
    assert_eq!(
        (connected(&text, SERVER_A), connected(&text, SERVER_B)),
        (wa as f64, wb as f64),
        "events written (A, B) = ({wa}, {wb}); stderr:\n{}",
        d.stderr_tail(40)
    );
    assert_eq!(
        (connected(&last, SERVER_A), connected(&last, SERVER_B)),
        (wa as f64, wb as f64),
        "counted again after the drain"
    );

    // No counter went down, in any scrape.
    let (scrapes, drops) = scraper.finish();
    assert!(scrapes >= 10, "the scraper ran ({scrapes} scrapes)");
    assert!(drops.is_empty(), "counters went down: {drops:?}");
    let (before_c, last_c) = (counters(&before), counters(&last));
    for (k, v) in &before_c {
        let now = last_c.get(k).copied();
        assert!(
            now.is_some_and(|n| n >= *v),
            "{k}: {v} before, {now:?} after"
        );
    }
    let log = d.stderr();
    assert!(log.contains("msg=\"configuration reloaded\""), "{log}");
    assert!(!log.contains("level=error"), "{log}");
}

#[test]
fn sighup_under_load_adds_a_group_and_a_limit_without_losing_or_double_counting() {
    reload_under_load(Trigger::Sighup);
}

#[test]
fn post_reload_under_load_adds_a_group_and_a_limit_without_losing_or_double_counting() {
    reload_under_load(Trigger::Post);
}

/// A file that cannot load: YAML error, checker errors, web config error.
/// Each reload fails naming every problem, nothing changes (the group
/// keeps being counted under the old cap), and the metric says 0 until a
/// good file loads again.
#[test]
fn a_broken_file_keeps_the_running_configuration_and_the_metric_says_so() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = format!("/{}/broken", unique("reload"));
    let stream = format!("{SERVER_A}/s");
    logs.create_group(&group);
    logs.create_stream(&group, &stream);
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    .unwrap();
    let good = config(&moto.url, &[&group], 100);
    std::fs::write(&cfg_path, &good).unwrap();
    let d = Daemon::start(&[
        format!("--config.file={}", cfg_path.display()),
        format!("--state.path={}", state.display()),
        format!("--web.config.file={}", web.display()),
        "--web.enable-lifecycle".into(),
    ]);
    let put = |n: usize, from: usize| {
        let t = now_ms();
        let batch: Vec<(i64, String)> = (from..from + n)
            .map(|i| {
                (
                    t,
                    shapes::connected(SERVER_A, &format!("u{i}"), &format!("{i:020x}")),
                )
            })
            .collect();
        logs.put(&group, &stream, &batch);
    };
    put(3, 0);
    d.wait_sum(
        "aws_transfer_events_total",
        &[("server_id", SERVER_A), ("activity", "CONNECTED")],
        3.0,
        Duration::from_secs(30),
    );
    let ts = d.sample(RELOAD_TS, &[]).unwrap();

    // (config text, web config text, what the 500 answer must list)
    let broken: &[(&str, &str, &[&str])] = &[
        ("targets: [\n", "", &["config.file"]),
        (
            "limits:\n  max_users_per_server: 0\ntargetz: []\n",
            "",
            &["limits.max_users_per_server", "targetz: unknown key"],
        ),
        (
            "",
            "basic_auth_users:\n  alice: not-a-bcrypt-hash\nbogus: 1\n",
            &["web config file", "bogus"],
        ),
    ];
    for (i, (text, web_text, want)) in broken.iter().enumerate() {
        std::fs::write(&cfg_path, if text.is_empty() { &good } else { *text }).unwrap();
        if !web_text.is_empty() {
            std::fs::write(&web, web_text).unwrap();
        }
        let (status, body) = d.request("POST", "/-/reload");
        assert_eq!(status, 500, "case {i}: {body}");
        assert!(
            body.contains("the running configuration is kept"),
            "case {i}: {body}"
        );
        for w in *want {
            assert!(body.contains(w), "case {i}: {w:?} missing from:\n{body}");
            // The log is read from the pipe by another thread: wait for it.
            wait_until(
                &format!("case {i}: {w:?} in the log"),
                Duration::from_secs(10),
                || {
                    d.stderr()
                        .lines()
                        .any(|l| l.contains("reload problem") && l.contains(w))
                        .then_some(())
                },
            );
        }
        assert_eq!(d.sample(RELOAD_OK, &[]), Some(0.0), "case {i}");
        assert_eq!(
            d.sample(RELOAD_TS, &[]),
            Some(ts),
            "case {i}: success time kept"
        );
        if !web_text.is_empty() {
            std::fs::write(
                &web,
                "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
            )
            .unwrap();
        }
    }
    // SIGHUP with a broken file: the same, in the log.
    std::fs::write(&cfg_path, "targets: [\n").unwrap();
    d.hangup();
    wait_until(
        "SIGHUP reload failure logged",
        Duration::from_secs(10),
        || {
            d.stderr()
                .lines()
                .any(|l| l.contains("reload failed") && l.contains("origin=SIGHUP"))
                .then_some(())
        },
    );
    assert_eq!(d.sample(RELOAD_OK, &[]), Some(0.0));

    // Everything runs as it was: the group is still polled and counted.
    put(4, 3);
    d.wait_sum(
        "aws_transfer_events_total",
        &[("server_id", SERVER_A), ("activity", "CONNECTED")],
        7.0,
        Duration::from_secs(30),
    );
    let (status, _, _) = d.get("/metrics");
    assert_eq!(status, 200);

    // A good file again: reloaded, the metric back to 1.
    std::fs::write(&cfg_path, &good).unwrap();
    let (status, body) = d.request("POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.sample(RELOAD_OK, &[]), Some(1.0));
    assert!(d.sample(RELOAD_TS, &[]).unwrap() >= ts);
}

/// Without --web.enable-lifecycle the endpoint refuses, naming the flag;
/// other methods are 405 either way. SIGHUP still reloads.
#[test]
fn post_without_the_flag_is_403_and_other_methods_405() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let group = format!("/{}/noflag", unique("reload"));
    std::fs::write(&cfg_path, config(&moto.url, &[&group], 100)).unwrap();
    let d = start_daemon(&cfg_path, &state, false);
    let (status, body) = d.request("POST", "/-/reload");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--web.enable-lifecycle"), "{body}");
    for m in ["GET", "PUT", "DELETE"] {
        let (status, body) = d.request(m, "/-/reload");
        assert_eq!(status, 405, "{m}: {body}");
    }
    d.hangup();
    wait_until("SIGHUP reload", Duration::from_secs(10), || {
        d.stderr()
            .contains("msg=\"configuration reloaded\"")
            .then_some(())
    });
    assert_eq!(d.sample(RELOAD_OK, &[]), Some(1.0));
}

/// Settings only a restart changes: the rest of the file is applied, each
/// such key is named in a warning and in the answer, and the daemon keeps
/// running as it was started (its telemetry path, its log format; the
/// listen address flag still wins over the file).
#[test]
fn restart_only_keys_are_warned_about_and_the_rest_applies() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let group = format!("/{}/restart-only", unique("reload"));
    let base = config(&moto.url, &[&group], 100);
    std::fs::write(&cfg_path, &base).unwrap();
    let d = start_daemon(&cfg_path, &state, true);
    let other = crate::support::free_port();
    std::fs::write(
        &cfg_path,
        format!(
            "web:\n  listen_address: 127.0.0.1:{other}\n  telemetry_path: /other\nlog:\n  format: json\nattribution:\n  session_ttl: 1h\n{}",
            base.replace("max_users_per_server: 100", "max_users_per_server: 7")
        ),
    )
    .unwrap();
    let (status, body) = d.request("POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    // The listen address comes from a flag (`Daemon::start` gives one),
    // which a reload lays over the file again: no change there.
    assert!(!body.contains("web.listen_address"), "{body}");
    for key in ["web.telemetry_path", "log.format", "attribution"] {
        assert!(
            body.contains(&format!("{key}: changed; takes effect at the next restart")),
            "{key}: {body}"
        );
        wait_until(
            &format!("a warning naming {key}"),
            Duration::from_secs(10),
            || {
                d.stderr()
                    .lines()
                    .any(|l| l.contains("level=warn") && l.contains(&format!("key={key}")))
                    .then_some(())
            },
        );
    }
    // Still on the old address and path, still logfmt.
    assert_eq!(d.sample(RELOAD_OK, &[]), Some(1.0));
    let (status, _, _) = d.get("/other");
    assert_eq!(status, 404, "the telemetry path changes at a restart");
    assert!(std::net::TcpStream::connect(("127.0.0.1", other)).is_err());
    assert!(d.stderr_tail(1).starts_with("ts="), "{}", d.stderr_tail(1));
}

/// A target taken out of the file stops being polled and its series go
/// (its groups' gauges, its `target_up`); the other target goes on.
#[test]
fn removing_a_target_stops_it_and_removes_its_series() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let id = unique("reload");
    let (kept, gone) = (format!("/{id}/kept"), format!("/{id}/gone"));
    for g in [&kept, &gone] {
        logs.create_group(g);
    }
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let one = config(&moto.url, &[&kept], 100);
    let second = format!(
        "  - name: second\n    region: {REGION}\n    endpoint_url: \"{}\"\n    log_groups: [\"{gone}\"]\n    log_group_prefixes: [\"/none-such-prefix/\"]\n    poll_interval: 500ms\n",
        moto.url
    );
    std::fs::write(&cfg_path, format!("{one}{second}")).unwrap();
    let d = start_daemon(&cfg_path, &state, true);
    let polled = |text: &str, g: &str| {
        exposition::value(
            text,
            "aws_transfer_exporter_last_successful_poll_timestamp_seconds",
            &[("log_group", g)],
        )
        .is_some()
    };
    d.wait_metrics(
        "both targets polled",
        "target_up",
        Duration::from_secs(30),
        |t| {
            polled(t, &kept)
                && polled(t, &gone)
                && exposition::value(
                    t,
                    "aws_transfer_exporter_target_up",
                    &[("target", "second"), ("api", "logs")],
                ) == Some(1.0)
        },
    );
    std::fs::write(&cfg_path, &one).unwrap();
    let (status, body) = d.request("POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    let text = d.metrics();
    assert!(polled(&text, &kept), "the kept group keeps its series");
    assert!(
        !polled(&text, &gone),
        "the removed target's group series go"
    );
    assert_eq!(
        exposition::value(
            &text,
            "aws_transfer_exporter_target_up",
            &[("target", "second"), ("api", "logs")]
        ),
        None
    );
    assert_eq!(
        exposition::value(&text, "aws_transfer_exporter_log_groups", &[]),
        Some(1.0)
    );
    // The kept target still counts.
    let stream = format!("{SERVER_A}/s");
    logs.create_stream(&kept, &stream);
    logs.put(
        &kept,
        &stream,
        &[(
            now_ms(),
            shapes::connected(SERVER_A, "u1", "0123456789abcdef0123"),
        )],
    );
    d.wait_sum(
        "aws_transfer_events_total",
        &[("server_id", SERVER_A), ("activity", "CONNECTED")],
        1.0,
        Duration::from_secs(30),
    );
}

/// A server logging both ways (a structured group and its legacy copy):
/// reloads while both copies keep arriving, with a slow Transfer API (the
/// new inventory's first view takes 2 s): the legacy copies stay skipped
/// throughout, so each failure counts once.
#[test]
fn reloads_keep_skipping_legacy_copies_of_dual_logging_servers() {
    use crate::inventory_daemon::{create_server, transfer_client, MOTO_ACCOUNT, ROLE};
    use crate::support::faultproxy::FaultProxy;

    let moto = Moto::start();
    let client = transfer_client(&moto);
    let logs = Arc::new(Logs::new(&moto.url));
    let structured = format!("/{}/dual", unique("reload"));
    logs.create_group(&structured);
    let dest = format!("arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:{structured}:*");
    let dual = create_server(&logs, &client, Some(ROLE), Some(&dest));
    let legacy = format!("/aws/transfer/{dual}");
    logs.create_group(&legacy);
    logs.create_stream(&structured, "ERRORS");
    logs.create_stream(&legacy, "ERRORS");
    let proxy = FaultProxy::start_disturbing(&moto.url, &["ListServers"]);
    proxy
        .faults
        .delay_ms
        .store(2_000, std::sync::atomic::Ordering::Relaxed);

    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let cfg = |interval: &str| {
        format!(
            "state:\n  flush_interval: 1s\nprobe:\n  enabled: false\ntargets:\n  - name: moto\n    region: {REGION}\n    endpoint_url: \"{}\"\n    log_group_prefixes: [\"/aws/transfer/\"]\n    poll_interval: {interval}\n",
            proxy.url
        )
    };
    std::fs::write(&cfg_path, cfg("500ms")).unwrap();
    let d = start_daemon(&cfg_path, &state, true);

    // Writer: one failure every 50 ms, as JSON and as its legacy copy.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (logs, stop, written) = (logs.clone(), stop.clone(), written.clone());
        let (dual, structured, legacy) = (dual.clone(), structured.clone(), legacy.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = now_ms();
                let json =
                    shapes::unknown_user(&dual, "mallory").replace("111122223333", MOTO_ACCOUNT);
                let line = "ERRORS AUTH_FAILURE Method=publickey User=mallory Message=\"The user is unrecognized\" SourceIP=203.0.113.50".to_owned();
                logs.put(&structured, "ERRORS", &[(t, json)]);
                logs.put(&legacy, "ERRORS", &[(t, line)]);
                written.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let errors = |text: &str| {
        exposition::sum(
            text,
            "aws_transfer_errors_total",
            &[("server_id", dual.as_str()), ("cause", "unknown_user")],
        )
    };
    d.wait_metrics(
        "failures counted",
        "errors_total",
        Duration::from_secs(30),
        |t| errors(t) >= 5.0,
    );
    for interval in ["700ms", "500ms"] {
        std::fs::write(&cfg_path, cfg(interval)).unwrap();
        let (status, body) = d.request("POST", "/-/reload");
        assert_eq!(status, 200, "{body}");
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let n = written.load(Ordering::Relaxed) as f64;
    let skipped = |text: &str| {
        exposition::sum(
            text,
            "aws_transfer_exporter_legacy_duplicates_skipped_total",
            &[("server_id", dual.as_str())],
        )
    };
    d.wait_metrics(
        "every failure counted",
        "errors_total",
        Duration::from_secs(30),
        |t| errors(t) >= n && skipped(t) >= n,
    );
    std::thread::sleep(Duration::from_secs(2));
    let text = d.metrics();
    assert_eq!(
        (errors(&text), skipped(&text)),
        (n, n),
        "{n} failures written twice each (JSON and legacy copy)"
    );
}

/// Push only (`--poll.enabled=false`): a reload has no sources to hand
/// over; it applies the rest and the daemon stays ready.
#[test]
fn push_only_reloads_and_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, state) = (
        dir.path().join("config.yaml"),
        dir.path().join("state.json"),
    );
    let text = |cap: usize| {
        format!("limits:\n  max_users_per_server: {cap}\ninventory:\n  enabled: false\nprobe:\n  enabled: false\ntargets:\n  - region: {REGION}\n")
    };
    std::fs::write(&cfg_path, text(100)).unwrap();
    let d = Daemon::start(&[
        format!("--config.file={}", cfg_path.display()),
        format!("--state.path={}", state.display()),
        "--poll.enabled=false".into(),
        "--web.enable-lifecycle".into(),
    ]);
    wait_until("ready", Duration::from_secs(20), || {
        (d.get("/-/ready").0 == 200).then_some(())
    });
    std::fs::write(&cfg_path, text(5)).unwrap();
    let (status, body) = d.request("POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.get("/-/ready").0, 200);
    assert_eq!(d.sample(RELOAD_OK, &[]), Some(1.0));
}

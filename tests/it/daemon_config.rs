//! The config table against the real binary: every `*.bad.yaml` makes the
//! daemon exit non-zero with the expected keys on stderr; every `*.ok.yaml`
//! passes `--config.check`.

use std::time::Duration;

use crate::support::daemon::run_to_exit;
use crate::support::root;

fn fixtures(suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("tests/data/config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn expectations(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("# expect:"))
        .map(str::trim)
        .collect()
}

#[test]
fn bad_configs_exit_nonzero_naming_the_key() {
    let files = fixtures(".bad.yaml");
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Startup for real (no --config.check): the daemon must refuse to
        // run. Should it wrongly start, its state goes to a temporary
        // directory and any AWS call to a dead local port, never to AWS.
        let dir = tempfile::tempdir().unwrap();
        let (status, _out, err) = run_to_exit(
            &[
                format!("--config.file={}", f.display()),
                format!("--state.path={}", dir.path().join("s.json").display()),
            ],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
            Duration::from_secs(20),
        );
        let name = f.file_name().unwrap().to_string_lossy();
        let status = status.unwrap_or_else(|| {
            panic!("{name}: the daemon started instead of refusing the config\n{err}")
        });
        assert!(!status.success(), "{name}: exit {status}\n{err}");
        for want in expectations(&text) {
            assert!(
                err.contains(want),
                "{name}: stderr does not mention {want:?}:\n{err}"
            );
        }
    }
}

/// `--config.check` on a file: (exit status, stdout, stderr).
fn config_check(f: &std::path::Path) -> (Option<std::process::ExitStatus>, String, String) {
    run_to_exit(
        &[
            format!("--config.file={}", f.display()),
            "--config.check".into(),
        ],
        &[],
        Duration::from_secs(20),
    )
}

#[test]
fn ok_configs_pass_the_check() {
    for f in fixtures(".ok.yaml") {
        let (status, out, err) = config_check(&f);
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            status.is_some_and(|s| s.success()),
            "{name}: {status:?}\n{err}"
        );
        assert!(out.contains("configuration OK"), "{name}: {out}");
    }
}

/// `--config.check` shows the validated settings of every section, so an
/// operator sees what the file means (defaults filled in).
#[test]
fn config_check_prints_every_section() {
    let f = root().join("tests/data/config/probe-targets.ok.yaml");
    let (status, out, err) = config_check(&f);
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{err}");
    for want in [
        "targets[0]: name=t region=eu-west-1",
        "limits: max_users_per_server=500",
        "inventory: enabled=true interval=2m users=list_users add_log_groups=true skip_legacy_duplicates=false",
        "probe: enabled=true interval=30s connect_timeout=3s banner_timeout=3s public_hostnames=false targets=3",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn example_config_is_valid() {
    let f = root().join("examples/config.yaml");
    let (status, out, err) = config_check(&f);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{out}\n{err}"
    );
}

#[test]
fn taken_port_exits_nonzero_naming_the_flag() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (status, _out, err) = run_to_exit(
        &[
            format!("--web.listen-address={addr}"),
            format!("--state.path={}", dir.path().join("s.json").display()),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{err}");
    assert!(err.contains("--web.listen-address"), "{err}");
}

/// Issue 13: `--state.path` naming a directory is a configuration error
/// (exit 2) naming the key; the directory and its contents stay untouched.
#[test]
fn state_path_naming_a_directory_exits_2_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep.txt"), "not the exporter's").unwrap();
    let (status, _out, err) = run_to_exit(
        &[
            "--aws.region=eu-west-1".to_owned(),
            "--web.listen-address=127.0.0.1:0".to_owned(),
            format!("--state.path={}", state.display()),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(err.contains("--state.path (state.path)"), "{err}");
    assert!(state.is_dir(), "still a directory");
    assert_eq!(
        std::fs::read_to_string(state.join("keep.txt")).unwrap(),
        "not the exporter's"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "nothing created or moved beside it: {names:?}"
    );
}

/// Exit codes follow the documented convention: 2 for a configuration
/// error, with every problem listed.
#[test]
fn config_errors_exit_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        "webb: 1\nlog:\n  levl: x\ninventory:\n  interval: soon\nprobe:\n  targets:\n    - server_id: s-1\n      address: \"h:0\"\ntargets:\n  - region: eu-west-1\n    poll_interval: soon\n    colour: blue\n",
    )
    .unwrap();
    let (status, _out, err) = run_to_exit(
        &[format!("--config.file={}", f.display())],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    for key in [
        "webb:",
        "log.levl:",
        "inventory.interval:",
        "probe.targets[0].address:",
        "targets[0].poll_interval:",
        "targets[0].colour:",
    ] {
        assert!(err.contains(key), "{key} missing:\n{err}");
    }
    assert!(err.contains("invalid configuration (6 problems)"), "{err}");
}

//! The shipped rules, dashboards and Kubernetes PrometheusRule agree with
//! each other and with the classifier, checked without a running server
//! (promtool is the real one from Debian's `prometheus` package).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use aws_transfer_exporter::classify;

use crate::support::root;

fn yaml(path: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e}; install it with apt-get install -y prometheus"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn cause_advice_json_is_the_classifiers_vocabulary() {
    let path = root().join("grafana/cause-advice.json");
    let want: BTreeSet<(String, String, String)> = classify::vocabulary()
        .into_iter()
        .map(|c| {
            (
                c.category.to_owned(),
                c.cause.to_owned(),
                c.advice.to_owned(),
            )
        })
        .collect();
    let got: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let got: BTreeSet<(String, String, String)> = got
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap().to_owned();
            (f("category"), f("cause"), f("advice"))
        })
        .collect();
    if got != want && std::env::var_os("UPDATE_ADVICE").is_some() {
        let rows: Vec<Value> = want
            .iter()
            .map(|(c, k, a)| serde_json::json!({"category": c, "cause": k, "advice": a}))
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap() + "\n").unwrap();
        panic!(
            "rewrote {}; now run python3 grafana/generate.py and commit both",
            path.display()
        );
    }
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "grafana/cause-advice.json differs from classify::vocabulary() \
         (rerun with UPDATE_ADVICE=1, then python3 grafana/generate.py)\n not in classifier: {extra:#?}\n missing: {missing:#?}"
    );
}

#[test]
fn server_dashboard_cause_table_maps_every_server_cause_to_its_advice() {
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("grafana/dashboards/aws-transfer-server.json"))
            .unwrap(),
    )
    .unwrap();
    let table = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Causes and advice")
        .expect("the cause table panel");
    let options = &table["fieldConfig"]["overrides"][0]["properties"][0]["value"][0]["options"];
    for c in classify::vocabulary() {
        if ["connector", "as2"].contains(&c.category) {
            continue; // not on aws_transfer_errors_total
        }
        let key = format!("{}/{}", c.category, c.cause);
        assert_eq!(options[&key]["text"], c.advice, "advice for {key}");
    }
}

#[test]
fn prometheusrule_holds_exactly_the_rule_files_groups() {
    let pr = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(pr["kind"], "PrometheusRule");
    let mut want = yaml("deploy/prometheus/recording.yaml")["groups"]
        .as_sequence()
        .unwrap()
        .clone();
    want.extend(
        yaml("deploy/prometheus/alerts.yaml")["groups"]
            .as_sequence()
            .unwrap()
            .clone(),
    );
    assert_eq!(
        pr["spec"]["groups"].as_sequence().unwrap(),
        &want,
        "run deploy/kubernetes/render-prometheusrule.sh"
    );
}

#[test]
fn promtool_checks_and_unit_tests_pass_and_cover_every_alert() {
    let (ok, out) = promtool(&[
        "check",
        "rules",
        "deploy/prometheus/recording.yaml",
        "deploy/prometheus/alerts.yaml",
    ]);
    assert!(ok, "promtool check rules:\n{out}");
    let mut tests: Vec<String> = std::fs::read_dir(root().join("deploy/prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    tests.sort();
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let (ok, out) = promtool(&args);
    assert!(ok, "promtool test rules:\n{out}");

    let alerts: Vec<String> = yaml("deploy/prometheus/alerts.yaml")["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .filter_map(|r| r.get("alert").and_then(|a| a.as_str()).map(str::to_owned))
        .collect();
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in &tests {
        let v: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(t).unwrap()).unwrap();
        for case in v["tests"].as_sequence().unwrap() {
            for c in case["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = c["alertname"].as_str().unwrap().to_owned();
                let firing = c
                    .get("exp_alerts")
                    .and_then(|a| a.as_sequence())
                    .is_some_and(|a| !a.is_empty());
                if firing {
                    fires.insert(name)
                } else {
                    quiet.insert(name)
                };
            }
        }
    }
    for a in &alerts {
        assert!(fires.contains(a), "{a}: no promtool case where it fires");
        assert!(
            quiet.contains(a),
            "{a}: no promtool case where it must not fire"
        );
    }
}

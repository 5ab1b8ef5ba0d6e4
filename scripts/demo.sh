#!/usr/bin/env bash
# See the exporter work without an AWS account:
#   scripts/demo.sh          # run the demo, print the cause table, clean up
#   scripts/demo.sh --keep   # ... and keep the exporter and its landing page
#                            #     up until Ctrl-C
#
# Installs only what it needs (moto in .venv-test, a debug build of the
# exporter), starts moto's CloudWatch Logs API on 127.0.0.1, writes the seed
# scenarios in the stream layouts Transfer Family really uses, runs the
# exporter against it, and ends with the per-cause table: what failed, where,
# and what to do. Fake credentials only; nothing leaves this machine.
#
# Output has no colour codes unless stdout is a terminal (and NO_COLOR is
# unset). DEMO_EXPORTER_BIN=path uses that binary instead of building one
# (the integration test does, as it runs inside cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1

# Fake credentials, a Region, and no instance-metadata probing.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    BOLD=$'\033[1m' RESET=$'\033[0m'
else
    BOLD="" RESET=""
fi
say() { printf '%sdemo:%s %s\n' "$BOLD" "$RESET" "$*"; }

# moto's server in a project-local venv: the only thing the demo installs
# (with Debian's python3-venv first when `python3 -m venv` cannot work, as on
# stock Debian, which ships ensurepip separately).
VENV=$ROOT/.venv-test
# shellcheck source=scripts/lib/moto-venv.sh
. "$ROOT/scripts/lib/moto-venv.sh"
moto_venv_ready "$VENV" || install_moto_venv "$VENV"
if [[ -n "${DEMO_EXPORTER_BIN:-}" ]]; then
    BIN=$DEMO_EXPORTER_BIN
else
    say "building the exporter (cargo build)"
    cargo build --quiet --bin aws-transfer-exporter
    BIN=$ROOT/target/debug/aws-transfer-exporter
fi
PY=$VENV/bin/python

WORK=$(mktemp -d -t transfer-demo.XXXXXX)
MOTO_PID="" EXPORTER_PID=""
cleanup() {
    [[ -n "$EXPORTER_PID" ]] && kill "$EXPORTER_PID" 2>/dev/null && wait "$EXPORTER_PID" 2>/dev/null || true
    [[ -n "$MOTO_PID" ]] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
EXPORTER_PORT=$(free_port)
MOTO_URL=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL=$MOTO_URL   # every SDK call (boto3 and the exporter) goes to moto

say "starting moto on $MOTO_URL"
"$ROOT/.venv-test/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
"$PY" - "$MOTO_URL" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1); sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not start")
PY

say "writing the seed scenarios (payloads from the observed events, reference §2.3)"
"$PY" - "$MOTO_URL" <<'PY'
import sys, time, boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name="eu-west-1",
                    aws_access_key_id="test", aws_secret_access_key="test")
SERVER = "s-0123456789abcdef0"      # structured logging, shared group
LEGACY = "s-0fedcba9876543210"      # logging role: /aws/transfer/<server-id>
ARN = f"arn:aws:transfer:eu-west-1:111122223333:server/{SERVER}"
structured = "/aws/transfer/structured-demo"
legacy = f"/aws/transfer/{LEGACY}"
now = int(time.time() * 1000) - 60_000
def put(group, stream, messages):
    try: logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException: pass
    try: logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException: pass
    events = [{"timestamp": now + i, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

# A normal session: CONNECTED, OPEN, CLOSE, DISCONNECTED (stream <server-id>/<user>).
put(structured, f"{SERVER}/jdoe", [
    '{"role":"arn:aws:iam::111122223333:role/sftp-jdoe","activity-type":"CONNECTED","ssh-public-key-fingerprint":"SHA256:YfIUQ9Rs7zYpcx1rRUIFmUC7EGxZV4ga1K3Ra3UQ7Mw","home-dir":"/example-bucket/jdoe","ssh-public-key-type":"ssh-rsa","macs":"hmac-sha2-512-etm@openssh.com,hmac-sha2-512-etm@openssh.com","ciphers":"aes256-gcm@openssh.com,aes256-gcm@openssh.com","client":"SSH-2.0-OpenSSH_9.6","source-ip":"198.51.100.7","resource-arn":"%s","user":"jdoe","kex":"curve25519-sha256","session-id":"26315c40e111fcf04b00"}' % ARN,
    '{"mode":"CREATE|TRUNCATE|WRITE","path":"/example-bucket/jdoe/in/a.csv","activity-type":"OPEN","resource-arn":"%s","session-id":"26315c40e111fcf04b00"}' % ARN,
    '{"path":"/example-bucket/jdoe/in/a.csv","activity-type":"CLOSE","resource-arn":"%s","bytes-in":"2048","session-id":"26315c40e111fcf04b00"}' % ARN,
    '{"activity-type":"DISCONNECTED","resource-arn":"%s","session-id":"26315c40e111fcf04b00"}' % ARN,
])
# Unknown user and key mismatch (stream ERRORS).
put(structured, "ERRORS", [
    '{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"203.0.113.50","resource-arn":"%s","message":"Authentication failure","user":"no-such-user"}' % ARN,
    '{"method":"publickey","activity-type":"AUTH_FAILURE","source-ip":"198.51.100.7","resource-arn":"%s","message":"RSA SHA256:5xnBpqyCABcNrzDPG/YfQw50ZKAtzcetXTX1MOrJslQ","user":"jdoe"}' % ARN,
])
# IAM policy, role trust, missing bucket (per-user streams; ERRORs carry no user).
put(structured, f"{SERVER}/alice", [
    '{"role":"arn:aws:iam::111122223333:role/sftp-alice","activity-type":"CONNECTED","client":"SSH-2.0-OpenSSH_9.6","source-ip":"198.51.100.8","resource-arn":"%s","user":"alice","session-id":"bd7b5b22d6092852d0d8"}' % ARN,
    '{"s3extended-request-id":"…","path":"/example-bucket/jdoe","activity-type":"ERROR","resource-arn":"%s","message":"Access denied","request-id":"…","operation":"MKDIR","session-id":"bd7b5b22d6092852d0d8"}' % ARN,
    '{"path":"/example-bucket/jdoe/new","activity-type":"ERROR","resource-arn":"%s","message":"Unable to AssumeRole for user","operation":"MKDIR","session-id":"bd7b5b22d6092852d0d8"}' % ARN,
])
put(structured, f"{SERVER}/bob", [
    '{"role":"arn:aws:iam::111122223333:role/sftp-bob","activity-type":"CONNECTED","client":"SSH-2.0-OpenSSH_9.6","source-ip":"198.51.100.9","resource-arn":"%s","user":"bob","session-id":"365df67affe36e4b123d"}' % ARN,
    '{"activity-type":"ERROR","resource-arn":"%s","message":"Error performing readdir","session-id":"365df67affe36e4b123d"}' % ARN,
])
# A legacy (logging-role) server: text lines, streams ERRORS and <user>.<session-id>.
put(legacy, "ERRORS", ['ERRORS AUTH_FAILURE Method=publickey User=no-such-user Message="The user is unrecognized" SourceIP=203.0.113.50'])
put(legacy, "carol.0a700c01575303e3", [
    "carol.0a700c01575303e3 CONNECTED SourceIP=198.51.100.7 User=carol HomeDir=/example-bucket/carol Client=SSH-2.0-OpenSSH_9.6 Role=arn:aws:iam::111122223333:role/sftp-carol",
    'carol.0a700c01575303e3 ERROR Message="Access denied" Operation=CLOSE Path=/example-bucket/carol/in/c.csv BytesIn=27',
])
print("  wrote 2 log groups:", structured, legacy)
PY

say "starting the exporter on 127.0.0.1:$EXPORTER_PORT"
"$BIN" --aws.region=eu-west-1 --aws.endpoint-url="$MOTO_URL" \
    --logs.initial-lookback=1h --poll.interval=1s \
    --web.listen-address="127.0.0.1:$EXPORTER_PORT" \
    --state.path="$WORK/state.json" 2>"$WORK/exporter.log" &
EXPORTER_PID=$!

METRICS=http://127.0.0.1:$EXPORTER_PORT/metrics
if ! "$PY" - "$METRICS" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        text = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
        n = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                if l.startswith("aws_transfer_events_total{"))
        if n >= 14: sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit("the exporter did not count the events in 60 s")
PY
then
    say "exporter log:"; tail -20 "$WORK/exporter.log"; exit 1
fi

say "what the exporter counted (from $METRICS):"
"$PY" - "$METRICS" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
keep = ("aws_transfer_errors_total", "aws_transfer_sessions_total", "aws_transfer_files_total",
        "aws_transfer_bytes_total", "aws_transfer_exporter_log_groups", "aws_transfer_exporter_events_read_total")
for line in text.splitlines():
    if line.startswith(keep):
        print("  " + line)
PY

# The per-cause table: the same events, read back from CloudWatch Logs, through
# the classify command (it runs the daemon's own pipeline), checked against the
# failures the daemon counted.
"$PY" - "$MOTO_URL" "$WORK/events.jsonl" <<'PY'
import json, sys, boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name="eu-west-1",
                    aws_access_key_id="test", aws_secret_access_key="test")
with open(sys.argv[2], "w") as out:
    for g in logs.describe_log_groups(logGroupNamePrefix="/aws/transfer/")["logGroups"]:
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=g["logGroupName"]):
            for e in page["events"]:
                e["logGroupName"] = g["logGroupName"]
                out.write(json.dumps(e) + "\n")
PY
"$BIN" classify --output prometheus "$WORK/events.jsonl" >"$WORK/classify.prom"
"$PY" - "$METRICS" "$WORK/classify.prom" <<'PY' || exit 1
import sys, urllib.request
def failures(text):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("aws_transfer_errors_total{"))
daemon = failures(urllib.request.urlopen(sys.argv[1]).read().decode())
table = failures(open(sys.argv[2]).read())
if daemon != table:
    sys.exit(f"demo: the daemon counted {daemon:g} failures but the table has {table:g}")
print(f"demo: the daemon counted {daemon:g} server failures; the table below has the same")
PY
say "failures per cause, with what to check (aws-transfer-exporter classify):"
echo
"$BIN" classify "$WORK/events.jsonl"
echo
say "why auth/unknown_user shows no user: a login name that no session has proved real is chosen"
say "by whoever connects, so it never becomes a label value (a scan would create a series per"
say "name); those failures count per server with user=\"\". Known users keep their label."

LANDING=http://127.0.0.1:$EXPORTER_PORT/
if [[ $KEEP == 1 ]]; then
    say "landing page with the advice for each failure: $LANDING"
    say "running; press Ctrl-C to stop (moto: $MOTO_URL)"
    wait "$EXPORTER_PID"
else
    say "the exporter stops now; run scripts/demo.sh --keep to keep it and its landing page up"
fi

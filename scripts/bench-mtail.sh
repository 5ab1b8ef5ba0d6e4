#!/usr/bin/env bash
# Classification throughput of the exporter against mtail, the tool an
# operator would reach for today to turn log lines into Prometheus counters
# (../shared/TESTING.md names it as the natural baseline). Both read the
# same corpus (src/corpus.rs, N events) from a file, once, on one core
# (taskset -c 0), and print Prometheus text:
#   - mtail --one_shot with benches/mtail/transfer.mtail (regexes for the
#     causes a message alone shows) over the bare messages;
#   - aws-transfer-exporter classify --output prometheus over the same events
#     as JSON Lines (it also parses the JSON Lines wrapper of each event).
#
# The machine is shared, so the two run interleaved (mtail, exporter, mtail,
# exporter, ...), each timed by /usr/bin/time, and the figure that counts is
# the ratio within each round (mtail wall / exporter wall): its range over
# the rounds is printed with the load before and after. The last lines are
# `name value unit`, one per figure, for scripts/bench-summary.sh.
#
#   scripts/bench-mtail.sh [N] [ROUNDS]     # default N = 1000000, ROUNDS = 5
#   NO_BUILD=1 scripts/bench-mtail.sh ...     # use the release binaries as built
#
# Installs mtail from Debian when absent. Local files only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ROUNDS=${2:-5}

if ! command -v mtail >/dev/null; then
  echo "bench-mtail: installing mtail from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mtail >/dev/null
fi
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --quiet --release --bin aws-transfer-exporter --example corpus_dump
fi
work=$(mktemp -d -t bench-mtail.XXXXXX)
trap 'rm -rf "$work"' EXIT
target/release/examples/corpus_dump "$N" "$work"

exporter=(taskset -c 0 target/release/aws-transfer-exporter classify --output prometheus "$work/events.jsonl")
mtail_cmd=(taskset -c 0 mtail --one_shot --one_shot_format prometheus --progs benches/mtail
  --logs "$work/messages.log" --address 127.0.0.1 --port 0 --logtostderr --v 0)

# What each one counted (a sanity check that both did the work).
"${exporter[@]}" > "$work/exporter.prom"
"${mtail_cmd[@]}" > "$work/mtail.prom" 2> "$work/mtail.err" || { cat "$work/mtail.err"; exit 1; }
sum() { awk -v m="$2" '$1 ~ "^"m"({|$)" { s += $NF } END { printf "%d", s }' "$1"; }
echo "events: $N ($(du -h "$work/events.jsonl" | cut -f1) of JSON Lines, $(du -h "$work/messages.log" | cut -f1) of bare messages)"
echo "exporter: aws_transfer_errors_total $(sum "$work/exporter.prom" aws_transfer_errors_total)," \
  "connector errors $(sum "$work/exporter.prom" aws_transfer_connector_errors_total)," \
  "unparsed $(sum "$work/exporter.prom" aws_transfer_exporter_unparsed_events_total)"
echo "mtail:    transfer_errors_total $(sum "$work/mtail.prom" transfer_errors_total)," \
  "events $(sum "$work/mtail.prom" transfer_events_total)"

echo "load before: $(uptime)"
for round in $(seq 1 "$ROUNDS"); do
  /usr/bin/time -a -o "$work/times" -f "mtail $round %e %U %S %M" \
    "${mtail_cmd[@]}" > /dev/null 2> /dev/null
  /usr/bin/time -a -o "$work/times" -f "exporter $round %e %U %S %M" \
    "${exporter[@]}" > /dev/null
done
echo "load after:  $(uptime)"

python3 - "$work/times" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, rnd, wall, user, sys_, rss = line.split()
    runs.setdefault(tool, {})[int(rnd)] = (float(wall), float(user), float(sys_), int(rss))
def rng(xs, fmt):
    return f"median {fmt.format(statistics.median(xs))} (range {fmt.format(min(xs))}-{fmt.format(max(xs))})"
print(f"{'tool':<9} {'wall s':<32} {'user s':<32} {'sys s':<32} peak RSS")
for tool in ("mtail", "exporter"):
    r = list(runs[tool].values())
    print(f"{tool:<9} {rng([x[0] for x in r], '{:.2f}'):<32} {rng([x[1] for x in r], '{:.2f}'):<32} "
          f"{rng([x[2] for x in r], '{:.2f}'):<32} {max(x[3] for x in r) // 1024} MiB")
ratios = [runs["mtail"][k][0] / runs["exporter"][k][0] for k in runs["exporter"]]
print(f"exporter vs mtail, wall, per round: {' '.join(f'{x:.2f}x' for x in ratios)}; "
      f"{rng(ratios, '{:.2f}x')}")
print()
m, e = runs["mtail"].values(), runs["exporter"].values()
print(f"mtail_wall_seconds {statistics.median(x[0] for x in m):.3f} s")
print(f"classify_wall_seconds {statistics.median(x[0] for x in e):.3f} s")
print(f"classify_peak_rss {max(x[3] for x in e) // 1024} MiB")
print(f"classify_vs_mtail_wall_ratio {statistics.median(ratios):.2f} x")
EOF

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
# Timed with hyperfine; figures go in BENCHMARKS.md.
#
#   scripts/bench-mtail.sh [N]        # default N = 100000
#
# Installs mtail and hyperfine from Debian when absent. Local files only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}

for pkg in mtail hyperfine; do
  if ! command -v "$pkg" >/dev/null; then
    echo "bench-mtail: installing $pkg from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  fi
done
cargo build --quiet --release --bin aws-transfer-exporter --example corpus_dump
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
echo "events: $N ($(du -h "$work/messages.log" | cut -f1) of messages)"
echo "exporter: aws_transfer_errors_total $(sum "$work/exporter.prom" aws_transfer_errors_total)," \
  "connector errors $(sum "$work/exporter.prom" aws_transfer_connector_errors_total)," \
  "unparsed $(sum "$work/exporter.prom" aws_transfer_exporter_unparsed_events_total)"
echo "mtail:    transfer_errors_total $(sum "$work/mtail.prom" transfer_errors_total)," \
  "events $(sum "$work/mtail.prom" transfer_events_total)"

hyperfine --warmup 1 --runs 10 --export-markdown "$work/times.md" \
  -n "mtail --one_shot" "${mtail_cmd[*]} > /dev/null 2>&1" \
  -n "aws-transfer-exporter classify" "${exporter[*]} > /dev/null"
cat "$work/times.md"

#!/usr/bin/env bash
# Every comparison in one run, one `name value unit` line per figure, so two
# runs compare at a glance (BENCHMARKS.md records the output):
#   - core:   benches/pipeline.rs (parse+attribute+classify+count) against
#             bare serde_json::Value parsing of the same messages;
#   - render: benches/render.rs (the exporter's direct encoder against the
#             prometheus crate's gather+encode and prometheus-client), the
#             render time and RSS of examples/render_rss, ingestion while
#             scraping (examples/scrape_contention) and the state-write
#             cost (examples/state_write);
#   - mtail:  scripts/bench-mtail.sh (classify against an mtail program).
# Every ratio is computed from figures of this same run: on a shared
# machine only ratios compare across runs. Progress goes to stderr, the
# figures to stdout.
#
#   scripts/bench-summary.sh      # ~25 minutes at load 10 on 2 cores, builds included
#   WARMUP=1 MEASURE=2 MTAIL_N=100000 SKIP_MTAIL=1 scripts/bench-summary.sh
#
# WARMUP/MEASURE are criterion's --warm-up-time/--measurement-time in
# seconds (defaults 1 and 3: short, the spread is reported by criterion on
# stderr); STATE_DIR is where the state-write figures write (default: a
# temporary directory under target/, i.e. the build disk).
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-1}
MEASURE=${MEASURE:-3}
MTAIL_N=${MTAIL_N:-100000}
crit=(-- --warm-up-time "$WARMUP" --measurement-time "$MEASURE")

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" 
echo "load_before $(load | tr ' ' '/') loadavg"

# Median of a criterion benchmark, in milliseconds.
median_ms() {
  local f="target/criterion/$1/new/estimates.json"
  [[ -f $f ]] || { echo "bench-summary: no $f" >&2; echo nan; return; }
  jq -r '.median.point_estimate / 1e6 * 1000 | round / 1000' "$f"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
line() { printf '%s %s %s\n' "$1" "$2" "$3"; }

# ---- core ----
echo "bench-summary: core (benches/pipeline.rs)" >&2
cargo bench --quiet --bench pipeline "${crit[@]}" >&2
core=$(median_ms pipeline/parse_attribute_classify_count)
ref=$(median_ms pipeline/serde_json_value_only)
line core_per_100k_events "$core" ms
line core_serde_json_reference_per_100k_events "$ref" ms
line core_speed_vs_serde_json "$(ratio "$ref" "$core")" x

# ---- render ----
echo "bench-summary: render (benches/render.rs)" >&2
cargo bench --quiet --bench render "${crit[@]}" >&2
for n in 10000 100000; do
  d=$(median_ms "render/${n}_direct")
  p=$(median_ms "render/${n}_prometheus_gather_encode")
  c=$(median_ms "render/${n}_prometheus_client")
  line "render_direct_${n}_series" "$d" ms
  line "render_direct_openmetrics_${n}_series" "$(median_ms "render/${n}_direct_openmetrics")" ms
  line "render_copy_only_${n}_series" "$(median_ms "render/${n}_copy_only")" ms
  line "render_prometheus_gather_encode_${n}_series" "$p" ms
  line "render_prometheus_client_${n}_series" "$c" ms
  line "render_direct_speedup_vs_prometheus_${n}_series" "$(ratio "$p" "$d")" x
  line "render_direct_speedup_vs_prometheus_client_${n}_series" "$(ratio "$c" "$d")" x
done
cargo build --quiet --release --example render_rss --example scrape_contention --example state_write >&2
for n in 10000 100000; do
  out=$(target/release/examples/render_rss "$n")
  val() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$out"; }
  line "render_rss_first_render_ms_${n}_series" "$(val render_ms)" ms
  line "render_rss_steady_render_ms_${n}_series" "$(val render_again_ms)" ms
  line "render_rss_after_render_${n}_series" "$(awk -v k="$(val rss_after_render_kib)" 'BEGIN { printf "%.1f", k / 1024 }')" MiB
  line "render_rss_peak_${n}_series" "$(awk -v k="$(val peak_kib)" 'BEGIN { printf "%.1f", k / 1024 }')" MiB
done
target/release/examples/scrape_contention 100000 4
state_dir=${STATE_DIR:-$(mktemp -d -p target bench-state.XXXXXX)}
target/release/examples/state_write "$state_dir"
[[ -n ${STATE_DIR:-} ]] || rm -rf "$state_dir"

# ---- mtail ----
if [[ -z ${SKIP_MTAIL:-} ]]; then
  echo "bench-summary: mtail (scripts/bench-mtail.sh $MTAIL_N)" >&2
  out=$(scripts/bench-mtail.sh "$MTAIL_N" | tee /dev/stderr)
  # hyperfine's markdown: | `name` | mean ± σ | min | max | relative |, in
  # the unit its header names (ms or s), the same for both rows.
  unit=$(grep -m1 '^| Command' <<<"$out" | sed -n 's/.*Mean \[\([a-zµ]*\)\].*/\1/p')
  mean() { grep "^| \`$1" <<<"$out" | awk -F'|' '{ split($3, a, " "); print a[1] }'; }
  m=$(mean mtail); e=$(mean aws-transfer-exporter)
  line "mtail_${MTAIL_N}_events" "$m" "${unit:-ms}"
  line "classify_${MTAIL_N}_events" "$e" "${unit:-ms}"
  line classify_speedup_vs_mtail "$(ratio "$m" "$e")" x
fi
echo "load_after $(load | tr ' ' '/') loadavg"

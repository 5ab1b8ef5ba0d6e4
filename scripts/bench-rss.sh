#!/usr/bin/env bash
# Render time (render_ms=, render_again_ms=) and RSS of the metrics at 10k
# and 100k series (see BENCHMARKS.md).
# Usage: scripts/bench-rss.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --example render_rss
for n in "${@:-10000 100000}"; do
    for m in $n; do ./target/release/examples/render_rss "$m"; done
done

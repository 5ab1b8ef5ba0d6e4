#!/usr/bin/env bash
# The one command that runs every test (the README's test command; CI runs it
# verbatim). Installs what the tests need first (scripts/test-env.sh: moto in
# .venv-test, Debian's prometheus and openssh-server), then:
#   1. cargo test: unit and table tests, proptests, the golden exposition, and
#      the integration tests against real moto / Prometheus / sshd / our binary;
#   2. scripts/check-deploy.sh: promtool check + test rules, dashboard and
#      PrometheusRule drift, systemd-analyze verify, Kubernetes schemas, hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-env.sh
cargo test --locked --all-targets
scripts/check-deploy.sh

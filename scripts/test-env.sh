#!/usr/bin/env bash
# Prepare what the integration tests and the demo need, idempotently:
#   - .venv-test/ with moto's server (a real CloudWatch Logs API on loopback);
#     python3-venv from the Debian archive first when `python3 -m venv` cannot
#     work (stock Debian)
#   - promtool/prometheus from the Debian archive (for `promtool check metrics`
#     and the alert-rule tests)
# Safe to run again: each step is skipped when its result is already there.
# Prints one line per step saying what it did.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv-test

say() { printf 'test-env: %s\n' "$*"; }

# shellcheck source=scripts/lib/moto-venv.sh
. scripts/lib/moto-venv.sh
if moto_venv_ready "$VENV"; then
    say "moto already installed in $VENV ($("$VENV/bin/python" -c 'import moto; print(moto.__version__)'))"
else
    install_moto_venv "$VENV"
    say "moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') installed"
fi

if [[ "${TEST_ENV_SKIP_PROMTOOL:-}" == 1 ]]; then
    say "skipping promtool (TEST_ENV_SKIP_PROMTOOL=1)"
elif command -v promtool >/dev/null 2>&1; then
    say "promtool already installed ($(command -v promtool))"
else
    if [[ $(id -u) -ne 0 ]]; then
        say "promtool missing and not root: run 'apt-get install -y prometheus' as root"
        exit 1
    fi
    say "installing prometheus (promtool) with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    say "promtool installed ($(command -v promtool))"
fi

# The endpoint-probe tests run a real OpenSSH server unprivileged-style on a
# high loopback port (tests/it/probe_*.rs); they need the sshd binary only.
# Debian's package does not start a service outside systemd.
if [[ -x /usr/sbin/sshd ]]; then
    say "sshd already installed (/usr/sbin/sshd)"
else
    if [[ $(id -u) -ne 0 ]]; then
        say "sshd missing and not root: run 'apt-get install -y openssh-server' as root"
        exit 1
    fi
    say "installing openssh-server (sshd for the probe tests) with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
    say "sshd installed (/usr/sbin/sshd)"
fi

# Sourced by scripts/test-env.sh and scripts/demo.sh (which define `say`):
# moto's server and boto3 in a project-local venv, with Debian's
# python3-venv installed first when `python3 -m venv` cannot work (stock
# Debian ships ensurepip separately).

# True when the venv at $1 already has moto's server and boto3.
moto_venv_ready() {
    [[ -x "$1/bin/moto_server" ]] && "$1/bin/python" -c 'import moto, boto3' 2>/dev/null
}

# Creates the venv at $1 if needed and installs moto[server] and boto3 in it.
install_moto_venv() {
    local venv=$1
    if [[ ! -x "$venv/bin/python" ]]; then
        if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
            if [[ $(id -u) -ne 0 ]]; then
                say "python3 cannot create a venv (no ensurepip) and not root: run 'apt-get update && apt-get install -y python3-venv' as root, then run this again"
                exit 1
            fi
            say "installing python3-venv (for python3 -m venv) with apt-get"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        say "creating $venv"
        python3 -m venv "$venv"
    fi
    say "installing moto[server] and boto3 into $venv (about a minute, once)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' boto3
}

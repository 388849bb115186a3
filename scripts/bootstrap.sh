#!/usr/bin/env bash
# Set up this project on a fresh Debian machine; safe to run again (a second run
# with nothing changed takes about a second).
#
#   bash scripts/bootstrap.sh          # runtime: system packages, .venv, requirements.txt
#   bash scripts/bootstrap.sh --dev    # also the test tools (requirements-dev.txt) and
#                                      # Chromium + ChromeDriver for browser tests
#
# Environment: PYTHON picks the interpreter for a new .venv (default: python3.11,
# else python3; 3.11 or newer is required). SKIP_APT=1 skips the system packages.
set -euo pipefail

SCRIPT_NAME=bootstrap
# step, fail, as_root
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEV=0
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bootstrap: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

# --- Python interpreter ------------------------------------------------------------

VENV="$ROOT/.venv"
VPY="$VENV/bin/python"

pick_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [ -x "$VPY" ] && "$VPY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

PY=""
if ! venv_ok; then
    PY="$(pick_python)" || fail "Python 3.11 or newer not found (set PYTHON=/path/to/python3.11)"
fi

# --- System packages -----------------------------------------------------------------

# mysqlclient compiles against MariaDB Connector/C; build-essential brings gcc, libc
# headers and make (which the Makefile needs).
need=(default-libmysqlclient-dev pkg-config build-essential)
if [ -n "$PY" ]; then
    case "$(readlink -f "$PY")" in
        /usr/bin/*)
            # Debian's own Python: headers and venv come in packages of their own. (A
            # pyenv or /usr/local Python carries both.)
            if ! "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
                need+=(python3-dev)
            fi
            if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
                need+=("python3-venv" "python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
            fi
            ;;
    esac
fi
if [ "$DEV" -eq 1 ]; then
    # The browser tests' Chromium; the multi-host tests' load balancer and namespaces;
    # the MQTT tests' brokers (each test starts its own) and mosquitto_passwd.
    need+=(chromium chromium-driver haproxy iproute2 mosquitto mosquitto-clients)
fi

missing=()
for pkg in "${need[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    step "system packages: all present"
elif [ "${SKIP_APT:-0}" = 1 ]; then
    step "system packages: missing ${missing[*]} (SKIP_APT=1: not installing)"
else
    command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get: install them by hand"
    step "system packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pip, without the machine-level notes about index folders that hold no such package.
pip_quiet() {
    "$VPY" -m pip --quiet --disable-pip-version-check "$@" 2>&1 |
        { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

# --- Virtual environment ---------------------------------------------------------------

if venv_ok; then
    step "virtualenv: .venv ($("$VPY" -V 2>&1))"
else
    if [ -e "$VENV" ]; then
        step "virtualenv: .venv is broken or too old; recreating it with $PY"
        rm -rf "$VENV"
    else
        step "virtualenv: creating .venv with $PY ($("$PY" -V 2>&1))"
    fi
    "$PY" -m venv "$VENV"
    pip_quiet install --upgrade pip
fi

# --- Requirements ------------------------------------------------------------------------

# The stamp holds a hash of the requirement files (and the interpreter), so pip runs
# only when one of them changed since the last successful install.
fingerprint() {
    { "$VPY" -V 2>&1; cat "$@"; } | sha256sum | cut -d' ' -f1
}
RUNTIME_STAMP="$VENV/.requirements.stamp"
DEV_STAMP="$VENV/.requirements-dev.stamp"
runtime_hash="$(fingerprint requirements.txt)"
dev_hash="$(fingerprint requirements.txt requirements-dev.txt)"

if [ "$DEV" -eq 1 ]; then
    req=requirements-dev.txt stamp="$DEV_STAMP" want="$dev_hash"
else
    req=requirements.txt stamp="$RUNTIME_STAMP" want="$runtime_hash"
fi

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    step "python packages: $req unchanged since the last install"
else
    # Say why: `make test` after `make demo` installs the test tools for the first
    # time, which is no change to anything.
    if [ ! -e "$RUNTIME_STAMP" ] && [ ! -e "$DEV_STAMP" ]; then
        step "python packages: installing $req (mysqlclient compiles on a first install: a minute or so)"
    elif [ ! -e "$RUNTIME_STAMP" ]; then
        step "python packages: installing $req"
    elif [ "$(cat "$RUNTIME_STAMP")" != "$runtime_hash" ]; then
        step "python packages: requirements.txt (or the interpreter) changed since the last install; installing $req"
    elif [ -e "$DEV_STAMP" ]; then
        step "python packages: requirements changed since the test tools were last installed; installing $req"
    else
        step "python packages: installing the test tools ($req) for the first time"
    fi
    pip_quiet install -r "$req"
    echo "$want" >"$stamp"
    # The dev set includes the runtime set.
    if [ "$DEV" -eq 1 ]; then echo "$runtime_hash" >"$RUNTIME_STAMP"; fi
fi

step "bootstrap done: $ROOT/.venv"

# Shell helpers shared by scripts/*.sh; source it after setting SCRIPT_NAME:
#
#   SCRIPT_NAME=demo
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A line saying what happens next.
step() { printf '==> %s\n' "$*"; }

# Say what went wrong, named after the script, and stop.
fail() {
    printf '%s: error: %s\n' "${SCRIPT_NAME:-script}" "$*" >&2
    exit 1
}

# Run a command as root: directly when root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        fail "need root to run: $* (run as root or install sudo)"
    fi
}

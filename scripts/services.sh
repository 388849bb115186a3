#!/usr/bin/env bash
# Make sure the MariaDB and Redis that DATABASE_URL and REDIS_URL name answer.
#
# For a server on this machine (127.0.0.1, localhost, ::1) that does not answer, it
# installs it from Debian's packages if it is not installed at all (mariadb-server,
# redis-server), starts it, and waits until it answers. A URL naming another host,
# or another kind of database, is left alone. Exits non-zero, saying why, when a
# server cannot be reached.
#
# Defaults, as `make test` uses them:
#   DATABASE_URL=mysql://root:@127.0.0.1:3306/test   REDIS_URL=redis://127.0.0.1:6379/15
# SERVICE_WAIT_SECONDS bounds each wait (default 60).
set -euo pipefail

SCRIPT_NAME=services
# step, fail, as_root
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATABASE_URL="${DATABASE_URL:-mysql://root:@127.0.0.1:3306/test}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
WAIT="${SERVICE_WAIT_SECONDS:-60}"

apt_install() {
    command -v apt-get >/dev/null 2>&1 || fail "$* not installed and no apt-get to install it with"
    step "installing $* from Debian's packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d may refuse to start the service here; this script starts it itself.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# parse_url URL: sets SCHEME, USERNAME, PASSWORD (percent-decoded), HOST, PORT.
parse_url() {
    local url="$1" rest userinfo
    SCHEME="${url%%://*}"
    rest="${url#*://}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    userinfo=""
    if [[ "$rest" == *@* ]]; then
        userinfo="${rest%@*}"
        rest="${rest##*@}"
    fi
    USERNAME="${userinfo%%:*}"
    PASSWORD=""
    if [[ "$userinfo" == *:* ]]; then PASSWORD="${userinfo#*:}"; fi
    PASSWORD="$(printf '%b' "${PASSWORD//%/\\x}")"
    USERNAME="$(printf '%b' "${USERNAME//%/\\x}")"
    if [[ "$rest" == \[* ]]; then # [::1]:6379
        HOST="${rest%%]*}"
        HOST="${HOST#[}"
        PORT="${rest#*]}"
        PORT="${PORT#:}"
    else
        HOST="${rest%%:*}"
        PORT=""
        if [[ "$rest" == *:* ]]; then PORT="${rest##*:}"; fi
    fi
}

is_local() {
    case "$1" in "" | 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac
}

wait_for() { # wait_for NAME COMMAND...: poll until COMMAND succeeds, at most $WAIT seconds
    local name="$1" deadline=$((SECONDS + WAIT))
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 1
    done
    step "$name is up"
}

# --- MariaDB ---------------------------------------------------------------------------

parse_url "$DATABASE_URL"
DB_SCHEME="$SCHEME" DB_USER="${USERNAME:-root}" DB_PASS="$PASSWORD" DB_HOST="${HOST:-127.0.0.1}" DB_PORT="${PORT:-3306}"
DB_NAME="${DATABASE_URL#*://*/}"
DB_NAME="${DB_NAME%%\?*}"

mysql_ping() {
    # Exit status 0 whenever the server answers, even with "Access denied".
    timeout 10 mysqladmin --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" --connect-timeout=3 ping >/dev/null 2>&1
}

case "$DB_SCHEME" in
    mysql* | mariadb*)
        if ! is_local "$DB_HOST"; then
            step "MariaDB: DATABASE_URL names $DB_HOST; not starting anything here"
        else
            installed_now=0
            if [ ! -x /usr/sbin/mariadbd ] || ! command -v mysqladmin >/dev/null 2>&1; then
                apt_install mariadb-server mariadb-client
                installed_now=1
            fi
            if mysql_ping; then
                step "MariaDB is up on $DB_HOST:$DB_PORT"
            else
                [ "$DB_PORT" = 3306 ] ||
                    fail "MariaDB does not answer on $DB_HOST:$DB_PORT, and only one on port 3306 can be started here."
                step "MariaDB does not answer on $DB_HOST:$DB_PORT; starting it"
                # /run is emptied at boot; mariadbd keeps its socket and pid file there.
                if [ ! -d /run/mysqld ]; then as_root install -d -o mysql -g mysql -m 755 /run/mysqld; fi
                as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
                wait_for "MariaDB" mysql_ping ||
                    fail "MariaDB did not answer on $DB_HOST:$DB_PORT within ${WAIT}s after starting /usr/sbin/mariadbd.
If start-stop-daemon said it was already running, that server does not listen there (see
bind-address, port and skip-networking under /etc/mysql/); otherwise see /var/log/mysql/ or
run /usr/sbin/mariadbd by hand to see why it stops."
            fi
            if [ "$installed_now" = 1 ] && [ "$DB_USER" = root ] && [ -z "$DB_PASS" ]; then
                # A new Debian install lets root in through the socket only; the suite
                # logs in over TCP as root with no password, as on the prepared machines.
                step "MariaDB: letting root log in over TCP with no password; creating database $DB_NAME"
                as_root mariadb -u root -e "
                    ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
                    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
                    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                    CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            fi
            if command -v mariadb >/dev/null 2>&1; then
                MYSQL_PWD="$DB_PASS" timeout 10 mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" \
                    --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1 ||
                    fail "MariaDB answers on $DB_HOST:$DB_PORT but refuses user '$DB_USER' with the password in DATABASE_URL."
            fi
        fi
        ;;
    *)
        step "MariaDB: DATABASE_URL is $DB_SCHEME://, not MySQL/MariaDB; nothing to start"
        ;;
esac

# --- Redis ------------------------------------------------------------------------------

parse_url "$REDIS_URL"
R_HOST="${HOST:-127.0.0.1}" R_PORT="${PORT:-6379}"

redis_ping() {
    local reply
    reply="$(timeout 10 redis-cli -h "$R_HOST" -p "$R_PORT" ping 2>&1)" || return 1
    # NOAUTH: a server with a password answers too.
    [[ "$reply" == PONG* || "$reply" == NOAUTH* ]]
}

if ! is_local "$R_HOST"; then
    step "Redis: REDIS_URL names $R_HOST; not starting anything here"
else
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server
    fi
    if redis_ping; then
        step "Redis is up on $R_HOST:$R_PORT"
    else
        [ "$R_PORT" = 6379 ] ||
            fail "Redis does not answer on $R_HOST:$R_PORT, and only one on port 6379 can be started here."
        step "Redis does not answer on $R_HOST:$R_PORT; starting it"
        for dir in /var/lib/redis /var/log/redis; do
            if [ ! -d "$dir" ]; then as_root install -d "$dir"; fi
        done
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for "Redis" redis_ping ||
            fail "Redis did not answer on $R_HOST:$R_PORT within ${WAIT}s; see /var/log/redis/ci.log."
    fi
fi

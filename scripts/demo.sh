#!/usr/bin/env bash
# The newcomer's one command (`make demo`): set up, migrate, start the server on the
# embedded defaults (SQLite file, in-memory channel layer, media/ on disk) and feed it
# from a simulated camera, a simulated car park (the site "Car park", /sites/) and a
# simulated road (the route "Road north"); the webhook worker, the journey engine and the
# visit engine run beside the server. Ctrl-C stops them all.
#
#   PORT=8001 make demo      # another port (default 8000)
set -euo pipefail

SCRIPT_NAME=demo
# step, fail, as_root
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${PORT:-8000}"
WAIT_SECONDS="${DEMO_WAIT_SECONDS:-30}"
BASE="http://127.0.0.1:$PORT"
VPY="$ROOT/.venv/bin/python"
LOG="$ROOT/var/demo-server.log"
WEBHOOKS_LOG="$ROOT/var/demo-webhooks.log"
JOURNEYS_LOG="$ROOT/var/demo-journeys.log"
VISITS_LOG="$ROOT/var/demo-visits.log"
SITE_LOG="$ROOT/var/demo-site.log"
ROAD_LOG="$ROOT/var/demo-road.log"


bash scripts/bootstrap.sh

port_taken() {
    "$VPY" -c 'import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$PORT"
}
healthy() {
    "$VPY" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()' "$BASE/healthz" >/dev/null 2>&1
}

if port_taken; then
    fail "something already listens on 127.0.0.1:$PORT; pick another port: PORT=8001 make demo"
fi

# The demo runs on the embedded defaults, whatever this shell has set for production.
unset DATABASE_URL REDIS_URL

step "migrating the SQLite database (db.sqlite3)"
"$VPY" manage.py migrate --noinput

# The admin login, a viewer token and a new device key (manage.py demo_setup).
setup_out="$("$VPY" manage.py demo_setup)"
printf '%s\n' "$setup_out" | grep -v -e '^DEVICE_KEY=' -e '^VIEWER_TOKEN=' || true
DEVICE_KEY="$(printf '%s\n' "$setup_out" | sed -n 's/^DEVICE_KEY=//p')"
VIEWER_TOKEN="$(printf '%s\n' "$setup_out" | sed -n 's/^VIEWER_TOKEN=//p')"

SERVER_PID=""
WEBHOOKS_PID=""
JOURNEYS_PID=""
VISITS_PID=""
SITE_PID=""
ROAD_PID=""
# stop_process NAME PID: SIGTERM, up to 10 s to finish, then SIGKILL.
stop_process() {
    local name=$1 pid=$2
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        step "stopping the $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_process "road simulator" "$ROAD_PID"
    stop_process "site simulator" "$SITE_PID"
    stop_process "visit engine" "$VISITS_PID"
    stop_process "journey engine" "$JOURNEYS_PID"
    stop_process "webhook worker" "$WEBHOOKS_PID"
    stop_process server "$SERVER_PID"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$(dirname "$LOG")"
step "starting daphne on $BASE (log: ${LOG#"$ROOT"/})"
"$ROOT/.venv/bin/daphne" -b 127.0.0.1 -p "$PORT" vehicle_monitor.asgi:application >"$LOG" 2>&1 &
SERVER_PID=$!

# The webhook worker beside it: endpoints registered in the admin or the API get
# their events (docs/alerts.md).
step "starting the webhook worker (log: ${WEBHOOKS_LOG#"$ROOT"/})"
"$VPY" manage.py deliver_webhooks >"$WEBHOOKS_LOG" 2>&1 &
WEBHOOKS_PID=$!

# The journey engine: routes defined in the admin or the API get their journeys
# (docs/journeys.md).
step "starting the journey engine (log: ${JOURNEYS_LOG#"$ROOT"/})"
"$VPY" manage.py follow_journeys >"$JOURNEYS_LOG" 2>&1 &
JOURNEYS_PID=$!

# The visit engine: turns the car park's reads into visits and occupancy (docs/sites.md).
# On the in-memory layer its events reach the server's sockets with the next read.
step "starting the visit engine (log: ${VISITS_LOG#"$ROOT"/})"
"$VPY" manage.py follow_visits >"$VISITS_LOG" 2>&1 &
VISITS_PID=$!

deadline=$((SECONDS + WAIT_SECONDS))
until healthy; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 30 "$LOG" >&2 || true
        SERVER_PID=""
        fail "the server stopped before it answered $BASE/healthz (log above)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 30 "$LOG" >&2 || true
        fail "the server did not answer $BASE/healthz within ${WAIT_SECONDS}s (log above)"
    fi
    sleep 0.5
done

if "$VPY" -c 'import websockets' 2>/dev/null; then
    watch="$VPY -m websockets 'ws://127.0.0.1:$PORT/ws?token=$VIEWER_TOKEN'"
else
    ws_pin="$(grep -i '^websockets==' requirements-dev.txt 2>/dev/null || echo websockets)"
    watch=".venv/bin/pip install -q $ws_pin && .venv/bin/python -m websockets 'ws://127.0.0.1:$PORT/ws?token=$VIEWER_TOKEN'"
fi

cat <<EOF

  The server is up. Log in once as admin / admin, then everything below opens in the browser:
    dashboard   $BASE/
    sites       $BASE/sites/   (the car park filling and emptying)
    routes      $BASE/routes/  (the road's travel times and journeys, and where vehicles go)
    admin       $BASE/admin/
    counts      $BASE/api/stats
    detections  $BASE/api/detections/
    API docs    $BASE/api/docs/
  From a script or an app, use admin's viewer token:
    curl -H 'Authorization: Token $VIEWER_TOKEN' $BASE/api/stats
  Watch the live socket from another terminal:
    $watch
  Logs: server ${LOG#"$ROOT"/}, webhook worker ${WEBHOOKS_LOG#"$ROOT"/}, journey engine ${JOURNEYS_LOG#"$ROOT"/},
  visit engine ${VISITS_LOG#"$ROOT"/}

  A simulated camera now posts one detection a second, and a simulated car park (gate-in,
  gate-out; log: ${SITE_LOG#"$ROOT"/}) a car every few seconds, and a simulated road (road-1 to
  road-3; log: ${ROAD_LOG#"$ROOT"/}) one every few seconds. Ctrl-C stops everything.

EOF

# Stays of about a minute in a car park of 25 (demo_setup): it fills within the first
# minutes, and some stays pass its 3-minute limit.
"$VPY" manage.py simulate_camera --site --url "$BASE" --rate 0.4 --stay 60 --capacity 25 \
    --token "$DEVICE_KEY" --spool var/spool-site >"$SITE_LOG" 2>&1 &
SITE_PID=$!

# A road of three cameras 500 m apart (demo_setup's route "Road north" runs from the first
# to the last): a journey takes about a minute at 60 km/h.
"$VPY" manage.py simulate_camera --corridor --url "$BASE" --rate 0.3 --speed 60 --spacing 500 \
    --camera road-1 --camera road-2 --camera road-3 \
    --token "$DEVICE_KEY" --spool var/spool-road >"$ROAD_LOG" 2>&1 &
ROAD_PID=$!

"$VPY" manage.py simulate_camera --url "$BASE" --rate 1 --token "$DEVICE_KEY" --spool var/spool

#!/usr/bin/env bash
# The whole suite, on the real MariaDB and Redis: what `make test` and CI run.
#
#   bash scripts/test.sh [pytest arguments...]
#
# Each of these may be set from the environment:
#   DATABASE_URL         default mysql://root:@127.0.0.1:3306/test
#   REDIS_URL            default redis://127.0.0.1:6379/15
#   VM_REQUIRE_SERVICES  default 1: the suite refuses to run on SQLite or the in-memory layer
#   DATABASE_TEST_NAME   the database the suite creates (default Django's test_<name>);
#                        set it so that runs side by side on one server do not collide
#   CHANNEL_LAYER_PREFIX default vm-test-<pid>: a Redis key prefix of this run's own
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh --dev

export DATABASE_URL="${DATABASE_URL:-mysql://root:@127.0.0.1:3306/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
export VM_REQUIRE_SERVICES="${VM_REQUIRE_SERVICES:-1}"
export CHANNEL_LAYER_PREFIX="${CHANNEL_LAYER_PREFIX:-vm-test-$$}"
if [ -n "${DATABASE_TEST_NAME:-}" ]; then export DATABASE_TEST_NAME; fi

# Lint and format first: a lint error fails the run before any test does.
printf '==> ruff (pyproject.toml)\n'
"$ROOT/.venv/bin/ruff" check .
"$ROOT/.venv/bin/ruff" format --check .

bash scripts/services.sh

shown_db="$DATABASE_URL"
if [[ "$shown_db" == *@* ]]; then shown_db="${shown_db%%://*}://${shown_db##*@}"; fi # no password in logs
printf '==> pytest on %s and %s%s\n' "$shown_db" "$REDIS_URL" "${DATABASE_TEST_NAME:+ (test database $DATABASE_TEST_NAME)}"
# exec: pytest's exit status is this script's.
exec "$ROOT/.venv/bin/python" -m pytest "$@"

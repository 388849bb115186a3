"""The data the server under test runs on: the database `vm_bench` on MariaDB
(recreated, migrated, bulk-loaded), Redis db 9, the server's environment, and the
run's cameras and credentials (made by bench_setup.py)."""

import json
import os
import subprocess
import time
from pathlib import Path

from bench_processes import BENCH, PYTHON, ROOT, STARTED, say, start_process

DB_NAME = "vm_bench"
DB_URL = f"mysql://root:@127.0.0.1:3306/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/9"
CAMERAS = ["gate-1", "gate-2", "gate-3", "gate-4"]


def mysql(sql: str, database: str | None = None, *, fetch=False):
    import MySQLdb

    connection = MySQLdb.connect(
        host="127.0.0.1", port=3306, user="root", passwd="", db=database or "", charset="utf8mb4"
    )
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall() if fetch else None
        connection.commit()
        return rows
    finally:
        connection.close()


def bench_env(media_root: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vehicle_monitor.settings",
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "CHANNEL_LAYER_PREFIX": "vm_bench",
        "MEDIA_ROOT": str(media_root),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # Plain HTTP on loopback: no redirect to https (production sits behind a TLS proxy).
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        # The per-device limit (default 50/s) is lifted: the benchmark measures capacity.
        # The throttle still runs, and costs its cache round trips, on every request.
        "DEVICE_RATE_LIMIT": "100000000/s",
        # The hooks rows' receiver is on loopback, which the delivery worker refuses otherwise.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PYTHONUNBUFFERED": "1",
    }


def manage(env, *args, log_path):
    process = start_process([PYTHON, "manage.py", *args], env=env, log_path=log_path)
    code = process.wait()
    STARTED.remove(process)
    if code != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({code}); see {log_path}")


def recreate_database(env, log_path):
    assert DB_NAME == "vm_bench"  # never any other database
    mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    mysql(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    manage(env, "migrate", "--noinput", "-v", "0", log_path=log_path)


# 20 slots of vehicle types, weighted like the simulator's traffic mix.
TYPE_SLOTS = ["car"] * 12 + ["van"] * 2 + ["truck"] * 2 + ["motorcycle"] * 2 + ["bus", "bicycle"]


def bulk_load(rows: int, env, log_path) -> float:
    """Insert `rows` detections straight into the table (INSERT ... SELECT from a
    sequence), spread over the past year, then rebuild the counters."""
    started = time.monotonic()
    for name in CAMERAS:
        mysql(
            f"INSERT IGNORE INTO detections_camera (name, description, created_at) VALUES ('{name}', '', NOW(6))",
            DB_NAME,
        )
    ids = [r[0] for r in mysql("SELECT id FROM detections_camera ORDER BY name", DB_NAME, fetch=True)]
    camera_sql = "ELT(1 + s.seq % {n}, {ids})".format(n=len(ids), ids=", ".join(map(str, ids)))
    type_sql = "ELT(1 + (s.seq * 7919) % 20, {})".format(", ".join(f"'{t}'" for t in TYPE_SLOTS))
    year_us = 365 * 24 * 3600 * 10**6
    chunk = 100_000
    for first in range(1, rows + 1, chunk):
        last = min(rows, first + chunk - 1)
        # plate_normalized is detections.alerts.plates.normalize(plate): the B folds to 8.
        mysql(
            f"""
            INSERT INTO detections_detection
              (camera_id, tracking_id, vehicle_type, detected_at, received_at, image, thumbnail, confidence, bbox, plate,
               plate_normalized)
            SELECT {camera_sql}, CONCAT('bulk-', s.seq), {type_sql},
                   NOW(6) - INTERVAL (60000000 + s.seq * {year_us // max(rows, 1)}) MICROSECOND,
                   NOW(6) - INTERVAL (60000000 + s.seq * {year_us // max(rows, 1)}) MICROSECOND,
                   '', '', 0.5 + (s.seq % 50) / 100, '[10, 20, 200, 100]',
                   CONCAT(LPAD(1 + s.seq % 81, 2, '0'), 'BLK', LPAD(s.seq % 1000, 3, '0')),
                   CONCAT(LPAD(1 + s.seq % 81, 2, '0'), '8LK', LPAD(s.seq % 1000, 3, '0'))
            FROM seq_{first}_to_{last} s
            """,
            DB_NAME,
        )
    manage(env, "shell", "-c", "from detections.core import counters; counters.rebuild()", log_path=log_path)
    mysql("ANALYZE TABLE detections_detection", DB_NAME)
    return time.monotonic() - started


def make_credentials(env, auth_path: Path):
    """Cameras, one device key each (and one for batches), a viewer token, written to `auth_path`."""
    out = subprocess.run(
        [PYTHON, str(BENCH / "bench_setup.py"), *CAMERAS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench_setup.py failed:\n{out.stderr[-3000:]}")
    auth_path.write_text(out.stdout.strip().splitlines()[-1])
    auth = json.loads(auth_path.read_text())
    say(f"credentials: {len(auth['device_keys'])} device keys, viewer token {'yes' if auth['viewer_token'] else 'no'}")


def fresh_django_connection():
    """For the ORM in this process (set up by load.make_pools): vm_bench is dropped
    and made again between phases, and MariaDB may be restarted by others, so a
    connection kept from before may point at nothing."""
    from django.db import connections

    connections.close_all()


def flush_redis_db9():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def redis_version() -> str:
    import redis

    return redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]


def wait_for_services():
    """MariaDB and Redis answering (others' outage tests stop them), for up to 300 s."""
    deadline = time.monotonic() + 300
    while True:
        try:
            mysql("SELECT 1")
            import redis

            redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"MariaDB or Redis is down: {exc}") from exc
            say(f"waiting for MariaDB/Redis ({type(exc).__name__})")
            time.sleep(3)

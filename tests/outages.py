"""What an outage drill breaks: a MariaDB and a Redis of the drill's own (own
data directory, own ports on 127.0.0.1, never the machine's MariaDB on 3306 or
Redis on 6379), and the production server process running on them.

`running_drill()` starts all three, migrated and with a device key, viewer and staff
member of its own (tests/mariadb_processes.py), and stops them and removes
their folder when the block ends, however it ends. A test stops and starts
`drill.database` and `drill.redis`, or hangs the Redis; nothing else on the
machine notices.
"""

import contextlib
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import CAMERAS, ServerProcess
from mariadb_processes import MariaDB, prepare
from redis_processes import RedisProcess, start_data_node


@dataclass
class Drill:
    database: MariaDB
    redis: RedisProcess
    server: ServerProcess

    @contextlib.contextmanager
    def redis_hanging(self):
        """Redis stopped in its tracks (SIGSTOP) until the block ends: connections
        are still accepted (the kernel queues them) and nothing is answered, a
        hang rather than a refusal."""
        self.redis.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.redis.process.send_signal(signal.SIGCONT)

    def count(self, table: str, where: str = "1", *args) -> int:
        """Rows of `table` (detections_detection, detections_event, ...) in the drill's database."""
        return self.database.query(f"SELECT COUNT(*) FROM {table} WHERE {where}", *args)[0][0]


@contextlib.contextmanager
def running_drill(media_root: Path) -> Iterator[Drill]:
    with tempfile.TemporaryDirectory(prefix="vm-drill-") as root, contextlib.ExitStack() as running:
        base = Path(root)
        database = MariaDB(base / "mariadb")
        running.callback(database.stop)
        database.start()
        redis = start_data_node(base / "redis")
        running.callback(redis.stop)
        environment = {"DATABASE_URL": database.url, "REDIS_URL": redis.url}
        credentials = prepare(environment, CAMERAS)
        server = running.enter_context(ServerProcess(media_root, credentials, environment))
        try:
            yield Drill(database, redis, server)
        except BaseException:
            print("--- the drill's MariaDB ---\n" + database.log())
            raise

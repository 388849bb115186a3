"""Proof that the run left the machine's own MariaDB and Redis alone.

Other people's work runs on those servers (`make test` uses the MariaDB and the
Redis on 127.0.0.1 that DATABASE_URL and REDIS_URL name); a test that breaks a
service breaks one of its own (tests/outages.py). So at the start of the run
this opens one connection to each, as a client of someone else's would hold
it, and at the end it checks that the same connection still answers as the
same client (MariaDB's CONNECTION_ID(), Redis's CLIENT ID), that Redis is the
same process (run_id) and that nobody paused its clients (CLIENT PAUSE calls
counted in its command statistics). Anything else fails the run, saying what
happened; conftest.py wires it in.
"""

import MySQLdb
import redis

PAUSE_STATISTIC = "client|pause"


class MariaDBWatch:
    def __init__(self, host: str, port: int, user: str, password: str):
        self.where = f"MariaDB on {host}:{port}"
        self.connection = MySQLdb.connect(host=host, port=port, user=user, password=password, connect_timeout=5)
        # An idle session outlives any run: only a server that went away ends it.
        self._query("SET SESSION wait_timeout = 604800")
        self.connection_id = self._query("SELECT CONNECTION_ID()")

    def _query(self, sql: str):
        cursor = self.connection.cursor()
        cursor.execute(sql)
        row = cursor.fetchone()
        return row[0] if row else None

    def disturbances(self) -> list[str]:
        try:
            connection_id = self._query("SELECT CONNECTION_ID()")
        except MySQLdb.Error as error:
            return [f"{self.where}: a connection held since the start of the run was lost ({error})"]
        if connection_id != self.connection_id:
            return [f"{self.where}: the connection held since the start is another session now ({connection_id})"]
        return []

    def close(self):
        self.connection.close()


class RedisWatch:
    def __init__(self, url: str):
        kwargs = redis.ConnectionPool.from_url(url).connection_kwargs
        self.where = f"Redis on {kwargs.get('host')}:{kwargs.get('port')}"
        # One connection, not a pool: a pool would reconnect without a word.
        self.connection = redis.Connection(**{**kwargs, "socket_timeout": 10, "socket_connect_timeout": 5})
        self.connection.connect()
        self.client_id = self._command("CLIENT", "ID")
        self.run_id = self._info("server")["run_id"]
        self.pauses = self._pause_calls()

    def _command(self, *args):
        self.connection.send_command(*args)
        return self.connection.read_response()

    def _info(self, section: str) -> dict[str, str]:
        text = self._command("INFO", section)
        text = text.decode() if isinstance(text, bytes) else text
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))

    def _pause_calls(self) -> int:
        statistic = self._info("commandstats").get(f"cmdstat_{PAUSE_STATISTIC}", "calls=0")
        return int(dict(part.split("=", 1) for part in statistic.split(","))["calls"])

    def disturbances(self) -> list[str]:
        try:
            client_id = self._command("CLIENT", "ID")
            run_id = self._info("server")["run_id"]
            pauses = self._pause_calls()
        except redis.RedisError as error:
            return [f"{self.where}: a connection held since the start of the run was lost ({error!r})"]
        found = []
        if run_id != self.run_id:
            found.append(f"{self.where}: it was restarted (run_id {self.run_id} is now {run_id})")
        if client_id != self.client_id:
            found.append(f"{self.where}: the connection held since the start is another client now ({client_id})")
        if pauses > self.pauses:
            found.append(f"{self.where}: CLIENT PAUSE froze every client of it {pauses - self.pauses} time(s)")
        return found

    def close(self):
        self.connection.disconnect()


def watches_for(settings) -> list:
    """A watch on the MariaDB and the Redis the settings name; none for SQLite,
    the in-memory layer, or Sentinels (never the machine's lone Redis)."""
    watches = []
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.mysql":
        watches.append(
            MariaDBWatch(
                database["HOST"] or "127.0.0.1", int(database["PORT"] or 3306), database["USER"], database["PASSWORD"]
            )
        )
    if settings.REDIS_URL:
        watches.append(RedisWatch(settings.REDIS_URL))
    return watches

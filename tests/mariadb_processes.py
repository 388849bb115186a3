"""A mariadbd of a test's own: its own data directory (made by
mariadb-install-db), its own port, never the machine's MariaDB on 3306.

The multi-host harness runs one on its data host (tests/multihost.py); the
outage drills run one on 127.0.0.1 and stop and start it (tests/outages.py).
`stop()` ends the server (SIGTERM: it shuts down and closes every connection)
and `start()` brings it back on the same port and data. `prepare()` migrates
a database and makes the credentials a test's clients use, through manage.py
as an operator would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import MySQLdb
from conftest import ROOT, Credentials, free_port
from places import HERE, Place
from processes import end_process, wait_until

DATABASE_NAME = "vehicle_monitor"
DATABASE_USER = "vm"
DATABASE_PASSWORD = "vm-own-mariadb"
START_TIMEOUT = 60.0


class MariaDB:
    def __init__(self, directory: Path, place: Place = HERE, port: int | None = None):
        self.directory = directory
        self.place = place
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql://{DATABASE_USER}:{DATABASE_PASSWORD}@{self.place.host}:{self.port}/{DATABASE_NAME}"

    def start(self):
        """The first start makes the data directory; later ones reuse it."""
        data = self.directory / "data"
        if not data.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={data}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        init = self.directory / "init.sql"
        init.write_text(
            f"CREATE DATABASE IF NOT EXISTS {DATABASE_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"CREATE USER IF NOT EXISTS '{DATABASE_USER}'@'%' IDENTIFIED BY '{DATABASE_PASSWORD}';\n"
            f"GRANT ALL ON *.* TO '{DATABASE_USER}'@'%';\n"
        )
        with (self.directory / "mariadbd.out").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.place.launcher,
                    "mariadbd",
                    "--no-defaults",
                    f"--datadir={data}",
                    f"--socket={self.directory / 'mysqld.sock'}",
                    f"--pid-file={self.directory / 'mysqld.pid'}",
                    f"--log-error={self.directory / 'error.log'}",
                    f"--bind-address={self.place.host}",
                    f"--port={self.port}",
                    "--user=root",
                    f"--init-file={init}",
                    "--skip-name-resolve",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                    "--innodb-buffer-pool-size=256M",
                    "--max-connections=500",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.answers, True, f"MariaDB on {self.place.host}:{self.port}", timeout=START_TIMEOUT)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("mariadbd exited:\n" + self.log())
        try:
            self.connect().close()
        except MySQLdb.OperationalError:
            return False
        return True

    def connect(self):
        return MySQLdb.connect(
            host=self.place.host,
            port=self.port,
            user=DATABASE_USER,
            password=DATABASE_PASSWORD,
            database=DATABASE_NAME,
            connect_timeout=2,
        )

    def query(self, sql: str, *args) -> list[tuple]:
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, args)
            return list(cursor.fetchall())
        finally:
            connection.close()

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def stop(self):
        if self.process is not None:
            end_process(self.process, timeout=30)


def prepare(environment: dict[str, str], cameras: tuple[str, ...]) -> Credentials:
    """Migrate the database that `environment` names, and make `cameras`, a device
    key bound to them all, a viewer and a staff member who may delete: what a
    test's clients post and read with."""
    manage(environment, "migrate", "--noinput")
    script = PROVISION.replace("CAMERAS", repr(tuple(cameras)))
    return Credentials(**json.loads(manage(environment, "shell", "-c", script).splitlines()[-1]))


def manage(environment: dict[str, str], *arguments: str) -> str:
    """`manage.py ARGUMENTS` in a process of its own, on `environment`'s settings."""
    completed = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(arguments)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


PROVISION = """
import json
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from detections.core.device_keys import issue_device_key
from detections.models import Camera

cameras = [Camera.objects.get_or_create(name=name)[0] for name in CAMERAS]
_, device = issue_device_key(cameras=cameras, label="the test's cameras")
viewer = Token.objects.create(user=User.objects.create_user("viewer")).key
staff_user = User.objects.create_user("staff", is_staff=True)
staff_user.user_permissions.add(Permission.objects.get(codename="delete_detection"))
print(json.dumps({"device": device, "viewer": viewer, "staff": Token.objects.create(user=staff_user).key}))
"""

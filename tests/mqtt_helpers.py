"""What the MQTT tests share: a Mosquitto of the test's own (a config in a temp
folder, a free port; never the machine's broker on 1883, which keeps retained
messages for everyone), the bridge as a real process, and clients that watch
or publish.

The broker's settings and ACL are the ones docs/mqtt.md gives (its fenced
blocks marked `mosquitto.conf` and `acl`), with this test's paths and port.
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from conftest import ROOT, database_url, free_port
from django.conf import settings
from processes import end_process

MOSQUITTO = "/usr/sbin/mosquitto"
DOCS = ROOT / "docs" / "mqtt.md"
TIMEOUT = 30.0


def documented_block(marker: str) -> str:
    """The fenced block of docs/mqtt.md whose first line is the comment `# marker`."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", DOCS.read_text(), flags=re.S):
        if block.startswith(f"# {marker}\n"):
            return block
    raise AssertionError(f"docs/mqtt.md has no block starting with '# {marker}'")


def eventually(check, *, timeout: float = TIMEOUT, what: str = "the condition"):
    """Poll `check()` until it returns something true, and return that: what
    another process does sends this one nothing to await."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)
    return result


class Broker:
    """A mosquitto of the test's own, with the documented settings: persistence
    (so a graceful restart keeps sessions and retained messages) and the queue
    limit; with `accounts`, the documented password file and ACL too."""

    def __init__(self, folder: Path, *, accounts: dict[str, str] | None = None):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        self.port = free_port()
        self.log = self.folder / "mosquitto.log"
        self.config = self.folder / "mosquitto.conf"
        lines = documented_block("mosquitto.conf")
        lines = lines.replace("/var/lib/mosquitto/", f"{self.folder}/data/")
        lines = lines.replace("/etc/mosquitto/passwd", str(self.folder / "passwd"))
        lines = lines.replace("/etc/mosquitto/acl", str(self.folder / "acl"))
        if accounts is None:
            # Anonymous: drop the documented accounts, keep every other setting.
            lines = re.sub(r"(?m)^(allow_anonymous|password_file|acl_file) .*\n", "", lines)
            lines += "allow_anonymous true\n"
        else:
            (self.folder / "acl").write_text(documented_block("acl"))
            passwd = self.folder / "passwd"
            passwd.write_text("")
            for user, password in accounts.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
        lines += f"listener {self.port} 127.0.0.1\nlog_dest file {self.log}\n"
        if os.geteuid() == 0:
            lines += "user root\n"  # else it drops to `mosquitto`, who cannot write the test's folder
        self.config.write_text(lines)
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=subprocess.PIPE, text=True)
        eventually(self._answers, what=f"mosquitto on port {self.port}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.process.stderr.read()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        """Gracefully (SIGTERM): it saves its persistence file first."""
        end_process(self.process)

    def restart(self):
        self.stop()
        self.start()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A client that subscribes and keeps everything it receives, in order."""

    def __init__(self, broker: Broker, *topics: str, client_id: str = "", persistent=False, **credentials):
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
        )
        if credentials:
            self.client.username_pw_set(credentials["username"], credentials["password"])
        self.client.reconnect_delay_set(1, 1)
        self.topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if topics and not self.subscribed.wait(TIMEOUT):
            raise AssertionError("the watcher could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if self.topics:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.received.append(Received(message.topic, message.payload, bool(message.retain)))

    def messages(self, topic_filter: str | None = None) -> list[Received]:
        with self.lock:
            found = list(self.received)
        if topic_filter is None:
            return found
        return [m for m in found if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def clear(self):
        with self.lock:
            self.received.clear()

    def wait_for(self, check, what: str, timeout: float = TIMEOUT):
        return eventually(lambda: check(self.messages()), what=what, timeout=timeout)

    def publish(self, topic: str, payload, *, retain=False, qos=1):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class BridgeProcess:
    """`manage.py mqtt_bridge` in a process of its own, on the test database."""

    def __init__(self, broker: Broker, prefix: str, *, env: dict | None = None):
        self.output: list[str] = []
        self._started = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_bridge"],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url(),
                "MEDIA_ROOT": settings.MEDIA_ROOT,
                "PUBLIC_BASE_URL": "https://monitor.example",
                "MQTT_URL": broker.url,
                "MQTT_TOPIC_PREFIX": prefix,
                "MQTT_DISCOVERY_PREFIX": f"{prefix}-ha",
                "MQTT_CLIENT_ID": f"{prefix}-bridge",
                "MQTT_POLL_SECONDS": "0.1",
                "MQTT_RECONNECT_MAX_SECONDS": "1",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._started.wait(timeout=TIMEOUT) or self.process.poll() is not None:
            self.kill()
            raise RuntimeError("the bridge did not start:\n" + self.text())

    def _read_output(self):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("Bridging to"):
                self._started.set()
        self._started.set()

    def text(self) -> str:
        return "".join(self.output)

    def terminate(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=TIMEOUT)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.kill()
        print("--- bridge output ---\n" + self.text())  # shown when the test fails

"""The benchmark's viewers (benchmarks/loadgen.py listen) keep the reconnect
policy of docs/websocket.md: when the server closes their sockets they resume
from the last seq they saw, so what they count as missing is what the server
truly lost, and they say why each connection ended."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ServerProcess, detection_body

LOADGEN = Path(__file__).resolve().parent.parent / "benchmarks" / "loadgen.py"


class Viewers:
    """loadgen.py listen, spoken to in JSON lines as the benchmark does."""

    def __init__(self, server: ServerProcess, sockets: int, out: Path, client: str):
        auth = out.with_suffix(".auth.json")
        auth.write_text(json.dumps({"device_keys": {}, "viewer_token": server.credentials.viewer}))
        self.process = subprocess.Popen(
            [sys.executable, str(LOADGEN), "listen", "--url", server.ws_url, "--sockets", str(sockets)]
            + ["--prefix", "viewers-", "--out", str(out), "--auth", str(auth), "--no-deflate", "--client", client],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self.arrived:
                self.lines.append(json.loads(line))
                self.arrived.notify_all()

    def wait_for(self, key: str, timeout: float = 60) -> dict:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(key in line for line in self.lines), timeout), self.lines
            return next(line for line in self.lines if key in line)

    def send(self, command: dict):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def stop(self):
        if self.process.poll() is None:
            self.send({"quit": True})
            self.process.wait(timeout=10)


def post(server: ServerProcess, count: int, first: int):
    with server.device() as device:
        for n in range(first, first + count):
            response = device.post("/api/detect", json=detection_body(id=f"viewers-{n}-0", vehicle_img=...))
            assert response.status_code == 201, response.text


@pytest.fixture
def port_server(transactional_db, _media_root, credentials):
    """A server that a test can stop and start again on the same address."""
    servers = [ServerProcess(_media_root, credentials)]

    def restart() -> ServerProcess:
        servers[-1].stop()
        servers.append(ServerProcess(_media_root, credentials, port=servers[-1].port))
        return servers[-1]

    yield servers[0], restart
    servers[-1].stop()


@pytest.mark.parametrize("client", ["aiohttp", "websockets"])
def test_viewers_resume_after_the_server_closed_their_sockets_and_miss_nothing(port_server, tmp_path, client):
    server, restart = port_server
    viewers = Viewers(server, sockets=3, out=tmp_path / "latencies.bin", client=client)
    try:
        assert viewers.wait_for("ready")["connected"] == 3
        with server.http(server.credentials.viewer) as viewer:
            head = viewer.get("/api/stats").json()["seq"]
        # As the benchmark does: the head to resume from for a socket that has seen no event yet.
        viewers.send({"prefix": "viewers-", "seq": head})
        viewers.wait_for("armed")
        post(server, 5, first=0)
        # The server goes away with every socket, and comes back on the same address.
        server = restart()
        post(server, 5, first=5)
        viewers.send({"expected": 10, "drain": 30})
        done = viewers.wait_for("done")
    finally:
        viewers.stop()
    assert done["missing"] == 0 and done["duplicates"] == 0, done
    assert done["sockets_complete"] == 3 and done["caught_up_seconds"] is not None, done
    # Each socket was closed once, by the server's shutdown (1012), and said so.
    assert done["closed"] == 3 and set(done["closes"]) == {"closed 1012"}, done["closes"]
    assert done["not_connected"] == 0

"""`manage.py simulate_camera` plays an edge unit against a running server."""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, database_url
from django.core.management import CommandError, call_command
from PIL import Image

from detections.models import Detection, VehicleType


def simulate(url: str, *extra: str, seed: int = 1) -> str:
    out = io.StringIO()
    call_command("simulate_camera", "--url", url, "--rate", "20", "--seed", str(seed), *extra, stdout=out)
    return out.getvalue()


def closed_port_url(closed_port: socket.socket) -> str:
    closed_port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    return f"http://127.0.0.1:{closed_port.getsockname()[1]}"


def test_the_simulated_camera_stores_detections_with_plausible_types_and_640x480_jpeg_snapshots(server):
    output = simulate(server.base_url, "--count", "3", "--token", server.credentials.device)

    assert "Sent 3, stored 3, failed 0" in output
    detections = list(Detection.objects.select_related("camera"))
    assert len(detections) == 3
    for detection in detections:
        assert detection.vehicle_type in VehicleType.values
        assert detection.camera.name == "gate-1"
        assert re.fullmatch(r"sim-[0-9a-f]{6}-00000[123]", detection.tracking_id)
        assert re.fullmatch(r"(\d{2}[A-Z]{3}\d{3})?", detection.plate)
        with Image.open(detection.image.path) as snapshot:
            assert (snapshot.format, snapshot.size) == ("JPEG", (640, 480))
        with Image.open(detection.thumbnail.path) as thumbnail:
            assert thumbnail.format == "JPEG"


def test_the_simulated_camera_fails_saying_nothing_was_stored_when_no_server_listens():
    with socket.socket() as closed_port:
        with pytest.raises(CommandError, match="no detection was stored"):
            simulate(closed_port_url(closed_port), "--count", "2", "--timeout", "2")


def test_the_simulated_camera_spools_while_the_server_is_down_and_delivers_everything_once_after(server, tmp_path):
    spool = tmp_path / "spool"
    key = server.credentials.device
    with socket.socket() as closed_port:
        output = simulate(closed_port_url(closed_port), "--count", "4", "--spool", str(spool), "--token", key)
    assert "waiting in the spool 4" in output
    assert Detection.objects.count() == 0

    # The server is reachable again: the spool goes first (batch ingest), then new ones.
    output = simulate(server.base_url, "--count", "2", "--spool", str(spool), "--token", key, seed=2)
    assert "spool: delivered 4 new, 0 already stored; 0 waiting" in output
    assert "waiting in the spool 0" in output
    assert Detection.objects.count() == 6
    assert len({d.tracking_id for d in Detection.objects.all()}) == 6

    # Nothing is delivered twice: a crash after delivery that left the spool in place.
    spooled = [line for line in (spool / "pending.jsonl").read_text().splitlines()]
    assert spooled == []
    first = Detection.objects.order_by("id").first()
    stored_before = {
        "id": first.tracking_id,
        "vehicle_type": first.vehicle_type,
        "time": first.detected_at.isoformat(),
        "camera": first.camera.name,
    }
    (spool / "pending.jsonl").write_text(json.dumps(stored_before) + "\n")
    output = simulate(server.base_url, "--flush-only", "--spool", str(spool), "--token", key)
    assert "delivered 0 new, 1 already stored" in output
    assert Detection.objects.count() == 6


def test_ctrl_c_stops_the_simulated_camera_with_a_line_saying_so_and_no_traceback(server):
    command = [sys.executable, "manage.py", "simulate_camera", "--url", server.base_url, "--rate", "20"]
    camera = subprocess.Popen(
        [*command, "--token", server.credentials.device],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in camera.stdout:  # wait for a detection to be stored, so the loop is running
            if " stored " in line:
                break
        camera.send_signal(signal.SIGINT)
        output, errors = camera.communicate(timeout=15)
    finally:
        camera.kill()

    assert camera.returncode == 0, errors
    assert "Traceback" not in errors
    assert "Stopped by Ctrl-C." in output
    sent, stored = map(int, re.search(r"Sent (\d+), stored (\d+), failed 0", output).groups())
    assert sent == stored == Detection.objects.count()

"""`manage.py simulate_camera` plays an edge unit against a running server."""

import io
import re
import socket

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from detections.models import Detection, VehicleType


def simulate(url: str, *extra: str) -> str:
    out = io.StringIO()
    call_command("simulate_camera", "--url", url, "--rate", "20", "--seed", "1", *extra, stdout=out)
    return out.getvalue()


def test_the_simulated_camera_stores_detections_with_plausible_types_and_640x480_jpeg_snapshots(server):
    output = simulate(server.base_url, "--count", "3")

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
    with socket.socket() as closed_port:  # bound, never listening: connections are refused
        closed_port.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
        with pytest.raises(CommandError, match="no detection was stored"):
            simulate(url, "--count", "2", "--timeout", "2")

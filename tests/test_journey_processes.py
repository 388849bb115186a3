"""The journey engine as it runs: `manage.py follow_journeys` in processes of
its own on the test database (two at once raise each event once), its place
in docker-compose.yml and in `make demo`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import database_url
from django.core.management import get_commands, load_command_class
from journey_helpers import bridge, journey_events, read, started

from detections.models import Journey

ROOT = Path(__file__).resolve().parent.parent


def engine_process() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "follow_journeys", "--once", "--nice", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_two_engine_processes_raise_each_journey_event_once():
    bridge()
    started()
    pairs = [(read(f"34ABC{n:03}", "bridge-s", n), read(f"34ABC{n:03}", "bridge-n", n + 60)) for n in range(0, 40, 2)]
    first, second = engine_process(), engine_process()
    for process in (first, second):
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
    expected = []
    for s, e in pairs:
        expected += [("completed", s.pk, e.pk), ("speeding", s.pk, e.pk)]  # 144 km/h
    assert journey_events() == expected
    assert Journey.objects.count() == len(pairs)


def test_the_journeys_service_runs_the_engine_command_with_the_web_services_image_and_environment():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    engine, web = services["journeys"], services["web"]
    assert engine["image"] == web["image"] and engine["environment"] == web["environment"]
    command = engine["command"]
    assert command[:3] == ["python", "manage.py", "follow_journeys"]
    load_command_class(get_commands()["follow_journeys"], "follow_journeys").create_parser(
        "manage.py", "follow_journeys"
    ).parse_args(command[3:])
    assert engine["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in engine


def test_the_demo_starts_the_engine_and_stops_it_on_exit():
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert re.search(r'"\$VPY" manage\.py follow_journeys .*&\nJOURNEYS_PID=\$!', script)
    cleanup = script[script.index("cleanup() {") :]
    assert 'stop_process "journey engine" "$JOURNEYS_PID"' in cleanup.split("\n}")[0]

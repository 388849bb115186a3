"""The webhook worker's place in the deployment files: docker-compose.yml runs
it as its own service on the web image, and `make demo` starts it beside the
server and stops it with it."""

import re
from pathlib import Path

import yaml
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent


def test_the_webhooks_service_runs_the_worker_command_with_the_web_services_image_and_environment():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    hooks, web = services["webhooks"], services["web"]

    assert hooks["image"] == web["image"] and hooks["environment"] == web["environment"]
    command = hooks["command"]
    assert command[:3] == ["python", "manage.py", "deliver_webhooks"]
    # Its options parse with the command's own parser.
    load_command_class(get_commands()["deliver_webhooks"], "deliver_webhooks").create_parser(
        "manage.py", "deliver_webhooks"
    ).parse_args(command[3:])
    assert hooks["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in hooks


def test_the_demo_starts_the_worker_and_stops_it_on_exit():
    script = (ROOT / "scripts" / "demo.sh").read_text()

    assert re.search(r'"\$VPY" manage\.py deliver_webhooks .*&\nWEBHOOKS_PID=\$!', script)
    cleanup = script[script.index("cleanup() {") :]
    assert 'stop_process "webhook worker" "$WEBHOOKS_PID"' in cleanup.split("\n}")[0]

"""The deployment files agree with the code: docker-compose.yml sets only variables
settings.py reads, runs commands that exist, and starts services in the right order;
the Dockerfile builds what compose runs; CI runs `make test`."""

import importlib
import json
import os
import re
import shlex
from pathlib import Path

import environ
import pytest
import yaml
from django.core.management import get_commands, load_command_class
from uvicorn.main import main as uvicorn_main

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "webhooks")

# What the third-party images document as their own configuration.
MYSQL_IMAGE_VARIABLES = {
    "MYSQL_ROOT_PASSWORD",
    "MYSQL_ROOT_HOST",
    "MYSQL_DATABASE",
    "MYSQL_USER",
    "MYSQL_PASSWORD",
    "MYSQL_ALLOW_EMPTY_PASSWORD",
    "MYSQL_RANDOM_ROOT_PASSWORD",
    "MYSQL_ONETIME_PASSWORD",
    "MYSQL_INITDB_SKIP_TZINFO",
    "TZ",
}


def settings_variables() -> set[str]:
    """Every name settings.py reads with env("NAME") or env.<type>("NAME")."""
    source = (ROOT / "vehicle_monitor" / "settings.py").read_text()
    return set(re.findall(r"""\benv(?:\.\w+)?\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""", source))


def interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with a stand-in for the required ones."""

    def replace(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if op in (":-", "-"):
            return os.environ.get(name) or arg
        return os.environ.get(name) or f"stand-in-{name.lower()}"

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", replace, str(value))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # - NAME=value form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: interpolate(value) for name, value in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_settings_reads_the_variables_deployment_relies_on():
    names = settings_variables()
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_SECRET_KEY",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "MEDIA_ROOT",
    } <= names


def test_the_expected_services_exist(services):
    assert set(services) == {"mysql", "redis", "migrate", "web", "webhooks"}


def test_every_service_has_an_image_or_a_build_that_exists(services):
    assert re.fullmatch(r"mysql:8\.\d+", services["mysql"]["image"])
    assert re.fullmatch(r"redis:7(\.\d+)*-alpine", services["redis"]["image"])
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file(), f"{name}: no {context}/{dockerfile}"
    # One image for all: the migration runs the code that is served and delivers webhooks.
    assert services["migrate"]["image"] == services["web"]["image"] == services["webhooks"]["image"]


def test_app_services_set_only_variables_settings_reads(services):
    known = settings_variables()
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which settings.py never reads"
        assert "env_file" not in services[name] or services[name]["env_file"] in ([], None)


def test_other_services_set_only_their_images_variables(services):
    assert set(environment(services["mysql"])) <= MYSQL_IMAGE_VARIABLES
    assert not environment(services["redis"])


def test_no_secret_is_committed(services):
    for name in APP_SERVICES:
        raw = services[name]["environment"]
        assert raw["DJANGO_DEBUG"] == "false"
        assert raw["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), "the secret key must come from outside"
    assert "${MYSQL_PASSWORD:?" in services["mysql"]["environment"]["MYSQL_PASSWORD"]
    assert "${MYSQL_PASSWORD:?" in services["web"]["environment"]["DATABASE_URL"]


def test_the_app_urls_name_the_compose_services(services):
    env = environment(services["web"])
    db = environ.Env.db_url_config(env["DATABASE_URL"])
    mysql = environment(services["mysql"])
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert db["HOST"] == "mysql" and str(db["PORT"]) == "3306"
    assert db["NAME"] == mysql["MYSQL_DATABASE"]
    assert db["USER"] == mysql["MYSQL_USER"]
    assert db["PASSWORD"] == mysql["MYSQL_PASSWORD"]
    assert re.fullmatch(r"redis://redis:6379/\d+", env["REDIS_URL"])


def test_media_root_is_the_mounted_volume(compose, services):
    media_root = environment(services["web"])["MEDIA_ROOT"]
    mounts = {}
    for volume in services["web"]["volumes"]:
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        mounts[target] = source
    assert media_root in mounts, f"MEDIA_ROOT {media_root} is not a mount of web: {mounts}"
    assert mounts[media_root] in compose["volumes"], "media should be a named volume"
    assert f"install -d -o app -g app {media_root}" in (ROOT / "Dockerfile").read_text()


def test_web_serves_the_asgi_application_that_imports_with_options_uvicorn_accepts(services):
    cmd = command(services["web"])
    assert cmd[0] == "uvicorn"
    # uvicorn's own command-line parser: an option it does not know fails here.
    options = uvicorn_main.make_context("uvicorn", cmd[1:]).params
    assert options["host"] == "0.0.0.0" and options["port"] == 8000
    assert options["ws_per_message_deflate"] is False  # see docker-compose.yml
    assert (options["loop"], options["http"], options["ws"]) == ("uvloop", "httptools", "websockets-sansio")
    module, attribute = options["app"].split(":")
    application = getattr(importlib.import_module(module), attribute)
    assert callable(application)
    assert "8000:8000" in [str(port) for port in services["web"]["ports"]]


def test_migrate_runs_a_real_manage_py_command(services):
    cmd = command(services["migrate"])
    assert cmd[:2] == ["python", "manage.py"]
    name, args = cmd[2], cmd[3:]
    assert name == "migrate"
    app = get_commands()[name]
    parser = load_command_class(app, name).create_parser("manage.py", name)
    options = parser.parse_args(args)
    assert options.interactive is False  # --noinput: nobody answers prompts there


def test_services_start_in_order(services):
    def conditions(name):
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("migrate") == {"mysql": "service_healthy"}
    web = conditions("web")
    assert web["migrate"] == "service_completed_successfully"
    assert web["redis"] == "service_healthy"
    assert web.get("mysql", "service_healthy") == "service_healthy"
    for name in services:
        for dep, condition in (conditions(name) if "depends_on" in services[name] else {}).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
    mysql_check = " ".join(services["mysql"]["healthcheck"]["test"])
    assert "mysqladmin ping" in mysql_check and "127.0.0.1" in mysql_check
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_mysql_stores_utf8mb4(services):
    cmd = " ".join(command(services["mysql"]))
    assert "--character-set-server=utf8mb4" in cmd
    assert "--collation-server=utf8mb4_" in cmd
    assert any(str(v).endswith(":/var/lib/mysql") for v in services["mysql"]["volumes"])


def test_dockerfile_builds_what_compose_runs(compose):
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.M)
    assert "default-libmysqlclient-dev" in text and "pkg-config" in text
    assert re.search(r"pip install .*-r requirements\.txt", text)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0"), "the image must not run as root"
    assert re.search(r"^EXPOSE 8000\b", text, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd and json.loads(cmd.group(1)) == command(compose["services"]["web"])
    joined = re.sub(r"\\\n\s*", " ", text)
    env_names = {name for line in re.findall(r"^ENV\s+(.*)$", joined, re.M) for name in re.findall(r"([A-Z_]+)=", line)}
    assert "MEDIA_ROOT" in env_names
    assert env_names - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= settings_variables() | {
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }


def test_dockerignore_keeps_local_state_out():
    lines = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "media", "db.sqlite3", "**/__pycache__", "test-artifacts"} <= lines


def test_ci_runs_make_test():
    run = ROOT / ".ci" / "run"
    assert os.access(run, os.X_OK), ".ci/run must be executable"
    text = run.read_text()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    code = [line.split("#")[0].strip() for line in text.splitlines()]
    assert any(re.match(r"^make test\b", line) for line in code), ".ci/run must call `make test`"


def test_make_test_runs_the_suite_on_the_real_services():
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target, "the Makefile has no test: target"
    assert "scripts/test.sh" in target.group(1)
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "scripts/bootstrap.sh --dev" in script
    assert "scripts/services.sh" in script
    assert 'DATABASE_URL="${DATABASE_URL:-mysql://root:@127.0.0.1:3306/test}"' in script
    assert 'REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"' in script
    assert 'VM_REQUIRE_SERVICES="${VM_REQUIRE_SERVICES:-1}"' in script
    assert re.search(r"^exec .*-m pytest", script, re.M), "pytest's exit status must be the script's"

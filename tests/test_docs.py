"""The project's own documentation: complete without anything outside the
repository, written for its users, and with command lines that work."""

import json
import re

from conftest import ROOT
from django.conf import settings
from drf_spectacular.generators import SchemaGenerator

from detections.ingest.body import FIELD_ALIASES, DetectionIngestSerializer
from detections.models import EventKind, WebhookEvent

# What a clone's reader is given: the front page, the docs, the benchmark's notes.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "README.md"]
# Written for the product's users (the README also speaks to developers of the project).
USER_DOCS = sorted((ROOT / "docs").rglob("*.md"))
MANAGEMENT_COMMANDS = sorted((ROOT / "detections" / "management" / "commands").glob("*.py"))

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next heading of that level)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def test_every_link_in_the_docs_leads_to_a_file_of_the_repository():
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text and "/work/" not in text, doc
        for target in MARKDOWN_LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or a place on the same page
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
            assert path.exists(), f"{doc.name} links to a file that does not exist: {target}"


def test_the_wire_contract_is_the_projects_own_and_covers_what_units_and_apps_use():
    contract = (ROOT / "docs" / "protocol.md").read_text()
    assert "[`docs/protocol.md`](docs/protocol.md)" in (ROOT / "README.md").read_text()

    ingest = section(contract, "Ingest")
    for field in [*DetectionIngestSerializer().fields, *FIELD_ALIASES]:
        assert f"`{field}`" in ingest, f"the ingest field {field} is not described"
    for extension in ("Idempotency-Key", "/api/detections/batch/", "multipart/form-data"):
        assert extension in ingest, extension
    feed = section(contract, "The live feed")
    for kind in [*EventKind.values, "ping", "pong", "subscribe", "subscribed", "resume", "reset", "error"]:
        assert f'"{kind}"' in feed or f"`{kind}`" in feed, f"the socket message {kind} is not described"
    for heading in (
        "Who may do what",
        "Errors",
        "Statistics and history",
        "Deletion",
        "Watch-lists and alerts (extension)",
        "Webhooks (extension)",
        "Sites, visits and occupancy (extension)",
    ):
        section(contract, heading)
    sites = section(contract, "Sites, visits and occupancy (extension)")
    parts = ["Direction", "Sites", "The walk", "Visits", "Occupancy", "Dwell", "Overstay", "Capacity"]
    for part in [*parts, "Corrections", "Retention", "Events"]:
        assert f"### {part}\n" in sites, part
    webhooks = [name for name in WebhookEvent.values if name.startswith(("visit.", "site.", "detection.updated"))]
    for name in ("visit", "site", "detection_updated", *webhooks):
        assert f"`{name}`" in sites or f'"{name}"' in sites, name
    # The API docs page shows the contract, then the socket in full.
    assert settings.SPECTACULAR_SETTINGS["DESCRIPTION"].startswith(contract)


def command_lines(text: str) -> list[str]:
    """The lines that run manage.py, except inside Docker, where the image's own
    python is the project's."""
    lines = text.splitlines()
    return [
        line
        for number, line in enumerate(lines)
        if "manage.py" in line
        and "docker" not in line
        and not (number and lines[number - 1].rstrip().endswith("\\") and "docker" in lines[number - 1])
    ]


def test_management_commands_are_run_with_the_virtualenvs_python_everywhere():
    readme = (ROOT / "README.md").read_text()
    once = section(readme, "Management commands")
    assert "`.venv/bin/python manage.py NAME ...`" in once and "source .venv/bin/activate" in once

    texts = {path.name: path.read_text() for path in [*DOCS, *MANAGEMENT_COMMANDS]}
    texts["README.md"] = readme.replace(once, "")  # where the exceptions are explained
    for name, text in texts.items():
        for line in command_lines(text):
            bare = re.search(r"(?<![\w/.])python3? manage\.py", line)
            assert not bare, f"{name}: `python manage.py` fails with the system Python: {line.strip()}"


def test_the_api_docs_and_the_user_docs_speak_of_the_product_only():
    helpers = [path.name for path in (ROOT / "tests").glob("*.py")]
    forbidden = ["tests/", "conftest", "pytest", "multihost", *helpers]
    schema = json.dumps(SchemaGenerator().get_schema(request=None, public=True))
    assert json.loads(schema)["info"]["description"]  # the page's own text is in it
    for name, text in [("/api/docs/", schema), *((path.name, path.read_text()) for path in USER_DOCS)]:
        found = [word for word in forbidden if word in text]
        assert not found, f"{name} mentions the project's tests: {found}"

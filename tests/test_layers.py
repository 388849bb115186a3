"""The layers of README's Layout, over the import graph: the domain and the
feed know nothing of the HTTP API, and the domain nothing of the feed."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "detections"

# (the layer, what it must not import)
RULES = [
    ("core", "api"),
    ("alerts", "api"),
    ("webhooks", "api"),
    ("feed", "api"),
    ("core", "feed"),
    ("operations", "api"),
    ("journeys", "api"),
    ("journeys", "feed"),
    ("ingest", "api"),
    ("ingest", "feed"),
    ("mqtt", "api"),
    ("mqtt", "feed"),
    ("sites", "api"),
    ("sites", "feed"),
]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against the file's package
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                found.add(".".join((*base, node.module)))
            else:
                found.add(node.module)
            if node.module == "detections":  # from detections import api
                found.update(f"detections.{alias.name}" for alias in node.names)
    return found


def crossings(layer: str, forbidden: str) -> list[str]:
    target = f"detections.{forbidden}"
    return sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in (PACKAGE / layer).rglob("*.py")
        for module in imported_modules(path)
        if module == target or module.startswith(target + ".")
    )


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[f"{a}-not-{b}" for a, b in RULES])
def test_layer_does_not_import(layer, forbidden):
    assert crossings(layer, forbidden) == []


def test_the_check_sees_an_import(tmp_path, monkeypatch):
    """The check itself can fail: a file that imports the API is reported."""
    package = tmp_path / "detections"
    (package / "core").mkdir(parents=True)
    (package / "core" / "leak.py").write_text("def f():\n    from detections.api.filters import EARLIEST\n")
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert crossings("core", "api") == ["detections/core/leak.py imports detections.api.filters"]

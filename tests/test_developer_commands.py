"""The commands a newcomer runs first: `make help`, and what scripts/bootstrap.sh
says it installs (it runs before `make demo` and `make test`)."""

import re
import shutil
import stat
import subprocess

import pytest
from conftest import ROOT

# --- make help ---------------------------------------------------------------------------------


def make_help() -> str:
    return subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_help_names_every_target_and_every_setting():
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    assert targets == set(phony), "every target is .PHONY, and every .PHONY name a target"
    settings = set(re.findall(r"\$\(([A-Z_]+)\)", makefile))
    assert {"PORT", "PYTEST_ARGS"} <= settings

    shown = make_help()

    for target in targets - {"help"}:
        assert re.search(rf"^make {target}\b", shown, re.M), f"make help does not mention `make {target}`"
    for setting in settings:
        assert f"{setting}=" in shown, f"make help does not mention {setting}="


# --- bootstrap's account of the Python packages ------------------------------------------------

FAKE_PYTHON = """#!/bin/sh
# Stands in for .venv/bin/python: a 3.11 that records what pip was asked to do.
case "$1" in
    -V) echo "Python 3.11.7" ;;
    -m) shift; echo "$*" >> "$(dirname "$0")/pip.log" ;;
esac
exit 0
"""


class Checkout:
    """scripts/bootstrap.sh and the requirement files in a folder of their own,
    with a .venv whose python is FAKE_PYTHON: the script's decisions, without
    apt or pip doing anything."""

    def __init__(self, root):
        self.root = root
        (root / "scripts").mkdir()
        for name in ("bootstrap.sh", "lib.sh"):
            shutil.copy(ROOT / "scripts" / name, root / "scripts" / name)
        for name in ("requirements.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / name, root / name)
        python = root / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(FAKE_PYTHON)
        python.chmod(python.stat().st_mode | stat.S_IXUSR)
        self.pip_log = python.parent / "pip.log"

    def bootstrap(self, *arguments: str) -> tuple[str, list[str]]:
        """The line it says about the Python packages, and what it asked pip to install."""
        self.pip_log.unlink(missing_ok=True)
        output = subprocess.run(
            ["bash", "scripts/bootstrap.sh", *arguments],
            cwd=self.root,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SKIP_APT": "1", "HOME": str(self.root)},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        [line] = [line for line in output.splitlines() if line.startswith("==> python packages:")]
        installs = [
            entry.split("install -r ")[1]
            for entry in (self.pip_log.read_text().splitlines() if self.pip_log.exists() else [])
            if "install -r " in entry
        ]
        return line.removeprefix("==> python packages: "), installs

    def edit(self, name: str):
        with (self.root / name).open("a") as requirements:
            requirements.write("# an edit\n")


@pytest.fixture
def checkout(tmp_path):
    return Checkout(tmp_path)


def test_make_test_after_make_demo_installs_the_test_tools_and_says_nothing_changed(checkout):
    said, installed = checkout.bootstrap()  # make demo, on a fresh clone
    assert said.startswith("installing requirements.txt (mysqlclient compiles on a first install")
    assert installed == ["requirements.txt"]

    said, installed = checkout.bootstrap("--dev")  # then make test
    assert said == "installing the test tools (requirements-dev.txt) for the first time"
    assert installed == ["requirements-dev.txt"]

    assert checkout.bootstrap("--dev") == ("requirements-dev.txt unchanged since the last install", [])
    assert checkout.bootstrap() == ("requirements.txt unchanged since the last install", [])


def test_a_changed_requirement_file_is_named_and_installed(checkout):
    checkout.bootstrap("--dev")

    checkout.edit("requirements-dev.txt")
    assert checkout.bootstrap() == ("requirements.txt unchanged since the last install", [])
    said, installed = checkout.bootstrap("--dev")
    assert said == "requirements changed since the test tools were last installed; installing requirements-dev.txt"
    assert installed == ["requirements-dev.txt"]

    checkout.edit("requirements.txt")
    said, installed = checkout.bootstrap()
    assert said == "requirements.txt (or the interpreter) changed since the last install; installing requirements.txt"
    assert installed == ["requirements.txt"]
    said, installed = checkout.bootstrap("--dev")
    assert said == "requirements changed since the test tools were last installed; installing requirements-dev.txt"
    assert installed == ["requirements-dev.txt"]


def test_a_first_dev_install_says_it_is_the_first(checkout):
    said, installed = checkout.bootstrap("--dev")  # make test on a fresh clone
    assert said.startswith("installing requirements-dev.txt (mysqlclient compiles on a first install")
    assert installed == ["requirements-dev.txt"]
    assert checkout.bootstrap() == ("requirements.txt unchanged since the last install", [])

"""Where a test's own server processes run: on this host's loopback, or on
another host of tests/multihost.py (a network namespace, maybe CPU-capped)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """An address to bind, and the command prefix that starts a process on the
    host of that address (none for this one)."""

    host: str = "127.0.0.1"
    launcher: tuple[str, ...] = ()


HERE = Place()

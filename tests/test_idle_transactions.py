"""A transaction left idle is rolled back by MariaDB, so that a process cut off
from the network mid-transaction cannot hold its locks, the feed row's among
them, against every other process's writes."""

import MySQLdb
import pytest
from django.conf import settings
from django.db import connection

from detections.models import FeedState


@pytest.fixture(autouse=True)
def _on_mariadb():
    if connection.vendor != "mysql":
        pytest.fail("these tests check a MariaDB session setting: set DATABASE_URL=mysql://...")


def test_every_connection_rolls_back_a_transaction_left_idle(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@session.idle_transaction_timeout")
        assert cursor.fetchone()[0] == settings.DATABASE_IDLE_TRANSACTION_SECONDS == 5


def stalled_connection():
    """A connection with the application's own session settings and a 1 s idle limit."""
    params = connection.get_connection_params()
    configured = f"idle_transaction_timeout={settings.DATABASE_IDLE_TRANSACTION_SECONDS}"
    assert configured in params["init_command"]
    params["init_command"] = params["init_command"].replace(configured, "idle_transaction_timeout=1")
    return MySQLdb.connect(**params)


@pytest.mark.parametrize(
    "locking",
    [
        "UPDATE detections_feedstate SET last_seq = last_seq + 1 WHERE id = 1",
        # Locks without a write yet, as a writer holds them before its first change.
        "SELECT last_seq FROM detections_feedstate WHERE id = 1 FOR UPDATE",
    ],
)
def test_a_lock_held_by_an_idle_transaction_is_freed_for_the_next_writer(transactional_db, locking):
    FeedState.objects.get_or_create(pk=1)
    before = FeedState.objects.get(pk=1).last_seq
    stalled = stalled_connection()
    try:
        cursor = stalled.cursor()
        cursor.execute("BEGIN")
        cursor.execute(locking)
        assert cursor.rowcount == 1
        # The stalled process sends nothing more. Another writer waits for the
        # row; it gets it once MariaDB has ended the idle transaction, long
        # before its own lock wait gives up.
        with connection.cursor() as other:
            other.execute("SET SESSION innodb_lock_wait_timeout = 20")
            try:
                other.execute("SELECT last_seq FROM detections_feedstate WHERE id = 1 FOR UPDATE")
                assert other.fetchone() == (before,), "the idle transaction was rolled back"
            finally:
                other.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")
        with pytest.raises(MySQLdb.OperationalError):
            cursor.execute("SELECT 1")  # the idle connection was closed by the server
    finally:
        stalled.close()

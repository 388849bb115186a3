"""A write transaction left idle is rolled back by MariaDB, so that a process
cut off from the network mid-transaction cannot hold its locks, the feed
row's among them, against every other process's writes."""

import MySQLdb
import pytest
from django.db import connection

from detections.models import FeedState


@pytest.fixture(autouse=True)
def _on_mariadb():
    if connection.vendor != "mysql":
        pytest.fail("these tests check a MariaDB session setting: set DATABASE_URL=mysql://...")


def test_every_connection_rolls_back_a_write_transaction_idle_for_five_seconds(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@session.idle_write_transaction_timeout")
        assert cursor.fetchone()[0] == 5


def test_a_lock_held_by_an_idle_transaction_is_freed_for_the_next_writer(transactional_db):
    FeedState.objects.get_or_create(pk=1)
    params = connection.get_connection_params()
    # The application's own session settings, with a shorter idle limit.
    params["init_command"] = params["init_command"].replace(
        "idle_write_transaction_timeout=5", "idle_write_transaction_timeout=1"
    )
    stalled = MySQLdb.connect(**params)
    try:
        cursor = stalled.cursor()
        cursor.execute("BEGIN")
        cursor.execute("UPDATE detections_feedstate SET last_seq = last_seq + 1 WHERE id = 1")
        # The stalled process sends nothing more. Another writer waits for the
        # row; it gets it once MariaDB has ended the idle transaction, long
        # before its own lock wait gives up.
        with connection.cursor() as other:
            other.execute("SET SESSION innodb_lock_wait_timeout = 20")
            other.execute("SELECT last_seq FROM detections_feedstate WHERE id = 1 FOR UPDATE")
            assert other.fetchone() is not None
        with pytest.raises(MySQLdb.OperationalError):
            cursor.execute("SELECT 1")  # the idle connection was closed by the server
    finally:
        stalled.close()

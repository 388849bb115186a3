"""A write transaction the database ends as a deadlock's victim is run again;
any other database error is not."""

import pytest
from django.db import OperationalError

from detections.core import writes
from detections.models import Detection


def failing(times: int, error: OperationalError):
    calls = []

    def run():
        calls.append(len(calls))
        if len(calls) <= times:
            raise error
        return "committed"

    return run, calls


def test_a_deadlocked_transaction_is_run_again_with_its_rows_unsaved(transactional_db):
    run, calls = failing(2, OperationalError(writes.DEADLOCK, "Deadlock found when trying to get lock"))
    row = Detection(pk=41)

    assert writes._retrying_deadlocks(run, [row]) == "committed"
    assert len(calls) == 3
    assert row.pk is None and row._state.adding


def test_a_transaction_deadlocked_every_time_gives_up_with_the_error(transactional_db):
    run, calls = failing(writes.DEADLOCK_ATTEMPTS, OperationalError(writes.DEADLOCK, "Deadlock"))

    with pytest.raises(OperationalError):
        writes._retrying_deadlocks(run)
    assert len(calls) == writes.DEADLOCK_ATTEMPTS


def test_other_database_errors_are_not_retried(transactional_db):
    run, calls = failing(1, OperationalError(2006, "MySQL server has gone away"))

    with pytest.raises(OperationalError):
        writes._retrying_deadlocks(run)
    assert len(calls) == 1


def test_inside_a_callers_transaction_nothing_is_retried(db):
    # The deadlock rolled the caller's whole transaction back: only the caller can run it again.
    run, calls = failing(1, OperationalError(writes.DEADLOCK, "Deadlock"))

    with pytest.raises(OperationalError):
        writes._retrying_deadlocks(run)
    assert len(calls) == 1

"""The run-wide guard (tests/machine_guard.py) fails a run that stopped,
restarted or paused the machine's MariaDB or Redis. Each way is shown here on a
MariaDB and a Redis of the test's own, so that this file disturbs nothing either."""

import os

import pytest
from conftest import DISTURBED, WATCHES
from machine_guard import MariaDBWatch, RedisWatch
from mariadb_processes import DATABASE_PASSWORD, DATABASE_USER, MariaDB
from redis_processes import start_data_node


@pytest.fixture
def own_mariadb(tmp_path):
    database = MariaDB(tmp_path / "mariadb")
    database.start()
    yield database
    database.stop()


@pytest.fixture
def own_redis(tmp_path):
    node = start_data_node(tmp_path / "redis")
    yield node
    node.stop()


def watch_mariadb(database: MariaDB) -> MariaDBWatch:
    return MariaDBWatch(database.place.host, database.port, DATABASE_USER, DATABASE_PASSWORD)


def test_services_that_were_used_but_left_alone_are_not_reported(own_mariadb, own_redis):
    watches = [watch_mariadb(own_mariadb), RedisWatch(own_redis.url)]
    own_mariadb.query("CREATE TABLE visits (id INT)")
    own_redis.client().set("key", "value")
    own_redis.client().client_list()

    assert [watch.disturbances() for watch in watches] == [[], []]


def test_a_mariadb_that_was_restarted_is_reported(own_mariadb):
    watch = watch_mariadb(own_mariadb)
    own_mariadb.stop()
    own_mariadb.start()

    [problem] = watch.disturbances()
    assert "was lost" in problem and f":{own_mariadb.port}" in problem


def test_a_redis_that_was_restarted_is_reported(own_redis):
    watch = RedisWatch(own_redis.url)
    own_redis.stop()
    own_redis.start()

    [problem] = watch.disturbances()
    assert "was lost" in problem and f":{own_redis.port}" in problem


def test_a_redis_whose_clients_were_paused_is_reported(own_redis):
    watch = RedisWatch(own_redis.url)
    own_redis.client().client_pause(1, all=True)  # 1 ms: a pause, however short, froze everyone

    assert watch.disturbances() == [
        f"Redis on 127.0.0.1:{own_redis.port}: CLIENT PAUSE froze every client of it 1 time(s)"
    ]


def test_this_run_watches_the_services_it_runs_on(pytestconfig):
    """`make test` (VM_REQUIRE_SERVICES=1) runs on the machine's MariaDB and Redis:
    both are watched from the start, and nothing disturbed them so far."""
    watches = pytestconfig.stash[WATCHES]
    if os.environ.get("VM_REQUIRE_SERVICES") == "1":
        assert {type(watch) for watch in watches} == {MariaDBWatch, RedisWatch}
    assert [problem for watch in watches for problem in watch.disturbances()] == []
    assert DISTURBED not in pytestconfig.stash  # filled in only when the run ends

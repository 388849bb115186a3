"""Requests run on a fixed pool of long-lived threads, which keep their database
connections (vehicle_monitor/http_threads.py)."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from vehicle_monitor.http_threads import RequestThreadPool


def run_requests(pool: RequestThreadPool, count: int) -> None:
    async def main():
        await asyncio.gather(*(pool({"type": "http"}, None, None) for _ in range(count)))

    asyncio.run(main())


def test_sequential_requests_run_on_the_same_long_lived_thread():
    threads = []

    async def app(scope, receive, send):
        # What Django does with a sync view: a thread-sensitive hop.
        threads.append(await sync_to_async(threading.get_ident)())

    pool = RequestThreadPool(app, size=1)

    async def main():
        for _ in range(5):
            await pool({"type": "http"}, None, None)

    asyncio.run(main())
    assert len(threads) == 5 and len(set(threads)) == 1
    assert threads[0] != threading.get_ident()


def test_requests_spread_over_the_threads_and_no_more_run_sync_code_at_once():
    running, most = 0, 0
    lock = threading.Lock()
    all_three = threading.Barrier(3)  # passes only when three calls run at the same time

    def view():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        all_three.wait(timeout=5)
        with lock:
            running -= 1

    async def app(scope, receive, send):
        await sync_to_async(view)()

    pool = RequestThreadPool(app, size=3)
    run_requests(pool, 12)
    assert most == 3


def test_a_request_waiting_on_the_network_does_not_hold_its_thread():
    """A slow download (a CSV export's chunks, say) must not stop other requests."""
    order = []

    async def app(scope, receive, send):
        await sync_to_async(order.append)(scope["path"])
        if scope["path"] == "/slow":
            scope["first_chunk_sent"].set()
            await scope["client_reads"].wait()  # stands for a client reading slowly
            await sync_to_async(order.append)("/slow, last chunk")

    pool = RequestThreadPool(app, size=1)

    async def main():
        first_chunk_sent, client_reads = asyncio.Event(), asyncio.Event()
        slow_scope = {
            "type": "http",
            "path": "/slow",
            "first_chunk_sent": first_chunk_sent,
            "client_reads": client_reads,
        }
        slow = asyncio.create_task(pool(slow_scope, None, None))
        await first_chunk_sent.wait()
        await asyncio.wait_for(pool({"type": "http", "path": "/fast"}, None, None), timeout=5)
        client_reads.set()
        await slow

    asyncio.run(main())
    assert order == ["/slow", "/fast", "/slow, last chunk"]


def test_a_request_that_fails_gives_its_thread_back():
    seen = []

    async def app(scope, receive, send):
        seen.append(await sync_to_async(threading.get_ident)())
        raise RuntimeError("the view failed")

    pool = RequestThreadPool(app, size=1)

    async def main():
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await pool({"type": "http"}, None, None)

    asyncio.run(main())
    assert len(seen) == 3 and len(set(seen)) == 1


def mysql_connections_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(cursor.fetchone()[1])


def test_the_server_reuses_database_connections_across_requests(server):
    if connection.vendor != "mysql":
        pytest.fail("this test counts MySQL connections: set DATABASE_URL=mysql://...")
    with server.http(server.credentials.viewer) as http:
        assert http.get("/api/stats").status_code == 200  # warm up: threads open their connections
        before = mysql_connections_opened()
        for _ in range(30):
            assert http.get("/api/stats").status_code == 200
        opened = mysql_connections_opened() - before
    # Each pool thread opens its connection once, never one per request.
    # (+1: this test's own count query.)
    assert opened <= settings.HTTP_THREADS + 1, f"{opened} connections opened for 30 requests"

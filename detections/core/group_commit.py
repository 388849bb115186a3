"""Group commit: single POSTs that arrive together on one process are written
in one transaction (`writes.detections_create`): one insert for their rows, one
upsert per counter table, one block of seqs, one event insert, one commit.

A request hands its validated detection to `group_commit.create` and awaits
its own outcome; it holds no request thread while it waits, so any number of
requests can wait together. One writer thread per process takes what is
waiting, lingers INGEST_GROUP_LINGER_MS when it was idle so that company can
arrive, and writes it; whatever arrives while a group is being written forms
the next group, with no linger. A request is answered only after its group
committed: a 201 is never lost, even if the process is killed right after.

Outside a server (the test client, a management command) there is no server
loop to gather on: each detection is written on its own, in the caller's thread.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from detections.core import writes
from detections.operations import metrics

logger = logging.getLogger(__name__)


async def _nobody_behind():
    return


class GroupCommit:
    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting: list[tuple[writes.NewDetection, asyncio.Future]] = []
        self.writing = False
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self.readers_keep_up = _nobody_behind

    def attach(self, loop: asyncio.AbstractEventLoop, readers_keep_up=None):
        """Gather on `loop` from now on (the server's loop; see vehicle_monitor/asgi.py).

        `readers_keep_up`, if given, is awaited before each group is written:
        it returns once whoever delivers the written events (the socket feed)
        has caught up, or has waited long enough. The server glue hands it in,
        so that the write path knows nothing of what reads it."""
        self.loop = loop
        if readers_keep_up is not None:
            self.readers_keep_up = readers_keep_up

    async def create(self, item: writes.NewDetection) -> writes.Outcome:
        """Store `item` with whatever else is waiting; its outcome once committed."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            (outcome,) = await sync_to_async(writes.detections_create)([item])
            return outcome
        future = loop.create_future()
        self.waiting.append((item, future))
        if not self.writing:
            self.writing = True
            # Kept here: the event loop holds tasks only weakly.
            self.writing_task = loop.create_task(self._write_while_waiting())
        return await future

    async def _write_while_waiting(self):
        try:
            linger = settings.INGEST_GROUP_LINGER_MS / 1000
            # No linger: no grouping at all, one transaction per request.
            largest = settings.INGEST_GROUP_MAX if linger > 0 else 1
            if linger > 0:
                await asyncio.sleep(linger)
            while self.waiting:
                # Delivery must not fall behind ingest for good: accept no more
                # while the readers are behind (bounded by them).
                await self.readers_keep_up()
                group, self.waiting = self.waiting[:largest], self.waiting[largest:]
                await self._write(group)
        finally:
            self.writing = False

    async def _write(self, group: list[tuple[writes.NewDetection, asyncio.Future]]):
        items = [item for item, _ in group]
        started = time.perf_counter()
        try:
            outcomes = await self.loop.run_in_executor(self.writer, _write_group, items)
        except Exception as exc:  # the database is down, say: each request answers for it
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        metrics.INGEST_GROUP_SIZE.observe(len(items))
        metrics.INGEST_GROUP_SECONDS.observe(time.perf_counter() - started)
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if not future.done():  # its client went away: the row is stored all the same
                future.set_result(outcome)


def _write_group(items: list[writes.NewDetection]) -> list[writes.Outcome]:
    # What a request's start does for its thread: drop a connection that failed
    # or outlived CONN_MAX_AGE, so that a database restart costs a reconnect.
    close_old_connections()
    return writes.detections_create(items)


group_commit = GroupCommit()

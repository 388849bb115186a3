"""The journey engine's process (`python manage.py follow_journeys`): steps
of the follower whenever a commit wakes it (or every poll), and the routes
edited since they were derived. Several may run, on several hosts: the
cursor's lock lets one step at a time, and the others wait their turn."""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from detections.core import followers
from detections.journeys import engine

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self, *, poll_seconds: float, page: int = engine.PAGE):
        self.poll_seconds = poll_seconds
        self.page = followers.StepSize(page)
        self.stopping = asyncio.Event()

    def stop(self):
        self.stopping.set()

    async def run(self, *, once: bool = False):
        wake = asyncio.Event()
        listener = asyncio.create_task(followers.wake_on_commits(wake, channel_prefix="journeys."))
        try:
            while not self.stopping.is_set():
                wake.clear()
                # --once waits for another process's step: it exits caught up.
                more = await sync_to_async(self._round, thread_sensitive=True)(once)
                if more:
                    continue
                if once:
                    return
                await self._pause(wake)
        finally:
            listener.cancel()

    def _round(self, wait: bool) -> bool:
        try:
            more = engine.step(self.page.now, wait=wait)
            self.page.succeeded()
            engine.derive_pending_routes()
            return more
        except DatabaseError as problem:
            # The database is away (a restart, a failover), or the step outlasted
            # its transaction: nothing was half done, and the next round takes
            # the same events again, fewer at a time.
            self.page.failed()
            logger.warning(
                "journey engine: %s: %s; trying again with steps of %d events",
                type(problem).__name__,
                problem,
                self.page.now,
            )
            connection.close()
            return False

    async def _pause(self, wake: asyncio.Event):
        waits = [asyncio.create_task(wake.wait()), asyncio.create_task(self.stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

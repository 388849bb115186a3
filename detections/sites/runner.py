"""The engine's process loop (`manage.py follow_visits`): derive what a site
edit asks for, follow the log, and run the timers, until stopped.

It wakes at every commit that writes events (`core.followers.wake_on_commits`),
so a visit is stored within moments of its read, and looks anyway every
`poll_seconds` (the timers' resolution too). Several may run, on several
hosts: the engine's cursor lets one step at a time, the timers claim their rows.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, close_old_connections

from detections.core import followers
from detections.sites import engine, timers

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 1.0


class Runner:
    def __init__(self, *, poll_seconds: float = 0.5, tick_seconds: float = 1.0):
        self.poll_seconds = poll_seconds
        self.tick_seconds = tick_seconds
        self.wake = asyncio.Event()
        self.stopping = False
        self.ticked_at = float("-inf")
        # One thread, one database connection: every round runs on it.
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visits")

    def stop(self):
        self.stopping = True
        self.wake.set()

    async def run(self, *, once: bool = False):
        loop = asyncio.get_running_loop()
        listener = asyncio.create_task(followers.wake_on_commits(self.wake, channel_prefix="visits."))
        try:
            while not self.stopping:
                self.wake.clear()
                try:
                    more = await loop.run_in_executor(self.thread, self.round)
                except DatabaseError as problem:
                    logger.warning(
                        "visit engine: database error (trying again in %g s): %s", DATABASE_RETRY_SECONDS, problem
                    )
                    await asyncio.sleep(DATABASE_RETRY_SECONDS)
                    continue
                if once and not more:
                    break
                if more:
                    continue
                try:
                    await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            listener.cancel()
            self.thread.shutdown(wait=True)

    def round(self) -> bool:
        """One round: a site to derive, a step, the timers when due; True when more waits."""
        close_old_connections()
        derived = engine.derive_pending()
        more = engine.step()
        if time.monotonic() - self.ticked_at >= self.tick_seconds:
            self.ticked_at = time.monotonic()
            timers.tick()
        return more or derived

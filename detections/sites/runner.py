"""The engine's process loop (`manage.py follow_visits`): derive what a site
edit asks for, follow the log, and run the timers, until stopped.

It wakes at every commit that writes events (`core.followers.wake_on_commits`)
and gathers the commits of the next `GATHER_SECONDS` into the same step, so a
visit is stored within moments of its read and a busy log costs a step per
burst rather than one per commit; it looks anyway every `poll_seconds` (the
timers' resolution too). With no active site the commits need nothing of it:
it only looks every `poll_seconds`. Several may run, on several
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
GATHER_SECONDS = 0.05


class Runner:
    def __init__(self, *, poll_seconds: float = 0.5, tick_seconds: float = 1.0):
        self.poll_seconds = poll_seconds
        self.tick_seconds = tick_seconds
        self.wake = asyncio.Event()
        self.stopping = False
        self.ticked_at = float("-inf")
        self.idle = False  # no active site at the last round
        self.page = followers.StepSize(engine.PAGE)
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
                    # The database is away, or the step outlasted its transaction:
                    # the same events again, fewer at a time (followers.StepSize).
                    self.page.failed()
                    logger.warning(
                        "visit engine: database error (trying again in %g s with steps of %d events): %s",
                        DATABASE_RETRY_SECONDS,
                        self.page.now,
                        problem,
                    )
                    await asyncio.sleep(DATABASE_RETRY_SECONDS)
                    continue
                if once and not more:
                    break
                if more:
                    continue
                await self._wait(loop)
        finally:
            listener.cancel()
            self.thread.shutdown(wait=True)

    async def _wait(self, loop):
        """Until a commit (and those gathered after it) or the next look."""
        deadline = loop.time() + self.poll_seconds
        while not self.stopping and (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self.wake.wait(), remaining)
            except TimeoutError:
                return
            if not self.idle:
                await asyncio.sleep(GATHER_SECONDS)
                return
            self.wake.clear()  # idle: a commit needs nothing, only stopping ends the wait

    def round(self) -> bool:
        """One round: a site to derive, a step, the timers when due; True when more waits."""
        close_old_connections()
        # The active sites read once a round: deriving and the step both need them.
        sites = engine.active_sites()
        self.idle = not sites
        derived = bool(sites) and engine.derive_pending(sites)
        more = engine.step(page=self.page.now, sites=None if derived else sites)  # a derived site changed them
        self.page.succeeded()
        if time.monotonic() - self.ticked_at >= self.tick_seconds:
            self.ticked_at = time.monotonic()
            timers.tick()
        return more or derived

"""Run every HTTP request's synchronous code on a small set of long-lived threads.

Under ASGI, Django runs each request's sync views and middleware in a thread of
that request's own, made and thrown away per request; the request's database
connection lives in that thread, so each request also opened and closed a
MySQL connection (and Django asked the server for its version and settings
again). Measured by benchmarks/run.py, that churn was a large part of the
ingest path's cost.

This middleware hands each request one of `size` single-thread executors for
its whole life (asgiref's ThreadSensitiveContext with a caller-owned executor),
so the threads, and the database connection each one keeps (CONN_MAX_AGE,
checked before reuse by CONN_HEALTH_CHECKS), serve request after request. At
most `size` requests run sync code at once per process; the others wait their
turn in arrival order, which also caps the process's database connections.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext


class RequestThreadPool:
    """ASGI middleware for the "http" protocol: a fixed pool of request threads."""

    def __init__(self, application, size: int):
        if size < 1:
            raise ValueError("the request thread pool needs at least one thread")
        self.application = application
        self.size = size
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"http-{n}") for n in range(size)
        ]
        self.idle: asyncio.Queue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _idle_queue(self) -> asyncio.Queue:
        # Made on first use, on the server's loop (uvicorn's workers fork first).
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self.idle = asyncio.Queue()
            for executor in self.executors:
                self.idle.put_nowait(executor)
        return self.idle

    async def __call__(self, scope, receive, send):
        idle = self._idle_queue()
        executor = await idle.get()
        try:
            # Django's handler enters a ThreadSensitiveContext of its own; this
            # outer one, holding an executor, is the one its sync code runs in.
            async with ThreadSensitiveContext(executor=executor):
                await self.application(scope, receive, send)
        finally:
            idle.put_nowait(executor)

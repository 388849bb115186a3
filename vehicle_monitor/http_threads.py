"""Run every HTTP request's synchronous code on a small set of long-lived threads.

Under ASGI, Django runs each request's sync views and middleware in a thread of
that request's own, made and thrown away per request; the request's database
connection lives in that thread, so each request also opened and closed a
MySQL connection (and Django asked the server for its version and settings
again). Measured by benchmarks/run.py, that churn was a large part of the
ingest path's cost.

This middleware runs each request's sync code on one of `size` long-lived
single-thread executors (asgiref's ThreadSensitiveContext with a caller-owned
executor), the least busy one, so the threads, and the database connection each
keeps (CONN_MAX_AGE, checked before reuse by CONN_HEALTH_CHECKS), serve request
after request. Requests sharing a thread take turns between their sync calls
(a view runs in one call, so a transaction never interleaves with another).

Few threads is faster, not slower: the process's event loop, which sends every
event to every socket, competes with them for the GIL, and gets a smaller share
with every runnable request thread. Measured by benchmarks/run.py (100 sockets,
8 posters): delivery p99 0.3 s with 2 threads, 7.6 s with 8, the same det/s.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext


class RequestThreadPool:
    """ASGI middleware for the "http" protocol: a fixed pool of request threads."""

    def __init__(self, application, size: int):
        if size < 1:
            raise ValueError("the request thread pool needs at least one thread")
        self.application = application
        # Requests in progress per executor; a new request goes to the least busy.
        self.requests = {ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"http-{n}"): 0 for n in range(size)}

    async def __call__(self, scope, receive, send):
        executor = min(self.requests, key=self.requests.__getitem__)
        self.requests[executor] += 1
        try:
            # Django's handler enters a ThreadSensitiveContext of its own; this
            # outer one, holding an executor, is the one its sync code runs in.
            async with ThreadSensitiveContext(executor=executor):
                await self.application(scope, receive, send)
        finally:
            self.requests[executor] -= 1

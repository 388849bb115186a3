"""Edge units' API requests, served by Django without the browser's middleware.

A request made with a device key (`Authorization: Token vmk_...`, or Bearer)
to /api/ is authenticated by DRF from that header alone: it has no session,
no CSRF cookie, no messages and no page to frame. Under ASGI every one of
Django's middleware classes also costs two thread hops per request (each
method is adapted to async on its own), and the request_started signal and
the response's close one more each: together a large part of an ingest
request's cost. So these requests go to a handler of their own, whose one
middleware keeps what still applies to them:

- ALLOWED_HOSTS (`request.get_host()`, a 400 for a host not served);
- SecurityMiddleware's HTTPS redirect and HSTS and other headers, by calling
  its own methods, which do no I/O, on the event loop.

It sends no request_started signal: its receivers reset the thread's query
log and drop stale database connections, and a device request uses no
connection of a request thread but to look up a key it has not seen lately,
which does that hygiene itself (`detections.api.authentication`). request_finished is sent,
by the response's close, on the loop, which holds no database connection.

The probes (/healthz, /readyz) take this handler too, outside the request
threads (vehicle_monitor/admission.py): their views are async, so a probe is
answered on the loop and never waits for a thread that requests keep busy.

Every other request takes the full stack of settings.MIDDLEWARE.
"""

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix

from detections.core.access import AUTH_KEYWORDS
from detections.core.device_keys import DEVICE_KEY_PREFIX
from vehicle_monitor.request_bodies import RequestHandler

# "token vmk_", "bearer vmk_": how an Authorization header with a device key starts.
DEVICE_KEY_SCHEMES = tuple(keyword + b" " + DEVICE_KEY_PREFIX.encode() for keyword in AUTH_KEYWORDS)
_SCHEME_LENGTH = max(map(len, DEVICE_KEY_SCHEMES))


def is_device_api_request(scope) -> bool:
    if not scope["path"].startswith("/api/"):
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value[:_SCHEME_LENGTH].lower().startswith(DEVICE_KEY_SCHEMES)
    return False


def device_security_middleware(get_response):
    security = SecurityMiddleware(get_response)

    async def middleware(request):
        # Raises DisallowedHost (a 400) for a host that is not in ALLOWED_HOSTS.
        request.get_host()
        response = security.process_request(request)
        if response is None:
            response = await get_response(request)
        return security.process_response(request, response)

    return middleware


class DeviceRequestHandler(RequestHandler):
    """Django's ASGI handler (ours, which tells a chunked body's length) with
    `device_security_middleware` as its only middleware, and no thread hop of
    its own."""

    async def handle(self, scope, receive, send):
        # ASGIHandler.handle without request_started and without a task that
        # listens for a disconnect: an ingest that began is written anyway.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, response = self.create_request(scope, body_file)
        if request is None:
            await self.send_response(response, send)
        else:
            response = await self.run_get_response(request)
            await self.send_response(response, send)
        response.close()
        body_file.close()

    def load_middleware(self, is_async=False):
        # What Django's own loader (BaseHandler.load_middleware) builds, for a
        # middleware list of one, without building the full stack first.
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        view = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(device_security_middleware(view))

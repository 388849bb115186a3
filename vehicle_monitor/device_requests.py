"""Edge units' API requests, served by Django without the browser's middleware.

A request made with a device key (`Authorization: Token vmk_...`, or Bearer)
to /api/ is authenticated by DRF from that header alone: it has no session,
no CSRF cookie, no messages and no page to frame. Under ASGI every one of
Django's middleware classes also costs two thread hops per request (each
method is adapted to async on its own), which made the middleware stack a
large part of an ingest request's cost. So these requests go to a handler of
their own, whose one middleware keeps what still applies to them:

- ALLOWED_HOSTS (`request.get_host()`, a 400 for a host not served);
- SecurityMiddleware's HTTPS redirect and HSTS and other headers, by calling
  its own methods, which do no I/O, on the event loop.

Every other request takes the full stack of settings.MIDDLEWARE.
"""

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.security import SecurityMiddleware

DEVICE_KEY_SCHEMES = (b"token vmk_", b"bearer vmk_")


def is_device_api_request(scope) -> bool:
    if not scope["path"].startswith("/api/"):
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value[:11].lower().startswith(DEVICE_KEY_SCHEMES)
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


class DeviceRequestHandler(ASGIHandler):
    """Django's ASGI handler with `device_security_middleware` as its only middleware."""

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=True)
        # What Django's own loader builds, for a middleware list of one.
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        view = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(device_security_middleware(view))


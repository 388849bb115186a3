"""ASGI entry point: HTTP to Django, WebSocket to the detection feed.

docker-compose.yml's `web` service runs it in production; `daphne` and
`manage.py runserver` serve it too.
"""

import asyncio
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")

from vehicle_monitor import daphne_patches

daphne_patches.install()  # no token in the access log; no form parsing by Twisted
# Set up Django (apps, models) before importing anything that uses the ORM
# (what django.core.asgi.get_asgi_application does, for a handler of our own).
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from detections.core.group_commit import group_commit
from detections.feed.broadcaster import broadcaster
from detections.feed.consumers import SERVER_SEND
from detections.feed.publisher import publisher
from detections.feed.routing import websocket_urlpatterns
from detections.feed.socket_auth import SocketOriginValidator, SocketTokenAuthMiddleware
from vehicle_monitor.admission import InFlightLimit, ProbeRouter
from vehicle_monitor.device_requests import DeviceRequestHandler, is_device_api_request
from vehicle_monitor.http_threads import RequestThreadPool
from vehicle_monitor.request_bodies import BodyGate, RequestHandler


class ServerLoop:
    """Lends the server's event loop to what works from it: the publisher sends
    events from it, the group commit gathers requests on it (writing no faster
    than the sockets take the events; see feed/broadcaster.py)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        loop = asyncio.get_running_loop()
        publisher.attach(loop)
        group_commit.attach(loop, readers_keep_up=broadcaster.wait_until_sockets_keep_up)
        return await self.application(scope, receive, send)


class KeepServerSend:
    """Hands the consumer the server's own `send` in the scope, for the feed's
    events, which need none of what the middleware below wraps around it."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        return await self.application({**scope, SERVER_SEND: send}, receive, send)


class HttpRouter:
    """Edge units' API requests to a lean Django handler, everything else to the full one."""

    def __init__(self, device_application, application):
        self.device_application, self.application = device_application, application

    async def __call__(self, scope, receive, send):
        chosen = self.device_application if is_device_api_request(scope) else self.application
        return await chosen(scope, receive, send)


lean_handler = DeviceRequestHandler()
application = ServerLoop(
    ProtocolTypeRouter(
        {
            # The probes on the loop, never refused; the other requests up to
            # HTTP_MAX_IN_FLIGHT at once (vehicle_monitor/admission.py), their bodies
            # bounded and checked (anonymous writes refused) before any is read
            # (vehicle_monitor/request_bodies.py), on long-lived threads, each
            # keeping its database connection.
            "http": ProbeRouter(
                lean_handler,
                InFlightLimit(
                    BodyGate(
                        RequestThreadPool(
                            HttpRouter(
                                lean_handler,
                                # Static files (the admin's, the dashboard's) come from the app folders,
                                # so the service works with no collectstatic and no proxy in front.
                                ASGIStaticFilesHandler(RequestHandler()),
                            ),
                            settings.HTTP_THREADS,
                        )
                    ),
                    settings.HTTP_MAX_IN_FLIGHT,
                ),
            ),
            # Origin first (a browser on another site is turned away at the handshake),
            # then who is asking: the session cookie, else a viewer token.
            "websocket": KeepServerSend(
                SocketOriginValidator(AuthMiddlewareStack(SocketTokenAuthMiddleware(URLRouter(websocket_urlpatterns))))
            ),
        }
    )
)

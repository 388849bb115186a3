"""ASGI entry point: HTTP to Django, WebSocket to the detection feed.

Run with `daphne vehicle_monitor.asgi:application`.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")

from vehicle_monitor import daphne_patches  # noqa: E402

daphne_patches.install()  # no token in the access log; no form parsing by Twisted
# Set up Django (apps, models) before importing anything that uses the ORM.
django_http_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from vehicle_monitor.http_threads import RequestThreadPool  # noqa: E402

from detections.auth import SocketOriginValidator, SocketTokenAuthMiddleware  # noqa: E402
from detections.publisher import PublisherMiddleware  # noqa: E402
from detections.routing import websocket_urlpatterns  # noqa: E402

# PublisherMiddleware: events are sent from this loop, not from request threads.
application = PublisherMiddleware(
    ProtocolTypeRouter(
        {
            # Static files (the admin's, the dashboard's) come from the app folders, so
            # the service works with no collectstatic and no proxy in front. Requests
            # run on long-lived threads, each keeping its database connection.
            "http": RequestThreadPool(ASGIStaticFilesHandler(django_http_application), settings.HTTP_THREADS),
            # Origin first (a browser on another site is turned away at the handshake),
            # then who is asking: the session cookie, else a viewer token.
            "websocket": SocketOriginValidator(
                AuthMiddlewareStack(SocketTokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)

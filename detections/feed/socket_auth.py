"""Who is asking, on the socket, before it is accepted: a viewer's session
cookie from a page of the site itself, or a viewer token as `?token=` or in the
Authorization header; and where a browser's page comes from (its Origin).
"""

from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from detections.core.access import BadCredential, credential
from detections.core.device_keys import DEVICE_KEY_PREFIX


def _viewer_for_token(secret: str):
    token = Token.objects.select_related("user").filter(key=secret).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


# Set in the scope of a socket whose Origin only SOCKET_ALLOWED_ORIGINS lets in.
FOREIGN_ORIGIN = "vehicle_monitor.foreign_origin"


class SocketTokenAuthMiddleware(BaseMiddleware):
    """After the session middleware: a viewer token from `?token=` or the
    Authorization header, for apps that have no session cookie. A socket let in
    only by SOCKET_ALLOWED_ORIGINS is anonymous unless it brings a token: the
    browser sends the site's session cookie with a foreign page's socket too,
    so that cookie proves nothing about who wrote the page."""

    async def __call__(self, scope, receive, send):
        if scope.get(FOREIGN_ORIGIN):
            scope = {**scope, "user": AnonymousUser()}
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            secret = _socket_token(scope)
            if secret and not secret.startswith(DEVICE_KEY_PREFIX):
                scope = {**scope, "user": await database_sync_to_async(_viewer_for_token)(secret)}
        return await super().__call__(scope, receive, send)


def query_param(scope, name: str) -> str | None:
    """The last value of `name` in the socket's query string."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


def _socket_token(scope) -> str | None:
    token = query_param(scope, "token")
    if token:
        return token
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            try:
                return credential(value)
            except BadCredential:
                return None
    return None


class SocketOriginValidator(OriginValidator):
    """Browsers always send Origin on a socket: it must be one of ALLOWED_HOSTS,
    so another site cannot ride a viewer's session cookie. Native apps send no
    Origin and authenticate with a token, which a cross-site page cannot read;
    they are let through to authenticate. Origins listed in
    SOCKET_ALLOWED_ORIGINS (`null` for a page opened from a file) are let in
    too, marked FOREIGN_ORIGIN, so that their session cookie counts for nothing."""

    def __init__(self, application):
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)
        self.foreign_origins = {origin.lower() for origin in settings.SOCKET_ALLOWED_ORIGINS}

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is not None and origin.lower() in self.foreign_origins and not self.valid_origin(urlparse(origin)):
            return await self.application({**scope, FOREIGN_ORIGIN: True}, receive, send)
        return await super().__call__(scope, receive, send)

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def _header(scope, name: bytes) -> str | None:
    for header, value in scope.get("headers", []):
        if header == name:
            return value.decode("latin-1")
    return None

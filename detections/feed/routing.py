from django.urls import re_path

from detections.feed.consumers import DetectionFeedConsumer

websocket_urlpatterns = [
    # /ws is the legacy path; /ws/detections/ names the same feed.
    re_path(r"^ws/?$", DetectionFeedConsumer.as_asgi()),
    re_path(r"^ws/detections/?$", DetectionFeedConsumer.as_asgi()),
]

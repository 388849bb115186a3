"""The post_save and post_delete receivers: publish each created or deleted
detection's event, and each raised alert's, once its transaction commits (a
rollback publishes nothing); and the events a follower of the log wrote
(`events.events_logged`), the same way.

`writes` sends both signals for every row it inserts or deletes, handing over
the row's event (and, for a new row, its thumbnail). A row the ORM saved or
deleted directly (a shell, a data fix) comes without one: it is counted and
logged by `writes` here, so that every path still reaches the sockets.
"""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from detections.core import events as core_events
from detections.core import writes
from detections.feed import messages
from detections.models import Alert, Detection


def detection_saved(
    sender, instance: Detection, created: bool, raw: bool = False, event=None, thumbnail=None, **kwargs
):
    if not created or raw:
        return
    if event is None:
        event, thumbnail = writes.count_saved_elsewhere(instance)
    transaction.on_commit(partial(messages.publish, event, thumbnail=thumbnail), robust=True)


def detection_deleted(sender, instance: Detection, event=None, **kwargs):
    if event is None:
        event = writes.count_deleted_elsewhere(instance)
    transaction.on_commit(partial(messages.publish, event), robust=True)


def alert_saved(sender, instance: Alert, created: bool, event=None, **kwargs):
    # Alerts are raised only by `writes` (inside a detection's transaction),
    # which always hands over the alert's event.
    if created and event is not None:
        transaction.on_commit(partial(messages.publish, event), robust=True)


def events_logged(sender, events, **kwargs):
    # Events with no model signal of their own (visits, sites, journeys, corrections):
    # together, so an engine's step of many costs one channel-layer message.
    transaction.on_commit(partial(messages.publish_all, list(events)), robust=True)


def connect():
    core_events.events_logged.connect(events_logged, dispatch_uid="events_logged")
    post_save.connect(alert_saved, sender=Alert, dispatch_uid="alert_saved")
    post_save.connect(detection_saved, sender=Detection, dispatch_uid="detection_saved")
    post_delete.connect(detection_deleted, sender=Detection, dispatch_uid="detection_deleted")

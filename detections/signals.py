"""Adapters from model signals to events: every write path (API, admin, shell)
passes here. The work lives in `events`; publishing waits for the commit, so a
rolled-back transaction publishes nothing and deletes no file."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from . import events, images
from .models import Detection


def detection_saved(sender, instance: Detection, created: bool, raw: bool = False, **kwargs):
    if not created or raw:
        return
    event = events.record_created(instance)
    thumbnail = instance.thumbnail_bytes
    if thumbnail is None:  # created outside the ingest path, e.g. in the admin
        thumbnail = images.read_stored(instance.thumbnail.name)
    transaction.on_commit(lambda: events.publish(event, thumbnail=thumbnail), robust=True)


def detection_deleted(sender, instance: Detection, **kwargs):
    # The instance's pk is None by the time on_commit runs: capture what we need now.
    event = events.record_deleted(instance, detection_id=instance.pk)
    files = [instance.image.name, instance.thumbnail.name]
    transaction.on_commit(lambda: images.delete_files(files), robust=True)
    transaction.on_commit(lambda: events.publish(event), robust=True)


def connect():
    post_save.connect(detection_saved, sender=Detection, dispatch_uid="detection_saved")
    post_delete.connect(detection_deleted, sender=Detection, dispatch_uid="detection_deleted")

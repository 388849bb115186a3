"""Recompute the counters (totals, hourly counts, the detection count) from the
detections table.

    .venv/bin/python manage.py rebuild_counters

The counters are kept exact in every write transaction, so this is for an
operator who loaded or removed rows behind the application's back (a restore,
a bulk import with SQL, a manual DELETE). It holds the feed row's lock while it
runs, so writers wait rather than race it; at millions of rows that takes a
while (benchmarks/README.md: 1M rows in seconds). Event numbering (seq) is kept.
"""

from django.core.management.base import BaseCommand

from detections.core import counters


class Command(BaseCommand):
    help = "Recompute the per-camera, per-type and hourly counters and the detection count from the detections table."

    def handle(self, *args, **options):
        position = counters.rebuild()
        self.stdout.write(f"counters rebuilt: {position.count} detections; the event sequence stays at {position.seq}")

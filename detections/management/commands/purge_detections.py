"""Delete detections older than the retention period, with their files.

    .venv/bin/python manage.py purge_detections                    # older than RETENTION_DAYS
    .venv/bin/python manage.py purge_detections --older-than 90 --dry-run
    .venv/bin/python manage.py purge_detections --older-than 90 --batch-size 200

Each batch is its own transaction and goes through the same signal as every
other deletion: counters stay exact, the files go after commit, and every
connected client receives a `deletion` per row. Events older than the cutoff are
pruned from the event log too (they only serve `resume`); the newest is kept.
Alerts older than ALERT_RETENTION_DAYS and delivered webhook messages older
than WEBHOOK_MESSAGE_RETENTION_DAYS go too, journeys and the journey engine's
reads older than JOURNEY_RETENTION_DAYS, and visits older than
VISIT_RETENTION_DAYS, whatever RETENTION_DAYS says. Purging detections derives
no journey and no visit again.
Run it nightly from cron (docs/operations.md).
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from detections.core.formats import format_time
from detections.feed.publisher import publisher
from detections.operations import retention

BAR_WIDTH = 30


class ProgressBar:
    """A text bar on stdout, redrawn in place on a terminal; in a log (cron),
    a line for every tenth of the way, so the log stays short."""

    def __init__(self, stdout, total: int, *, enabled: bool):
        self.stdout = stdout
        self.total = max(total, 1)
        self.enabled = enabled
        self.tty = stdout.isatty()
        self.last_tenth = -1

    def update(self, done: int):
        if not self.enabled:
            return
        fraction = min(done / self.total, 1.0)
        tenth = int(fraction * 10)
        if not self.tty and tenth == self.last_tenth and done < self.total:
            return
        self.last_tenth = tenth
        filled = round(fraction * BAR_WIDTH)
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total} ({fraction:.0%})"
        if self.tty:
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        else:
            self.stdout.write(line)

    def finish(self):
        if self.enabled and self.tty:
            self.stdout.write("")


class Command(BaseCommand):
    help = "Delete detections (and their image files) older than --older-than days, in batches."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=None,
            help="delete detections whose time is more than DAYS days ago (default: RETENTION_DAYS)",
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; change nothing")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            metavar="N",
            help="rows per transaction (default 500); smaller batches hold up ingest for less time",
        )

    def purge_alerts_and_messages(self, dry_run: bool):
        now = timezone.now()
        if dry_run:
            alerts, messages = retention.expired_alerts(now).count(), retention.expired_messages(now).count()
            self.stdout.write(f"Dry run: would delete {alerts} alert(s) and {messages} delivered webhook message(s).")
            return
        alerts, messages = retention.purge_alerts_and_messages(now)
        self.stdout.write(f"Deleted {alerts} alert(s) and {messages} delivered webhook message(s).")

    def purge_journeys(self, dry_run: bool):
        now = timezone.now()
        if dry_run:
            journeys, reads = retention.expired_journeys(now).count(), retention.expired_plate_reads(now).count()
            self.stdout.write(f"Dry run: would delete {journeys} journey(s) and {reads} plate read(s).")
            return
        journeys, reads = retention.purge_journeys(now)
        self.stdout.write(f"Deleted {journeys} journey(s) and {reads} plate read(s).")

    def purge_visits(self, dry_run: bool):
        now = timezone.now()
        if dry_run:
            self.stdout.write(f"Dry run: would delete {retention.expired_visits(now).count()} visit(s).")
            return
        self.stdout.write(f"Deleted {retention.purge_visits(now)} visit(s).")

    def handle(self, *args, older_than, dry_run, batch_size, verbosity, **options):
        days = settings.RETENTION_DAYS if older_than is None else older_than
        if days < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        self.purge_alerts_and_messages(dry_run)
        self.purge_journeys(dry_run)
        self.purge_visits(dry_run)
        if days == 0:
            if older_than is None:
                self.stdout.write("Retention is off (RETENTION_DAYS=0): nothing to delete. Pass --older-than DAYS.")
                return
            raise CommandError("--older-than 0 would delete everything; give a number of days of at least 1")

        cutoff = retention.cutoff_for(days)
        if dry_run:
            report = retention.preview_purge(cutoff)
            self.stdout.write(
                f"Dry run: would delete {report.detections} detection(s) from before {format_time(cutoff)} "
                f"({days} day{'s' if days != 1 else ''}), {report.files} image file(s), {report.events_pruned} event log row(s) "
                f"and {report.hourly_rows_pruned} empty hourly counter(s). Nothing was changed."
            )
            return

        total = retention.expired(cutoff).count()
        self.stdout.write(
            f"Deleting {total} detection(s) from before {format_time(cutoff)} ({days} day{'s' if days != 1 else ''})..."
        )
        bar = ProgressBar(self.stdout, total, enabled=verbosity > 0 and total > 0)
        failures_before = publisher.failed
        started = timezone.now()
        report = retention.purge_detections(cutoff, batch_size=batch_size, progress=bar.update)
        bar.finish()
        seconds = (timezone.now() - started).total_seconds()
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {report.detections} detection(s) and {report.files} image file(s) in {seconds:.1f} s; "
                f"{report.detections} deletion event(s) published. Pruned {report.events_pruned} event log row(s) "
                f"and {report.hourly_rows_pruned} empty hourly counter(s)."
            )
        )
        failed = publisher.failed - failures_before
        if failed:
            self.stderr.write(
                f"{failed} event(s) could not be published live (channel layer unavailable); "
                "they are in the event log and reach clients when they resume."
            )

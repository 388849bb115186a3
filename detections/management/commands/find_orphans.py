"""Find image files no detection names, and detections whose files are gone.

    .venv/bin/python manage.py find_orphans            # report only
    .venv/bin/python manage.py find_orphans --delete   # also remove the orphan files

Works through Django's storage API, so it checks wherever MEDIA_ROOT or the
bucket (MEDIA_STORAGE=s3, listed a thousand objects a request) keeps files. Files newer than --min-age minutes are left
alone: ingest writes a snapshot just before its row commits. Rows with a
missing file are only reported: the detection is still true, only its picture
is gone. Run it weekly from cron (docs/operations.md).
"""

from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from detections.operations import retention


class Command(BaseCommand):
    help = "List (and with --delete remove) image files without a detection; report detections without their files."

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="remove the orphan files")
        parser.add_argument(
            "--min-age",
            type=int,
            default=60,
            metavar="MINUTES",
            help="files younger than this are never orphans yet (default 60)",
        )

    def handle(self, *args, delete, min_age, **options):
        if min_age < 0:
            raise CommandError("--min-age must be 0 or more minutes")
        orphans, too_new = [], 0
        for name, old_enough in retention.find_orphan_files(min_age=timedelta(minutes=min_age)):
            if not old_enough:
                too_new += 1
                continue
            orphans.append(name)
            self.stdout.write(f"orphan file: {name}")
            if delete:
                default_storage.delete(name)
        missing = 0
        for pk, field, name in retention.find_missing_files():
            missing += 1
            self.stdout.write(f"missing file: detection {pk} {field} {name}")

        verb = "removed" if delete else "found"
        summary = f"{len(orphans)} orphan file(s) {verb}; {missing} missing file(s) of stored detections."
        if too_new:
            summary += f" {too_new} unmatched file(s) newer than {min_age} min left alone."
        if orphans and not delete:
            summary += " Run with --delete to remove the orphans."
        self.stdout.write(summary)

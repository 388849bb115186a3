"""Copy the media of a local folder into the bucket, to move to MEDIA_STORAGE=s3.

    MEDIA_STORAGE=s3 AWS_STORAGE_BUCKET_NAME=... .venv/bin/python manage.py copy_media_to_s3 --from /srv/vehicle_monitor/media

Resumable: a file whose object is in the bucket already with the same size is
skipped, so a run that stopped half-way is started again as it was. Each folder
of the bucket is listed once (a thousand objects a request), never asked about
file by file. Nothing is deleted, locally or in the bucket. A line per folder
tells how far it has come.
"""

import os
import posixpath
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from detections.core import storage


class Command(BaseCommand):
    help = "Copy local media (snapshots, thumbnails) into the MEDIA_STORAGE=s3 bucket, skipping what is there."

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="source", required=True, metavar="FOLDER", help="the local media folder (MEDIA_ROOT)"
        )

    def handle(self, *args, source, **options):
        store = storage.object_store()
        if store is None:
            raise CommandError("MEDIA_STORAGE is not s3: set it and the AWS_* variables to name the bucket")
        root = Path(source)
        if not root.is_dir():
            raise CommandError(f"--from {source}: no such folder")
        copied = skipped = copied_bytes = 0
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()  # folders in a stable order, so a rerun's lines match the first run's
            if not files:
                continue
            relative = Path(folder).relative_to(root).as_posix()
            prefix = "" if relative == "." else relative
            there = {posixpath.basename(name): size for name, size in store.objects(prefix)}
            for name in sorted(files):
                path = Path(folder, name)
                size = path.stat().st_size
                if there.get(name) == size:
                    skipped += 1
                    continue
                with path.open("rb") as local:
                    store.save(posixpath.join(prefix, name), File(local))
                copied += 1
                copied_bytes += size
            self.stdout.write(f"{prefix or '.'}: {copied} copied, {skipped} already in the bucket so far")
        self.stdout.write(
            f"Done: {copied} file(s) copied ({copied_bytes} bytes), {skipped} already in the bucket with the same size."
        )

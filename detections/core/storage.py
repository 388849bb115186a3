"""Where snapshots and thumbnails are kept: on local disk (`MediaStorage`, the
default), or in an S3-compatible bucket that every process shares
(`S3MediaStorage`, MEDIA_STORAGE=s3). Either way the service serves them at
stable /media/ paths after its viewer check (api/views.py MediaView).

Local disk: every detection writes two new files, the snapshot and its
thumbnail, named after a fresh uuid4. For each, Django's storage also makes
sure of the folder, locks and unlocks the file, and stats the file and the
media root to match their group, system calls that under load were most of the
cost of writing a batch (benchmarks/README.md). Here a file is created
exclusively (O_EXCL: no other writer can have it open, so no lock) in a folder
that exists, and its permissions set on the open file. A missing folder (the
first file of a day) or a name taken after all falls back to Django's way,
which handles both.
"""

import os
import posixpath
from collections.abc import Iterator
from itertools import groupby
from urllib.parse import urljoin

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# A store that is down must turn an ingest into a quick 503, not the minute
# botocore waits by default: two attempts, each connecting within 2 s.
S3_CONNECT_TIMEOUT = 2.0
S3_READ_TIMEOUT = 10.0
S3_ATTEMPTS = 2
# Seconds a client should wait before retrying when the object store is unreachable.
STORAGE_RETRY_AFTER = 5


class MediaStorage(FileSystemStorage):
    def _save(self, name, content):
        if hasattr(content, "temporary_file_path"):  # an upload spooled to disk: Django moves it
            return super()._save(name, content)
        full_path = self.path(name)
        try:
            fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except (FileNotFoundError, FileExistsError):
            return super()._save(name, content)
        try:
            with os.fdopen(fd, "wb") as file:
                if self.file_permissions_mode is not None:
                    os.fchmod(file.fileno(), self.file_permissions_mode)
                for chunk in content.chunks():
                    file.write(chunk)
        except BaseException:
            os.remove(full_path)  # never a half-written file under a name a row may point at
            raise
        return os.path.relpath(full_path, self.location).replace("\\", "/")

    def folders(self, top: str) -> Iterator[tuple[str, list[str]]]:
        """(folder, file names) for `top` and every folder below it."""
        try:
            folders, files = self.listdir(top)
        except (FileNotFoundError, NotADirectoryError):
            return
        yield top, sorted(files)
        for name in sorted(folders):
            yield from self.folders(posixpath.join(top, name))


class S3MediaStorage(S3Storage):
    """django-storages' S3 backend (AWS_* settings), with short timeouts, uploads
    in the caller's thread, and the service's own /media/ URLs."""

    def get_default_settings(self):
        defaults = super().get_default_settings()
        if defaults["client_config"] is None:
            defaults["client_config"] = Config(
                s3={"addressing_style": defaults["addressing_style"]},
                signature_version=defaults["signature_version"],
                proxies=defaults["proxies"],
                connect_timeout=S3_CONNECT_TIMEOUT,
                read_timeout=S3_READ_TIMEOUT,
                retries={"mode": "standard", "max_attempts": S3_ATTEMPTS},
            )
        if defaults["transfer_config"] is None:
            # A snapshot is one small PUT: a thread pool started per file costs more than the upload.
            defaults["transfer_config"] = TransferConfig(use_threads=False)
        return defaults

    def url(self, name, parameters=None, expire=None, http_method=None):
        # The path the service serves the object at, after its viewer check: a
        # presigned bucket URL would expire in last week's replayed event or in
        # an export, and an unsigned one would need a public bucket.
        return urljoin(settings.MEDIA_URL, filepath_to_uri(name).lstrip("/"))

    def objects(self, folder: str, *, below: bool = False) -> Iterator[tuple[str, int]]:
        """(name, size) of the objects in `folder` (and, with `below`, in every
        folder under it), in key order, a thousand keys a request."""
        prefix = self._normalize_name(clean_name(folder)).rstrip("/")
        prefix = f"{prefix}/" if prefix else ""
        paging = {} if below else {"Delimiter": "/"}
        paginator = self.connection.meta.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=prefix, **paging):
            for entry in page.get("Contents", ()):
                yield entry["Key"][len(self.location) :].lstrip("/"), entry["Size"]

    def folders(self, top: str) -> Iterator[tuple[str, list[str]]]:
        """(folder, file names) under `top`, from one listing of the bucket rather
        than a request per folder. A folder's files come together, except where
        a subfolder's keys sort between them: then it comes more than once."""
        names = (name for name, _ in self.objects(top, below=True))
        for folder, group in groupby(names, key=posixpath.dirname):
            yield folder, [posixpath.basename(name) for name in group]

    def check(self):
        """One HEAD request: the store answers, and the keys may use the bucket."""
        self.connection.meta.client.head_bucket(Bucket=self.bucket_name)


def object_store() -> S3MediaStorage | None:
    """The bucket media is kept in, or None when it is on local disk."""
    return default_storage if isinstance(default_storage, S3MediaStorage) else None


def unavailable(exc: BaseException) -> bool:
    """The object store could not be reached, or answered that it cannot serve
    now (5xx, after botocore's retries): worth a retry later, unlike a refusal
    (a wrong key, a missing bucket), which is a configuration to fix."""
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
    return isinstance(exc, (EndpointUnreachable, HTTPClientError))

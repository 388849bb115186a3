"""Media on local disk, with fewer system calls per new file than Django's own
FileSystemStorage.

Every detection writes two new files, the snapshot and its thumbnail, named
after a fresh uuid4. For each, Django's storage also makes sure of the folder,
locks and unlocks the file, and stats the file and the media root to match
their group, system calls that under load were most of the cost of writing a
batch (benchmarks/README.md). Here a file is created exclusively (O_EXCL: no
other writer can have it open, so no lock) in a folder that exists, and its
permissions set on the open file. A missing folder (the first file of a day)
or a name taken after all falls back to Django's way, which handles both.
"""

import os

from django.core.files.storage import FileSystemStorage


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

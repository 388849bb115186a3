"""Snapshots are written to local disk with fewer system calls, and the same
guarantees as Django's own storage."""

import pytest
from django.core.files.base import ContentFile

from detections.core.storage import MediaStorage


@pytest.fixture
def storage(tmp_path, settings):
    settings.FILE_UPLOAD_PERMISSIONS = 0o640
    return MediaStorage(location=tmp_path)


def test_it_writes_a_new_file_in_a_new_folder_with_the_configured_permissions(storage, tmp_path):
    name = storage.save("snapshots/2026/11/24/a.jpg", ContentFile(b"jpeg bytes"))

    assert name == "snapshots/2026/11/24/a.jpg"
    assert (tmp_path / name).read_bytes() == b"jpeg bytes"
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o640


def test_a_second_file_in_the_folder_takes_the_fast_path_and_keeps_the_permissions(storage, tmp_path):
    storage.save("snapshots/x/a.jpg", ContentFile(b"first"))

    name = storage.save("snapshots/x/b.jpg", ContentFile(b"second"))

    assert (tmp_path / name).read_bytes() == b"second"
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o640


def test_a_name_already_taken_gets_another_and_leaves_the_first_file_alone(storage, tmp_path):
    first = storage.save("snapshots/x/a.jpg", ContentFile(b"first"))

    second = storage._save(first, ContentFile(b"second"))

    assert second != first
    assert (tmp_path / first).read_bytes() == b"first"
    assert (tmp_path / second).read_bytes() == b"second"


def test_a_write_that_fails_leaves_no_file_behind(storage, tmp_path):
    storage.save("snapshots/x/a.jpg", ContentFile(b"first"))

    class FailingContent(ContentFile):
        def chunks(self, chunk_size=None):
            yield b"half"
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.save("snapshots/x/b.jpg", FailingContent(b"whatever"))

    assert sorted(p.name for p in (tmp_path / "snapshots/x").iterdir()) == ["a.jpg"]

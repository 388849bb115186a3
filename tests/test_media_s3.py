"""MEDIA_STORAGE=s3 against a real S3-compatible store (SeaweedFS, keys
required): ingest writes both files to the bucket and nothing to disk, /media/
paths stay the service's own and are served to viewers only, the socket's
replay reads thumbnails back from the bucket, deletion, purge, find_orphans,
export and the copy command work on the bucket, and a store that is down makes
ingest a 503 that stores nothing, until it is back."""

import csv
import io
import json
from datetime import timedelta

import pytest
from conftest import ServerProcess, b64, detection_body, image_bytes, store_detection, stored_files
from django.core.management import CommandError, call_command
from django.utils import timezone
from feed_client import connect, receive
from object_store import object_store

from detections.models import Detection


@pytest.fixture(scope="session")
def store():
    with object_store() as running:
        yield running


@pytest.fixture
def bucket(store) -> str:
    """A bucket of the test's own."""
    return store.new_bucket()


@pytest.fixture
def in_bucket(settings, store, bucket):
    """This test process keeps its media in `bucket` too (the commands run in it)."""
    for name, value in store.environment(bucket).items():
        setattr(settings, name, value)
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.AWS_S3_SIGNATURE_VERSION = "s3v4"
    settings.AWS_DEFAULT_ACL = None
    # Last: changing STORAGES makes Django build default_storage anew, from the settings above.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "detections.core.storage.S3MediaStorage"}}


@pytest.fixture
def s3_server(transactional_db, _media_root, credentials, store, bucket):
    with ServerProcess(_media_root, credentials, store.environment(bucket)) as process:
        yield process


def post(server, **overrides) -> dict:
    with server.device() as http:
        response = http.post("/api/detect", json=detection_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def key_of(url: str) -> str:
    assert url.startswith("/media/"), url
    return url.removeprefix("/media/")


def run(command: str, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=out)
    return out.getvalue()


# --- Through a real server process ------------------------------------------------------------


def test_a_posted_detection_is_kept_in_the_bucket_and_served_at_its_media_path_to_viewers_only(
    s3_server, store, bucket, _media_root
):
    snapshot = image_bytes(size=(320, 240))
    stored = post(s3_server, vehicle_img=b64(snapshot))

    image, thumbnail = key_of(stored["image_url"]), key_of(stored["thumbnail_url"])
    assert image.startswith("snapshots/2026/11/24/") and thumbnail.startswith("thumbnails/2026/11/24/")
    assert store.keys(bucket) == {image, thumbnail}
    assert store.read(bucket, image) == snapshot
    assert stored_files(_media_root) == []  # nothing on local disk
    with s3_server.http(s3_server.credentials.viewer) as viewer:
        served = viewer.get(stored["image_url"])
        served_thumbnail = viewer.get(stored["thumbnail_url"])
        gone = viewer.get("/media/snapshots/2026/11/24/no-such-file.jpg")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.content == snapshot
    assert served_thumbnail.content == store.read(bucket, thumbnail)
    assert gone.status_code == 404
    with s3_server.http() as anonymous:
        assert anonymous.get(stored["image_url"]).status_code in (401, 403)


def test_the_sockets_replay_carries_the_thumbnail_read_back_from_the_bucket(s3_server, store, bucket):
    stored = post(s3_server)

    with connect(s3_server, after=0) as ws:
        message = receive(ws)

    assert message["type"] == "new_detection" and message["id"] == stored["id"]
    assert message["image"] == b64(store.read(bucket, key_of(stored["thumbnail_url"])))


def test_deleting_a_detection_removes_both_its_objects_from_the_bucket(s3_server, store, bucket):
    stored = post(s3_server)
    kept = post(s3_server, id="trk-kept")

    with s3_server.staff() as staff:
        response = staff.delete(f"/api/detections/{stored['id']}/")

    assert response.status_code == 204, response.text
    assert store.keys(bucket) == {key_of(kept["image_url"]), key_of(kept["thumbnail_url"])}


def test_with_the_object_store_down_ingest_answers_503_and_stores_nothing_until_the_store_is_back(
    transactional_db, _media_root, credentials
):
    with object_store() as own:  # a store of its own to stop: the other tests keep theirs
        bucket = own.new_bucket()
        with ServerProcess(_media_root, credentials, own.environment(bucket)) as server, server.device() as http:
            before = post(server, id="trk-before")
            own.stop()

            refused = http.post("/api/detect", json=detection_body(id="trk-while-down"))
            readiness = http.get("/readyz")

            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "storage_unavailable"
            assert int(refused.headers["Retry-After"]) > 0
            assert not Detection.objects.filter(tracking_id="trk-while-down").exists()
            assert readiness.status_code == 503
            assert readiness.json()["failing"] == ["object_store"]

            own.start()
            after = post(server, id="trk-while-down")
            assert http.get("/readyz").status_code == 200

        stored = {key_of(d[field]) for d in (before, after) for field in ("image_url", "thumbnail_url")}
        assert own.keys(bucket) == stored  # no file of the refused attempt was left behind


# --- Operator commands and the export, in this process ------------------------------------------


def test_a_purge_removes_the_expired_detections_objects_from_the_bucket(
    in_bucket, store, bucket, db, django_capture_on_commit_callbacks
):
    old = store_detection("trk-old", detected_at=timezone.now() - timedelta(days=40))
    recent = store_detection("trk-recent", detected_at=timezone.now())
    assert len(store.keys(bucket)) == 4

    with django_capture_on_commit_callbacks(execute=True):
        output = run("purge_detections", "--older-than", "30")

    assert "Deleted 1 detection(s) and 2 image file(s)" in output
    assert store.keys(bucket) == {recent.image.name, recent.thumbnail.name}
    assert not Detection.objects.filter(pk=old.pk).exists()


def test_find_orphans_lists_the_bucket_for_an_orphan_object_and_a_row_whose_object_is_gone(
    in_bucket, store, bucket, db
):
    kept = store_detection("trk-kept")
    robbed = store_detection("trk-robbed", detected_at=kept.detected_at + timedelta(seconds=1))
    orphan = f"{kept.image.name.rsplit('/', 1)[0]}/orphan.jpg"
    store.client().put_object(Bucket=bucket, Key=orphan, Body=image_bytes())
    store.client().delete_object(Bucket=bucket, Key=robbed.thumbnail.name)

    output = run("find_orphans", "--min-age", "0")

    assert f"orphan file: {orphan}" in output
    assert f"missing file: detection {robbed.pk} thumbnail {robbed.thumbnail.name}" in output
    assert output.endswith(
        "1 orphan file(s) found; 1 missing file(s) of stored detections. Run with --delete to remove the orphans.\n"
    )
    run("find_orphans", "--min-age", "0", "--delete")
    assert orphan not in store.keys(bucket)
    assert kept.image.name in store.keys(bucket)


def test_an_exports_image_url_is_the_stable_media_path_the_service_serves(in_bucket, viewer_client):
    detection = store_detection()

    response = viewer_client.get("/api/detections/export.csv")

    assert response.status_code == 200
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["image_url"] == f"/media/{detection.image.name}"


def test_the_copy_command_copies_a_local_media_tree_and_a_second_run_copies_nothing(in_bucket, store, bucket, tmp_path):
    files = {
        "snapshots/2026/11/24/a.jpg": image_bytes(),
        "thumbnails/2026/11/24/a.jpg": image_bytes(size=(16, 12)),
        "snapshots/2026/11/25/b.png": image_bytes("PNG"),
    }
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)

    first = run("copy_media_to_s3", "--from", str(tmp_path))
    second = run("copy_media_to_s3", "--from", str(tmp_path))

    assert store.keys(bucket) == set(files)
    assert {name: store.read(bucket, name) for name in files} == files
    assert "snapshots/2026/11/24: 1 copied, 0 already in the bucket so far" in first
    assert first.splitlines()[-1].startswith("Done: 3 file(s) copied")
    assert second.splitlines()[-1] == "Done: 0 file(s) copied (0 bytes), 3 already in the bucket with the same size."


def test_the_copy_command_copies_again_a_file_whose_object_differs_in_size(in_bucket, store, bucket, tmp_path):
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "a.jpg").write_bytes(image_bytes())
    store.client().put_object(Bucket=bucket, Key="snapshots/a.jpg", Body=b"cut short")

    output = run("copy_media_to_s3", "--from", str(tmp_path))

    assert output.splitlines()[-1].startswith("Done: 1 file(s) copied")
    assert store.read(bucket, "snapshots/a.jpg") == image_bytes()


def test_the_copy_command_refuses_to_run_while_media_is_on_local_disk(tmp_path):
    with pytest.raises(CommandError, match="MEDIA_STORAGE is not s3"):
        run("copy_media_to_s3", "--from", str(tmp_path))


def test_readyz_checks_the_object_store_when_media_is_in_a_bucket(in_bucket, client, db):
    body = json.loads(client.get("/readyz").content)

    assert body["checks"]["object_store"]["status"] == "ok"

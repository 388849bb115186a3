"""POST /api/detect and POST /api/detections/: what is stored, and what is refused
(protocol.md, Ingest). In-process, through the full DRF stack."""

import base64
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from conftest import api_client, b64, detection_body, image_bytes, store_detection, stored_files
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from helpers import counter_state
from PIL import Image
from prometheus_client import REGISTRY

from detections.api.serializers import DetectionSerializer
from detections.core import counters, writes
from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.ingest.body import VEHICLE_TYPES
from detections.models import Detection, DeviceKey, Event

pytestmark = pytest.mark.django_db

INGEST_PATHS = ["/api/detect", "/api/detections/"]
DETECTION_FIELDS = {
    "id",
    "tracking_id",
    "vehicle_type",
    "camera",
    "time",
    "received_at",
    "confidence",
    "bbox",
    "plate",
    "direction",
    "image_url",
    "thumbnail_url",
}


# --- Helpers -----------------------------------------------------------------------------


def post(client, body, path="/api/detect"):
    return client.post(path, body, format="json")


def noisy_jpeg(size=(128, 96), quality=90, seed=1) -> bytes:
    """A JPEG of random pixels: it barely compresses, so its size follows its pixel count."""
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def truncated(image: bytes) -> bytes:
    return image[: len(image) // 2]


def multipart_body(image: bytes) -> dict:
    """The legacy fields as form fields, the snapshot as a file part."""
    body = detection_body(vehicle_img=..., bbox=...)
    body["vehicle_img"] = SimpleUploadedFile("snapshot.jpg", image, content_type="image/jpeg")
    return body


def assert_stored_with_files(response, media_root, *, image: bytes, extension: str) -> Detection:
    """The answer is 201, and the row has the image file as sent plus a JPEG thumbnail."""
    assert response.status_code == 201, response.content
    detection = Detection.objects.get(pk=response.json()["id"])
    assert detection.image.name.endswith(f".{extension}")
    assert (media_root / detection.image.name).read_bytes() == image
    thumbnail = Image.open(media_root / detection.thumbnail.name)
    assert thumbnail.format == "JPEG"
    assert thumbnail.width <= 160 and thumbnail.height <= 120
    files = [media_root / detection.image.name, media_root / detection.thumbnail.name]
    assert stored_files(media_root) == sorted(files)
    assert response.json()["image_url"] == f"/media/{detection.image.name}"
    assert response.json()["thumbnail_url"] == f"/media/{detection.thumbnail.name}"
    return detection


def assert_rejected(response, media_root, status, error, field=None) -> dict:
    """A JSON error body with a code and a sentence; nothing stored, no file left."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"]
    if field is None:
        assert "field" not in body, body
    else:
        assert body["field"] == field, body
    assert Detection.objects.count() == 0
    assert Event.objects.count() == 0
    assert stored_files(media_root) == []
    return body


# --- What is stored --------------------------------------------------------------------------


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_a_legacy_body_is_stored_with_its_image_and_thumbnail(device_client, _media_root, path):
    response = post(device_client, detection_body(), path)

    detection = assert_stored_with_files(response, _media_root, image=image_bytes(), extension="jpg")
    body = response.json()
    assert set(body) == DETECTION_FIELDS
    assert body["id"] == detection.pk
    assert body["tracking_id"] == "trk-0042"
    assert body["vehicle_type"] == "car"
    assert body["camera"] == "gate-1"
    assert body["time"] == "2026-11-24T08:15:30.120000Z"
    assert body["confidence"] == 0.91
    assert body["bbox"] == [412, 220, 160, 96]
    assert body["plate"] == "34ABC123"
    assert detection.detected_at == datetime(2026, 11, 24, 8, 15, 30, 120000, tzinfo=UTC)
    assert detection.camera.name == "gate-1"


def test_the_aliases_tracking_id_and_image_are_accepted(device_client, _media_root):
    body = detection_body(id=..., vehicle_img=..., tracking_id="trk-alias", image=b64(image_bytes()))

    response = post(device_client, body, "/api/detections/")

    assert_stored_with_files(response, _media_root, image=image_bytes(), extension="jpg")
    assert response.json()["tracking_id"] == "trk-alias"


def test_an_alias_that_contradicts_its_field_is_refused(device_client, _media_root):
    response = post(device_client, detection_body(tracking_id="trk-other"))

    assert_rejected(response, _media_root, 400, "conflict", "tracking_id")


@pytest.mark.parametrize(
    "overrides, field, stored",
    [
        pytest.param({"id": 42}, "tracking_id", "42", id="numeric id"),
        pytest.param({"plate": "34 ÇĞŞ 123"}, "plate", "34 ÇĞŞ 123", id="non-ASCII plate"),
    ],
)
def test_text_fields_are_stored_as_sent(device_client, overrides, field, stored):
    response = post(device_client, detection_body(**overrides))

    assert response.status_code == 201, response.content
    assert response.json()[field] == stored


@pytest.mark.parametrize("vehicle_type", ["Car", "CAR", "cAr"])
def test_the_vehicle_type_is_accepted_in_any_case(device_client, vehicle_type):
    response = post(device_client, detection_body(vehicle_type=vehicle_type))

    assert response.status_code == 201, response.content
    assert response.json()["vehicle_type"] == "car"
    assert Detection.objects.get().vehicle_type == "car"


@pytest.mark.parametrize(
    "sent",
    ["2026-11-24T08:15:30", "2026-11-24T08:15:30Z", "2026-11-24T11:15:30+03:00"],
    ids=["no offset", "Z", "+03:00"],
)
def test_a_time_without_an_offset_is_utc_and_an_offset_is_honoured(device_client, sent):
    response = post(device_client, detection_body(time=sent))

    assert response.status_code == 201, response.content
    assert response.json()["time"] == "2026-11-24T08:15:30.000000Z"
    assert Detection.objects.get().detected_at == datetime(2026, 11, 24, 8, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "fmt, prefix, extension",
    [
        ("JPEG", "", "jpg"),
        ("JPEG", "data:image/jpeg;base64,", "jpg"),
        ("JPEG", "data:image/jpg;base64,", "jpg"),
        ("PNG", "", "png"),
        ("PNG", "data:image/png;base64,", "png"),
        ("WEBP", "", "webp"),
        ("WEBP", "data:image/webp;base64,", "webp"),
    ],
)
def test_jpeg_png_and_webp_are_accepted_with_or_without_a_data_uri_prefix(
    device_client, _media_root, fmt, prefix, extension
):
    image = image_bytes(fmt)

    response = post(device_client, detection_body(vehicle_img=prefix + b64(image)))

    assert_stored_with_files(response, _media_root, image=image, extension=extension)


def test_base64_wrapped_over_lines_is_accepted(device_client, _media_root):
    encoded = b64(image_bytes())
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))

    response = post(device_client, detection_body(vehicle_img=wrapped))

    assert_stored_with_files(response, _media_root, image=image_bytes(), extension="jpg")


def test_a_snapshot_of_about_two_megabytes_is_stored(device_client, _media_root):
    image = noisy_jpeg(size=(1600, 1080), quality=95)
    assert 1_800_000 < len(image) < 2_300_000

    response = post(device_client, detection_body(vehicle_img=b64(image)))

    assert_stored_with_files(response, _media_root, image=image, extension="jpg")


@pytest.mark.parametrize("vehicle_img", [..., None], ids=["omitted", "null"])
def test_a_detection_without_an_image_is_stored_without_files(device_client, _media_root, vehicle_img):
    response = post(device_client, detection_body(vehicle_img=vehicle_img))

    assert response.status_code == 201, response.content
    assert response.json()["image_url"] is None
    assert response.json()["thumbnail_url"] is None
    detection = Detection.objects.get()
    assert not detection.image and not detection.thumbnail
    assert stored_files(_media_root) == []


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_a_multipart_upload_with_the_image_as_a_file_part_is_stored(device_client, _media_root, path):
    image = noisy_jpeg()

    response = device_client.post(path, multipart_body(image), format="multipart")

    assert_stored_with_files(response, _media_root, image=image, extension="jpg")
    body = response.json()
    assert (body["tracking_id"], body["vehicle_type"], body["camera"]) == ("trk-0042", "car", "gate-1")
    assert (body["confidence"], body["plate"]) == (0.91, "34ABC123")


def test_a_multipart_upload_carries_the_bbox_as_repeated_form_fields(device_client):
    body = multipart_body(noisy_jpeg())
    body["bbox"] = ["412", "220", "160", "96"]

    response = device_client.post("/api/detect", body, format="multipart")

    assert response.status_code == 201, response.content
    assert response.json()["bbox"] == [412, 220, 160, 96]


@pytest.mark.parametrize("path", INGEST_PATHS)
@pytest.mark.parametrize(
    "replayed_time", ["2026-11-24T08:15:30.120Z", "2026-11-24T11:15:30.12+03:00"], ids=["same text", "same instant"]
)
def test_a_replayed_detection_answers_200_with_the_stored_record_and_stores_nothing_new(
    device_client, _media_root, path, replayed_time, django_capture_on_commit_callbacks
):
    first = post(device_client, detection_body(), path)
    assert first.status_code == 201, first.content
    files_after_first = stored_files(_media_root)

    with django_capture_on_commit_callbacks() as callbacks:
        replay = post(device_client, detection_body(time=replayed_time), path)

    assert replay.status_code == 200, replay.content
    assert replay.json() == first.json()
    assert Detection.objects.count() == 1
    assert Event.objects.count() == 1
    assert callbacks == []  # nothing to publish
    assert stored_files(_media_root) == files_after_first


@pytest.mark.parametrize(
    "first, second",
    [(("trk-a", "gate-1"), ("TRK-A", "gate-1")), (("trk-a", "gate-1"), ("trk-a", "gate-2"))],
    ids=["tracking ids differing in case", "another camera"],
)
def test_detections_differing_in_tracking_id_or_camera_are_both_stored(device_client, first, second):
    bodies = [detection_body(id=tracking_id, camera=camera) for tracking_id, camera in (first, second)]

    responses = [post(device_client, body) for body in bodies]

    assert [r.status_code for r in responses] == [201, 201], responses[1].content
    assert sorted((r.json()["tracking_id"], r.json()["camera"]) for r in responses) == sorted([first, second])
    assert Detection.objects.count() == 2


@pytest.mark.parametrize("camera", [..., ""], ids=["omitted", "blank"])
def test_a_detection_without_a_camera_is_filed_under_the_only_camera_of_its_key(cameras, camera):
    _, secret = issue_device_key(cameras=[cameras["yard"]])

    response = post(api_client(secret), detection_body(camera=camera))

    assert response.status_code == 201, response.content
    assert response.json()["camera"] == "yard"
    assert Detection.objects.get().camera == cameras["yard"]


def test_a_key_bound_to_several_cameras_must_name_one(device_client, _media_root):
    response = post(device_client, detection_body(camera=...))

    body = assert_rejected(response, _media_root, 400, "required", "camera")
    assert "gate-1" in body["detail"]


@pytest.mark.parametrize("camera", ["gate-9", "GATE-1"], ids=["unknown camera", "another spelling"])
def test_a_key_may_not_post_for_a_camera_it_is_not_bound_to(device_client, _media_root, camera):
    response = post(device_client, detection_body(camera=camera))

    assert_rejected(response, _media_root, 403, "camera_not_allowed")


@pytest.mark.parametrize(
    "who, status, error",
    [
        ("nobody", 401, "not_authenticated"),
        ("unknown key", 401, "authentication_failed"),
        ("revoked key", 401, "authentication_failed"),
        ("viewer", 403, "permission_denied"),
    ],
)
@pytest.mark.parametrize("path", INGEST_PATHS)
def test_only_a_valid_device_key_may_post(credentials, cameras, _media_root, who, status, error, path):
    key, secret = issue_device_key(cameras=[cameras["gate-1"]])
    revoke_device_keys(DeviceKey.objects.filter(pk=key.pk))
    secrets = {"nobody": None, "unknown key": "vmk_" + "x" * 43, "revoked key": secret, "viewer": credentials.viewer}

    response = post(api_client(secrets[who]), detection_body(), path)

    assert_rejected(response, _media_root, status, error)


def test_a_new_detection_is_published_with_its_thumbnail_after_commit(
    device_client, feed_listener, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(device_client, detection_body())

    message = feed_listener.receive()
    assert message["type"] == "new_detection"
    assert message["id"] == response.json()["id"]
    assert message["count"] == 1
    assert message["thumbnail_url"] == response.json()["thumbnail_url"]
    assert Image.open(io.BytesIO(base64.b64decode(message["image"], validate=True))).format == "JPEG"


# --- What is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vehicle_img",
    [
        pytest.param("this is not base64!", id="not base64"),
        pytest.param("QUJD" + "é" * 8, id="non-ASCII in base64"),
        pytest.param("QUJDRA", id="base64 without padding"),
        pytest.param(b64(b"plain text, not a picture at all"), id="not an image"),
        pytest.param(b64(truncated(noisy_jpeg())), id="truncated JPEG"),
        pytest.param(b64(noisy_jpeg())[:-3], id="base64 cut mid-quantum"),
        pytest.param(b64(image_bytes("GIF")), id="GIF"),
        pytest.param(b64(image_bytes("BMP")), id="BMP"),
        pytest.param("data:image/png;base64," + b64(image_bytes()), id="data URI claims PNG holds JPEG"),
        pytest.param("data:image/jpeg;charset=x;;base64," + b64(image_bytes()), id="malformed data URI"),
        pytest.param("", id="empty"),
    ],
)
def test_it_rejects_a_snapshot_that_is_not_an_accepted_image(device_client, _media_root, vehicle_img):
    response = post(device_client, detection_body(vehicle_img=vehicle_img))

    assert_rejected(response, _media_root, 400, "invalid_image", "vehicle_img")


@pytest.mark.parametrize("field", ["id", "vehicle_type", "time"])
def test_it_rejects_a_body_missing_a_required_field(device_client, _media_root, field):
    response = post(device_client, detection_body(**{field: ...}))

    body = assert_rejected(response, _media_root, 400, "required", field)
    assert field in body["detail"]


def test_it_rejects_an_unknown_vehicle_type_listing_the_accepted_ones(device_client, _media_root):
    response = post(device_client, detection_body(vehicle_type="spaceship"))

    body = assert_rejected(response, _media_root, 400, "invalid_choice", "vehicle_type")
    assert "spaceship" in body["detail"]
    for accepted in VEHICLE_TYPES:
        assert accepted in body["detail"]


@pytest.mark.parametrize(
    "time, error",
    [
        pytest.param("yesterday at noon", "invalid", id="not a time"),
        pytest.param("2026-13-45T08:15:30Z", "invalid", id="no such date"),
        pytest.param(1764000000, "invalid", id="a number"),
        pytest.param("1970-01-01T00:00:00Z", "time_out_of_range", id="year 1970"),
        pytest.param((timezone.now() + timedelta(days=2)).isoformat(), "time_out_of_range", id="two days ahead"),
    ],
)
def test_it_rejects_a_bad_time(device_client, _media_root, time, error):
    response = post(device_client, detection_body(time=time))

    assert_rejected(response, _media_root, 400, error, "time")


@pytest.mark.parametrize(
    "overrides, field, error",
    [
        pytest.param({"id": ["trk-1"]}, "id", "invalid", id="id as a list"),
        pytest.param({"id": {"value": "trk-1"}}, "id", "invalid", id="id as an object"),
        pytest.param({"id": ""}, "id", "blank", id="id blank"),
        pytest.param({"id": "t" * 101}, "id", "max_length", id="id over 100 characters"),
        pytest.param({"vehicle_type": ["car"]}, "vehicle_type", "invalid", id="vehicle_type as a list"),
        pytest.param({"vehicle_img": 12345}, "vehicle_img", "invalid", id="vehicle_img as a number"),
        pytest.param({"confidence": "high"}, "confidence", "invalid", id="confidence as a string"),
        pytest.param({"confidence": 1.5}, "confidence", "max_value", id="confidence 1.5"),
        pytest.param({"confidence": -0.1}, "confidence", "min_value", id="confidence negative"),
        pytest.param({"bbox": [412, 220, 160]}, "bbox", "min_length", id="bbox with 3 numbers"),
        pytest.param({"bbox": [412, 220, 160, 96, 1]}, "bbox", "max_length", id="bbox with 5 numbers"),
        pytest.param({"bbox": "412,220,160,96"}, "bbox", "not_a_list", id="bbox as a string"),
        pytest.param({"bbox": [412, 220, -1, 96]}, "bbox.2", "min_value", id="bbox negative"),
        pytest.param({"camera": ["gate-1"]}, "camera", "invalid", id="camera as a list"),
        pytest.param({"plate": "P" * 33}, "plate", "max_length", id="plate over 32 characters"),
    ],
)
def test_it_rejects_a_field_of_the_wrong_type_or_range(device_client, _media_root, overrides, field, error):
    response = post(device_client, detection_body(**overrides))

    body = assert_rejected(response, _media_root, 400, error, field)
    assert body["detail"].startswith(field)


@pytest.mark.parametrize("field", ["plate", "id", "camera"])
def test_it_rejects_control_characters_in_a_text_field(device_client, _media_root, field):
    response = post(device_client, detection_body(**{field: "34\x1bABC\x07123"}))

    assert_rejected(response, _media_root, 400, "invalid", field)


def test_it_rejects_a_body_that_is_a_json_list(device_client, _media_root):
    response = post(device_client, [detection_body()])

    assert_rejected(response, _media_root, 400, "invalid")


def test_it_rejects_malformed_json_with_400(device_client, _media_root):
    raw = json.dumps(detection_body())[:-10]

    response = device_client.post("/api/detect", raw, content_type="application/json")

    assert_rejected(response, _media_root, 400, "malformed_request")


def test_it_rejects_a_body_that_is_not_json_or_a_form_with_415(device_client, _media_root):
    response = device_client.post("/api/detect", json.dumps(detection_body()), content_type="text/plain")

    assert_rejected(response, _media_root, 415, "unsupported_media_type")


@pytest.mark.parametrize("upload", ["base64", "multipart"])
def test_it_rejects_an_image_over_the_byte_limit_with_413(device_client, _media_root, settings, upload):
    image = noisy_jpeg(size=(200, 150))
    settings.MAX_IMAGE_BYTES = len(image) // 2
    if upload == "base64":
        response = post(device_client, detection_body(vehicle_img=b64(image)))
    else:
        response = device_client.post("/api/detect", multipart_body(image), format="multipart")

    assert_rejected(response, _media_root, 413, "image_too_large", "vehicle_img")


def test_it_rejects_an_image_over_the_pixel_limit_with_413(device_client, _media_root, settings):
    settings.MAX_IMAGE_PIXELS = 64 * 48 - 1

    response = post(device_client, detection_body(vehicle_img=b64(image_bytes(size=(64, 48)))))

    body = assert_rejected(response, _media_root, 413, "image_too_large", "vehicle_img")
    assert "64x48" in body["detail"]


def test_it_rejects_a_body_over_the_upload_limit_with_413(device_client, _media_root, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = post(device_client, detection_body(vehicle_img=b64(noisy_jpeg(size=(200, 150)))))

    assert_rejected(response, _media_root, 413, "request_too_large")


# --- Batches -------------------------------------------------------------------------------------

BATCH_PATH = "/api/detections/batch/"


def post_batch(client, bodies):
    response = client.post(BATCH_PATH, {"detections": bodies}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def batch_bodies(n, *, prefix="b"):
    """n valid bodies over two cameras, every vehicle type and two hours."""
    start = datetime(2026, 11, 24, 8, 58, tzinfo=UTC)
    return [
        detection_body(
            id=f"{prefix}-{i}",
            camera=("gate-1", "gate-2")[i % 2],
            vehicle_type=VEHICLE_TYPES[i % len(VEHICLE_TYPES)],
            time=(start + timedelta(seconds=30 * i)).isoformat(),
        )
        for i in range(n)
    ]


def test_a_batch_stores_every_item_and_numbers_its_events_in_item_order(device_client, _media_root):
    store_detection("before")  # seq 1, count 1
    bodies = batch_bodies(6)

    answer = post_batch(device_client, bodies)

    assert answer["created"] == 6 and answer["duplicate"] == 0 and answer["error"] == 0
    ids = [result["id"] for result in answer["results"]]
    assert [result["status"] for result in answer["results"]] == ["created"] * 6
    assert list(Detection.objects.filter(pk__in=ids).order_by("id").values_list("tracking_id", flat=True)) == [
        body["id"] for body in bodies
    ]
    events = list(Event.objects.filter(seq__gt=1).order_by("seq"))
    assert [event.seq for event in events] == [2, 3, 4, 5, 6, 7]
    assert [event.detection_id for event in events] == ids
    assert [event.payload["count"] for event in events] == [2, 3, 4, 5, 6, 7]
    assert counters.current_position() == counters.FeedPosition(seq=7, count=Detection.objects.count())
    assert len(stored_files(_media_root)) == 2 * 7


def test_a_batch_event_is_the_one_a_single_post_writes(device_client, _media_root):
    single = post(device_client, detection_body(id="single")).json()
    batched = post_batch(device_client, [detection_body(id="batched")])["results"][0]

    single_event, batch_event = Event.objects.order_by("seq")
    for event, stored in ((single_event, single), (batch_event, Detection.objects.get(pk=batched["id"]))):
        stored = stored if isinstance(stored, dict) else DetectionSerializer(stored).data
        expected = {
            key: stored[key]
            for key in (
                "id",
                "tracking_id",
                "vehicle_type",
                "camera",
                "time",
                "image_url",
                "thumbnail_url",
                "confidence",
                "bbox",
                "plate",
                "direction",
            )
        }
        assert event.payload == {"type": "new_detection", "seq": event.seq, "count": event.seq, **expected}
        assert (event.kind, event.camera, event.vehicle_type) == (
            "new_detection",
            stored["camera"],
            stored["vehicle_type"],
        )


def test_after_a_batch_the_counters_equal_a_full_recount(device_client):
    store_detection("before", camera="gate-2", vehicle_type="bus")
    post_batch(device_client, batch_bodies(20))
    kept = counter_state()

    counters.rebuild()

    assert counter_state() == kept
    assert kept[0].count == 21


def test_items_stored_before_or_earlier_in_the_batch_are_duplicates_with_the_stored_id(device_client, _media_root):
    stored = store_detection("trk-stored", detected_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    old = detection_body(id="trk-stored", time="2026-11-24T10:00:00+02:00")  # the same instant, another offset
    new = detection_body(id="trk-new")

    answer = post_batch(device_client, [new, old, new, old, detection_body(id="trk-other")])

    results = answer["results"]
    assert [r["status"] for r in results] == ["created", "duplicate", "duplicate", "duplicate", "created"]
    assert [r["id"] for r in results] == [results[0]["id"], stored.pk, results[0]["id"], stored.pk, results[4]["id"]]
    assert Detection.objects.count() == 3
    assert Event.objects.count() == 3
    assert len(stored_files(_media_root)) == 6  # no file for a duplicate


def test_a_mixed_batch_answers_each_item_exactly_as_a_single_post_would(device_client, _media_root):
    stored = store_detection("trk-stored")
    invalid = [
        detection_body(id="bad-type", vehicle_type="spaceship"),
        detection_body(id="bad-image", vehicle_img=b64(b"not an image")),
        detection_body(id="bad-camera", camera="gate-9"),
        "not an object",
    ]
    items = [
        detection_body(id="ok-1"),
        invalid[0],
        detection_body(id="trk-stored"),
        invalid[1],
        invalid[2],
        detection_body(id="ok-2"),
        invalid[3],
    ]

    answer = post_batch(device_client, items)

    singles = [post(device_client, body).json() for body in invalid]  # what a single POST answers
    results = answer["results"]
    assert (answer["created"], answer["duplicate"], answer["error"]) == (2, 1, 4)
    assert results[0] == {"index": 0, "status": "created", "id": Detection.objects.get(tracking_id="ok-1").pk}
    assert results[2] == {"index": 2, "status": "duplicate", "id": stored.pk}
    assert results[5] == {"index": 5, "status": "created", "id": Detection.objects.get(tracking_id="ok-2").pk}
    for index, single in zip((1, 3, 4, 6), singles, strict=True):
        # A key's camera refusal names its field in a batch, where it is one item's fault.
        expected = {**single, "field": "camera"} if single["error"] == "camera_not_allowed" else single
        assert results[index] == {"index": index, "status": "error", **expected}
    assert [r["field"] for r in (results[1], results[3], results[4])] == ["vehicle_type", "vehicle_img", "camera"]
    assert Detection.objects.count() == 3


def test_a_batch_that_fails_in_its_transaction_leaves_no_row_no_event_no_file_and_no_count(
    device_client, _media_root, monkeypatch, django_capture_on_commit_callbacks
):
    store_detection("before")
    files, state = stored_files(_media_root), counter_state()

    def fail(*args, **kwargs):
        raise RuntimeError("the event insert failed")

    monkeypatch.setattr(Event.objects, "bulk_create", fail)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError, match="event insert"),
    ):
        device_client.post(BATCH_PATH, {"detections": batch_bodies(5)}, format="json")

    assert callbacks == []
    assert Detection.objects.count() == 1
    assert Event.objects.count() == 1
    assert counter_state() == state
    assert stored_files(_media_root) == files


def test_a_batch_that_loses_a_race_for_a_key_answers_each_item_through_the_single_path(
    device_client, _media_root, monkeypatch
):
    # A parallel request stores "trk-raced" after this batch looked for stored keys.
    raced = store_detection("trk-raced")
    look_up = writes._stored_by_key
    lookups = []

    def missing_the_race(keys):
        lookups.append(keys)
        return {} if len(lookups) == 1 else look_up(keys)

    monkeypatch.setattr(writes, "_stored_by_key", missing_the_race)
    items = [detection_body(id="trk-1"), detection_body(id="trk-raced"), detection_body(id="trk-2")]

    answer = post_batch(device_client, items)

    assert [r["status"] for r in answer["results"]] == ["created", "duplicate", "created"]
    assert answer["results"][1]["id"] == raced.pk
    assert Detection.objects.count() == 3
    assert list(Event.objects.values_list("seq", flat=True)) == [1, 2, 3]
    assert len(stored_files(_media_root)) == 6  # the files of the failed bulk insert were removed


def test_a_database_that_returns_no_ids_from_a_bulk_insert_gets_them_read_back(device_client, monkeypatch):
    # MySQL 8 (docker-compose) does not return ids from a bulk insert; MariaDB and SQLite do.
    insert = Detection.objects.bulk_create

    def insert_without_ids(rows, **kwargs):
        rows = insert(rows, **kwargs)
        for row in rows:
            row.pk = None
        return rows

    monkeypatch.setattr(Detection.objects, "bulk_create", insert_without_ids)
    bodies = batch_bodies(4)

    answer = post_batch(device_client, bodies)

    stored = dict(Detection.objects.values_list("tracking_id", "pk"))
    assert [r["id"] for r in answer["results"]] == [stored[body["id"]] for body in bodies]
    assert [event.detection_id for event in Event.objects.order_by("seq")] == [stored[body["id"]] for body in bodies]


def test_every_batch_event_is_published_after_commit_in_seq_order_with_its_thumbnail(
    device_client, feed_listener, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_batch(device_client, batch_bodies(5))

    messages = [feed_listener.receive() for _ in range(5)]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert [m["id"] for m in messages] == [r["id"] for r in answer["results"]]
    for message in messages:
        assert Image.open(io.BytesIO(base64.b64decode(message["image"], validate=True))).format == "JPEG"


def test_a_batch_counts_each_created_item_in_the_ingest_metric(device_client):
    def ingested(camera):
        return (
            REGISTRY.get_sample_value(
                "vehicle_monitor_detections_ingested_total", {"camera": camera, "vehicle_type": "car"}
            )
            or 0
        )

    before = ingested("gate-1"), ingested("gate-2")
    bodies = [detection_body(id=f"m-{i}", camera=("gate-1", "gate-2")[i % 3 == 0]) for i in range(6)]
    post_batch(device_client, bodies + bodies[:2])  # the repeats are duplicates, not counted

    assert (ingested("gate-1"), ingested("gate-2")) == (before[0] + 4, before[1] + 2)


def test_the_queries_of_a_batch_do_not_grow_with_its_size(device_client):
    post_batch(device_client, batch_bodies(2, prefix="warm-up"))  # the key's and cameras' last use are written once

    queries = {}
    for size in (5, 50):
        with CaptureQueriesContext(connection) as captured:
            answer = post_batch(device_client, batch_bodies(size, prefix=f"size-{size}"))
        assert answer["created"] == size
        queries[size] = len(captured)

    assert queries[50] == queries[5]
    # The key and its cameras; stored keys; savepoint; rows; two counter tables;
    # the feed row (update, read); events; release.
    assert queries[50] <= 10, queries


def test_a_single_ingest_makes_a_fixed_few_queries(device_client, django_assert_num_queries):
    """None grows with the table: no COUNT(*), no scan. The key's last use and the
    camera's last seen are written at most every 30 s, so the warm-up takes them."""
    assert device_client.post("/api/detect", detection_body(id="warm-up"), format="json").status_code == 201
    # The key with its cameras (one join); the stored detection with that key;
    # savepoint (the test's transaction; BEGIN in production); the row; two
    # counter upserts; the feed row (update, read); the event; release (COMMIT).
    with django_assert_num_queries(10):
        assert device_client.post("/api/detect", detection_body(id="pinned"), format="json").status_code == 201

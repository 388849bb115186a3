"""Detections published by units to {prefix}/ingest/{camera}: checked as
POST /api/detect checks a body (`detections.ingest.body`) and stored by the one
write path (`writes.detections_create`, many messages in one transaction, as
the group commit stores single POSTs), with the same idempotency: the same
camera, tracking id and time again stores nothing and is answered `duplicate`.

The topic names the camera; the broker's accounts and ACL decide who may
publish there (docs/mqtt.md), so device keys and their rate limit do not apply.
Each message gets a result for {prefix}/ingest/{camera}/result:

    {"tracking_id", "time", "status": "created|duplicate|error", "id", "error", "detail", "field"}

A message that is not JSON, too large (MAX_REQUEST_BYTES), for an unknown
camera, naming another camera, or failing validation is an `error`, and
nothing of it is stored.
"""

import json
from dataclasses import dataclass

from django.conf import settings
from rest_framework import serializers

from detections.core import writes
from detections.core.formats import format_time
from detections.ingest.body import DetectionIngestSerializer
from detections.ingest.errors import validation_body
from detections.models import Camera
from detections.mqtt import topics as wire

RESULT_FIELDS = ("tracking_id", "time", "status", "id", "error", "detail", "field")


@dataclass(frozen=True)
class Incoming:
    camera: str  # the topic's camera level, as published to
    payload: bytes


class Refused(Exception):
    def __init__(self, error: str, detail: str, field: str | None = None):
        super().__init__(detail)
        self.error, self.detail, self.field = error, detail, field


def results(messages: list[Incoming]) -> list[dict]:
    """Store what is valid among `messages` (one transaction) and say what
    became of each, in order. Raises only what the database raises (nothing is
    stored then, and the caller tries again)."""
    cameras = _cameras_by_topic()
    checker = DetectionIngestSerializer()
    answers: list[dict | None] = []
    valid: dict[int, writes.NewDetection] = {}
    for index, message in enumerate(messages):
        body = None
        try:
            body = _json_object(message.payload)
            camera = cameras.get(message.camera)
            if camera is None:
                raise Refused("unknown_camera", f"No camera has the topic name '{message.camera}'.", "camera")
            try:
                data = checker.validate_another(body)
            except serializers.ValidationError as invalid:
                problem = validation_body(invalid.detail)
                raise Refused(problem["error"], problem["detail"], problem.get("field")) from None
            if data["camera"] and data["camera"] != camera.name:
                raise Refused(
                    "camera_mismatch",
                    f"The payload names camera '{data['camera']}', the topic camera '{camera.name}'.",
                    "camera",
                )
            valid[index] = checker.new_detection(camera, data)
            answers.append(None)
        except Refused as refused:
            answers.append(_error(body, refused))
    stored = writes.detections_create(list(valid.values()))
    for index, outcome in zip(valid, stored, strict=True):
        if isinstance(outcome, writes.IdempotencyConflict):  # no key is sent this way; kept exhaustive
            answers[index] = _error(None, Refused("idempotency_key_reused", str(outcome)))
            continue
        answers[index] = _answer(
            tracking_id=outcome.detection.tracking_id,
            time=format_time(outcome.detection.detected_at),
            status="created" if outcome.created else "duplicate",
            id=outcome.detection.pk,
        )
    return answers


def _cameras_by_topic() -> dict[str, Camera]:
    cameras = {camera.pk: camera for camera in Camera.objects.all()}
    names = wire.topic_names([(pk, camera.name) for pk, camera in cameras.items()])
    return {names[pk]: camera for pk, camera in cameras.items()}


def _json_object(payload: bytes):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if len(payload) > limit:
        raise Refused("request_too_large", f"The payload is {len(payload)} bytes; the most is {limit}.")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError) as problem:
        raise Refused("malformed_request", f"The payload is not JSON: {problem}") from None


def _error(body, refused: Refused) -> dict:
    """An error result, with the tracking id and time the body gave, if any."""
    said = body if isinstance(body, dict) else {}
    tracking_id = said.get("id", said.get("tracking_id"))
    return _answer(
        tracking_id=tracking_id if isinstance(tracking_id, str) else None,
        time=said.get("time") if isinstance(said.get("time"), str) else None,
        status="error",
        error=refused.error,
        detail=refused.detail,
        field=refused.field,
    )


def _answer(**fields) -> dict:
    return {name: fields.get(name) for name in RESULT_FIELDS}


def result_payload(answer: dict) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()

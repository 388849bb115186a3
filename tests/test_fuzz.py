"""The bad-input wall, fuzzed.

Hypothesis mutates a valid ingest body in every way an edge unit, a broken
client or an attacker could, and posts it as JSON, as a form, as multipart,
with the wrong content type or as broken JSON. Whatever it sends: no 5xx; a
4xx is JSON with `error` and `detail` and stores nothing (no row, no event, no
file); a 2xx stores exactly one row with exactly its files, and text (SQL and
HTML included) is stored as sent. The read endpoints get the same treatment
for their query parameters and ids, and schemathesis drives every operation of
the project's own OpenAPI schema against a real server.

In-process, the examples of one test share its database transaction and media
folder, so every check compares before and after one request.
"""

import base64
import io
import itertools
import json
import os
import struct
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset
from pathlib import Path
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
import schemathesis
from conftest import CAMERAS, b64, detection_body, image_bytes, stored_files
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from detections.core import writes
from detections.ingest.body import VEHICLE_TYPES
from detections.models import Camera, Detection, Event, IdempotencyKey

INGEST_PATHS = ("/api/detect", "/api/detect/", "/api/detections/")
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}

# Lower limits than production, so that hypothesis reaches the size checks with
# small examples; the checks are the same code whatever the numbers.
FUZZ_LIMITS = {
    "MAX_IMAGE_BYTES": 48 * 1024,
    "MAX_IMAGE_PIXELS": 640 * 480,
    "DATA_UPLOAD_MAX_MEMORY_SIZE": 256 * 1024,
    # The fuzzer posts far faster than a camera; 429 is tested elsewhere.
    "DEVICE_RATE_LIMIT": "1000000/s",
}


# Under CI the examples are the same every run, so that a red run is a change in
# the code, not a new draw; a developer's runs keep exploring.
DERANDOMIZE = os.environ.get("CI") == "true"


def fuzz_settings(max_examples: int):
    """Hypothesis settings of these tests: no deadline (MariaDB, big bodies), no
    example database written into the repository, short even when failing."""
    return hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        # A failing run stays short: one failure shrunk, no explain phase.
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture
def fuzz_limits(settings):
    for name, value in FUZZ_LIMITS.items():
        setattr(settings, name, value)


# --- Images, good and bad -------------------------------------------------------------------------


def _image(fmt: str, mode: str = "RGB", size=(64, 48), **save_args) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt, **save_args)
    return out.getvalue()


def _jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes("JPEG", exif=exif)


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


JPEG, PNG, WEBP = image_bytes("JPEG"), image_bytes("PNG"), image_bytes("WEBP")
MEDIA_TYPE_OF = {"image/jpeg": JPEG, "image/png": PNG, "image/webp": WEBP}
ZIP = _zip()
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'

# Accepted formats, in the modes cameras and encoders produce.
GOOD_IMAGES = [
    JPEG,
    PNG,
    WEBP,
    _image("JPEG", "L"),
    _image("JPEG", "CMYK"),
    _image("JPEG", progressive=True, quality=30),
    _image("PNG", "1"),
    _image("PNG", "L"),
    _image("PNG", "LA"),
    _image("PNG", "P"),
    _image("PNG", "I;16"),
    _image("PNG", "RGB", size=(1, 1)),
    _image("WEBP", "RGBA"),
    _image("WEBP", lossless=True),
    *(_jpeg_with_orientation(n) for n in (0, 3, 6, 8, 9)),
]
OTHER_FORMATS = [
    image_bytes("GIF"),
    image_bytes("BMP"),
    image_bytes("TIFF"),
    image_bytes("ICO"),
    image_bytes("PPM"),
    image_bytes("PDF"),
    SVG,
    HTML,
    ZIP,
    b"",
]
OVERSIZED = [
    _png_claiming(100_000, 100_000),  # past Pillow's own bomb limit
    _png_claiming(2_000, 2_000),  # past MAX_IMAGE_PIXELS only
    image_bytes("JPEG", size=(1_000, 700)),  # a real one, too many pixels
    JPEG + b"\0" * (FUZZ_LIMITS["MAX_IMAGE_BYTES"] + 1),  # too many bytes
]
POLYGLOTS = [JPEG + ZIP, JPEG + HTML, PNG + ZIP, PNG + HTML, WEBP + HTML, ZIP + JPEG, HTML + JPEG, SVG + PNG]


def _flip(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    raw = bytearray(data)
    for position, value in changes:
        if raw:
            raw[position % len(raw)] = value
    return bytes(raw)


good_images = st.sampled_from(GOOD_IMAGES)
raw_images = st.one_of(
    good_images,
    st.sampled_from(OTHER_FORMATS),
    st.sampled_from(OVERSIZED),
    st.sampled_from(POLYGLOTS),
    st.binary(max_size=512),
    # truncated anywhere
    good_images.flatmap(lambda data: st.integers(0, len(data) - 1).map(lambda n: data[:n])),
    # corrupted in a few bytes
    st.builds(
        _flip, good_images, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)
    ),
)

MEDIA_TYPES = [
    *MEDIA_TYPE_OF,
    "IMAGE/JPEG",
    "image/jpg",
    "image/gif",
    "image/svg+xml",
    "text/html",
    "application/zip",
    "application/octet-stream",
    "",
]
MALFORMED_DATA_URIS = [
    "data:",
    "data:image/jpeg;base64",
    "data:image/jpeg," + b64(JPEG),
    "data:;base64,",
    "data:image/jpeg;base64,",
    "data:image/jpeg;charset=x;;base64," + b64(JPEG),
    "data:image/jpeg;base64;base64," + b64(JPEG),
    "data:image/jpeg ;base64," + b64(JPEG),
    "data:image/\u0436peg;base64," + b64(JPEG),
    " data:image/jpeg;base64," + b64(JPEG),
]
NON_BASE64 = ["é", "ÿØÿà", "\u200b", "\ufeff", "\x00", "\ud800", "🚗", "-", "_", "*", "==", "=", "\u3000", "\\n"]


def data_uri(media_type: str, data: bytes, params: str = "") -> str:
    return f"data:{media_type}{params};base64,{b64(data)}"


def wrapped(text: str, width: int, newline: str) -> str:
    return newline.join(text[i : i + width] for i in range(0, len(text), width))


def inserted(text: str, position: int, junk: str) -> str:
    position %= len(text) + 1
    return text[:position] + junk + text[position:]


huge_strings = st.builds(
    lambda char, length: char * length,
    st.sampled_from(["x", "é", "🚗", "\u202e", "<", "'", "A"]),
    st.sampled_from([101, 1_001, 70_000, 300_000]),
)
image_texts = st.one_of(
    st.builds(b64, raw_images),
    st.builds(
        data_uri, st.sampled_from(MEDIA_TYPES), raw_images, st.sampled_from(["", ";charset=utf-8", ";name=x.png"])
    ),
    # a PNG whose bytes are JPEG and the like: every claim paired with every format
    st.builds(data_uri, st.sampled_from(list(MEDIA_TYPE_OF)), st.sampled_from(list(MEDIA_TYPE_OF.values()))),
    st.builds(
        wrapped,
        st.builds(b64, good_images),
        st.integers(1, 120),
        st.sampled_from(["\n", "\r\n", " ", "\t", "\v", "\u2028"]),
    ),
    st.builds(inserted, st.builds(b64, good_images), st.integers(0, 10**6), st.sampled_from(NON_BASE64)),
    st.builds(lambda data: base64.urlsafe_b64encode(data).decode(), raw_images),
    st.builds(lambda data: b64(data).rstrip("="), good_images),
    st.sampled_from(MALFORMED_DATA_URIS),
    st.text(max_size=200),
    huge_strings,
)

# --- Text, times and numbers ----------------------------------------------------------------------

SQL_AND_HTML = [
    "'; DROP TABLE detections_detection; --",
    "1' OR '1'='1",
    '" OR ""="',
    "Robert'); DROP TABLE detections_camera;--",
    "1; SELECT SLEEP(5)",
    "' UNION SELECT key_hash FROM detections_devicekey --",
    "%' OR 1=1 --",
    "\\'; --",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg/onload=alert(1)>',
    "</textarea><b>bold</b>",
    "&lt;b&gt;&amp;&#x3C;",
    "{{ 7*7 }}{% debug %}",
    "${jndi:ldap://x.example/a}",
    "javascript:alert(1)",
]
UNICODE_TEXT = [
    "İstanbul-34",
    "straße",
    "🚗🚚🚌",
    "\u202eevil\u202c",
    "zero\u200bwidth",
    "e\u0301\u0301\u0301",
    "ｆｕｌｌｗｉｄｔｈ",
    "\ud800",
    "\udfff\ud800",
    "a\x00b",
    "\x1b[31mred",
    "\u0085next line",
    " padded ",
    "\u3000",
    "٣٤ABC١٢٣",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(lambda digits: 10**digits, st.integers(0, 4_000)),
    st.floats(),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
text_values = st.one_of(
    st.sampled_from(SQL_AND_HTML),
    st.sampled_from(UNICODE_TEXT),
    st.text(max_size=120),
    huge_strings,
    st.integers(),
    st.floats(),
)


def iso(moment: datetime, style: str, offset_minutes: int) -> str:
    if style == "naive":
        return moment.isoformat()
    if style == "space":
        return moment.isoformat(sep=" ") + "Z"
    if style == "z":
        return moment.isoformat() + "Z"
    zone = fixed_offset(timedelta(minutes=offset_minutes))
    return moment.replace(tzinfo=UTC).astimezone(zone).isoformat()


# A day of margin on both ends keeps "valid" valid whatever the offset.
valid_times = st.builds(
    iso,
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime.now() - timedelta(days=1)),
    st.sampled_from(["naive", "space", "z", "offset"]),
    st.integers(-14 * 60 + 1, 14 * 60 - 1),
)
BAD_TIMES = [
    "1999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "2100-01-01T00:00:00Z",
    (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    "",
    "now",
    "yesterday at noon",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-24T24:00:01Z",
    "2026-11-24T08:15:30+25:00",
    "2026-11-24T08:15:30+14:60",
    "2026-11-24",
    "08:15:30",
    "2026-11-24T08:15:30.1234567890123Z",
    "+12026-11-24T08:15:30Z",
    "2026-11-24T08:15:30ZZ",
    "2026-W48-2T08:15:30Z",
    "1764000000",
    "2026-11-24T08:15:30\x00",
    "２０２６-１１-２４T08:15:30Z",
    "2026-11-24T08:15:30'; DROP TABLE x; --",
]
time_values = st.one_of(valid_times, st.sampled_from(BAD_TIMES), st.text(max_size=40), json_values)
vehicle_type_values = st.one_of(
    st.sampled_from(VEHICLE_TYPES),
    st.sampled_from([name.upper() for name in VEHICLE_TYPES] + [name.title() for name in VEHICLE_TYPES]),
    st.sampled_from(["cars", " car ", "c\u0430r", "TRUC\u212a", "car\x00", "\ud800", "spaceship", "", "null"]),
    text_values,
    json_values,
)
camera_values = st.one_of(
    st.sampled_from(CAMERAS),
    st.sampled_from(["gate-9", "GATE-1", "gate-1 ", " ", "", "gate\u20111", "gate-1\x00"]),
    text_values,
    json_values,
)
number_texts = st.sampled_from(
    ["0.5", " 0.5 ", "nan", "NaN", "inf", "-inf", "1e999", "1_0", "٠.٥", "0x1p-2", "½", "9" * 1_001]
)
confidence_values = st.one_of(st.floats(0, 1), st.floats(), st.integers(), number_texts, json_values)
bbox_values = st.one_of(
    st.lists(st.floats(0, 1_000_000), min_size=4, max_size=4),
    st.lists(st.one_of(st.floats(), st.integers(), number_texts, st.text(max_size=5)), max_size=6),
    st.lists(st.integers(0, 10), min_size=2_000, max_size=2_000),
    json_values,
)
# Hypothesis leans towards the first of a choice: the optional fields come first.
FIELD_VALUES = {
    "plate": text_values,
    "confidence": confidence_values,
    "bbox": bbox_values,
    "vehicle_img": st.one_of(image_texts, json_values),
    "camera": camera_values,
    "time": time_values,
    "vehicle_type": vehicle_type_values,
    "id": text_values,
}
ALIASES = {"id": "tracking_id", "vehicle_img": "image"}
percent = st.integers(0, 99)  # for "n% of the time" (hypothesis favours small numbers)


class Fresh:
    """Stands for a tracking id of its own, given when the request is made, so
    that most examples are new detections rather than replays."""

    def __repr__(self):
        return "<fresh tracking id>"


FRESH = Fresh()
TRACKING_IDS = itertools.count(1)


@dataclass(frozen=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes


@st.composite
def ingest_bodies(draw, *, file_parts: bool = False):
    """A valid body with up to three fields dropped, fuzzed or made any JSON at
    all, sometimes spelled with their aliases, sometimes with unknown fields."""
    if draw(percent) >= 96:
        return draw(json_values)  # not an object at all
    body = detection_body(id=FRESH, time=draw(valid_times))
    for name in draw(st.sets(st.sampled_from(list(FIELD_VALUES)), max_size=3)):
        action = draw(st.sampled_from(["fuzz", "fuzz", "any", "drop"]))
        if action == "drop":
            del body[name]
        elif action == "fuzz":
            body[name] = draw(FIELD_VALUES[name])
        else:
            body[name] = draw(json_values)
    if file_parts and "vehicle_img" in body and draw(st.booleans()):
        body["vehicle_img"] = FilePart(
            filename=draw(
                st.sampled_from(["snapshot.jpg", "x.png", "a.html", "../../etc/passwd", "ü.webp", "a" * 300])
            ),
            content_type=draw(st.sampled_from(["image/jpeg", "image/png", "text/html", "application/octet-stream"])),
            data=draw(st.one_of(good_images, raw_images)),
        )
    for name, alias in ALIASES.items():
        if name in body and draw(percent) >= 88:
            value = body.pop(name)
            body[alias] = value
            if draw(percent) >= 75:  # both spellings: the same value, or another
                body[name] = value if draw(st.booleans()) else draw(FIELD_VALUES[name])
    if draw(percent) >= 75:
        body.update(draw(st.dictionaries(st.text(max_size=12), json_values, min_size=1, max_size=2)))
    return body


RAW_JSON_TOKENS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"9" * 5_000,
    b"1e999999",
    b"-0",
    b"[" * 50_000 + b"]" * 50_000,
    b"{" * 20_000 + b"}" * 20_000,
    b'"\\ud800"',
    b'"\\u0000"',
    b'"\\x41"',
    b"tru",
    b"01",
    b"0x10",
    b"'single quoted'",
    b"undefined",
    b'"unterminated',
    b"",
]
WRONG_CONTENT_TYPES = [
    "",
    "text/plain",
    "text/html",
    "application/xml",
    "application/octet-stream",
    "image/jpeg",
    "application/json-patch+json",
    "application/vnd.api+json",
    "application/json; charset=utf-16",
    "application/json; charset=latin-1",
    "application/json; charset=no-such-charset",
    "application/json; charset=rot13",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=zlib",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=nothing-like-the-body",
    "multipart/mixed; boundary=x",
    "application/json, text/html",
    "*/*",
]


@dataclass(frozen=True)
class IngestRequest:
    path: str
    kind: str  # json | broken_json | wrong_content_type | multipart | form
    body: object
    idempotency_key: str | None = None
    options: dict = field(default_factory=dict)

    def __repr__(self):
        shown = repr((self.path, self.kind, self.body, self.idempotency_key, self.options))
        return f"IngestRequest{shown[:4000]}{'...' if len(shown) > 4000 else ''}"


@st.composite
def ingest_requests(draw):
    kind = draw(st.sampled_from(["json"] * 6 + ["broken_json", "wrong_content_type", "multipart", "multipart", "form"]))
    body = draw(ingest_bodies(file_parts=kind == "multipart"))
    options = {"ensure_ascii": draw(st.booleans())}
    if kind == "broken_json":
        options["mutation"] = draw(
            st.sampled_from(["truncate", "insert", "replace_value", "bom", "utf16", "binary", "empty"])
        )
        options["position"] = draw(st.integers(0, 10**6))
        options["junk"] = draw(st.binary(min_size=1, max_size=8))
        options["token"] = draw(st.sampled_from(RAW_JSON_TOKENS))
    elif kind == "wrong_content_type":
        options["content_type"] = draw(st.sampled_from(WRONG_CONTENT_TYPES))
    idempotency_key = draw(
        st.sampled_from(["none", "none", "none", "none", "none", "none", "text", "reused"]).flatmap(
            lambda choice: {"none": st.none(), "text": st.text(max_size=300), "reused": st.sampled_from(["k1", "k2"])}[
                choice
            ]
        )
    )
    return IngestRequest(draw(st.sampled_from(INGEST_PATHS)), kind, body, idempotency_key, options)


# --- Encoding a request as a client (or a broken one) would -----------------------------------------

BOUNDARY = "fuzz-boundary-7MA4YWxkTrZu0gW"


def with_fresh_ids(body):
    """The body with its FRESH placeholders (id and its alias alike) made one new tracking id."""
    if not isinstance(body, dict) or FRESH not in body.values():
        return body
    tracking_id = f"fuzz-{next(TRACKING_IDS)}"
    return {key: tracking_id if value is FRESH else value for key, value in body.items()}


def wire(text: str) -> bytes:
    """Text as a client puts it on the wire; a lone surrogate becomes invalid UTF-8."""
    return text.encode("utf-8", "surrogatepass")


def form_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def form_fields(body) -> list[tuple[str, object]]:
    """A body as form fields: lists as repeated fields, files as file parts."""
    if not isinstance(body, dict):
        return [("body", form_text(body))]
    fields = []
    for name, value in body.items():
        if isinstance(value, list):
            fields.extend((name, form_text(item)) for item in value)
        elif isinstance(value, FilePart):
            fields.append((name, value))
        else:
            fields.append((name, form_text(value)))
    return fields


def multipart(fields) -> bytes:
    parts = []
    for name, value in fields:
        if isinstance(value, FilePart):
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{value.filename}"\r\n'
                f"Content-Type: {value.content_type}\r\n\r\n"
            )
            payload = value.data
        else:
            head, payload = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', wire(value)
        parts.append(b"--" + BOUNDARY.encode() + b"\r\n" + wire(head) + payload + b"\r\n")
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def urlencoded(fields) -> bytes:
    return b"&".join(
        quote_from_bytes(wire(name)).encode() + b"=" + quote_from_bytes(wire(value)).encode() for name, value in fields
    )


def json_bytes(body, ensure_ascii: bool) -> bytes:
    return wire(json.dumps(body, ensure_ascii=ensure_ascii, allow_nan=True))


def encode(request: IngestRequest, body) -> tuple[bytes, str]:
    """The bytes and content type of the request."""
    options = request.options
    if request.kind == "multipart":
        return multipart(form_fields(body)), f"multipart/form-data; boundary={BOUNDARY}"
    if request.kind == "form":
        return urlencoded(form_fields(body)), "application/x-www-form-urlencoded"
    if request.kind == "broken_json":
        return broken_json(body, options), "application/json"
    raw = json_bytes(body, options["ensure_ascii"])
    if request.kind == "wrong_content_type":
        return raw, options["content_type"]
    return raw, "application/json"


def broken_json(body, options) -> bytes:
    mutation, position = options["mutation"], options["position"]
    if mutation == "replace_value" and isinstance(body, dict) and body:
        name = sorted(body)[position % len(body)]
        raw = json_bytes({**body, name: "@@RAW@@"}, options["ensure_ascii"])
        return raw.replace(b'"@@RAW@@"', options["token"], 1)
    raw = json_bytes(body, options["ensure_ascii"])
    at = position % (len(raw) + 1)
    if mutation == "truncate":
        return raw[:at]
    if mutation == "insert":
        return raw[:at] + options["junk"] + raw[at:]
    if mutation == "bom":
        return b"\xef\xbb\xbf" + raw
    if mutation == "utf16":
        return json.dumps(body, ensure_ascii=False, allow_nan=True).encode("utf-16", "surrogatepass")
    if mutation == "binary":
        return options["junk"] * 64
    return b""


# --- What every answer must be -----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What is stored: rows, events, idempotency keys and files under MEDIA_ROOT."""

    detections: frozenset
    events: int
    idempotency_keys: int
    files: frozenset

    @classmethod
    def take(cls, media_root: Path) -> "Snapshot":
        return cls(
            detections=frozenset(Detection.objects.values_list("pk", flat=True)),
            events=Event.objects.count(),
            idempotency_keys=IdempotencyKey.objects.count(),
            files=frozenset(stored_files(media_root)),
        )


@contextmanager
def reported(context):
    """An exception the app raises through the test client names the request that
    raised it (pytest shows hypothesis' own report of the example without its values)."""
    try:
        yield
    except Exception as error:
        error.add_note(f"request: {str(context)[:3000]}")
        raise


def assert_json_error(response, context):
    """A 4xx is JSON with a machine-readable `error` and a `detail` sentence."""
    assert response["Content-Type"].split(";")[0] == "application/json", (response["Content-Type"], context)
    body = json.loads(response.content)
    assert isinstance(body, dict), (body, context)
    assert isinstance(body.get("error"), str) and body["error"], (body, context)
    assert isinstance(body.get("detail"), str) and body["detail"], (body, context)
    return body


def assert_not_a_server_error(response, context):
    assert response.status_code < 500, (response.status_code, response.content[:2000], context)


def assert_nothing_stored(before: Snapshot, after: Snapshot, context):
    assert after == before, (after, before, context)


def assert_one_detection_stored(
    record: dict, before: Snapshot, after: Snapshot, media_root: Path, context
) -> Detection:
    """Exactly one new row, one new event, and exactly the row's files (both or none)."""
    assert after.detections - before.detections == {record["id"]}, context
    assert before.detections <= after.detections, context
    assert after.events == before.events + 1, context
    detection = Detection.objects.select_related("camera").get(pk=record["id"])
    new_files = after.files - before.files
    assert before.files <= after.files, context
    if detection.image.name:
        assert new_files == {media_root / detection.image.name, media_root / detection.thumbnail.name}, context
        with Image.open(media_root / detection.image.name) as image:
            assert image.format in ACCEPTED_FORMATS, context
        with Image.open(media_root / detection.thumbnail.name) as thumbnail:
            assert thumbnail.format == "JPEG", context
    else:
        assert not detection.thumbnail.name, context
        assert new_files == set(), context
    return detection


def sent_text(body: dict, name: str, alias: str | None, form: bool) -> str | None:
    """What a text field is stored as when accepted: the text sent, without the
    surrounding whitespace DRF trims. A form carries every value as text (the
    last of repeated fields counts) and its invalid UTF-8 is decoded as U+FFFD."""
    key = name if name in body else alias if alias in body else None
    if key is None:
        return None
    value = body[key]
    if form:
        if isinstance(value, list):
            if not value:
                return None
            value = value[-1]
        return wire(form_text(value)).decode("utf-8", "replace").strip()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value).strip()


def assert_text_stored_as_sent(detection: Detection, record: dict, body: dict, form: bool, context):
    """Accepted text, SQL and HTML included, is stored and answered as text, verbatim."""
    for name, alias, stored in (
        ("id", "tracking_id", detection.tracking_id),
        ("plate", None, detection.plate),
        ("camera", None, detection.camera.name),
    ):
        sent = sent_text(body, name, alias, form)
        if sent is not None and sent != "":
            assert stored == sent, (name, stored, sent, context)
    expected_tracking_id = sent_text(body, "id", "tracking_id", form)
    assert record["tracking_id"] == detection.tracking_id == expected_tracking_id, context
    assert record["plate"] == detection.plate, context
    assert Detection.objects.filter(pk=detection.pk, tracking_id=detection.tracking_id, plate=detection.plate).exists()
    assert detection.vehicle_type in VEHICLE_TYPES, context


def check_ingest_answer(
    response, body, before: Snapshot, after: Snapshot, media_root: Path, form: bool | None, context
):
    """form: whether the body went as a form (True) or as JSON (False); None when
    the bytes were mangled or mislabelled, so that what was sent is not known as text."""
    assert_not_a_server_error(response, context)
    if response.status_code >= 400:
        assert_json_error(response, context)
        assert_nothing_stored(before, after, context)
        return
    assert response.status_code in (200, 201), context
    record = json.loads(response.content)
    if response.status_code == 200:  # the same detection (or idempotency key) was stored before
        assert record["id"] in before.detections, context
        assert_nothing_stored(before, after, context)
        return
    detection = assert_one_detection_stored(record, before, after, media_root, context)
    if form is not None:
        assert_text_stored_as_sent(detection, record, body, form, context)


# --- Ingest, in-process -------------------------------------------------------------------------------


@fuzz_settings(max_examples=250)
@given(request=ingest_requests())
def test_fuzzed_ingest_requests_never_get_a_5xx_and_store_all_or_nothing(
    device_client, fuzz_limits, _media_root, request
):
    body = with_fresh_ids(request.body)
    raw, content_type = encode(request, body)
    headers = {} if request.idempotency_key is None else {"HTTP_IDEMPOTENCY_KEY": request.idempotency_key}
    context = (request.path, request.kind, content_type, request.idempotency_key, raw[:3000])
    before = Snapshot.take(_media_root)

    with reported(context):
        response = device_client.generic("POST", request.path, raw, content_type=content_type, **headers)

    after = Snapshot.take(_media_root)
    form = {"json": False, "multipart": True, "form": True}.get(request.kind)
    check_ingest_answer(response, body if isinstance(body, dict) else {}, before, after, _media_root, form, context)


@pytest.mark.parametrize("text", SQL_AND_HTML)
def test_sql_and_html_in_text_fields_are_stored_and_answered_verbatim(device_client, fuzz_limits, _media_root, text):
    body = detection_body(id=text, plate=text[:32], vehicle_img=...)

    response = device_client.post("/api/detect", body, format="json")

    assert response.status_code == 201, response.content
    detection = Detection.objects.get(pk=response.json()["id"])
    assert (detection.tracking_id, detection.plate) == (text, text[:32])
    assert (response.json()["tracking_id"], response.json()["plate"]) == (text, text[:32])
    assert Detection.objects.filter(tracking_id=text).count() == 1
    assert Camera.objects.count() == len(CAMERAS)  # no statement of the text ran


@pytest.mark.parametrize(
    "snapshot",
    [
        pytest.param(JPEG + ZIP, id="JPEG then ZIP"),
        pytest.param(JPEG + HTML, id="JPEG then HTML"),
        pytest.param(PNG + ZIP, id="PNG then ZIP"),
        pytest.param(PNG + HTML, id="PNG then HTML"),
        pytest.param(WEBP + HTML, id="WebP then HTML"),
    ],
)
def test_a_polyglot_snapshot_an_image_with_a_zip_or_html_appended_is_refused_with_400(
    device_client, fuzz_limits, _media_root, snapshot
):
    """Issue 3, item 5: polyglot files are bad input. Stored as sent, the file
    under /media/ would also be a ZIP or an HTML page."""
    before = Snapshot.take(_media_root)

    response = device_client.post("/api/detect", detection_body(vehicle_img=b64(snapshot)), format="json")

    assert response.status_code == 400, response.content
    assert assert_json_error(response, "polyglot")["error"] == "invalid_image"
    assert_nothing_stored(before, Snapshot.take(_media_root), "polyglot")


# --- What the ingest fuzzers found, pinned so that every run tries it -------------------------------------

LONE_SURROGATE_BODY = {"id": "trk-1", "vehicle_type": "\ud800", "time": "2026-11-24T08:15:30Z", "camera": "gate-1"}


def test_a_lone_surrogate_echoed_back_in_a_field_error_is_answered_as_a_json_400_not_a_5xx(
    device_client, fuzz_limits, _media_root
):
    """JSON may carry "\\ud800"; the error message quotes the value back, and the
    renderer must still produce valid UTF-8."""
    before = Snapshot.take(_media_root)

    response = device_client.generic(
        "POST", "/api/detect", json_bytes(LONE_SURROGATE_BODY, True), content_type="application/json"
    )

    assert response.status_code == 400, response.content
    body = assert_json_error(response, "lone surrogate")
    assert (body["error"], body["field"]) == ("invalid_choice", "vehicle_type")
    assert_nothing_stored(before, Snapshot.take(_media_root), "lone surrogate")


def test_a_lone_surrogate_in_a_batch_item_is_reported_as_that_items_error_not_a_5xx(
    device_client, fuzz_limits, _media_root
):
    good = detection_body(id="trk-good")
    raw = json_bytes({"detections": [good, LONE_SURROGATE_BODY]}, True)

    response = device_client.generic("POST", "/api/detections/batch/", raw, content_type="application/json")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [item["status"] for item in results] == ["created", "error"]
    assert results[1]["error"] == "invalid_choice"
    assert Detection.objects.count() == 1


DEEP_NESTINGS = [
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="50000 nested arrays"),
    pytest.param(b'{"a":' * 20_000 + b"1" + b"}" * 20_000, id="20000 nested objects"),
]


@pytest.mark.parametrize("path", ["/api/detect", "/api/detections/batch/"])
@pytest.mark.parametrize("nesting", DEEP_NESTINGS)
def test_json_nested_deeper_than_the_parser_follows_is_a_json_400_not_a_5xx(
    device_client, fuzz_limits, _media_root, path, nesting
):
    item = (
        b'{"id": "trk-1", "vehicle_type": "car", "time": "2026-11-24T08:15:30Z", "camera": "gate-1", "x": '
        + nesting
        + b"}"
    )
    raw = item if path == "/api/detect" else b'{"detections": [' + item + b"]}"
    before = Snapshot.take(_media_root)

    response = device_client.generic("POST", path, raw, content_type="application/json")

    assert response.status_code == 400, response.content[:500]
    assert_json_error(response, "deep nesting")
    assert_nothing_stored(before, Snapshot.take(_media_root), "deep nesting")


@pytest.mark.parametrize(
    "content_type, raw",
    [
        pytest.param("multipart/form-data; boundary=b", b"--b--\r\n", id="only the closing boundary"),
        pytest.param("multipart/form-data", json.dumps(detection_body()).encode(), id="no boundary"),
        pytest.param(
            "multipart/form-data; boundary=other",
            b'--b\r\nContent-Disposition: form-data; name="id"\r\n\r\ntrk-1\r\n--b--\r\n',
            id="a boundary the body does not use",
        ),
    ],
)
def test_a_multipart_body_that_cannot_be_parsed_gets_a_json_400_from_the_real_server(server, content_type, raw):
    """Found by schemathesis: in-process the app answers these with JSON, but under
    daphne, Twisted parses multipart POSTs itself first and answers what it cannot
    parse with an empty 400 that never reaches the app."""
    with server.device() as client:
        response = client.post("/api/detect", content=raw, headers={"Content-Type": content_type})

    assert response.status_code == 400, response.content
    assert response.headers.get("Content-Type") == "application/json", (response.headers, response.content)
    assert response.json()["error"]
    assert Detection.objects.count() == 0


# --- Batch, in-process ---------------------------------------------------------------------------------


@st.composite
def batch_bodies(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        return {"detections": draw(json_values)}
    return {"detections": draw(st.lists(ingest_bodies(), min_size=1, max_size=4))}


@fuzz_settings(max_examples=60)
@given(body=batch_bodies(), ensure_ascii=st.booleans())
def test_fuzzed_batches_never_get_a_5xx_and_store_exactly_the_items_reported_created(
    device_client, fuzz_limits, _media_root, body, ensure_ascii
):
    body = with_fresh_ids(body)
    if isinstance(body, dict) and isinstance(body.get("detections"), list):
        body["detections"] = [with_fresh_ids(item) for item in body["detections"]]
    raw = json_bytes(body, ensure_ascii)
    context = raw[:3000]
    before = Snapshot.take(_media_root)

    with reported(context):
        response = device_client.generic("POST", "/api/detections/batch/", raw, content_type="application/json")

    after = Snapshot.take(_media_root)
    assert_not_a_server_error(response, context)
    if response.status_code >= 400:
        assert_json_error(response, context)
        assert_nothing_stored(before, after, context)
        return
    assert response.status_code == 200, context
    answer = json.loads(response.content)
    assert len(answer["results"]) == len(body["detections"]), context
    created = {item["id"] for item in answer["results"] if item["status"] == "created"}
    assert answer["created"] == len(created), context
    assert after.detections - before.detections == created, context
    assert after.events == before.events + len(created), context
    expected_files = set()
    for detection in Detection.objects.filter(pk__in=created):
        expected_files |= {_media_root / name for name in (detection.image.name, detection.thumbnail.name) if name}
    assert after.files - before.files == expected_files, context
    for item in answer["results"]:
        if item["status"] == "error":
            assert isinstance(item.get("error"), str) and isinstance(item.get("detail"), str), (item, context)


# --- Reading: query parameters and ids, in-process ----------------------------------------------------------


@pytest.fixture
def traffic(cameras):
    """A few stored detections, so that filters and cursors have something to page through."""
    base = datetime(2026, 11, 20, 8, tzinfo=UTC)
    for n in range(6):
        writes.detection_create(
            camera=cameras[CAMERAS[n % len(CAMERAS)]],
            tracking_id=f"trk-{n}",
            vehicle_type=VEHICLE_TYPES[n % len(VEHICLE_TYPES)],
            detected_at=base + timedelta(hours=n),
            plate=f"34ABC{n:03}",
        )


query_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


def cursor(position: dict) -> str:
    return base64.b64encode(urlencode(position).encode()).decode()


cursor_values = st.one_of(
    query_text,
    st.builds(lambda data: base64.b64encode(data).decode(), st.binary(max_size=60)),
    # forged cursors: DRF's own encoding of an offset, a direction and a position
    st.builds(
        lambda offset, reverse, position: cursor(
            {key: value for key, value in (("o", offset), ("r", reverse), ("p", position)) if value is not None}
        ),
        st.one_of(st.none(), st.integers(-5, 10**20).map(str), query_text),
        st.one_of(st.none(), st.sampled_from(["0", "1", "true", ""])),
        st.one_of(st.none(), valid_times, st.sampled_from(BAD_TIMES), query_text),
    ),
)
time_params = st.one_of(valid_times, st.sampled_from([t for t in BAD_TIMES if "\x00" not in t]), query_text)
param_values = st.one_of(
    query_text,
    time_params,
    st.integers().map(str),
    st.sampled_from(SQL_AND_HTML),
    st.sampled_from([*VEHICLE_TYPES, *CAMERAS, "", "0", "-1", "null", "true", "[]", "%00", "\x00"]),
)
LIST_PARAMS = [
    "camera",
    "vehicle_type",
    "since",
    "until",
    "tracking_id",
    "plate",
    "cursor",
    "page_size",
    "format",
    "ordering",
]
STATS_PARAMS = ["since", "until", "bucket", "tz", "camera", "vehicle_type", "recent", "format"]
TIME_ZONES = [
    "UTC",
    "utc",
    "Europe/Istanbul",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Etc/GMT-14",
    "America",
    "Etc",
    "zone.tab",
    "posixrules",
    "localtime",
    "Factory",
    "../../etc/passwd",
    "/etc/localtime",
    "Europe/",
    "Europe//Istanbul",
    "EST5EDT",
    "+03:00",
    "Z",
    "",
]


def param_strategy(name: str):
    special = {
        "cursor": cursor_values,
        "page_size": st.one_of(st.integers(-10, 10**30).map(str), query_text),
        "since": time_params,
        "until": time_params,
        "bucket": st.one_of(st.sampled_from(["hour", "day", "HOUR", "week", "minute", ""]), query_text),
        "tz": st.one_of(st.sampled_from(TIME_ZONES), query_text),
        "recent": st.one_of(st.integers(-10, 10**30).map(str), query_text),
        "format": st.sampled_from(["json", "api", "xml", "html", "openapi", ""]),
    }
    return st.one_of(special.get(name, param_values), param_values)


def queries(names):
    """A query: known parameters with likely and unlikely values, unknown ones,
    repeated ones; or raw bytes, percent-encoded whatever they are."""
    known = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), st.lists(param_strategy(name), min_size=1, max_size=2))
    )
    pairs = st.lists(
        st.one_of(known, known, known, st.tuples(query_text, st.lists(param_values, max_size=2))), max_size=6
    )
    encoded = pairs.map(lambda items: urlencode([(name, value) for name, values in items for value in values]))
    raw = st.binary(max_size=80).map(lambda data: quote_from_bytes(data, safe="=&%+"))
    return st.one_of(encoded, encoded, encoded, raw)


def check_read_answer(response, context) -> dict | None:
    assert_not_a_server_error(response, context)
    if response.status_code >= 400:
        assert_json_error(response, context)
        return None
    assert response.status_code == 200, context
    return json.loads(response.content)


@fuzz_settings(max_examples=200)
@given(query=queries(LIST_PARAMS))
def test_fuzzed_list_queries_never_get_a_5xx_and_errors_are_json(viewer_client, traffic, query):
    with reported(query):
        response = viewer_client.get(f"/api/detections/?{query}")

    answer = check_read_answer(response, query)
    if answer is not None:
        assert isinstance(answer["results"], list), query


@fuzz_settings(max_examples=200)
@given(query=queries(STATS_PARAMS))
def test_fuzzed_stats_queries_never_get_a_5xx_and_errors_are_json(viewer_client, traffic, query):
    with reported(query):
        response = viewer_client.get(f"/api/stats?{query}")

    answer = check_read_answer(response, query)
    if answer is not None:
        assert isinstance(answer["total_vehicles"], int), query
        assert isinstance(answer["recent_logs"], list), query


ids_in_paths = st.one_of(
    st.integers(-10, 10),
    st.integers(),
    st.builds(lambda digits: 10**digits, st.integers(18, 40)),
    query_text.filter(lambda text: text not in ("", ".", "..")),
)


@fuzz_settings(max_examples=80)
@given(pk=ids_in_paths, path=st.sampled_from(["/api/detections/{}/", "/api/delete/{}", "/api/delete/{}/"]))
def test_any_id_in_a_read_or_delete_path_answers_json_and_never_a_5xx(viewer_client, staff_client, traffic, pk, path):
    url = path.format(quote(str(pk), safe=""))
    with reported(url):
        if path.startswith("/api/detections/"):
            responses = [viewer_client.get(url), staff_client.delete(url)]
        else:
            responses = [staff_client.delete(url)]

    for response in responses:
        assert_not_a_server_error(response, url)
        if response.status_code >= 400:
            assert_json_error(response, url)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"since": "9999-12-31T23:59:59-01:00"}, id="since past year 9999 in UTC"),
        pytest.param({"until": "0001-01-01T00:00:00+01:00"}, id="until before year 1 in UTC"),
    ],
)
def test_a_list_filter_time_that_overflows_when_converted_to_utc_is_clamped_not_a_5xx(viewer_client, traffic, query):
    """Clamped to the times the database holds: nothing is stored past them, so nothing is listed."""
    response = viewer_client.get("/api/detections/", query)

    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


@pytest.mark.parametrize("position", ["garbage", "2026-02-30 00:00:00", ""])
def test_a_forged_cursor_whose_position_is_not_a_time_is_refused_as_json_not_a_5xx(viewer_client, traffic, position):
    """DRF's cursors are base64 of o=offset&r=reverse&p=position: anyone can write one."""
    response = viewer_client.get("/api/detections/", {"cursor": cursor({"o": "0", "r": "0", "p": position})})

    assert response.status_code in (400, 404), response.content
    assert_json_error(response, position)


# --- Schemathesis: the project's own OpenAPI schema, against a real server ------------------------------------

SCHEMATHESIS_EXAMPLES_PER_OPERATION = 40
SCHEMA_OPERATIONS = {
    "POST /api/detect/",
    "POST /api/detections/",
    "POST /api/detections/batch/",
    "GET /api/detections/",
    "GET /api/detections/{id}/",
    "GET /api/stats/",
    "DELETE /api/detections/{id}/",
    "DELETE /api/delete/{id}/",
    "PATCH /api/detections/{id}/",
}

# The schema types vehicle_type and vehicle_img as plain strings, so what
# schemathesis generates is refused before it reaches the database; these
# bodies (through the same operations) get the store and delete paths fuzzed too.
valid_bodies = st.builds(
    lambda tracking_id, time, vehicle_type, camera, image: detection_body(
        id=f"st-{tracking_id}", time=time, vehicle_type=vehicle_type, camera=camera, vehicle_img=image
    ),
    st.uuids().map(lambda uuid: uuid.hex[:16]),
    valid_times,
    st.sampled_from(VEHICLE_TYPES),
    st.sampled_from(CAMERAS),
    st.one_of(st.builds(b64, good_images), st.just(...)),
)


def schemathesis_cases(operation, stored_ids):
    """Cases of one operation: what the schema says (positive), what it forbids
    (negative), and valid bodies or ids of stored detections."""
    from schemathesis.generation import GenerationMode

    strategies = [
        operation.as_strategy(generation_mode=mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    if operation.method.upper() == "POST":
        bodies = (
            st.lists(valid_bodies, min_size=1, max_size=3).map(lambda items: {"detections": items})
            if operation.path.endswith("/batch/")
            else valid_bodies
        )
        strategies.append(bodies.flatmap(lambda body: operation.as_strategy(body=body, media_type="application/json")))
    if "{id}" in operation.path:
        strategies.append(
            st.sampled_from(stored_ids).flatmap(lambda pk: operation.as_strategy(path_parameters={"id": pk}))
        )
    return st.one_of(*strategies)


def fuzz_operation(operation, headers: dict, server, stored_ids):
    """Run schemathesis' generated cases of one operation against the server."""
    from schemathesis.checks import not_a_server_error

    @hypothesis_settings(
        max_examples=SCHEMATHESIS_EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report every operation, in bounded time
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.nested_given,
        ],
    )
    @given(case=schemathesis_cases(operation, stored_ids))
    def run(case):
        case.headers = {**(case.headers or {}), **headers}
        response = case.call(base_url=server.base_url, headers=headers)
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
        if 400 <= response.status_code < 500:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.split(";")[0] == "application/json", (
                response.status_code,
                content_type,
                response.content[:500],
                case.as_curl_command(headers=headers),
            )
            body = json.loads(response.content)
            assert isinstance(body, dict) and body.get("error") and body.get("detail"), (
                body,
                case.as_curl_command(headers=headers),
            )

    run()


def test_schemathesis_finds_no_5xx_no_non_json_error_and_no_orphan_file_on_any_operation_of_the_openapi_schema(server):
    with server.http(server.credentials.viewer) as client:
        raw_schema = client.get("/api/schema/", params={"format": "json"}).raise_for_status().json()
    with server.device() as device:
        stored_ids = [
            device.post("/api/detect", json=detection_body(id=f"seed-{n}", camera=CAMERAS[n % len(CAMERAS)]))
            .raise_for_status()
            .json()["id"]
            for n in range(6)
        ]
    schema = schemathesis.openapi.from_dict(raw_schema)
    # PATCH corrects a read's plate: the staff member may, so that its bodies reach the write.
    User.objects.get(username="staff").user_permissions.add(Permission.objects.get(codename="change_detection"))
    secret_for = {
        "POST": server.credentials.device,
        "DELETE": server.credentials.staff,
        "PATCH": server.credentials.staff,
        "GET": server.credentials.viewer,
    }
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE"
    )
    failures = []

    for operation in operations:
        headers = {"Authorization": f"Token {secret_for[operation.method.upper()]}"}
        try:
            fuzz_operation(operation, headers, server, stored_ids)
        except Exception as failure:  # collected, reported together below
            failures.append(f"{operation.label}:\n{failure}")

    labels = {operation.label for operation in operations}
    assert labels >= SCHEMA_OPERATIONS, labels
    assert not failures, "\n\n".join(failures)
    # Whatever was created and deleted on the way, every file belongs to a stored
    # detection and every stored detection has its files.
    referenced = set()
    for detection in Detection.objects.all():
        referenced |= {server.media_root / name for name in (detection.image.name, detection.thumbnail.name) if name}
    assert set(stored_files(server.media_root)) == referenced
    assert all(path.is_file() for path in referenced)

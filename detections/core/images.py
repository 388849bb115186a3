"""Snapshots: base64 text in, a verified image and its JPEG thumbnail out.

Nothing here touches the database. Errors are `ImageRejected` with a code and
a sentence the API hands to the client as is.
"""

import base64
import binascii
import io
import logging
import re
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

from detections.core import storage

logger = logging.getLogger(__name__)

# Pillow's names for the formats we accept, and the media types they go by.
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# Media types that encoders write but that mean the same thing.
MEDIA_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}

_DATA_URI = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)
# Line breaks and spaces are how MIME encoders wrap base64; anything else is not base64.
_WRAPPING = re.compile(r"[ \t\r\n]+")


class ImageRejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code  # "invalid_image", or "image_too_large" for the limits
        self.detail = detail


@dataclass(frozen=True)
class VerifiedImage:
    data: bytes
    format: str  # a key of ACCEPTED_FORMATS
    thumbnail: bytes  # JPEG

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def decode_base64(text: str) -> tuple[bytes, str | None]:
    """Strictly decode base64, with an optional data: URI prefix.

    Returns the bytes and the media type the data URI claimed, if any.
    """
    claimed = None
    if text.startswith("data:"):
        match = _DATA_URI.match(text)
        if not match:
            raise ImageRejected("invalid_image", "vehicle_img has a malformed data: URI prefix")
        claimed = (match.group("media") or "").lower() or None
        claimed = MEDIA_TYPE_ALIASES.get(claimed, claimed)
        text = text[match.end() :]
    if any(c in text for c in " \t\r\n"):
        text = _WRAPPING.sub("", text)
    if not text:
        raise ImageRejected("invalid_image", "vehicle_img is empty")
    if not text.isascii():
        raise ImageRejected("invalid_image", "vehicle_img is not valid base64 (non-ASCII characters)")
    # Refuse before decoding what could only decode to an oversized image.
    if len(text) * 3 // 4 > settings.MAX_IMAGE_BYTES + 2:
        raise _too_many_bytes()
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("invalid_image", "vehicle_img is not valid base64") from None
    return data, claimed


def _too_many_bytes():
    limit = settings.MAX_IMAGE_BYTES
    return ImageRejected("image_too_large", f"vehicle_img is larger than the limit of {limit} bytes")


def verify(data: bytes, *, claimed_media_type: str | None = None) -> VerifiedImage:
    """Check that `data` is a whole JPEG, PNG or WebP within the limits, and make its thumbnail."""
    if len(data) > settings.MAX_IMAGE_BYTES:
        raise _too_many_bytes()
    try:
        # The limits are checked on the header, before any pixel is decoded; the
        # warning Pillow gives for large images is an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format
            if image_format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    "invalid_image",
                    f"vehicle_img is {image_format or 'an unknown format'}; accepted: JPEG, PNG, WebP",
                )
            if claimed_media_type and claimed_media_type != ACCEPTED_FORMATS[image_format]:
                raise ImageRejected(
                    "invalid_image",
                    f"vehicle_img claims {claimed_media_type} but holds {ACCEPTED_FORMATS[image_format]}",
                )
            if not _ends_where_the_image_ends(data, image_format):
                raise ImageRejected(
                    "invalid_image",
                    f"vehicle_img does not end where its {image_format} image ends: "
                    "it is truncated, or has other data appended (a polyglot file)",
                )
            width, height = image.size
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise ImageRejected(
                    "image_too_large",
                    f"vehicle_img is {width}x{height} pixels; the limit is {settings.MAX_IMAGE_PIXELS} pixels",
                )
            thumbnail = _make_thumbnail(image)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("invalid_image", "vehicle_img is not a readable JPEG, PNG or WebP image") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        # Pillow's way of saying the image is truncated or corrupt.
        raise ImageRejected("invalid_image", "vehicle_img is truncated or corrupt") from None
    return VerifiedImage(data=data, format=image_format, thumbnail=thumbnail)


PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC


def _ends_where_the_image_ends(data: bytes, image_format: str) -> bool:
    """No bytes after the image: a file that is also a ZIP or an HTML page
    (a polyglot) must not be stored and served as a snapshot. Zero padding after
    a JPEG, which some encoders write, is allowed."""
    if image_format == "JPEG":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if image_format == "PNG":
        return data.endswith(PNG_END)
    riff_size = int.from_bytes(data[4:8], "little")  # WebP: a RIFF container
    return len(data) == riff_size + 8


def _make_thumbnail(image: Image.Image) -> bytes:
    box = settings.THUMBNAIL_MAX_SIZE
    if image.format == "JPEG":
        # Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while it decodes: far
        # cheaper than decoding every pixel. It needs the aspect-fitted size.
        scale = min(box[0] / image.width, box[1] / image.height, 1)
        image.draft("RGB", (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    # load() decodes the whole stream: a truncated or corrupt file fails here.
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = _flatten_to_rgb(image)
    image.thumbnail(box, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=settings.THUMBNAIL_QUALITY, optimize=False)
    return out.getvalue()


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def delete_files(names):
    """Remove stored files by name; a file already gone is not an error. While
    the object store is down the rest are left for `find_orphans` (each would
    wait out the same timeouts), and the caller's own error is not hidden."""
    names = [name for name in names if name]
    for done, name in enumerate(names):
        try:
            default_storage.delete(name)
        except Exception as exc:
            if not storage.unavailable(exc):
                raise
            logger.warning("object store unavailable; %d file(s) left for find_orphans: %s", len(names) - done, exc)
            return


def read_stored(name: str | None) -> bytes | None:
    """The bytes of a stored file, or None when there is none, it has gone
    missing, or the object store is down (an event then goes without its
    thumbnail rather than not at all)."""
    if not name:
        return None
    try:
        with default_storage.open(name, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, OSError):
        return None
    except Exception as exc:
        if not storage.unavailable(exc):
            raise
        logger.warning("object store unavailable; %s not read: %s", name, exc)
        return None

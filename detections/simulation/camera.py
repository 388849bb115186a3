"""A simulated edge unit: plausible vehicle snapshots and the detections that
carry them, in the legacy wire shape. Used by `manage.py simulate_camera`, the
tests and the benchmarks."""

import base64
import io
import json
import os
import random
import string
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from detections.models import VehicleType

WIDTH, HEIGHT = 640, 480

# How often each type passes a typical urban camera.
TRAFFIC_MIX = {
    VehicleType.CAR: 60,
    VehicleType.VAN: 10,
    VehicleType.TRUCK: 8,
    VehicleType.BUS: 5,
    VehicleType.MOTORCYCLE: 10,
    VehicleType.BICYCLE: 5,
    VehicleType.OTHER: 2,
}

# Body size as a share of the frame width and height.
BODY = {
    VehicleType.CAR: (0.42, 0.20),
    VehicleType.VAN: (0.46, 0.28),
    VehicleType.TRUCK: (0.62, 0.34),
    VehicleType.BUS: (0.70, 0.36),
    VehicleType.MOTORCYCLE: (0.22, 0.14),
    VehicleType.BICYCLE: (0.20, 0.12),
    VehicleType.OTHER: (0.36, 0.22),
}

PAINT = [(200, 30, 30), (30, 60, 160), (230, 230, 230), (20, 20, 20), (120, 120, 130), (210, 170, 40), (40, 120, 60)]


def random_plate(rng: random.Random) -> str:
    return f"{rng.randint(1, 81):02d}{''.join(rng.choices(string.ascii_uppercase, k=3))}{rng.randint(100, 999)}"


def draw_snapshot(
    vehicle_type: str, *, plate: str, caption: str, rng: random.Random, quality: int = 85
) -> tuple[bytes, list[int]]:
    """A 640x480 JPEG of a road with one vehicle on it, noisy like a camera frame.

    Returns the JPEG and the vehicle's bounding box [x, y, width, height].
    """
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = int(HEIGHT * 0.35)
    for y in range(HEIGHT):  # sky, then asphalt, each a gradient
        if y < horizon:
            shade = (110 + y // 4, 150 + y // 5, 210)
        else:
            tone = 70 + (y - horizon) // 8
            shade = (tone, tone, tone + 4)
        draw.line([(0, y), (WIDTH, y)], fill=shade)
    for x in range(0, WIDTH, 80):  # lane markings
        draw.rectangle([x + rng.randint(0, 10), int(HEIGHT * 0.78), x + 40, int(HEIGHT * 0.8)], fill=(235, 235, 220))

    share_w, share_h = BODY[vehicle_type]
    body_w, body_h = int(WIDTH * share_w), int(HEIGHT * share_h)
    left = rng.randint(10, WIDTH - body_w - 10)
    bottom = int(HEIGHT * 0.74) + rng.randint(-15, 15)
    top = bottom - body_h
    paint = rng.choice(PAINT)
    if vehicle_type in (VehicleType.MOTORCYCLE, VehicleType.BICYCLE):
        wheel = body_h // 2
        for cx in (left + wheel, left + body_w - wheel):
            draw.ellipse([cx - wheel, bottom - 2 * wheel, cx + wheel, bottom], outline=(15, 15, 15), width=5)
        draw.line(
            [(left + wheel, bottom - wheel), (left + body_w // 2, top), (left + body_w - wheel, bottom - wheel)],
            fill=paint,
            width=6,
        )
        draw.ellipse([left + body_w // 2 - 10, top - 40, left + body_w // 2 + 10, top - 20], fill=(60, 40, 30))
    else:
        draw.rounded_rectangle([left, top, left + body_w, bottom - 12], radius=12, fill=paint)
        cabin_top = top - (body_h // 3 if vehicle_type == VehicleType.CAR else 0)
        if vehicle_type == VehicleType.CAR:
            draw.rounded_rectangle(
                [left + body_w // 5, cabin_top, left + body_w * 4 // 5, top + 10], radius=10, fill=paint
            )
        window_count = {VehicleType.BUS: 7, VehicleType.VAN: 3}.get(vehicle_type, 2)
        span = body_w * 3 // 5 if vehicle_type == VehicleType.CAR else body_w - 20
        start = left + (body_w // 5 if vehicle_type == VehicleType.CAR else 10)
        for i in range(window_count):
            x0 = start + i * span // window_count + 4
            draw.rectangle(
                [x0, cabin_top + 6, x0 + span // window_count - 8, cabin_top + max(18, body_h // 4)],
                fill=(150, 190, 220),
            )
        wheel = max(14, body_h // 4)
        for cx in (left + wheel * 2, left + body_w - wheel * 2):
            draw.ellipse([cx - wheel, bottom - 2 * wheel, cx + wheel, bottom], fill=(20, 20, 20))
        plate_w = 90
        px = left + body_w // 2 - plate_w // 2
        draw.rectangle([px, bottom - 40, px + plate_w, bottom - 22], fill=(250, 250, 250), outline=(0, 0, 0))
        draw.text((px + 6, bottom - 38), plate, fill=(0, 0, 0))
    draw.rectangle([0, 0, WIDTH, 18], fill=(0, 0, 0))
    draw.text((6, 3), caption, fill=(255, 255, 255))

    # Sensor noise, softened: makes the JPEG compress like a real frame, not a drawing.
    noise = Image.effect_noise((WIDTH, HEIGHT), 40).convert("RGB")
    image = Image.blend(image, noise, 0.12).filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    bbox = [left, top - (body_h // 3 if vehicle_type == VehicleType.CAR else 0), body_w, bottom - top]
    return out.getvalue(), bbox


def random_vehicle(rng: random.Random) -> tuple[str, str]:
    """A vehicle type from the traffic mix, and its plate (none for a bicycle)."""
    vehicle_type = rng.choices(list(TRAFFIC_MIX), weights=list(TRAFFIC_MIX.values()))[0]
    return str(vehicle_type), random_plate(rng) if vehicle_type not in (VehicleType.BICYCLE,) else ""


def make_detection(
    *,
    sequence: int,
    camera: str,
    rng: random.Random,
    moment: datetime | None = None,
    vehicle: tuple[str, str] | None = None,
) -> dict:
    """One detection body in the legacy wire shape, with a fresh snapshot;
    `vehicle`: its type and the plate read (default: a new random vehicle)."""
    moment = moment or datetime.now(UTC)
    vehicle_type, plate = vehicle or random_vehicle(rng)
    caption = f"{camera}  {moment:%Y-%m-%d %H:%M:%S}  #{sequence}"
    jpeg, bbox = draw_snapshot(vehicle_type, plate=plate or "-", caption=caption, rng=rng)
    return {
        "id": f"trk-{sequence:06d}",
        "vehicle_type": str(vehicle_type),
        "vehicle_img": base64.b64encode(jpeg).decode("ascii"),
        "time": moment.isoformat().replace("+00:00", "Z"),
        "camera": camera,
        "confidence": round(rng.uniform(0.55, 0.99), 2),
        "bbox": bbox,
        "plate": plate,
    }


class OfflineSpool:
    """Detections an edge unit could not deliver, kept on disk until it can.

    One JSON object per line in `<folder>/pending.jsonl`. Rewrites go through a
    temporary file and a rename, so a crash never leaves half a spool.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "pending.jsonl"

    def add(self, detection: dict):
        with self.path.open("a", encoding="utf-8") as spool:
            spool.write(json.dumps(detection) + "\n")

    def pending(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as spool:
            return [json.loads(line) for line in spool if line.strip()]

    def replace(self, detections: list[dict]):
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as spool:
            spool.writelines(json.dumps(d) + "\n" for d in detections)
        os.replace(temporary, self.path)

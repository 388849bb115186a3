"""Clients that take a server past what it serves: requests held in flight
(their headers and half their body sent, the rest when the test says), and a
flood of POSTs from many clients at once with every answer counted."""

import asyncio
import http.client
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from conftest import b64, detection_body, image_bytes

# The answers an edge unit can act on: stored, stored before, or "retry after".
ACTIONABLE = {200, 201, 429, 503}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class HeldRequest:
    """A POST of a detection whose body is half sent: the server has its headers,
    so it is in progress there (or waiting in a load balancer's queue) until
    `finish` sends the rest and reads the answer."""

    def __init__(self, base_url: str, device_key: str, *, camera: str = "gate-1"):
        address = urlsplit(base_url)
        body = json.dumps(detection_body(id=f"held-{uuid.uuid4().hex[:12]}", camera=camera)).encode()
        half = len(body) // 2
        self.connection = http.client.HTTPConnection(address.hostname, address.port or 80, timeout=60)
        self.connection.putrequest("POST", "/api/detect")
        for name, value in (
            ("Authorization", f"Token {device_key}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ):
            self.connection.putheader(name, value)
        self.connection.endheaders(message_body=body[:half])
        self.rest = body[half:]

    def finish(self) -> Answer:
        self.connection.send(self.rest)
        response = self.connection.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        self.connection.close()
        return answer

    def abandon(self):
        self.connection.close()


@dataclass
class FloodResult:
    statuses: Counter = field(default_factory=Counter)
    # Refusals without a Retry-After, and exceptions (resets, timeouts): a camera can act on neither.
    without_retry_after: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    stored_ids: list[int] = field(default_factory=list)


def flood(base_url: str, device_key: str, *, in_flight: int, each: int, timeout: float = 120.0) -> FloodResult:
    """`in_flight` clients at once, each posting `each` detections one after another
    (a 640x480 snapshot: the server spends its CPU on each); every answer counted."""
    snapshot = b64(image_bytes(size=(640, 480)))
    result = FloodResult()

    async def client(http: httpx.AsyncClient, number: int):
        for n in range(each):
            body = detection_body(id=f"flood-{number}-{n}-{uuid.uuid4().hex[:8]}", vehicle_img=snapshot)
            try:
                response = await http.post("/api/detect", json=body)
            except httpx.HTTPError as exc:
                result.exceptions.append(f"{type(exc).__name__}: {exc}")
                continue
            result.statuses[response.status_code] += 1
            if response.status_code in (200, 201):
                result.stored_ids.append(response.json()["id"])
            elif "retry-after" not in response.headers:
                result.without_retry_after.append(f"{response.status_code} {response.text[:200]}")

    async def run():
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Token {device_key}"}, timeout=timeout, limits=limits
        ) as http:
            await asyncio.gather(*(client(http, number) for number in range(in_flight)))

    asyncio.run(run())
    return result

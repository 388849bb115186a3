"""Request bodies on the production server (vehicle_monitor/request_bodies.py):
bounded before they are read, so no client fills the server's disk; read in
full when they come chunked, there and on daphne."""

import json
import os
import selectors
import socket
import threading
from pathlib import Path

import httpx
import pytest
from alert_helpers import token_with
from conftest import ServerProcess, detection_body, image_bytes, on_every_server
from processes import wait_until

from detections.models import Detection, Watchlist

GIB = 1 << 30
PIECE = bytes(1 << 20)  # sent 1024 times: the gigabyte is made as it goes, never stored


class TempFileWatch:
    """The bytes a server process holds in files under its temp dir (open ones,
    deleted ones included: a spooled body is an unlinked file), sampled
    continuously from /proc while a test runs, and the most seen."""

    def __init__(self, pid: int, folder: Path):
        self.pid, self.folder = pid, str(folder)
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def held(self) -> int:
        total = 0
        fds = Path(f"/proc/{self.pid}/fd")
        for fd in fds.iterdir():
            try:
                if os.readlink(fd).startswith(self.folder + "/"):
                    total += os.stat(fd).st_size
            except FileNotFoundError:  # closed meanwhile
                continue
        return total

    def _sample(self):
        while not self._stop.is_set():
            self.most = max(self.most, self.held())
            self._stop.wait(0.005)  # a sampling pace; nothing waits on it

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def post_a_gigabyte(server: ServerProcess, headers: dict, *, chunked: bool) -> tuple[int, dict]:
    """POST /api/detect with a 1 GiB body, sent with a Content-Length or chunked,
    reading while sending: the answer is taken as soon as it comes, and sending
    stops there (or when the server closes). Returns its status and JSON body."""
    connection = socket.create_connection((server.place.host, server.port), timeout=30)
    head = ["POST /api/detect HTTP/1.1", f"Host: {server.place.host}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {GIB}")
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    connection.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(connection, selectors.EVENT_READ | selectors.EVENT_WRITE)
    frames, answer, pending, sent = body_frames(chunked), b"", b"", 0
    try:
        while not answered_in_full(answer):
            events = selector.select(timeout=30)
            assert events, f"neither an answer nor room to send within 30 s ({sent} bytes sent)"
            if events[0][1] & selectors.EVENT_READ:
                try:
                    received = connection.recv(65536)
                except ConnectionResetError:
                    break  # what the server said before it reset is all there is
                if not received:
                    break
                answer += received
                continue
            if not pending:
                pending = next(frames, b"")
                sent += len(pending)
                if not pending:  # all sent: only the answer is left to wait for
                    selector.modify(connection, selectors.EVENT_READ)
                    continue
            try:
                pending = pending[connection.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                # The server answered and closed: what it said is waiting to be read.
                selector.modify(connection, selectors.EVENT_READ)
    finally:
        selector.close()
        connection.close()
    assert answered_in_full(answer), f"no whole answer after {sent} bytes sent: {answer!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def body_frames(chunked: bool):
    """The gigabyte as it goes on the wire, a mebibyte at a time."""
    for _ in range(GIB // len(PIECE)):
        yield f"{len(PIECE):x}\r\n".encode() + PIECE + b"\r\n" if chunked else PIECE
    if chunked:
        yield b"0\r\n\r\n"


def answered_in_full(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return len(body) >= int(lengths[0])


@pytest.fixture
def server_with_its_own_temp_dir(request, transactional_db, _media_root, credentials, tmp_path):
    """The production server (or daphne), writing its temporary files to a folder of this test's."""
    temp_dir = tmp_path / "server-tmp"
    temp_dir.mkdir()
    with ServerProcess(_media_root, credentials, {"TMPDIR": str(temp_dir)}, kind=request.param) as process:
        process.temp_dir = temp_dir
        yield process


LIMIT = 32 * 1024 * 1024  # MAX_REQUEST_BYTES' default, which the servers run with


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "server_with_its_own_temp_dir, who, status, error",
    [
        ("production", "anonymous", 401, "not_authenticated"),
        ("production", "device", 413, "request_too_large"),
        # daphne reads a body before the application sees its request: whoever
        # sends it, it is stopped at the limit (vehicle_monitor/daphne_patches.py).
        ("daphne", "anonymous", 413, "request_too_large"),
        ("daphne", "device", 413, "request_too_large"),
    ],
    indirect=["server_with_its_own_temp_dir"],
)
def test_a_gigabyte_is_refused_before_it_reaches_the_disk(server_with_its_own_temp_dir, who, status, error, chunked):
    server = server_with_its_own_temp_dir
    headers = {"Authorization": f"Token {server.credentials.device}"} if who == "device" else {}

    with TempFileWatch(server.process.pid, server.temp_dir) as watch:
        answer = post_a_gigabyte(server, headers, chunked=chunked)
        # The server drops what it spooled once it has answered.
        wait_until(watch.held, 0, "the server's temporary files")

    assert answer[0] == status and answer[1]["error"] == error, answer
    # A chunked body the server reads is spooled (past FILE_UPLOAD_MAX_MEMORY_SIZE,
    # to disk) up to the limit, then dropped; an announced length over it, or
    # no credentials on the production server, is refused before a byte is read.
    read_up_to_the_limit = chunked and status == 413
    print(f"temporary files held at most: {watch.most} bytes")
    assert watch.most <= (LIMIT + len(PIECE) if read_up_to_the_limit else 0)
    assert list(server.temp_dir.iterdir()) == []
    # The server goes on serving.
    with server.device() as client:
        assert client.post("/api/detect", json=detection_body()).status_code == 201


# --- Chunked bodies -----------------------------------------------------------------------------


def in_pieces(body: bytes, size: int = 1000):
    """A body as an iterator: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(client: httpx.Client, path: str, body: bytes, content_type: str) -> httpx.Response:
    response = client.post(path, content=in_pieces(body), headers={"Content-Type": content_type})
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    return response


@on_every_server
def test_a_chunked_detection_is_stored(server):
    with server.device() as client:
        response = post_chunked(client, "/api/detect", json.dumps(detection_body()).encode(), "application/json")

    assert response.status_code == 201, response.text
    assert Detection.objects.get(pk=response.json()["id"]).tracking_id == "trk-0042"


@on_every_server
def test_a_chunked_multipart_detection_is_stored_with_its_image(server):
    fields = {name: value for name, value in detection_body().items() if name not in ("vehicle_img", "bbox")}
    form = httpx.Request("POST", "/", data=fields, files={"vehicle_img": ("car.png", image_bytes("PNG"), "image/png")})
    with server.device() as client:
        response = post_chunked(client, "/api/detect", form.read(), form.headers["content-type"])

    assert response.status_code == 201, response.text
    assert Detection.objects.get(pk=response.json()["id"]).image.name.endswith(".png")


@on_every_server
def test_a_chunked_csv_import_is_read(server, stolen):
    csv = b"plate,note\n34 ABC 123,reported stolen\n35 KLM 900,\n"
    with server.http(token_with("manager", "manage_watchlists")) as client:
        response = post_chunked(client, f"/api/watchlists/{stolen.pk}/plates/import/", csv, "text/csv")

    assert response.status_code == 200, response.text
    assert response.json()["added"] == 2
    assert sorted(stolen.entries.values_list("plate", flat=True)) == ["34 ABC 123", "35 KLM 900"]


# --- Charsets -------------------------------------------------------------------------------------

# Named by a client, none of them a charset a body can be read in: unknown names,
# Python's bytes-to-bytes codecs, and codecs that fail on most bytes.
UNREADABLE_CHARSETS = ["no-such-charset", "rot13", "hex", "base64", "zlib", "bz2", "uu", "quopri", "undefined"]
UNREADABLE_CHARSETS += ["idna", "punycode", "ansi", ""]


def charset_requests(watchlist_id: int, charset: str) -> list[tuple[str, str, bytes]]:
    """(path, Content-Type, body): a CSV import, a watch-list as JSON, as a form
    and as multipart, each naming `charset`."""
    form = httpx.Request("POST", "/", data={"name": "a list"}, files={"unused": ("x.txt", b"x", "text/plain")})
    boundary = form.headers["content-type"].split("boundary=")[1]
    return [
        (f"/api/watchlists/{watchlist_id}/plates/import/", "text/csv", b"plate,note\n34ABC123,x\n"),
        ("/api/watchlists/", "application/json", b'{"name": "a list"}'),
        ("/api/watchlists/", "application/x-www-form-urlencoded", b"name=a+list"),
        ("/api/watchlists/", f"multipart/form-data; boundary={boundary}", form.read()),
    ]


def test_a_body_in_a_charset_the_server_cannot_read_is_a_415_before_it_is_read(server, stolen):
    with server.http(token_with("manager", "manage_watchlists")) as client:
        for charset in UNREADABLE_CHARSETS:
            for path, content_type, body in charset_requests(stolen.pk, charset):
                headers = {"Content-Type": f"{content_type}; charset={charset}"}
                response = client.post(path, content=body, headers=headers)
                assert response.status_code == 415, (headers, response.text)
                assert response.json()["error"] == "unsupported_media_type", (headers, response.text)
                # Sent chunked, it is refused all the same.
                response = client.post(path, content=in_pieces(body), headers=headers)
                assert response.status_code == 415, (headers, response.text)

    assert Watchlist.objects.count() == 1 and not stolen.entries.exists()


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "latin-1", "iso-8859-9", "cp1254", "utf-16"])
def test_a_body_in_a_charset_the_server_reads_is_decoded_in_it(server, stolen, charset):
    with server.http(token_with("manager", "manage_watchlists")) as client:
        response = client.post(
            f"/api/watchlists/{stolen.pk}/plates/import/",
            content="plate,note\n34ABC123,çay Müller\n".encode(charset),
            headers={"Content-Type": f"text/csv; charset={charset}"},
        )

    assert response.status_code == 200, response.text
    assert stolen.entries.get().note == "çay Müller"


@pytest.mark.parametrize("charset", ["rot13", "hex", "base64", "undefined", "idna", "punycode"])
def test_the_csv_import_itself_answers_a_charset_it_cannot_decode_with_a_400(manager, stolen, charset):
    """Without the server's gate in front (the test client calls Django directly),
    the CSV parser refuses the charset itself: never a 500."""
    response = manager.post(
        f"/api/watchlists/{stolen.pk}/plates/import/",
        "plate,note\n34ABC123,çalıntı\n".encode(),
        content_type=f"text/csv; charset={charset}",
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "malformed_request"
    assert not stolen.entries.exists()


# --- The API docs page --------------------------------------------------------------------------


def test_the_api_docs_page_answers_options_for_every_identity(server):
    manager = token_with("manager", "manage_watchlists")
    credentials = server.credentials
    for secret in (None, credentials.viewer, credentials.staff, credentials.device, manager):
        with server.http(secret) as client:
            response = client.options("/api/docs/")

        assert response.status_code == 200, (secret, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "GET" in response.headers["allow"]
        assert response.json()["renders"] == ["text/html"]

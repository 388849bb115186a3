"""A webhook receiver for the tests, run as a process of its own on 127.0.0.1.

    python tests/webhook_receiver.py --port 8123 --record hooks.jsonl --script 500,500,200

It answers the requests it gets as --script says, one step per request, the
last step repeating:

- a status (`200`, `500`, `410`); `429+retry-after=N` adds a Retry-After
- `302=URL`: a redirect to URL
- `hang`: no answer; holds the connection until the client gives up
- `slow=S`: 200 after S seconds
- `garbage`: bytes that are no HTTP, then the connection closes
- `close`: closes the connection without a word

Each request is a line of JSON in the --record file, written when it has been
read (`{"event": "request", "n", "at", "method", "path", "headers", "body"}`,
header names in lower case)
and when its answer is done (`{"event": "done", "n", "at"}`); `overlap` says
another request with the same webhook-id was being answered at that moment.
"Listening on PORT" on stdout says it is ready.
"""

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, record_path: str, script: list[str]):
        super().__init__(("127.0.0.1", port), Handler)
        # Open for the life of the process: every request appends to it.
        self.record_file = open(record_path, "a", encoding="utf-8")
        self.script = script
        self.lock = threading.Lock()
        self.count = 0
        self.in_progress: dict[str, int] = {}

    def next_step(self) -> tuple[int, str]:
        with self.lock:
            self.count += 1
            return self.count, self.script[min(self.count, len(self.script)) - 1]

    def record(self, entry: dict):
        with self.lock:
            self.record_file.write(json.dumps(entry) + "\n")
            self.record_file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The status line and headers, then the body, are two writes: without this
    # the body waits for the client's delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True
    server: Receiver

    def log_message(self, format, *args):  # the record file says it all
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n, step = self.server.next_step()
        webhook_id = self.headers.get("webhook-id", "")
        with self.server.lock:
            overlap = self.server.in_progress.get(webhook_id, 0) > 0
            self.server.in_progress[webhook_id] = self.server.in_progress.get(webhook_id, 0) + 1
        self.server.record(
            {
                "event": "request",
                "n": n,
                "at": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode(),
                "overlap": overlap,
                "step": step,
            }
        )
        try:
            self.answer(step)
        finally:
            with self.server.lock:
                self.server.in_progress[webhook_id] -= 1
            self.server.record({"event": "done", "n": n, "at": time.time()})

    def answer(self, step: str):
        if step == "hang":
            self.connection.settimeout(120)
            try:
                while self.connection.recv(1024):
                    pass
            except OSError:
                pass
            self.close_connection = True
        elif step == "garbage":
            self.wfile.write(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
            self.close_connection = True
        elif step == "close":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif step.startswith("slow="):
            time.sleep(float(step.split("=", 1)[1]))
            self.reply(200)
        elif step.startswith("302="):
            self.reply(302, {"Location": step.split("=", 1)[1]})
        elif "+retry-after=" in step:
            status, seconds = step.split("+retry-after=")
            self.reply(int(status), {"Retry-After": seconds})
        else:
            self.reply(int(step))

    def reply(self, status: int, headers: dict | None = None):
        payload = json.dumps({"status": status}).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--script", default="200")
    args = parser.parse_args()
    receiver = Receiver(args.port, args.record, args.script.split(","))
    print(f"Listening on {receiver.server_address[1]}", flush=True)
    receiver.serve_forever()


if __name__ == "__main__":
    main()

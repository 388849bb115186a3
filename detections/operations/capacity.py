"""How many processes, hosts, database and Redis a deployment needs, from the
figures this project measured on one process (docs/scaling.md).

Pure arithmetic: no Django, no database. `MEASURED` holds every input once, so
the `capacity` command and docs/scaling.md print the same numbers.
"""

import math
from dataclasses import dataclass, field, replace

SECONDS_PER_DAY = 86_400
# VehicleType's choices: the hourly counters hold at most one row per camera, type and hour.
VEHICLE_TYPES = 7
GIGABIT_BYTES_PER_SECOND = 125e6


@dataclass(frozen=True)
class MeasuredInputs:
    """Per-process figures from benchmarks/README.md and benchmarks/results/ (2 cores shared with
    the load generator, MariaDB 10.11, Redis 7.0, uvicorn as docker-compose.yml runs it)."""

    # s0-max, 8 posters, no sockets, 2026-12-01 15:15-15:21: 3.06-3.75 ms/det over four runs; the
    # top of the range. (The morning's runs gave 6.0-8.8 on the same machine; the morning's commit
    # re-run at 15:21 gave 3.10: the machine, not the code, was twice as slow then.)
    ingest_cpu_ms_per_detection: float = 3.75
    # The same row's best run: the other end of the range a prediction is given with.
    ingest_cpu_ms_per_detection_best: float = 3.1
    # s0-max, 2026-12-01 15:15-15:21: 273-356 det/s, the event loop at ~105% of a core. The group
    # commit writes whatever waits, so one process takes no more than this whatever the CPU left;
    # the low end.
    ingest_ceiling_per_process: float = 273.0
    # INGEST_GROUP_LINGER_MS's default: detections that reach a process within it share a commit
    # (and so one feed message).
    group_linger_ms: float = 2.0
    # s1000-rate, 2026-12-01 15:19: 28.5 ms/det with 1000 sockets that each receive every event,
    # against 3.37 ms/det with none (s0-max of the same run): 25 us per socket and event.
    delivered_cpu_us_per_socket_event: float = 25.0
    # Not a benchmark row: the broadcaster offers every event to every socket of its process and the
    # consumer drops it after its camera filter. Measured in-process for this model on 2026-12-01
    # (docs/scaling.md): 4.2-6.5 us when events arrive several per wake-up, 12-14 us one at a time.
    filtered_cpu_us_per_socket_event: float = 5.0
    # Every socket process receives every feed message from Redis: a redis.asyncio round trip costs
    # its client 134 us of CPU here (2026-12-01), rounded up for channels' receive around it.
    receive_cpu_us_per_feed_message: float = 150.0
    # msgpack decoding of one event of ~3.9 KB in a feed message (2026-12-01, in-process).
    receive_cpu_us_per_event: float = 3.0
    # s0-max and s100-max, MariaDB CPU ms/det, 2026-12-01 15:15-15:21: 0.26-0.37 and 0.30; the top.
    database_cpu_ms_per_detection: float = 0.37
    # s0-max and s100-max notes, 2026-12-01 15:15-15:21: Redis 0.04-0.11 ms/det (the rate limit's
    # round trip and the publish); the top.
    redis_cpu_ms_per_detection: float = 0.11
    # Not re-measured since 2026-12-01 09:04 (s100-max 0.28 and s1000-max 0.33 ms/det against
    # s0-max's 0.26, one process receiving): ~0.05 ms for each copy of a feed message Redis hands to
    # a receiving process, from a machine twice as slow, so it errs high.
    redis_cpu_ms_per_message_copy: float = 0.05
    # hooks-latency, 2026-12-01 11:58: 5.80 ms of worker CPU per message at ~100 messages/s
    # (hooks-3: 4.53). docs/alerts.md reports ~2.5 ms for the later aiohttp worker, not in a results table.
    webhook_worker_cpu_ms_per_message: float = 5.8
    # hooks-3 (3.18 MariaDB ms/det) minus s0-max (1.23) of the same run, 2026-12-01 11:58, over the
    # three messages each detection made.
    database_cpu_ms_per_webhook_message: float = 0.65
    # idle, 2026-12-01 15:19: 42.2 KB per idle socket, the server at 119 MB before them.
    socket_rss_kb: float = 42.2
    process_rss_mb: float = 119.0
    # The most sockets one process held in a measured row (idle: 200, then 1000 more).
    sockets_per_process_measured: int = 1200
    # The benchmark's pool (make_detection, seed 2026, 50 x 640x480 JPEG, 37-41 KB): the median
    # snapshot, and the median thumbnail images.verify makes of it (2.3-3.0 KB); measured 2026-12-01.
    snapshot_bytes: int = 39_772
    thumbnail_bytes: int = 2_589
    # vm_bench, information_schema on 2026-12-01 over COUNT(*) rows: detections_detection
    # 1,589,248 data + 1,966,080 index bytes over 6,387 rows; detections_event 2,637,824 + 147,456
    # over 5,387 (the event log is kept as long as the detections); detections_hourlycount
    # 98,304 + 163,840 over 1,015.
    detection_row_bytes: int = 249
    detection_index_bytes: int = 308
    event_bytes: int = 517
    hourly_counter_bytes: int = 258
    # vm_bench, AVG(LENGTH(payload)) of detections_event: the event's JSON, which the socket
    # message carries with the thumbnail inline in base64.
    event_payload_bytes: int = 335
    # The highest rates any row pushed through one database: single POSTs (s0-rate, 2026-12-01
    # 09:04, 179 det/s, at most one commit each) and batches (batch, 2026-12-01: 430-595 items/s).
    database_rate_measured: float = 179.0
    database_batch_rate_measured: float = 595.0

    @property
    def database_bytes_per_detection(self) -> int:
        return self.detection_row_bytes + self.detection_index_bytes + self.event_bytes

    @property
    def media_bytes_per_detection(self) -> int:
        return self.snapshot_bytes + self.thumbnail_bytes

    @property
    def event_message_bytes(self) -> int:
        """One event as Redis carries it and a socket receives it."""
        return self.event_payload_bytes + 4 * math.ceil(self.thumbnail_bytes / 3)


MEASURED = MeasuredInputs()


def calibrated(
    *,
    cpu_ms_per_detection: float | None = None,
    us_per_socket_event: float | None = None,
    inputs: MeasuredInputs = MEASURED,
) -> MeasuredInputs:
    """The inputs with figures measured on the machine to be sized, and at the time,
    in place of the committed ones: the same code measured on one machine ran
    twice as fast one afternoon as that morning, and three times slower another
    day (docs/scaling.md), so a prediction is only as good as the minute its
    inputs come from."""
    changes = {}
    if cpu_ms_per_detection is not None:
        changes["ingest_cpu_ms_per_detection"] = changes["ingest_cpu_ms_per_detection_best"] = cpu_ms_per_detection
    if us_per_socket_event is not None:
        changes["delivered_cpu_us_per_socket_event"] = us_per_socket_event
    return replace(inputs, **changes)


def socket_event_us(*, ms_without: float, ms_with: float, sockets: int, inputs: MeasuredInputs = MEASURED) -> float:
    """CPU per socket and event sent, from one process's CPU per detection without
    sockets and with `sockets` that each receive every event: what the sockets
    added, less the feed's own receive (the model counts that apart), shared out."""
    added_us = (ms_with - ms_without) * 1000 - inputs.receive_cpu_us_per_feed_message - inputs.receive_cpu_us_per_event
    return max(0.0, added_us / sockets)


@dataclass(frozen=True)
class Deployment:
    cameras: int
    viewers: int
    retention_days: int
    cameras_per_viewer: int = 10
    detections_per_camera_per_second: float = 1.0
    cores_per_host: int = 8
    # Of each core, what a process may use at the planned peak (docs/scaling.md, "Processes").
    usable_core: float = 0.7
    webhook_messages_per_second: float = 0.0
    # Two changes the code does not have, to show what each would buy (docs/scaling.md): feed
    # messages gathered for this many ms before Redis hands them to the socket processes (0: one
    # message per commit, as today), and events offered only to the sockets that watch their camera.
    feed_batch_ms: float = 0.0
    routed_by_camera: bool = False

    def problems(self) -> list[str]:
        """Sentences saying what is wrong with these figures (none: they can be modelled)."""
        found = []
        if self.cameras < 1:
            found.append("--cameras must be at least 1: with no cameras there is nothing to size.")
        if self.viewers < 0:
            found.append("--viewers cannot be negative.")
        if self.retention_days < 1:
            found.append("--retention-days must be at least 1: storage kept forever has no total.")
        if self.cameras_per_viewer < 1:
            found.append("--cameras-per-viewer must be at least 1: a viewer watches some camera.")
        if self.detections_per_camera_per_second <= 0:
            found.append("--detections-per-camera must be above 0.")
        if self.cores_per_host < 1:
            found.append("--cores-per-host must be at least 1.")
        if not 0 < self.usable_core <= 1:
            found.append("--usable-core must be above 0 and at most 1 (a process runs on one core).")
        if self.webhook_messages_per_second < 0:
            found.append("--webhook-messages-per-second cannot be negative.")
        if self.feed_batch_ms < 0:
            found.append("--feed-batch-ms cannot be negative.")
        return found


@dataclass(frozen=True)
class Capacity:
    deployment: Deployment
    detections_per_second: float
    ingest_cores: float
    ingest_rate_per_process: float
    ingest_processes: int
    commits_per_second: float
    feed_messages_per_second: float
    watched_cameras: int
    deliveries_per_second: float
    offers_per_second: float
    fanout_work_cores: float
    receive_cores_per_socket_process: float
    socket_processes: int | None  # None: receiving the feed alone fills every process
    socket_memory_gb: float
    webhook_workers: int
    database_cores: float
    database_rows_per_second: float
    database_bytes_per_day: float
    redis_cores: float
    redis_message_copies_per_second: float
    redis_egress_bytes_per_second: float
    media_bytes_per_day: float
    beyond_measured: list[str] = field(default_factory=list)

    @property
    def fanout_cores(self) -> float | None:
        if self.socket_processes is None:
            return None
        return self.fanout_work_cores + self.socket_processes * self.receive_cores_per_socket_process

    @property
    def processes(self) -> int | None:
        if self.socket_processes is None:
            return None
        return self.ingest_processes + self.socket_processes + self.webhook_workers

    @property
    def hosts(self) -> int | None:
        if self.processes is None:
            return None
        return math.ceil(self.processes / self.deployment.cores_per_host)

    @property
    def database_bytes_kept(self) -> float:
        return self.database_bytes_per_day * self.deployment.retention_days

    @property
    def media_bytes_kept(self) -> float:
        return self.media_bytes_per_day * self.deployment.retention_days


def commits_per_process(rate: float, inputs: MeasuredInputs = MEASURED) -> float:
    """Commits a process makes at `rate` det/s, each one publishing one feed message: the
    detections that arrive within one linger share a group, so a group holds about 1 + rate x linger."""
    return rate / (1 + rate * inputs.group_linger_ms / 1000)


def model(deployment: Deployment, inputs: MeasuredInputs = MEASURED) -> Capacity:
    rate = deployment.cameras * deployment.detections_per_camera_per_second
    usable = deployment.usable_core

    ingest_cores = rate * inputs.ingest_cpu_ms_per_detection / 1000
    per_process = min(usable / (inputs.ingest_cpu_ms_per_detection / 1000), inputs.ingest_ceiling_per_process)
    ingest_processes = math.ceil(rate / per_process)
    commits = ingest_processes * commits_per_process(rate / ingest_processes, inputs)
    messages = min(commits, 1000 / deployment.feed_batch_ms) if deployment.feed_batch_ms else commits

    # Sockets live in processes of their own (docs/scaling.md): an ingest process with no socket
    # never subscribes to the feed, and a socket process pays the feed's receive whatever it serves.
    watched = min(deployment.cameras_per_viewer, deployment.cameras)
    deliveries = deployment.viewers * watched * deployment.detections_per_camera_per_second
    offers = deliveries if deployment.routed_by_camera else deployment.viewers * rate
    work = (
        deliveries * inputs.delivered_cpu_us_per_socket_event
        + (offers - deliveries) * inputs.filtered_cpu_us_per_socket_event
    ) / 1e6
    receive = (messages * inputs.receive_cpu_us_per_feed_message + rate * inputs.receive_cpu_us_per_event) / 1e6
    if deployment.viewers == 0:
        socket_processes = 0
    elif receive >= usable:
        socket_processes = None
    else:
        socket_processes = math.ceil(work / (usable - receive))

    webhook_workers = math.ceil(
        deployment.webhook_messages_per_second * inputs.webhook_worker_cpu_ms_per_message / 1000 / usable
    )
    database_cores = (
        rate * inputs.database_cpu_ms_per_detection
        + deployment.webhook_messages_per_second * inputs.database_cpu_ms_per_webhook_message
    ) / 1000
    # Per detection: its row, its event, the two counter upserts; per commit the feed row; per
    # webhook message its row, its attempt and the outcome's update.
    rows = rate * 4 + commits + deployment.webhook_messages_per_second * 3
    counter_bytes = deployment.cameras * VEHICLE_TYPES * 24 * inputs.hourly_counter_bytes
    database_bytes_per_day = rate * SECONDS_PER_DAY * inputs.database_bytes_per_detection + counter_bytes
    receivers = socket_processes or 0
    copies = messages * receivers
    redis_cores = (rate * inputs.redis_cpu_ms_per_detection + copies * inputs.redis_cpu_ms_per_message_copy) / 1000

    capacity = Capacity(
        deployment=deployment,
        detections_per_second=rate,
        ingest_cores=ingest_cores,
        ingest_rate_per_process=per_process,
        ingest_processes=ingest_processes,
        commits_per_second=commits,
        feed_messages_per_second=messages,
        watched_cameras=watched,
        deliveries_per_second=deliveries,
        offers_per_second=offers,
        fanout_work_cores=work if deployment.viewers else 0.0,
        receive_cores_per_socket_process=receive if deployment.viewers else 0.0,
        socket_processes=socket_processes,
        socket_memory_gb=(deployment.viewers * inputs.socket_rss_kb * 1e3 + receivers * inputs.process_rss_mb * 1e6)
        / 1e9,
        webhook_workers=webhook_workers,
        database_cores=database_cores,
        database_rows_per_second=rows,
        database_bytes_per_day=database_bytes_per_day,
        redis_cores=redis_cores,
        redis_message_copies_per_second=copies,
        redis_egress_bytes_per_second=rate * inputs.event_message_bytes * receivers,
        media_bytes_per_day=rate * SECONDS_PER_DAY * inputs.media_bytes_per_detection,
    )
    capacity.beyond_measured.extend(_beyond_measured(capacity, inputs))
    return capacity


def _beyond_measured(capacity: Capacity, inputs: MeasuredInputs) -> list[str]:
    notes = []
    rate = capacity.detections_per_second
    if rate > inputs.database_rate_measured:
        notes.append(
            f"The database takes {rate:,.0f} det/s; one MariaDB was measured here up to "
            f"{inputs.database_rate_measured:,.0f} det/s from single POSTs and "
            f"{inputs.database_batch_rate_measured:,.0f} in batches."
        )
    if capacity.commits_per_second > inputs.database_rate_measured:
        notes.append(
            f"{capacity.commits_per_second:,.0f} commits/s each lock the one feed row until they "
            f"commit; no row measured more than {inputs.database_rate_measured:,.0f}/s, and that row "
            "admits one commit at a time."
        )
    if capacity.socket_processes is None:
        notes.append(
            f"Receiving {capacity.feed_messages_per_second:,.0f} feed messages/s alone takes "
            f"{capacity.receive_cores_per_socket_process:.2f} of a core in every socket process, more "
            f"than the {capacity.deployment.usable_core:g} it may use: no number of processes serves the sockets."
        )
    elif capacity.socket_processes:
        per_process = capacity.deployment.viewers / capacity.socket_processes
        if per_process > inputs.sockets_per_process_measured:
            notes.append(
                f"{per_process:,.0f} sockets per process; no process held more than "
                f"{inputs.sockets_per_process_measured:,} in a measured row."
            )
    if capacity.redis_egress_bytes_per_second > GIGABIT_BYTES_PER_SECOND:
        notes.append(
            f"Redis sends {capacity.redis_egress_bytes_per_second / 1e6:,.0f} MB/s (every event once to every "
            "socket process), more than a 1 Gbit/s link carries."
        )
    if capacity.redis_cores > capacity.deployment.usable_core:
        notes.append(
            f"Redis needs {capacity.redis_cores:.1f} cores; it runs commands on one thread, and the "
            "most it was measured at here is a few per cent of one."
        )
    return notes


@dataclass(frozen=True)
class HarnessPrediction:
    hosts: int
    cores_per_host: float
    sockets_per_host: int
    cpu_ms_per_detection: float
    rate_per_host: float
    database_cores: float
    redis_cores: float

    @property
    def rate(self) -> float:
        return self.rate_per_host * self.hosts


def harness_prediction(
    *,
    hosts: int = 2,
    cores_per_host: float = 0.5,
    sockets_per_host: int = 0,
    cpu_ms_per_detection: float | None = None,
    inputs: MeasuredInputs = MEASURED,
) -> HarnessPrediction:
    """Ingest throughput of `hosts` CPU-capped hosts of one process each, driven to saturation,
    from the single-process figures alone: each host spends its cap on its own detections and,
    with sockets that watch every camera, on delivering every host's events to its own sockets
    (one feed message per detection: the upper bound, so the prediction errs low)."""
    ingest_ms = cpu_ms_per_detection if cpu_ms_per_detection is not None else inputs.ingest_cpu_ms_per_detection
    per_host_event_ms = 0.0
    if sockets_per_host:
        per_host_event_ms = (
            sockets_per_host * inputs.delivered_cpu_us_per_socket_event
            + inputs.receive_cpu_us_per_feed_message
            + inputs.receive_cpu_us_per_event
        ) / 1000
    # rate_per_host x (ingest_ms + hosts x per_host_event_ms) = the cap, in ms per second.
    rate_per_host = min(
        cores_per_host * 1000 / (ingest_ms + hosts * per_host_event_ms), inputs.ingest_ceiling_per_process
    )
    total = rate_per_host * hosts
    return HarnessPrediction(
        hosts=hosts,
        cores_per_host=cores_per_host,
        sockets_per_host=sockets_per_host,
        cpu_ms_per_detection=ingest_ms,
        rate_per_host=rate_per_host,
        database_cores=total * inputs.database_cpu_ms_per_detection / 1000,
        redis_cores=total
        * (
            inputs.redis_cpu_ms_per_detection
            + (hosts if sockets_per_host else 0) * inputs.redis_cpu_ms_per_message_copy
        )
        / 1000,
    )

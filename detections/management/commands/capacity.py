"""What a deployment needs, from the figures measured on one process (docs/scaling.md).

    .venv/bin/python manage.py capacity --cameras 1000 --viewers 1000 --retention-days 30
    .venv/bin/python manage.py capacity --cameras 1000 --viewers 1000 --retention-days 30 --cameras-per-viewer 50
    .venv/bin/python manage.py capacity --grid --retention-days 30             # 100-10,000 cameras x 10-20,000 viewers
    .venv/bin/python manage.py capacity --grid --retention-days 30 --markdown  # the table in docs/scaling.md
    .venv/bin/python manage.py capacity --harness                              # two hosts of half a core each
    .venv/bin/python manage.py capacity --harness --cpu-ms-per-detection 9.5   # with a figure measured here

Nothing is read from the database or the settings: the inputs are the constants of
detections/operations/capacity.py, each with the benchmark row it comes from, unless
--cpu-ms-per-detection and --us-per-socket-event give figures measured on the
machine to be sized (benchmarks/scale_out.py measures both in its own run).
"""

from django.core.management.base import BaseCommand, CommandError

from detections.operations import capacity

GRID_CAMERAS = (100, 1_000, 10_000)
GRID_VIEWERS = (10, 1_000, 20_000)
INFEASIBLE = "none suffice"


def cores(value: float) -> str:
    return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"


def size(value: float) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value / 1e3:,.1f} KB"


def count(value: int | None) -> str:
    return INFEASIBLE if value is None else f"{value:,}"


class Command(BaseCommand):
    help = "Print the processes, hosts, database, Redis and storage a deployment needs (docs/scaling.md)."

    def add_arguments(self, parser):
        parser.add_argument("--cameras", type=int, help="cameras, each sending --detections-per-camera")
        parser.add_argument("--viewers", type=int, help="open live-feed sockets (browsers, phones)")
        parser.add_argument("--retention-days", type=int, default=30, help="days detections are kept (30)")
        parser.add_argument(
            "--cameras-per-viewer",
            type=int,
            default=10,
            help="cameras each socket subscribes to (10: a site's gates; the camera count: a control room)",
        )
        parser.add_argument("--detections-per-camera", type=float, default=1.0, help="per second (1)")
        parser.add_argument("--cores-per-host", type=int, default=8, help="one process per core (8)")
        parser.add_argument(
            "--usable-core", type=float, default=0.7, help="share of a core a process may use at peak (0.7)"
        )
        parser.add_argument(
            "--webhook-messages-per-second", type=float, default=0.0, help="webhook messages to deliver (0)"
        )
        parser.add_argument(
            "--feed-batch-ms",
            type=float,
            default=0.0,
            help="what if feed messages were gathered this long (0: one per commit, as the code does)",
        )
        parser.add_argument(
            "--routed-by-camera",
            action="store_true",
            help="what if events were offered only to the sockets watching their camera",
        )
        parser.add_argument(
            "--grid", action="store_true", help="100, 1,000, 10,000 cameras x 10, 1,000, 20,000 viewers"
        )
        parser.add_argument("--markdown", action="store_true", help="with --grid: one markdown table")
        parser.add_argument("--harness", action="store_true", help="the prediction for two capped hosts")
        parser.add_argument(
            "--cpu-ms-per-detection",
            type=float,
            help="server CPU per detection measured on the machine to size (default: the committed figure)",
        )
        parser.add_argument(
            "--us-per-socket-event",
            type=float,
            help="server CPU per socket and event sent, measured likewise (default: the committed figure)",
        )

    def handle(self, *args, **options):
        for name in ("cpu_ms_per_detection", "us_per_socket_event"):
            if options[name] is not None and not options[name] > 0:
                raise CommandError(f"--{name.replace('_', '-')} must be above 0.")
        inputs = capacity.calibrated(
            cpu_ms_per_detection=options["cpu_ms_per_detection"], us_per_socket_event=options["us_per_socket_event"]
        )
        if options["harness"]:
            self.print_harness(inputs, measured_here=options["cpu_ms_per_detection"] is not None)
            return
        if options["grid"]:
            deployments = [self.deployment(options, c, v) for c in GRID_CAMERAS for v in GRID_VIEWERS]
        else:
            if options["cameras"] is None or options["viewers"] is None:
                raise CommandError("Give --cameras and --viewers, or --grid for the nine standard scenarios.")
            deployments = [self.deployment(options, options["cameras"], options["viewers"])]
        results = [capacity.model(deployment, inputs) for deployment in deployments]
        if options["markdown"]:
            self.stdout.write(markdown_table(results))
            return
        for result in results:
            self.stdout.write(scenario_table(result))

    def deployment(self, options, cameras: int, viewers: int) -> capacity.Deployment:
        deployment = capacity.Deployment(
            cameras=cameras,
            viewers=viewers,
            retention_days=options["retention_days"],
            cameras_per_viewer=options["cameras_per_viewer"],
            detections_per_camera_per_second=options["detections_per_camera"],
            cores_per_host=options["cores_per_host"],
            usable_core=options["usable_core"],
            webhook_messages_per_second=options["webhook_messages_per_second"],
            feed_batch_ms=options["feed_batch_ms"],
            routed_by_camera=options["routed_by_camera"],
        )
        problems = deployment.problems()
        if problems:
            raise CommandError(" ".join(problems))
        return deployment

    def print_harness(self, inputs: capacity.MeasuredInputs, *, measured_here: bool):
        for sockets in (0, 100):
            prediction = capacity.harness_prediction(sockets_per_host=sockets, inputs=inputs)
            audience = f"{sockets} sockets per host watching every camera" if sockets else "no sockets"
            # The committed figures are a range over several runs; a figure measured here is one.
            best = ""
            if not measured_here:
                other = capacity.harness_prediction(
                    sockets_per_host=sockets,
                    cpu_ms_per_detection=inputs.ingest_cpu_ms_per_detection_best,
                    inputs=inputs,
                )
                best = f", {other.rate:,.0f} at {other.cpu_ms_per_detection:g}"
            self.stdout.write(
                f"{prediction.hosts} hosts x {prediction.cores_per_host:g} core, {audience}: "
                f"{prediction.rate:,.0f} det/s ({prediction.rate_per_host:,.1f} per host) at "
                f"{prediction.cpu_ms_per_detection:g} ms/det{best}; "
                f"MariaDB {prediction.database_cores * 100:.0f}% and Redis {prediction.redis_cores * 100:.0f}% of a core"
            )


def scenario_table(result: capacity.Capacity) -> str:
    deployment = result.deployment
    days = deployment.retention_days
    rows = [
        ("detections", f"{result.detections_per_second:,.0f}/s"),
        (
            "ingest",
            f"{cores(result.ingest_cores)} cores: {result.ingest_processes:,} processes "
            f"at {result.ingest_rate_per_process:,.0f} det/s each; {result.commits_per_second:,.0f} commits/s",
        ),
        (
            "fan-out",
            f"{result.deliveries_per_second:,.0f} events/s sent to sockets, "
            f"{result.offers_per_second:,.0f}/s offered (sent or filtered out); {cores(result.fanout_work_cores)} cores "
            f"+ {result.receive_cores_per_socket_process:.3f} core per socket process to receive the feed",
        ),
        ("socket processes", f"{count(result.socket_processes)} ({size(result.socket_memory_gb * 1e9)} RSS)"),
        ("webhook workers", f"{result.webhook_workers:,} for {deployment.webhook_messages_per_second:,.0f} messages/s"),
        (
            "application hosts",
            f"{count(result.hosts)} of {deployment.cores_per_host} cores ({count(result.processes)} processes)",
        ),
        (
            "database",
            f"{cores(result.database_cores)} cores; {result.database_rows_per_second:,.0f} rows/s written; "
            f"{size(result.database_bytes_per_day)}/day, {size(result.database_bytes_kept)} for {days} days",
        ),
        ("redis", redis_line(result)),
        ("media", f"{size(result.media_bytes_per_day)}/day, {size(result.media_bytes_kept)} for {days} days"),
    ]
    width = max(len(label) for label, _ in rows)
    heading = (
        f"{deployment.cameras:,} cameras at {deployment.detections_per_camera_per_second:g}/s, "
        f"{deployment.viewers:,} viewers of {result.watched_cameras:,} cameras each"
    )
    lines = [heading, "-" * len(heading), *(f"{label:<{width}}  {value}" for label, value in rows)]
    if result.beyond_measured:
        lines.append("beyond what was measured:")
        lines.extend(f"  - {note}" for note in result.beyond_measured)
    return "\n".join(lines) + "\n"


def redis_line(result: capacity.Capacity) -> str:
    line = f"{cores(result.redis_cores)} cores; {result.commits_per_second:,.0f} messages/s in"
    if result.socket_processes is None:
        # Without a number of socket processes the copies out are unknown: the cores above leave them out.
        return f"{line}, plus a copy of each to every socket process"
    return (
        f"{line}, {result.redis_message_copies_per_second:,.0f} copies/s out, "
        f"{size(result.redis_egress_bytes_per_second)}/s out"
    )


def markdown_table(results: list[capacity.Capacity]) -> str:
    header = (
        "| cameras | viewers | det/s | ingest cores (processes) | commits/s | fan-out cores "
        "| socket processes | hosts | MariaDB cores | rows/s | DB per day | media per day | Redis cores |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for result in results:
        fanout = INFEASIBLE if result.fanout_cores is None else cores(result.fanout_cores)
        lines.append(
            f"| {result.deployment.cameras:,} | {result.deployment.viewers:,} | {result.detections_per_second:,.0f} "
            f"| {cores(result.ingest_cores)} ({result.ingest_processes:,}) | {result.commits_per_second:,.0f} "
            f"| {fanout} | {count(result.socket_processes)} | {count(result.hosts)} "
            f"| {cores(result.database_cores)} | {result.database_rows_per_second:,.0f} "
            f"| {size(result.database_bytes_per_day)} | {size(result.media_bytes_per_day)} "
            f"| {cores(result.redis_cores)} |"
        )
    return "\n".join(lines) + "\n"

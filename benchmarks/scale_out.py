"""The multi-host benchmark: tests/multihost.py's hosts (two CPU-capped
application hosts, a data host, HAProxy in front), driven through the load
balancer, and a table.

    .venv/bin/python benchmarks/scale_out.py                 # 0.5 core a host, 2 rounds of 15 s, both drills
    .venv/bin/python benchmarks/scale_out.py --cores 0.5 --duration 20 --rounds 3 --no-drills

Ingest: one loadgen.py poster (closed loop, --concurrency requests in flight
for each host in the rotation, as twice the hosts serve twice the cameras; the
640x480 snapshot pool of benchmarks/run.py) posts through the load balancer,
first with app2 taken out of the rotation (one host), then with both,
alternately for --rounds rounds after an untimed warm-up: the ratio is
measured in one run, on one machine state. CPU is read per host from its cgroup, and for the data host
(MariaDB, Redis, SeaweedFS) from its processes. Each phase says what failed:
client exceptions by kind, refusals by status and by who answered, and how often
HAProxy's checks counted a host down; and whether the shedding is what
docs/operations.md ("When hosts are saturated") predicts. An overload phase then
gives one host --overload requests in flight, to see it shed.

The model (detections/operations/capacity.py, `manage.py capacity --harness`)
predicts each round from its input measured right before the round, on this
machine: app1 without its cap, posted to straight with --concurrency requests in
flight, its CPU per detection (the committed figures came from another day's
machine, and the machine drifts). Both predictions are printed beside the
measurement: from the inputs measured here, and from the committed ones.

Sockets: then one more two-host phase with --sockets-per-host viewers a host
(through the load balancer, every one watching every camera), who keep
docs/websocket.md's reconnect policy; missing events are counted once they have
caught up from the log, with the catch-up time and every socket closed, and why.
The prediction for it takes the cost of a socket measured just before (app1
uncapped, with and without that many viewers of its own).

Drills: a host killed outright (SIGKILL of every process) and a host cut off
(its link set down), each with 6 viewers and 2 cameras on the load balancer:
how long until the last of the lost host's viewers is back on the other host
and caught up, and what the cameras went through.

It needs root (namespaces, cgroups) and the packages of `scripts/bootstrap.sh --dev`.
"""

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# After the socket phase's posting, how long the viewers have to catch up.
CATCH_UP_SECONDS = 120


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=float, default=0.5, help="CPU cap of each application host (0.5)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of each timed phase (15)")
    parser.add_argument("--rounds", type=int, default=2, help="one host, then two, this many times (2)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per host in the rotation (16)")
    parser.add_argument(
        "--sockets-per-host",
        type=int,
        default=100,
        help="then one more two-host phase with this many viewers a host watching every camera (100; 0: none)",
    )
    parser.add_argument(
        "--overload",
        type=int,
        default=256,
        help="then one host with this many requests in flight, to see it shed load (256; 0: skip)",
    )
    parser.add_argument(
        "--calibration-seconds",
        type=float,
        default=10.0,
        help="seconds of each measurement of the model's inputs, before each round and the socket phase (10)",
    )
    parser.add_argument("--no-drills", action="store_true", help="only the ingest phases")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    # Everything below imports Django and the tests' harness, which need these.
    sys.path[:0] = [str(BENCH), str(ROOT / "tests"), str(ROOT)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")
    import django

    django.setup()
    # The drills' cameras post with httpx, which logs every request at INFO: not for the report.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="vm-scale-out-"))
    try:
        measure(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(options, workdir: Path):
    import multihost
    from database import CAMERAS
    from load import Gen, make_pools, read_samples
    from measures import pct

    from detections.operations.capacity import calibrated, harness_prediction, socket_event_us

    if problem := multihost.available():
        sys.exit(problem)
    pool, _ = make_pools(workdir, {})
    figures = {"cores_per_host": options.cores, "phases": [], "calibrations": [], "drills": {}}
    # Local media on each host: the model's figures were measured on local disk.
    with multihost.deployment(options.cores, shared_media=False) as hosts:
        auth = workdir / "auth.json"
        auth.write_text(
            json.dumps(
                {
                    "device_keys": dict.fromkeys(CAMERAS, hosts.credentials.device),
                    "viewer_token": hosts.credentials.viewer,
                }
            )
        )

        def phase(label: str, serving: list[str], in_flight: int | None = None) -> dict:
            for name in multihost.APP_HOSTS:
                (hosts.balancer.admit if name in serving else hosts.balancer.drain)(name)
            hosts.balancer.wait_for({name: ("UP" if name in serving else "MAINT") for name in multihost.APP_HOSTS})
            out = workdir / f"{label}.bin"
            gen = Gen(
                [
                    "post",
                    "--url",
                    hosts.url,
                    "--pool",
                    str(pool),
                    "--auth",
                    str(auth),
                    "--prefix",
                    label,
                    "--out",
                    str(out),
                    "--duration",
                    str(options.duration),
                    "--concurrency",
                    str(in_flight or options.concurrency * len(serving)),
                ],
                workdir / "loadgen.log",
            )
            gen.wait_for("go", timeout=60)
            before, downs_before = cpu_snapshot(hosts), hosts.balancer.check_downs()
            result = gen.wait_for("done", timeout=options.duration + 300)
            after, downs_after = cpu_snapshot(hosts), hosts.balancer.check_downs()
            gen.stop()
            latencies = read_samples(out)
            created = result["created"]
            used = {name: after[name] - before[name] for name in after}
            row = {
                "label": label,
                "hosts": len(serving),
                "in_flight": in_flight or options.concurrency * len(serving),
                "rate": created / result["elapsed"],
                "created": created,
                "failed": result["requests"] - created,
                "statuses": result["statuses"],
                "exceptions": result["exceptions"],
                "refusals": result["refusals"],
                # A host the load balancer's checks counted down while it was serving.
                "counted_down": {name: downs_after[name] - downs_before[name] for name in serving},
                "p50_ms": pct(latencies, 0.50) or 0.0,
                "p99_ms": pct(latencies, 0.99) or 0.0,
                "app_ms_per_det": 1000 * sum(used[name] for name in serving) / max(created, 1),
                "app_cores": {name: used[name] / result["elapsed"] for name in serving},
                "data_ms_per_det": 1000 * used["data"] / max(created, 1),
                "loadgen_cores": result["cpu_seconds"] / result["elapsed"],
                # The machine is shared: how loaded it was over the last minute.
                "load_average": os.getloadavg()[0],
            }
            print(json.dumps(row), flush=True)
            return row

        # Untimed: the database's buffer pool and both processes warm up first.
        def calibrate(label: str, sockets: int = 0) -> dict:
            """The model's input measured now, on this machine, the way its committed
            figures were (benchmarks/run.py's s0-max and s100-max): one application
            process without its cap (app1, app2 idle), posted to straight with as many
            requests in flight as each host has in the timed phases (CPU per detection
            depends on it: the group commit gathers what is waiting), and `sockets`
            viewers on it that receive every event."""
            app1 = hosts.hosts["app1"]
            server = hosts.servers["app1"]
            listener = None
            if sockets:
                listener = Gen(
                    ["listen", "--url", server.ws_url, "--sockets", str(sockets), "--prefix", f"{label}-"]
                    + ["--out", str(workdir / f"{label}-listen.bin"), "--auth", str(auth), "--no-deflate"],
                    workdir / "loadgen.log",
                )
                listener.wait_for("ready", timeout=180)
            gen = Gen(
                ["post", "--url", server.base_url, "--pool", str(pool), "--auth", str(auth), "--prefix", label]
                + ["--out", str(workdir / f"{label}.bin"), "--duration", str(options.calibration_seconds)]
                + ["--concurrency", str(options.concurrency)],
                workdir / "loadgen.log",
            )
            app1.cap.set(None)
            try:
                gen.wait_for("go", timeout=60)
                before = app1.cap.cpu_seconds()
                result = gen.wait_for("done", timeout=options.calibration_seconds + 300)
                used = app1.cap.cpu_seconds() - before
            finally:
                app1.cap.set(options.cores)
                gen.stop()
                if listener is not None:
                    listener.stop()
            created = result["created"]
            row = {
                "label": label,
                "sockets": sockets,
                "rate": created / result["elapsed"],
                "cores": used / result["elapsed"],
                "ms_per_det": 1000 * used / max(created, 1),
                "failed": result["requests"] - created,
                "load_average": os.getloadavg()[0],
            }
            print(json.dumps(row), flush=True)
            return row

        phase("warm-up", list(multihost.APP_HOSTS))
        for round_number in range(1, options.rounds + 1):
            # Right before the round it predicts: the machine (shared with others) drifts.
            calibration = calibrate(f"calibrate-{round_number}")
            figures["calibrations"].append(calibration)
            figures["phases"].append(phase(f"one-{round_number}", ["app1"]))
            figures["phases"].append(phase(f"two-{round_number}", list(multihost.APP_HOSTS)))
        if options.overload:
            # One host with far more in flight than HAProxy lets in and than it
            # drains within the queue timeout: the shedding docs/operations.md predicts.
            figures["overload"] = phase("overload", ["app1"], in_flight=options.overload)
        for name in multihost.APP_HOSTS:
            hosts.balancer.admit(name)
        hosts.balancer.wait_for({name: "UP" for name in multihost.APP_HOSTS})

        if options.sockets_per_host:
            # The two figures the prediction with sockets needs, measured back to back.
            without = calibrate("calibrate-no-sockets")
            with_sockets = calibrate("calibrate-sockets", sockets=options.sockets_per_host)
            figures["socket_calibration"] = {
                "without": without,
                "with": with_sockets,
                "us_per_socket_event": socket_event_us(
                    ms_without=without["ms_per_det"],
                    ms_with=with_sockets["ms_per_det"],
                    sockets=options.sockets_per_host,
                ),
            }
            # Viewers through the load balancer (round robin: half on each host),
            # each watching every camera; they count the phase's events by tracking id.
            sockets = options.sockets_per_host * len(multihost.APP_HOSTS)
            listener = Gen(
                [
                    "listen",
                    "--url",
                    hosts.ws_url,
                    "--sockets",
                    str(sockets),
                    "--prefix",
                    "sockets-",
                    "--out",
                    str(workdir / "listen.bin"),
                    "--auth",
                    str(auth),
                    "--no-deflate",
                ],
                workdir / "loadgen.log",
            )
            connected = listener.wait_for("ready", timeout=180)["connected"]
            # The feed's head: where a viewer that has seen no event yet resumes from.
            ((head,),) = hosts.database.query("SELECT COALESCE(MAX(seq), 0) FROM detections_event")
            listener.send({"prefix": "sockets-", "seq": head})
            listener.wait_for("armed", timeout=30)
            row = phase("sockets", list(multihost.APP_HOSTS))
            # Viewers behind at the end catch up from the log (reconnecting if their
            # socket was closed); missing is what is still missing after this.
            listener.send({"expected": row["created"], "drain": CATCH_UP_SECONDS})
            drained = listener.wait_for("done", timeout=CATCH_UP_SECONDS + 120)
            delivered = read_samples(workdir / "listen.bin")
            listener.stop()
            row.update(
                sockets=connected,
                missing=drained["missing"],
                duplicates=drained["duplicates"],
                caught_up_seconds=drained["caught_up_seconds"],
                closes=drained["closes"],
                resets=drained["resets"],
                failed_reconnects=drained["failed_reconnects"],
                delivery_p50_ms=pct(delivered, 0.50) or 0.0,
                delivery_p99_ms=pct(delivered, 0.99) or 0.0,
            )
            figures["sockets"] = row

        if not options.no_drills:
            from multihost_drills import drill

            figures["drills"]["killed"] = drill(hosts, lambda: hosts.kill_application("app2"))
            hosts.start_application("app2")
            hosts.balancer.wait_for({name: "UP" for name in multihost.APP_HOSTS})
            figures["drills"]["cut off"] = drill(hosts, hosts.hosts["app2"].cut)
            hosts.hosts["app2"].mend()
            hosts.balancer.wait_for({name: "UP" for name in multihost.APP_HOSTS})

    # The model with the committed inputs, and with the ones measured in this run.
    figures["predicted_rate_committed"] = harness_prediction(hosts=2, cores_per_host=options.cores).rate
    rounds = [row for row in figures["phases"] if row["hosts"] == 2]
    for calibration, row in zip(figures["calibrations"], rounds, strict=True):
        inputs = calibrated(cpu_ms_per_detection=calibration["ms_per_det"])
        calibration["predicted_rate"] = harness_prediction(hosts=2, cores_per_host=options.cores, inputs=inputs).rate
        # A host at its cap is the model's premise; a machine shared with others may give less.
        got = statistics.mean(row["app_cores"].values())
        calibration["predicted_rate_at_cores_got"] = harness_prediction(hosts=2, cores_per_host=got, inputs=inputs).rate
    if options.sockets_per_host:
        measured = figures["socket_calibration"]
        inputs = calibrated(
            cpu_ms_per_detection=measured["without"]["ms_per_det"], us_per_socket_event=measured["us_per_socket_event"]
        )
        for key, cores in (
            ("predicted_rate_with_sockets", options.cores),
            ("predicted_rate_with_sockets_at_cores_got", statistics.mean(figures["sockets"]["app_cores"].values())),
        ):
            figures[key] = harness_prediction(
                hosts=2, cores_per_host=cores, sockets_per_host=options.sockets_per_host, inputs=inputs
            ).rate
        figures["predicted_rate_with_sockets_committed"] = harness_prediction(
            hosts=2, cores_per_host=options.cores, sockets_per_host=options.sockets_per_host
        ).rate
    print(report(figures))
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))


def cpu_snapshot(hosts) -> dict[str, float]:
    """CPU seconds so far: each application host's cgroup, and the data host's processes."""
    import psutil

    snapshot = {name: hosts.hosts[name].cap.cpu_seconds() for name in ("app1", "app2")}
    data = 0.0
    for pid in hosts.hosts["data"].pids():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        data += times.user + times.system
    snapshot["data"] = data
    return snapshot


def off_by(predicted: float, measured: float) -> str:
    return f"{100 * (predicted - measured) / measured:+.0f}%"


def what_failed(row: dict) -> str:
    """The client exceptions by kind and the refusals by status and by who answered."""
    parts = [f"{n} {kind}" for kind, n in sorted(row["exceptions"].items(), key=lambda item: -item[1])]
    for key, n in sorted(row["refusals"].items(), key=lambda item: -item[1]):
        status, host, retry_after = key.split("|")
        # Every request goes through HAProxy here: an answer naming no host is its own.
        retry = f"Retry-After {retry_after}" if retry_after else "no Retry-After"
        parts.append(f"{n} {status} from {host or 'HAProxy'} ({retry})")
    return "; ".join(parts) or "-"


def sheds_as_documented(row: dict) -> bool:
    """docs/operations.md, "When hosts are saturated": no client exception, no host
    counted down, every refusal HAProxy's own 503 with Retry-After (a host behind
    HAProxy never refuses), and none at all while each host has no more in flight
    than HAProxy lets in at once."""
    import multihost

    from vehicle_monitor.admission import OVERLOADED_RETRY_AFTER_SECONDS

    if row["exceptions"] or any(row["counted_down"].values()):
        return False
    if row["in_flight"] <= multihost.MAX_PER_HOST * row["hosts"]:
        return not row["refusals"]
    return all(key == f"503||{OVERLOADED_RETRY_AFTER_SECONDS}" for key in row["refusals"])


def shedding_lines(figures: dict) -> list[str]:
    import multihost

    rows = figures["phases"] + [figures[key] for key in ("overload",) if key in figures]
    verdicts = ", ".join(
        f"{row['label']} {'as documented' if sheds_as_documented(row) else 'NOT as documented'}" for row in rows
    )
    lines = [
        f"shedding (docs/operations.md): HAProxy holds at most {multihost.MAX_PER_HOST} requests at a host, "
        f"queues the rest up to {multihost.QUEUE_TIMEOUT_MS / 1000:g} s, then answers 503 with Retry-After; "
        f"no host is counted down for being busy: {verdicts}"
    ]
    if "overload" in figures:
        row = figures["overload"]
        refused = sum(row["refusals"].values())
        lines.append(
            f"overload ({row['in_flight']} in flight at one host): {row['rate']:.1f} det/s stored, "
            f"{refused} of {row['created'] + row['failed']} requests refused ({what_failed(row)}), "
            f"p50 {row['p50_ms']:.0f} / p99 {row['p99_ms']:.0f} ms"
        )
    return lines


def report(figures: dict) -> str:
    lines = [
        f"Two application hosts of {figures['cores_per_host']:g} core each behind HAProxy, one data host",
        "",
        "| phase | hosts | det/s | failed | what failed | hosts counted down | p50 ms | p99 ms | app CPU ms/det "
        "| cores used per host | data host ms/det | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in figures["phases"]:
        cores = ", ".join(f"{name} {value:.2f}" for name, value in row["app_cores"].items())
        downs = ", ".join(f"{name} {n}x" for name, n in row["counted_down"].items() if n) or "none"
        lines.append(
            f"| {row['label']} | {row['hosts']} | {row['rate']:.1f} | {row['failed']} | {what_failed(row)} | {downs} "
            f"| {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['app_ms_per_det']:.1f} | {cores} "
            f"| {row['data_ms_per_det']:.2f} | {row['load_average']:.1f} |"
        )
    one = statistics.mean(row["rate"] for row in figures["phases"] if row["hosts"] == 1)
    two = statistics.mean(row["rate"] for row in figures["phases"] if row["hosts"] == 2)
    lines += [
        "",
        f"two hosts / one host: **{two / one:.2f}x** ({two:.1f} / {one:.1f} det/s, mean of the rounds)",
        "",
        "| round | measured for the model (app1 uncapped, straight) | model's prediction for two hosts "
        "| two hosts measured | off by | the cores the hosts got | the model at those cores | off by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rounds = [row for row in figures["phases"] if row["hosts"] == 2]
    for calibration, row in zip(figures["calibrations"], rounds, strict=True):
        predicted, at_got = calibration["predicted_rate"], calibration["predicted_rate_at_cores_got"]
        got = ", ".join(f"{value:.2f}" for value in row["app_cores"].values())
        lines.append(
            f"| {row['label'].split('-')[-1]} | {calibration['ms_per_det']:.2f} ms/det ({calibration['rate']:.0f} det/s "
            f"at {calibration['cores']:.2f} cores) | {predicted:.0f} det/s | {row['rate']:.1f} det/s "
            f"| {off_by(predicted, row['rate'])} | {got} | {at_got:.0f} det/s | {off_by(at_got, row['rate'])} |"
        )
    predicted = statistics.mean(calibration["predicted_rate"] for calibration in figures["calibrations"])
    at_got = statistics.mean(calibration["predicted_rate_at_cores_got"] for calibration in figures["calibrations"])
    committed = figures["predicted_rate_committed"]
    lines += [
        "",
        f"model's prediction for two hosts, from the inputs measured in this run: **{predicted:.0f} det/s**; "
        f"measured {two:.1f}: **off by {off_by(predicted, two)}** of the measured rate "
        f"(from the committed inputs of docs/scaling.md: {committed:.0f} det/s, off by {off_by(committed, two)}). "
        f"The model gives each host its whole cap; at the cores the hosts did get on this shared machine it "
        f"predicts {at_got:.0f} det/s, off by {off_by(at_got, two)}.",
    ]
    lines += ["", *shedding_lines(figures)]
    if "sockets" in figures:
        row = figures["sockets"]
        predicted = figures["predicted_rate_with_sockets"]
        committed = figures["predicted_rate_with_sockets_committed"]
        calibration = figures["socket_calibration"]
        caught_up = (
            f"all caught up {row['caught_up_seconds']:.1f} s after the posting ended"
            if row["caught_up_seconds"] is not None
            else f"not all caught up {CATCH_UP_SECONDS} s after the posting ended"
        )
        closes = ", ".join(f"{n} {why}" for why, n in sorted(row["closes"].items(), key=lambda item: -item[1]))
        lines += [
            "",
            f"with {row['sockets']} viewers watching every camera (half on each host): {row['rate']:.1f} det/s, "
            f"{row['app_ms_per_det']:.1f} ms/det, failed requests: {what_failed(row)}; delivery p50 "
            f"{row['delivery_p50_ms']:.0f} / p99 {row['delivery_p99_ms']:.0f} ms; {caught_up}, "
            f"{row['missing']} events missing after it, {row['duplicates']} duplicates; "
            f"sockets the server or the line closed (each resumed from its last seq): "
            f"{closes or 'none'}; {row['resets']} resets, {row['failed_reconnects']} reconnects that failed; "
            f"model's prediction from inputs measured in this run ({calibration['without']['ms_per_det']:.2f} ms/det, "
            f"{calibration['us_per_socket_event']:.0f} us per socket and event) {predicted:.0f} det/s, "
            f"off by {off_by(predicted, row['rate'])} of the measured rate (from the committed inputs: "
            f"{committed:.0f} det/s, off by {off_by(committed, row['rate'])}); at the cores the hosts got "
            f"({', '.join(f'{value:.2f}' for value in row['app_cores'].values())}): "
            f"{figures['predicted_rate_with_sockets_at_cores_got']:.0f} det/s, "
            f"off by {off_by(figures['predicted_rate_with_sockets_at_cores_got'], row['rate'])}",
        ]
    if figures["drills"]:
        lines += ["", "| drill | viewers moved | all back and caught up (s) | camera errors | stored after the loss |"]
        lines.append("|---|---|---|---|---|")
        for name, result in figures["drills"].items():
            lines.append(
                f"| host {name} | {result['moved']} | {result['caught_up_seconds']:.2f} | "
                f"{len(result['camera_errors'])} | {result['stored_after_loss']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

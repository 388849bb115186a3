"""The table: a heading that says what ran and how it was measured, one markdown row
per benchmark row, and the table and raw numbers saved to benchmarks/results/."""

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
from bench_processes import BENCH, ROOT
from database import mysql, redis_version
from load import ROWS
from measures import target_check

HEADER = [
    "row",
    "det/s",
    "server CPU ms/det",
    "MariaDB CPU ms/det",
    "POST p50 / p99 (ms)",
    "delivery p50 / p99 (ms)",
    "events missing",
    "target",
    "met",
    "notes",
]


def app_version() -> str:
    """The app's commit when the server starts (others may be changing it)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "detections", "vehicle_monitor"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return sha + (" + uncommitted edits" if dirty else "")


def report(
    results: dict,
    rows: list[str],
    *,
    label: str,
    big_label: str,
    duration: float,
    setup_notes: list[str],
    app_versions: list[str],
) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row_id in rows:
        r = results.get(row_id)
        if r is None:
            continue
        title = ROWS[row_id][0].format(big=big_label)
        if "error" in r:
            lines.append("| " + " | ".join([title, *["—"] * 6, "", "**failed**", r["error"].replace("|", "/")]) + " |")
            continue
        target, met = target_check(row_id, r, results)
        met_text = "—" if met is None else ("yes" if met else "**no**")
        lines.append("| " + " | ".join([title, *cells(row_id, r), target, met_text, notes(row_id, r)]) + " |")
    table = "\n".join(lines)
    command = "benchmarks/run.py " + " ".join(sys.argv[1:])
    try:
        versions = f"{mysql('SELECT VERSION()', fetch=True)[0][0]}, Redis {redis_version()}"
    except Exception:  # a service down must not lose the table
        versions = "MariaDB and Redis (versions unavailable)"
    head = (
        f"## {label}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`{command}` — {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{versions}, Python {platform.python_version()}; "
        f"{duration:g} s per row; {'; '.join(setup_notes)}; {', then '.join(app_versions)}.\n"
        "CPU ms/det: CPU time of all the server's processes (of MariaDB; of Redis in the notes) over the poster's "
        "timed window, divided by the detections (batch items) created in it.\n"
        "CPU in notes: % of one core over the row (server processes, load generator, MariaDB, Redis).\n"
    )
    return head + "\n" + table + "\n"


def fmt(value, digits=1):
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def cells(row_id, r):
    if row_id == "idle":
        return ["—"] * 6
    if row_id == "watch-match":
        c = r["watch_match"]["candidates_5_rules"]
        return ["—", "—", "—", f"{c['p50_ms']:.3f} / {c['p99_ms']:.3f}", "—", "—"]
    if row_id == "plate-like-1m":
        p = r["plate_like"]
        both = "; ".join(f"e{e}: {fmt(p[e]['p50'])} / {fmt(p[e]['p99'])}" for e in ("0", "1"))
        return ["—", "—", "—", both, "—", "—"]
    if row_id.startswith("stats"):
        return ["—", "—", "—", f"{fmt(r['post_p50'])} / {fmt(r['post_p99'])}", "—", "—"]
    delivery = "—" if r.get("delivery_p50") is None else f"{fmt(r['delivery_p50'])} / {fmt(r['delivery_p99'])}"
    missing = "—" if r.get("missing") is None else str(r["missing"])
    per_det = r.get("cpu_ms_per_det", {})
    return [
        fmt(r["dps"]),
        fmt(per_det.get("server"), 2),
        fmt(per_det.get("db"), 2),
        f"{fmt(r['post_p50'])} / {fmt(r['post_p99'])}",
        delivery,
        missing,
    ]


def notes(row_id, r) -> str:
    parts = ["**MariaDB or Redis restarted during the row**"] if r.get("disturbed") else []
    if row_id == "idle":
        return "; ".join(
            parts
            + [
                f"{r['kb_per_socket']:.1f} KB per socket: RSS {r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MB "
                f"while 1000 more idle sockets opened (after 200 first; {r['deflate']} of them deflate)"
            ]
        )
    if row_id == "watch-match":
        return watch_match_notes(r["watch_match"])
    if row_id.startswith("stats"):
        parts.append(f"GET in the POST column, {r['rps']:.1f} req/s sequential, {r['requests']} requests")
    if row_id == "plate-like-1m":
        p = r["plate_like"]
        parts.append(
            "GET p50 / p99 in the POST column (e0, e1: max_edits); by plate: "
            + ", ".join(
                f"e{e} {kind} {fmt(p[f'{e}-{kind}']['p50'])} / {fmt(p[f'{e}-{kind}']['p99'])}"
                for e in ("0", "1")
                for kind in ("exists", "missing")
            )
            + f"; {r['requests']} requests, {r['rps']:.1f} req/s sequential; first page of one query each "
            f"(e0 exists, e0 missing, e1 exists, e1 missing) held {r['plate_like_found']} detections"
        )
    if r.get("watch"):
        parts.append(watch_notes(r))
    if r.get("hooks"):
        parts.append(hooks_notes(r))
    bad = {k: v for k, v in r.get("statuses", {}).items() if k not in ("200", "201")}
    if bad:
        parts.append(f"non-2xx: {bad}")
    if r.get("errors"):
        parts.append(f"first error: {str(r['errors'][0])[:80]}")
    cpu = r.get("cpu", {})
    if cpu:
        redis_ms = r.get("cpu_ms_per_det", {}).get("redis")
        redis_per_det = "" if redis_ms is None else f" ({redis_ms:.2f} ms/det)"
        parts.append(
            f"CPU server {cpu.get('server', 0):.0f}%, gen {r.get('gen_cpu', 0):.0f}%, db {cpu.get('db', 0):.0f}%, "
            f"redis {cpu.get('redis', 0):.0f}%{redis_per_det}, other {cpu.get('other', 0):.0f}%"
        )
    if r.get("connected") is not None:
        parts.append(f"{r['connected']} sockets ({r['deflate']} deflate)")
        if r.get("duplicates"):
            parts.append(f"{r['duplicates']} duplicates")
        if r.get("closed"):
            parts.append(f"{r['closed']} sockets closed")
        if r.get("delivery_max") is not None:
            parts.append(f"delivery max {fmt(r['delivery_max'])} ms")
        if r.get("listen_lag_p99", 0) > 5:
            parts.append(f"listener loop lag p99 {r['listen_lag_p99']:.0f} ms")
    if r.get("db_connections", 0) > 20:
        parts.append(f"server holds {r['db_connections']} MySQL connections after the row")
    if r.get("shed"):
        parts.append(f"{r['shed']} sends shed (128 requests already waiting)")
    if r.get("late_p99", 0) > 5:
        parts.append(f"sends late p99 {r['late_p99']:.0f} ms")
    return "; ".join(parts)


def watch_match_notes(w: dict) -> str:
    lists = ", ".join(
        f"{name} {fmt(s['p50_ms'] * 1000)} / {fmt(s['p99_ms'] * 1000)}" for name, s in w["best_match"].items()
    )
    a, c = w["best_match_all_lists"], w["candidates_5_rules"]
    return (
        f"ms per detection in the POST column: raising.candidates, 5 rules (mean {c['mean_ms']:.3f}, "
        f"max {c['max_ms']:.3f}); best_match on all 3 lists p50 / p99 {a['p50_ms']:.3f} / {a['p99_ms']:.3f} ms "
        f"(mean {a['mean_ms']:.3f}); per list, µs: {lists}; {w['queries']} plates, "
        f"{w['matched']}/{w['meant_to_match']} listed ones found; index of {w['entries']} entries built in "
        f"{w['build_seconds']:.2f} s, {w['rss_delta_mb']:.0f} MB RSS ({w['traced_mb']:.0f} MB tracemalloc)"
    )


def watch_notes(r: dict) -> str:
    a = r["watch"]
    return (
        f"alerts: {a['alerted']} of {a['detections']} detections ({100 * a['alerted'] / max(a['detections'], 1):.2f}%; "
        f"{a['expected_alerted']} carried a listed plate; {a['expected_not_alerted']} of those without an alert, "
        f"{a['alerted_unexpected']} alerted unexpectedly), {a['alerts']} alert rows; "
        f"{a['entries']} plates, {a['rules']} rules loaded in {a['insert_seconds']:.1f} s, "
        f"config.load() {a['config_load_seconds']:.2f} s, server RSS +{a['server_rss_delta_mb']:.0f} MB"
    )


def hooks_notes(r: dict) -> str:
    h = r["hooks"]
    worker_ms = 1000 * h["worker_cpu_seconds"] / max(h["messages"], 1)
    left = {k: v for k, v in h["statuses"].items() if k != "delivered"}
    return (
        f"webhooks: {h['messages']} messages to {h['endpoints']} endpoints, {h['arrived']} arrived"
        f" ({h['hook_duplicates']} duplicates), all delivered {h['drain_seconds']:.1f} s after the posters stopped"
        + (f" (not delivered: {left})" if left else "")
        + f"; delivery column = commit (WebhookMessage.created_at) -> receiver, max {fmt(h['delivery_max'])} ms; "
        f"from the body's timestamp p50 / p99 {fmt(h['body_p50'])} / {fmt(h['body_p99'])} ms; "
        f"of which in the outbox until the attempt p50 / p99 {fmt(h['outbox_p50'])} / {fmt(h['outbox_p99'])} ms, "
        f"the attempt (POST to answer) {fmt(h['attempt_p50'])} / {fmt(h['attempt_p99'])} ms ({h['attempts']} attempts); "
        f"worker CPU {r['cpu'].get('worker', 0):.0f}% in the window, {worker_ms:.2f} ms/message over row + drain "
        f"({r['cpu_ms_per_det'].get('worker', 0):.2f} ms/det in the window); receiver "
        f"{h['receiver_cpu_seconds']:.1f} CPU s; signatures checked {h['verified']}, bad {h['bad_signatures']}"
    )


def format_brief(r) -> str:
    """A row's main figures on one line, for the progress log."""
    keys = [
        "dps",
        "cpu_ms_per_det",
        "post_p50",
        "post_p99",
        "delivery_p50",
        "delivery_p99",
        "missing",
        "kb_per_socket",
        "gen_cpu",
        "cpu",
    ]
    return ", ".join(
        f"{k}={json.dumps(r[k], default=str) if isinstance(r[k], dict) else fmt(r[k]) if isinstance(r[k], float) else r[k]}"
        for k in keys
        if k in r
    )


def raw_numbers(results: dict) -> dict:
    """The results without their latency samples."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "latencies"} for k, v in results.items()}


def save(table: str, results: dict, label: str) -> Path:
    """Append the table to benchmarks/results/<date>-<label>.md; the raw numbers go to the .json beside it."""
    saved = BENCH / "results"
    saved.mkdir(exist_ok=True)
    path = saved / f"{datetime.now(UTC):%Y-%m-%d}-{label}.md"
    with path.open("a") as f:
        f.write(table + "\n")
    raw = saved / f"{datetime.now(UTC):%Y-%m-%d}-{label}.json"
    raw.write_text(json.dumps(raw_numbers(results), indent=1, default=str))
    return path

"""What a row measured: latency percentiles, CPU per detection, the record kept
for each kind of row, and whether a record meets its row's target."""


def pct(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def cpu_ms_per_det(cpu_used: dict, created: int) -> dict:
    # The cost of a unit of work, which a faster rate alone does not show: CPU
    # time over the poster's window for the detections (batch items) it created.
    groups = [g for g in ("server", "db", "redis", "worker") if g in cpu_used]
    return {g: 1000 * cpu_used[g] / created for g in groups} if created else {}


def delivery_record(drained: list[dict], samples: list[float], listen_info: dict) -> dict:
    """The listeners' counts after the drain, and delivery latency from their samples (sorted)."""
    return {
        "missing": sum(d["missing"] for d in drained),
        "duplicates": sum(d["duplicates"] for d in drained),
        "extra": sum(d["extra"] for d in drained),
        "closed": sum(d["closed"] for d in drained),
        "listen_cpu_seconds": sum(d["cpu_seconds"] for d in drained),
        "listen_lag_p99": max(d["lag_p99_ms"] for d in drained),
        "listen_lag_max": max(d["lag_max_ms"] for d in drained),
        "delivery_p50": pct(samples, 0.5),
        "delivery_p99": pct(samples, 0.99),
        "delivery_max": samples[-1] if samples else None,
        "deliveries": len(samples),
        **listen_info,
    }


def post_record(result: dict, delivery: dict, *, db_connections: int, sockets: int | None) -> dict:
    """An ingest (or batch) row: the poster's result, and the listeners' delivery when there were sockets."""
    lat = result["latencies"]
    created = result["created"]
    row = {
        "db_connections": db_connections,
        "dps": result["created"] / result["elapsed"],
        "post_p50": pct(lat, 0.5),
        "post_p99": pct(lat, 0.99),
        "requests": result["requests"],
        "created": created,
        "statuses": result["statuses"],
        "errors": result["errors"],
        "gen_cpu": 100 * result["cpu_seconds"] / result["elapsed"] + result["cpu"].get("gen", 0),
        "cpu": result["cpu"],
        "cpu_ms_per_det": cpu_ms_per_det(result["cpu_used"], created),
        "poster_lag_p99": result["lag_p99_ms"],
        "late_p99": result["late_p99_ms"],
        "shed": result.get("shed", 0),
        **delivery,
    }
    if not sockets:
        row["missing"] = None
    return row


def stats_record(result: dict) -> dict:
    lat = result["latencies"]
    return {
        "post_p50": pct(lat, 0.5),
        "post_p99": pct(lat, 0.99),
        "rps": result["requests"] / result["elapsed"],
        "requests": result["requests"],
        "statuses": result["statuses"],
        "errors": result["errors"],
        "cpu": result["cpu"],
        "gen_cpu": 100 * result["cpu_seconds"] / result["elapsed"],
    }


def idle_record(rss_before: int, rss_after: int, connected: int, deflate: int) -> dict:
    return {
        "kb_per_socket": (rss_after - rss_before) / 1024 / max(connected, 1),
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        "sockets": connected,
        "deflate": deflate,
    }


def ratio_to_s0_max(r: dict, results: dict) -> float | None:
    """The row's det/s over s0-max's in the same run (the rows run back to back)."""
    base = results.get("s0-max", {}).get("dps")
    return r["dps"] / base if base and r.get("dps") is not None else None


def target_check(row_id: str, r: dict, results: dict) -> tuple[str, bool | None]:
    """The row's target, and whether the measurement meets it."""
    dps, p99, d99, missing = r.get("dps"), r.get("post_p99"), r.get("delivery_p99"), r.get("missing")
    server_ms = r.get("cpu_ms_per_det", {}).get("server")
    none_missing = missing == 0
    if row_id == "watch-match":
        w = r["watch_match"]
        worst = max(w["candidates_5_rules"]["p99_ms"], w["best_match_all_lists"]["p99_ms"])
        return "< 1 ms per plate (p99, 5 rules)", worst < 1 and w["matched"] == w["meant_to_match"]
    if row_id == "s0-watch":
        ratio = ratio_to_s0_max(r, results)
        a = r["watch"]
        alerts_right = a["expected_not_alerted"] == 0 and a["alerted_unexpected"] == 0
        if ratio is None:
            return ">= 0.9x s0-max (not run), alerts on the 1% listed", None
        return f">= 0.9x s0-max: {ratio:.2f}x; alerts on the 1% listed", ratio >= 0.9 and alerts_right
    if row_id == "hooks-3":
        ratio = ratio_to_s0_max(r, results)
        h = r["hooks"]
        once = h["hook_missing"] == 0 and h["hook_duplicates"] == 0 and not h["bad_signatures"]
        if ratio is None:
            return ">= 0.9x s0-max (not run), every message once", None
        return f">= 0.9x s0-max: {ratio:.2f}x; every message once", ratio >= 0.9 and once
    if row_id == "hooks-latency":
        h = r["hooks"]
        once = h["hook_missing"] == 0 and h["hook_duplicates"] == 0 and not h["bad_signatures"]
        return (
            "commit -> 2xx p99 < 200 ms, every message once",
            d99 is not None and d99 < 200 and once and dps >= 0.97 * 33,
        )
    if row_id == "plate-like-1m":
        p = r["plate_like"]
        return "p99 < 100 ms, max_edits 0 and 1", p["0"]["p99"] < 100 and p["1"]["p99"] < 100
    if row_id == "s0-max":
        return (
            "server CPU <= 3.5 ms/det, >= 280/s, POST p99 < 50 ms",
            server_ms is not None and server_ms <= 3.5 and dps >= 280 and p99 < 50,
        )
    if row_id == "s0-rate":
        return "300/s held, POST p99 < 15 ms", dps >= 0.97 * 300 and p99 < 15
    if row_id == "s100-max":
        return (
            ">= 110/s, delivery p99 < 150 ms, none missing",
            dps >= 110 and d99 is not None and d99 < 150 and none_missing,
        )
    if row_id == "s100-rate":
        return (
            "100/s held, delivery p99 < 30 ms, none missing",
            dps >= 97 and d99 is not None and d99 < 30 and none_missing,
        )
    if row_id == "s1000-rate":
        return (
            "10/s held, delivery p99 < 250 ms, none missing",
            dps >= 9.7 and d99 is not None and d99 < 250 and none_missing,
        )
    if row_id == "s1000-max":
        return "(no target) none missing", none_missing
    if row_id == "ingest-1m":
        base = results.get("ingest-1k", {}).get("dps") or results.get("s0-max", {}).get("dps")
        if not base:
            return ">= 90% of the 1k-row figure", None
        return f">= 90% of 1k ({0.9 * base:.0f}/s)", dps >= 0.9 * base
    if row_id == "ingest-1k":
        return "(reference for the big table)", None
    if row_id in ("stats-1k", "stats-1m"):
        return "p99 < 50 ms", p99 < 50
    if row_id == "batch":
        return "server CPU <= 1 ms/item, >= 1500/s", server_ms is not None and server_ms <= 1 and dps >= 1500
    if row_id == "idle":
        return "< 50 KB per socket", r["kb_per_socket"] < 50
    return "", None

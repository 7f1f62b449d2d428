"""Benchmark: what telemetry costs (history sampler, ``/metrics``, history queries).

    .venv/bin/python -m bench.scenario_telemetry [--quick] [--no-wireguard] [--out FILE]
        [--only sampler|scrape|queries ...] [--pause SECONDS]

1. **Sampler**: idle CPU of ``raspapi serve`` with every built-in plugin and
   the history sampler at its default 10 s, over the same window as the same
   daemon with ``RASPAPI_DISABLE=history``. Target: under 0.5% of a core.
2. **Scrape**: ``GET /metrics`` with 200 Wi-Fi stations (a scripted hostapd
   control socket, as in ``bench/scenario_clients.py``) and 500 WireGuard
   peers (a wireguard-go interface, as in ``bench/scenario_wireguard.py``;
   needs root, skipped with ``--no-wireguard`` or when it cannot run). Cold
   scrapes wait past the plugins' 1 s caches first (1.2 s apart: within the
   2 s they serve their last refresh while the next runs); warm ones follow
   each other. ``--pause 15`` spaces the cold ones as Prometheus does by
   default: the daemon learns that cadence from the first two and collects
   ahead of the next ones, so the cold series is also given as its first
   scrape and the scrapes on cadence (from the third). Both series in the
   classic text format, then in OpenMetrics as Prometheus asks for it.
   Target: under 20 ms (cold p50).
3. **Query**: 30 days of 10 metrics sampled every 10 s written straight into
   ``history.db`` (2.6 million values and their 5-minute rollups), then
   ``GET /api/v1/history?since=-30d&step=5184`` (500 points) and the widest
   query the values serve (about 2000 steps of 299 s, 60 000 values).
   Target: under 100 ms.

Times are from the client's side (request to full body) over loopback, one
request at a time. Exit status 0 when every target is met, 1 when one is
missed, 2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import AUTH, BenchError, Daemon, ServerProcess, cpu_seconds, idle_cpu_percent

SCRAPE_TARGET_MS = 20.0
QUERY_TARGET_MS = 100.0
IDLE_TARGET_PERCENT = 0.5
DAYS = 30
METRICS = 10
INTERVAL_MS = 10_000
#: What Prometheus 2 sends (it asks for OpenMetrics first).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PARTS = ("sampler", "scrape", "queries")


def timed_get(
    server: ServerProcess,
    path: str,
    runs: int,
    pause: float = 0.0,
    headers: dict[str, str] | None = None,
) -> list[float]:
    """Milliseconds per ``GET path`` (each must answer 200), ``pause`` seconds apart."""
    times: list[float] = []
    for _ in range(runs):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        status, body = server.get(path, headers or AUTH)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body[:200]!r}")
        times.append(elapsed)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "runs": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.9) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


# -- 1. the sampler's idle cost ----------------------------------------------------------


def measure_idle(seconds: float, say: Callable[[str], None]) -> dict[str, Any]:
    with Daemon() as sampling, Daemon(extra_env={"RASPAPI_DISABLE": "history"}) as quiet:
        time.sleep(2.0)  # start-up work done
        say(f"  idle CPU over {seconds:g} s: sampler at 10 s, and without the history plugin")
        on, off = idle_cpu_percent([sampling.pid, quiet.pid], seconds)
        status, body = sampling.get("/api/v1/history/metrics", AUTH)
        names = len(json.loads(body)["metrics"]) if status == 200 else 0
    return {
        "seconds": seconds,
        "sampler_on_percent": round(on, 3),
        "history_disabled_percent": round(off, 3),
        "sampled_names": names,
    }


# -- 2. /metrics with 200 stations and 500 peers ---------------------------------------


def scrape_server(wireguard: bool, say: Callable[[str], None]) -> tuple[Daemon, str]:
    from bench.scenario_clients import StationsDaemon

    if wireguard:
        try:
            from bench.scenario_wireguard import WireguardDaemon, check_machine

            check_machine()
        except BenchError as exc:
            say(f"  no WireGuard peers: {exc}")
        else:

            @dataclass
            class Both(StationsDaemon, WireguardDaemon):
                pass

            return Both(ready_path="/metrics", ready_headers=dict(AUTH)), "200 stations, 500 peers"
    return StationsDaemon(ready_path="/metrics", ready_headers=dict(AUTH)), "200 stations"


def measure_scrape(
    runs: int, wireguard: bool, say: Callable[[str], None], pause: float = 1.2
) -> dict[str, Any]:
    """Cold (``pause`` seconds apart) and warm series in the classic text format (no
    Accept header), then in OpenMetrics as Prometheus asks for it (``openmetrics``)."""
    server, what = scrape_server(wireguard, say)
    with server:
        status, body = server.get("/metrics", AUTH)
        text = body.decode()
        stations = text.count("hostapd_station_signal_dbm{")
        peers = text.count("wireguard_peer_receive_bytes_total{")
        say(f"  /metrics with {what}: {len(body)} bytes, {text.count(chr(10))} lines")
        if status != 200 or stations < 200:
            raise BenchError(f"/metrics answered {status} with {stations} stations")
        plain = scrape_series(server, runs, dict(AUTH), pause)
        status, body = server.get("/metrics", {**AUTH, "Accept": PROMETHEUS_ACCEPT})
        if status != 200 or not body.endswith(b"# EOF\n"):
            raise BenchError(f"/metrics in OpenMetrics answered {status}: {body[-200:]!r}")
        say(f"  the same in OpenMetrics: {len(body)} bytes")
        openmetrics = scrape_series(server, runs, {**AUTH, "Accept": PROMETHEUS_ACCEPT}, pause)
    return {
        "with": what,
        "stations": stations,
        "peers": peers,
        "bytes": len(text.encode()),
        **plain,
        "openmetrics": {"bytes": len(body), **openmetrics},
    }


def scrape_series(
    server: Daemon, runs: int, headers: dict[str, str], pause: float
) -> dict[str, Any]:
    """``runs`` cold scrapes (``pause`` s apart) then ``3 * runs`` warm ones, with the
    daemon's CPU time per scrape: less noisy than the clock on a busy machine (cold:
    with the refreshes each scrape starts, and ``pause`` s of idle work). The cold
    series' first scrape, and those from the third on (once two steady intervals
    let the daemon learn the cadence: on cadence), are also given apart."""
    timed_get(server, "/metrics", 3, headers=headers)  # warm-up: imports, first collections
    before = cpu_seconds(server.pid)
    cold = timed_get(server, "/metrics", runs, pause=pause, headers=headers)
    middle = cpu_seconds(server.pid)
    warm = timed_get(server, "/metrics", runs * 3, headers=headers)
    after = cpu_seconds(server.pid)
    return {
        "cold": {
            **summary(cold),
            "cpu_ms": round((middle - before) * 1000 / runs, 2),
            "first_ms": round(cold[0], 2),
            "on_cadence": summary(cold[2:]) if len(cold) > 2 else {},
        },
        "warm": {**summary(warm), "cpu_ms": round((after - middle) * 1000 / (runs * 3), 2)},
    }


# -- 3. history queries over 30 days -----------------------------------------------------


@dataclass
class FilledDaemon(Daemon):
    """The daemon on a history.db holding ``days`` of ``metrics`` sampled every 10 s."""

    days: int = DAYS
    metrics: int = METRICS
    until: float = field(default_factory=time.time)
    fill_seconds: float = 0.0

    def prepare(self) -> None:
        super().prepare()
        from raspapi.plugins.history.store import MIGRATIONS, ROLLUP_MS

        from raspapi.state.storage import Store

        started = time.perf_counter()
        store = Store(self.workdir / "state" / "history.db", MIGRATIONS)
        end = int(self.until * 1000) // INTERVAL_MS * INTERVAL_MS
        start = end - self.days * 86_400_000
        rng = random.Random(7)

        def fill(conn: Any) -> None:
            conn.execute("BEGIN")
            for metric in range(1, self.metrics + 1):
                conn.execute(
                    "INSERT INTO metrics (id, name) VALUES (?, ?)", (metric, f"bench.m{metric}")
                )
                value = 50.0
                rows: list[tuple[int, int, float]] = []
                buckets: dict[int, tuple[int, float, float, float]] = {}
                for ts in range(start, end, INTERVAL_MS):
                    value = min(100.0, max(0.0, value + rng.uniform(-2, 2)))
                    rows.append((metric, ts, value))
                    bucket = ts - ts % ROLLUP_MS
                    n, total, low, high = buckets.get(bucket, (0, 0.0, value, value))
                    buckets[bucket] = (n + 1, total + value, min(low, value), max(high, value))
                conn.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
                conn.executemany(
                    "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?)",
                    [(metric, b, *agg) for b, agg in buckets.items()],
                )
            conn.execute("COMMIT")

        store.call(fill)
        store.close()
        self.fill_seconds = time.perf_counter() - started

    def env(self) -> dict[str, str]:
        env = super().env()
        # Keep the 30 days of values the scenario wrote (the default keeps 7).
        env["RASPAPI_HISTORY_RETENTION_DAYS"] = str(self.days + 1)
        return env


def measure_queries(runs: int, say: Callable[[str], None]) -> dict[str, Any]:
    server = FilledDaemon(ready_path="/api/v1/history/metrics", ready_headers=dict(AUTH))
    say(f"  writing {DAYS} days of {METRICS} metrics at 10 s into history.db...")
    with server:
        values = DAYS * 8640 * METRICS
        say(f"  {values} values written in {server.fill_seconds:.1f} s")
        month = f"/api/v1/history?metric=bench.m1&since=-{DAYS}d&step={DAYS * 86400 // 500}"
        status, body = server.get(month, AUTH)
        answer = json.loads(body)
        points = answer.get("points", [])
        filled = sum(1 for p in points if p["count"])
        if status != 200 or len(points) not in (500, 501) or filled < 495:
            raise BenchError(f"the 30-day query answered {status}, {filled} points filled")
        # The widest range short steps allow: about 2000 steps of 299 s, from the values.
        widest = f"/api/v1/history?metric=bench.m1&since={time.time() - 597_000:.0f}&step=299"
        status, body = server.get(widest, AUTH)
        raw = json.loads(body)
        if status != 200 or raw["source"] != "samples" or len(raw["points"]) < 1990:
            raise BenchError(f"the widest values query answered {status}: {body[:200]!r}")
        timed_get(server, month, 3)
        rollups = timed_get(server, month, runs)
        samples = timed_get(server, widest, runs)
    return {
        "values": values,
        "fill_seconds": round(server.fill_seconds, 1),
        "month_500_points": summary(rollups),
        "widest_from_values_2000_points": summary(samples),
        "month_body_bytes": len(json.dumps(answer)),
    }


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter idle window, fewer runs")
    parser.add_argument("--no-wireguard", action="store_true", help="stations only")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU")
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run this part only (may be repeated)"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=1.2,
        help="seconds between cold scrapes (Prometheus's default interval: 15)",
    )
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    idle = 20.0 if args.quick else args.idle
    runs = 8 if args.quick else 20
    parts = set(args.only or PARTS)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    figures: dict[str, Any] = {}
    verdicts: list[tuple[str, str, str, bool]] = []
    if "sampler" in parts:
        say("sampler")
        sampler = figures["sampler"] = measure_idle(idle, say)
        verdicts.append(
            (
                "idle CPU, sampler at 10 s",
                f"{sampler['sampler_on_percent']:.2f}%",
                f"< {IDLE_TARGET_PERCENT}%",
                sampler["sampler_on_percent"] < IDLE_TARGET_PERCENT,
            )
        )
        print(
            f"idle CPU over {sampler['seconds']:g} s: sampler on "
            f"{sampler['sampler_on_percent']:.3f}%, history disabled "
            f"{sampler['history_disabled_percent']:.3f}% "
            f"({sampler['sampled_names']} names sampled)"
        )
    if "scrape" in parts:
        say("scrape")
        scrape = figures["scrape"] = measure_scrape(runs, not args.no_wireguard, say, args.pause)
        for label, series in (("text", scrape), ("OpenMetrics", scrape["openmetrics"])):
            verdicts.append(
                (
                    f"/metrics cold p50 ({label}), {scrape['with']}",
                    f"{series['cold']['p50_ms']:.1f} ms",
                    f"< {SCRAPE_TARGET_MS:g} ms",
                    series["cold"]["p50_ms"] < SCRAPE_TARGET_MS,
                )
            )
        print(f"/metrics, {scrape['with']}: {scrape['bytes']} bytes")
        for label, series in (("text", scrape), ("OpenMetrics", scrape["openmetrics"])):
            for name in ("cold", "warm"):
                s = series[name]
                print(
                    f"  {label} {name}: p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, "
                    f"max {s['max_ms']} ms, daemon CPU {s['cpu_ms']} ms per scrape"
                )
                if name == "cold" and s["on_cadence"]:
                    c = s["on_cadence"]
                    print(
                        f"    first {s['first_ms']} ms; from the third (on cadence): "
                        f"p50 {c['p50_ms']} ms, p90 {c['p90_ms']} ms, max {c['max_ms']} ms"
                    )
    if "queries" in parts:
        say("history queries")
        queries = figures["queries"] = measure_queries(runs, say)
        for name, label in (
            ("month_500_points", "history 30 d -> 500 points p50"),
            ("widest_from_values_2000_points", "history 2000 steps of values p50"),
        ):
            verdicts.append(
                (
                    label,
                    f"{queries[name]['p50_ms']:.1f} ms",
                    f"< {QUERY_TARGET_MS:g} ms",
                    queries[name]["p50_ms"] < QUERY_TARGET_MS,
                )
            )
        print(f"history: {queries['values']} values ({queries['fill_seconds']} s to write)")
        for name in ("month_500_points", "widest_from_values_2000_points"):
            s = queries[name]
            print(f"  {name}: p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, max {s['max_ms']} ms")
    for name, measured, limit, ok in verdicts:
        print(f"{name:52} {measured:>10} {limit:>10}  {'PASS' if ok else 'MISS'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figures["targets"] = [
            {"target": n, "measured": m, "limit": lim, "pass": ok} for n, m, lim, ok in verdicts
        ]
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(ok for *_, ok in verdicts) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

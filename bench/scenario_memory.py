"""Benchmark: resident memory before and after every route family was asked once (issue 16).

    .venv/bin/python -m bench.scenario_memory [--runs 3] [--settle 12] [--out FILE.json]

``raspapi serve`` with every built-in plugin on a copy of the fixture root
(as ``bench.run``'s ``system`` scenario), then per run:

1. **start**: ``VmRSS`` once ``GET /system`` answered (the server is ready);
2. **system**: ``VmRSS`` after ``--settle`` seconds more, the first history
   sample (every 10 s) taken, and ``GET /system`` asked again;
3. **every route**: one ``GET`` of each plugin's main route (the first
   ``GET`` route without a path parameter under ``/api/v1/<plugin>`` that
   ``GET /`` lists), one of every RaspAP route listed, the core's
   (``/``, ``/health``, ``/ready``, ``/openapi.json``, ``/docs``, ``/redoc``),
   ``/metrics``, the admin page and one static file; then ``--settle``
   seconds (at least one history interval) and ``VmRSS`` again.

So memory moved from start-up to the first request shows in the third
figure. The figures are reported, not judged: the target (45 MB after load)
is ``bench.run``'s. The median over ``--runs`` fresh daemons is printed.
Exit status 0, or 2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import AUTH, HISTORY_INTERVAL, BenchError, Daemon, ServerProcess

MB = 1024 * 1024
CORE_PATHS = ("/", "/health", "/ready", "/openapi.json", "/docs", "/redoc", "/metrics")
PAGE_PATHS = ("/admin", "/admin/login", "/static/admin/admin.css")


def main_routes(index: dict[str, Any]) -> list[str]:
    """One GET path per route family: each plugin's first API route without a
    parameter, and every RaspAP (root) route without one."""
    seen: set[str] = set()
    paths: list[str] = []
    for entry in index.get("endpoints", []):
        path, plugin = str(entry.get("path", "")), entry.get("plugin")
        if "GET" not in entry.get("methods", []) or "{" in path or not plugin:
            continue
        if path.startswith("/api/v1/"):
            if plugin in seen:
                continue
            seen.add(plugin)
        paths.append(path)
    return paths


def _get_all(server: ServerProcess, paths: Sequence[str]) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for path in paths:
        try:
            status, _ = server.get(path, AUTH)
        except OSError as exc:
            raise BenchError(f"GET {path}: {exc}") from exc
        statuses[path] = status
    return statuses


def one_run(settle: float) -> dict[str, Any]:
    with Daemon(ready_path="/system", ready_headers=AUTH) as server:
        start = server.rss_bytes()
        time.sleep(settle)
        _get_all(server, ["/system"])
        after_system = server.rss_bytes()
        status, body = server.get("/", AUTH)
        if status != 200:
            raise BenchError(f"GET / answered {status}")
        paths = [*CORE_PATHS, *main_routes(json.loads(body)), *PAGE_PATHS]
        statuses = _get_all(server, paths)
        time.sleep(settle)
        after_all = server.rss_bytes()
        return {
            "start_bytes": start,
            "system_bytes": after_system,
            "every_route_bytes": after_all,
            "peak_bytes": server.peak_rss_bytes(),
            "statuses": statuses,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scenario_memory", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh daemons (default 3)")
    parser.add_argument(
        "--settle",
        type=float,
        default=HISTORY_INTERVAL + 2,
        help="seconds before each reading after start (default 12: one history sample)",
    )
    parser.add_argument("--out", type=Path, help="JSON results file")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 20 or not HISTORY_INTERVAL <= args.settle <= 120:
        parser.error("--runs 1..20, --settle 10..120")
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        try:
            run = one_run(args.settle)
        except BenchError as exc:
            print(f"run {i + 1}: {exc}", file=sys.stderr)
            return 2
        runs.append(run)
        bad = {p: s for p, s in run["statuses"].items() if s >= 500 and s != 503}
        print(
            f"run {i + 1}: start {run['start_bytes'] / MB:.1f} MB, after /system "
            f"{run['system_bytes'] / MB:.1f} MB, after every route "
            f"{run['every_route_bytes'] / MB:.1f} MB ({len(run['statuses'])} paths"
            + (f"; errors: {bad}" if bad else "")
            + ")",
            flush=True,
        )
    summary = {
        key: statistics.median(r[f"{key}_bytes"] for r in runs) / MB
        for key in ("start", "system", "every_route", "peak")
    }
    print(
        f"median of {len(runs)}: start {summary['start']:.1f} MB, after /system "
        f"{summary['system']:.1f} MB, after every route {summary['every_route']:.1f} MB, "
        f"peak {summary['peak']:.1f} MB"
    )
    if args.out is not None:
        args.out.write_text(json.dumps({"runs": runs, "median_mb": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

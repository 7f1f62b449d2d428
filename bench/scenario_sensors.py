"""Benchmark: sensor ingest over HTTP, and a million points downsampled to 500 steps.

    .venv/bin/python -m bench.scenario_sensors [--quick] [--duration 20] [--batch 500]
                                               [--connections 4] [--out FILE]

The daemon runs as in the other scenarios (``raspapi serve`` on a copy of the
fixture root, its own state folder). The benchmark creates a key with the
``ingest`` scope and a series, then:

1. Ingest: wrk (a Lua script builds each body) POSTs batches of ``--batch``
   points to ``/api/v1/sensors/series/<id>/points`` for ``--duration``
   seconds over ``--connections`` connections. Each point has two fields and
   its own timestamp, 10 ms after the previous one (a day ago onwards), as a
   device sending its buffer would. Points/s = batches/s x batch size. Every
   answer must be a 201 (any other makes the run invalid).
2. The series is topped up to at least 1,000,000 points if the run stored
   fewer, then checked: its point count is what was sent.
3. Query: ``GET .../points?since=&until=&step=`` over exactly the first
   1,000,000 points, 500 steps, min/avg/max of both fields; 20 requests
   each, one at a time. Once with ``step=20`` (a multiple of 10 s: read from
   the rollups) and once with ``step=20.002`` (not a multiple: every point is
   read). The answer's counts must add up to 1,000,000 per field.

Targets (issue 9): at least 50,000 points/s in batches of 500, and the
million-point query under 200 ms (median). Exit status 0 when both are met,
1 when one is missed, 2 when a measurement is invalid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import AUTH, HOST, BenchError, Daemon, parse_wrk, wrk_binary

INGEST_TARGET = 50_000.0
QUERY_TARGET_MS = 200.0
QUERY_POINTS = 1_000_000
STEPS = 500
SPACING_MS = 10
QUERY_RUNS = 20

LUA = """
local counter = 0
local base = {base}
local batch = {batch}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["access_token"] = "{key}"
request = function()
  local parts = {{}}
  local first = counter * batch
  for i = 0, batch - 1 do
    local n = first + i
    local ms = base + n * {spacing}
    parts[i + 1] = string.format(
      '{{"at":%.3f,"fields":{{"temperature":%.2f,"humidity":%.1f}}}}',
      ms / 1000, 20 + (n % 700) / 100, 40 + (n % 300) / 10)
  end
  counter = counter + 1
  return wrk.format(nil, "{path}", nil, '{{"points":[' .. table.concat(parts, ",") .. ']}}')
end
"""


def _request(
    server: Daemon,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _json(server: Daemon, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    status, raw = _request(server, method, path, body, **kw)
    if status >= 300:
        raise BenchError(f"{method} {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw)


def ingest(
    server: Daemon, key: str, path: str, base_ms: int, batch: int, conns: int, seconds: float
) -> dict[str, Any]:
    script = server.workdir / "ingest.lua"
    script.write_text(
        LUA.format(base=base_ms, batch=batch, key=key, path=path, spacing=SPACING_MS),
        encoding="ascii",
    )
    argv = [
        wrk_binary(),
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        "-s",
        str(script),
        server.url(path),
    ]
    cpu_before = _cpu(server.pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = _cpu(server.pid) - cpu_before
    result = parse_wrk(done.stdout, conns, 1, seconds)
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}: {done.stderr.strip()[:300]}")
    if not result.valid:
        raise BenchError(f"invalid ingest run: {result.problem}\n{server.log_tail()}")
    return {
        **result.as_dict(),
        "batch": batch,
        "points_per_second": result.requests_per_second * batch,
        "server_cpu_seconds": round(cpu, 2),
        "server_cpu_us_per_point": round(cpu * 1e6 / max(1, result.requests * batch), 2),
    }


def _cpu(pid: int) -> float:
    from bench.harness import cpu_seconds

    return cpu_seconds(pid, children=False)


def top_up(server: Daemon, key: str, path: str, base_ms: int, have: int, want: int) -> int:
    """Pushes points ``have`` .. ``want`` - 1 (same times and values as the Lua script)."""
    n = have
    for _ in range(want // 1000 + 2):  # bounded: 1000 points a request
        if n >= want:
            break
        points = [
            {
                "at": (base_ms + i * SPACING_MS) / 1000,
                "fields": {
                    "temperature": round(20 + (i % 700) / 100, 2),
                    "humidity": round(40 + (i % 300) / 10, 1),
                },
            }
            for i in range(n, min(n + 1000, want))
        ]
        _json(server, "POST", path, {"points": points}, headers={"access_token": key})
        n += len(points)
    return n


def _settled(server: Daemon, series: int) -> dict[str, Any]:
    previous: dict[str, Any] = {}
    for _ in range(50):
        stored: dict[str, Any] = _json(
            server, "GET", f"/api/v1/sensors/series/{series}", headers=AUTH
        )
        if stored["point_count"] == previous.get("point_count"):
            return stored
        previous = stored
        time.sleep(0.3)
    raise BenchError("the point count did not settle within 15 s")


def _gaps(server: Daemon, series: int, base_ms: int, end: int, batch: int) -> list[int]:
    """The first index of each batch of [0, end) the series lacks."""
    span = batch * SPACING_MS
    path = (
        f"/api/v1/sensors/series/{series}/points?since={base_ms / 1000:.3f}"
        f"&until={(base_ms + end * SPACING_MS) / 1000:.3f}&step={span / 1000}&fields=temperature"
    )
    steps = _json(server, "GET", path, headers=AUTH)["steps"]
    return [
        i * batch for i, step in enumerate(steps) if step["fields"]["temperature"]["count"] == 0
    ]


def _index(at: str, base_ms: int) -> int:
    from datetime import datetime

    return (round(datetime.fromisoformat(at).timestamp() * 1000) - base_ms) // SPACING_MS


def query(server: Daemon, series: int, since_ms: int, until_ms: int, step: float) -> dict[str, Any]:
    path = (
        f"/api/v1/sensors/series/{series}/points?since={since_ms / 1000:.3f}"
        f"&until={until_ms / 1000:.3f}&step={step}"
    )
    timings: list[float] = []
    body: dict[str, Any] = {}
    for _ in range(QUERY_RUNS):
        started = time.perf_counter()
        status, raw = _request(server, "GET", path, headers=AUTH)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {raw[:300]!r}")
        body = json.loads(raw)
    counts = {
        name: sum(step_["fields"][name]["count"] for step_ in body["steps"])
        for name in body["fields"]
    }
    if any(c != QUERY_POINTS for c in counts.values()):
        raise BenchError(f"the query saw {counts} points, not {QUERY_POINTS} per field")
    return {
        "step_seconds": step,
        "steps": len(body["steps"]),
        "source": body["source"],
        "points_per_field": counts,
        "median_ms": round(statistics.median(timings), 1),
        "min_ms": round(min(timings), 1),
        "max_ms": round(max(timings), 1),
        "bytes": len(raw),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of ingest")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="5 s of ingest")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else max(1.0, args.duration)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # The default ingest limit (600 batches a minute per key) is for devices, not this run.
    server = Daemon(
        ready_path="/api/v1/sensors/series",
        ready_headers=AUTH,
        extra_env={"RASPAPI_RATE_LIMITS": "ingest=off"},
    )
    with server:
        created = _json(
            server,
            "POST",
            "/api/v1/keys",
            {"name": "bench-device", "scopes": ["ingest"]},
            headers=AUTH,
        )
        key = created["key"]
        series = _json(
            server,
            "POST",
            "/api/v1/sensors/series",
            {"description": "bench", "units": {"temperature": "°C", "humidity": "%"}},
            headers={"access_token": key},
        )["id"]
        path = f"/api/v1/sensors/series/{series}/points"
        step_ms = QUERY_POINTS * SPACING_MS // STEPS
        # A day ago, on a step boundary: the million points fill exactly 500 steps.
        base_ms = (int(time.time() * 1000) - 86_400_000) // step_ms * step_ms
        say(f"ingest: {seconds:g} s, batches of {args.batch}, {args.connections} connections")
        run = ingest(server, key, path, base_ms, args.batch, args.connections, seconds)
        sent = run["requests"] * args.batch
        say(f"  {run['points_per_second']:.0f} points/s ({run['requests']} batches)")
        # wrk counts the answers it read; the batches in flight when it stopped may be
        # stored too, a moment later.
        stored = _settled(server, series)
        count = stored["point_count"]
        if not sent <= count <= sent + args.connections * args.batch or count % args.batch:
            raise BenchError(f"sent {sent} points (+ some in flight), the series holds {count}")
        last = stored["last_at"]
        after = _index(last, base_ms) + 1 if last else 0
        missing = _gaps(server, series, base_ms, after, args.batch)
        for first in missing:  # batches in flight when wrk stopped that never arrived
            top_up(server, key, path, base_ms, first, first + args.batch)
        top_up(server, key, path, base_ms, after, QUERY_POINTS)
        stored = _json(server, "GET", f"/api/v1/sensors/series/{series}", headers=AUTH)
        total = stored["point_count"]
        expected = max(after, QUERY_POINTS)
        if total != expected:
            raise BenchError(f"the series holds {total} points, not {expected}")
        say(f"series {series}: {total} points")
        until_ms = base_ms + QUERY_POINTS * SPACING_MS
        queries = []
        for step in (step_ms / 1000, step_ms / 1000 + 0.002):
            say(f"query: {QUERY_POINTS} points, step {step:g} s")
            result = query(server, series, base_ms, until_ms, step)
            say(f"  median {result['median_ms']} ms ({result['source']})")
            queries.append(result)
        rss = server.rss_bytes() / (1024 * 1024)
        db_bytes = sum(p.stat().st_size for p in (server.workdir / "state").glob("sensors.db*"))

    verdicts = [
        (
            f"ingest, batches of {args.batch}",
            f"{run['points_per_second']:.0f}/s",
            f">= {INGEST_TARGET:.0f}/s",
            run["points_per_second"] >= INGEST_TARGET,
        ),
    ]
    for result in queries:
        verdicts.append(
            (
                f"1M points, step {result['step_seconds']:g} s ({result['source']})",
                f"{result['median_ms']:.1f} ms",
                f"< {QUERY_TARGET_MS:.0f} ms",
                result["median_ms"] < QUERY_TARGET_MS,
            )
        )
    print(
        f"ingest: {run['points_per_second']:.0f} points/s, {run['requests_per_second']:.1f} "
        f"batches/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms per batch, "
        f"server CPU {run['server_cpu_us_per_point']} us/point"
    )
    for result in queries:
        print(
            f"query step {result['step_seconds']:g} s: {result['steps']} steps from "
            f"{result['source']}, median {result['median_ms']} ms, min {result['min_ms']} ms, "
            f"max {result['max_ms']} ms, {result['bytes']} bytes"
        )
    print(
        f"RSS after: {rss:.1f} MB; sensors.db with WAL: {db_bytes / 1e6:.1f} MB for {total} points"
    )
    for name, measured, limit, ok in verdicts:
        print(f"{name:44} {measured:>12} {limit:>12}  {'PASS' if ok else 'MISS'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "ingest": run,
                    "points": total,
                    "queries": queries,
                    "rss_mb": rss,
                    "db_bytes": db_bytes,
                    "targets": [
                        {"target": n, "measured": m, "limit": lim, "pass": ok}
                        for n, m, lim, ok in verdicts
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(ok for *_, ok in verdicts) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

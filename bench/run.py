"""Runs the benchmark scenarios and prints them against the targets.

    .venv/bin/python -m bench.run [--quick] [--scenario system] [--out FILE.json]

Exit status: 0 every target met, 1 a target missed, 2 a measurement was
invalid (errors, non-2xx answers) or a server would not start.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    AUTH,
    REPO,
    BareApp,
    BenchError,
    Daemon,
    ServerProcess,
    WrkResult,
    idle_cpu_percent,
    load,
    machine,
)

MB = 1024 * 1024


@dataclass(frozen=True)
class Targets:
    """Limits a scenario is held to; ``None`` means "not a target here"."""

    #: req/s at least this share of the baseline's, at every connection count.
    min_ratio: float | None = None
    max_p99_ms: float | None = None
    p99_connections: int = 16
    max_p50_ms: float | None = None
    p50_connections: int = 16
    max_rss_mb: float | None = None
    max_idle_cpu_percent: float | None = None
    max_startup_seconds: float | None = None


@dataclass(frozen=True)
class Scenario:
    """A server, the path wrk loads on it, and the targets it must meet.

    ``server`` builds a fresh, not yet started server; it is called once for
    the load run and once more per extra start-up sample.
    """

    name: str
    summary: str
    server: Callable[[], ServerProcess]
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The scenario whose req/s this one is compared with (run first).
    baseline: str | None = None
    targets: Targets = Targets()
    #: Whether to measure idle CPU after the load (all servers share one window).
    idle: bool = True
    #: Whether a run without ``--scenario`` includes it.
    default: bool = True
    #: Scenario-specific figures read from the server after the load (kept in the JSON).
    collect: Callable[[ServerProcess], dict[str, Any]] | None = None


def _system_daemon() -> ServerProcess:
    return Daemon(ready_path="/system", ready_headers=AUTH)


SCENARIOS: dict[str, Scenario] = {
    "bare": Scenario(
        name="bare",
        summary="bare Starlette JSON endpoint under the same uvicorn options (the baseline)",
        server=BareApp,
        path="/system",
    ),
    "system": Scenario(
        name="system",
        summary="raspapi GET /system (RaspAP-compatible) with every built-in plugin",
        server=_system_daemon,
        path="/system",
        headers=AUTH,
        baseline="bare",
        targets=Targets(
            min_ratio=0.50,
            max_p99_ms=5.0,
            p99_connections=16,
            max_rss_mb=45.0,
            max_idle_cpu_percent=0.5,
            max_startup_seconds=1.0,
        ),
    ),
    # References for the core's own cost (key check, routing), not run by default.
    "health": Scenario(
        name="health",
        summary="raspapi GET /health (no key, no plugin): the core's floor",
        server=Daemon,
        path="/health",
        baseline="bare",
        default=False,
    ),
    "index": Scenario(
        name="index",
        summary="raspapi GET / with the key: key check plus the list of every endpoint",
        server=Daemon,
        path="/",
        headers=AUTH,
        baseline="bare",
        default=False,
    ),
}


#: Modules adding scenarios: each has ``scenarios() -> dict[str, Scenario]`` (or
#: ``register(SCENARIOS)``). Loaded when the command runs; one that fails to
#: import is reported and skipped.
EXTENSIONS = ("bench.scenario_clients", "bench.scenario_wireguard")


def load_extensions(say: Callable[[str], None]) -> None:
    for module_name in EXTENSIONS:
        try:
            module = importlib.import_module(module_name)
            if hasattr(module, "scenarios"):
                SCENARIOS.update(module.scenarios())
            else:
                module.register(SCENARIOS)
        except Exception as exc:
            say(f"warning: scenarios of {module_name} not loaded: {type(exc).__name__}: {exc}")


@dataclass
class Options:
    connections: tuple[int, ...] = (1, 16, 64)
    duration: float = 10.0
    warmup: float = 1.0
    threads: int = 1
    idle_seconds: float = 30.0
    startup_runs: int = 3


@dataclass
class ScenarioResult:
    name: str
    path: str
    runs: list[WrkResult] = field(default_factory=list)
    startup_seconds: list[float] = field(default_factory=list)
    rss_start_bytes: int | None = None
    rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    idle_cpu_percent: float | None = None
    plugins: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def startup(self) -> float | None:
        return statistics.median(self.startup_seconds) if self.startup_seconds else None

    def run_at(self, connections: int) -> WrkResult | None:
        return next((r for r in self.runs if r.connections == connections), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "error": self.error,
            "runs": [r.as_dict() for r in self.runs],
            "startup_seconds": self.startup,
            "startup_samples": self.startup_seconds,
            "rss_start_bytes": self.rss_start_bytes,
            "rss_bytes": self.rss_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "idle_cpu_percent": self.idle_cpu_percent,
            "plugins": self.plugins,
            "extra": self.extra,
        }


def _plugin_states(server: ServerProcess) -> dict[str, str]:
    if not isinstance(server, Daemon):
        return {}
    try:
        _, body = server.get("/ready")
        plugins = json.loads(body).get("plugins", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {name: str(entry.get("state")) for name, entry in plugins.items()}


def run_all(
    scenarios: Sequence[Scenario], opts: Options, say: Callable[[str], None]
) -> dict[str, ScenarioResult]:
    """Starts every scenario's server, then loads them in turns at each connection
    count (so drift on the machine hits baseline and scenario alike), then reads
    memory, idle CPU over one shared window, and extra start-up samples."""
    results = {sc.name: ScenarioResult(sc.name, sc.path) for sc in scenarios}
    servers: dict[str, ServerProcess] = {}
    with ExitStack() as stack:
        for sc in scenarios:
            say(f"{sc.name}: {sc.summary}")
            try:
                servers[sc.name] = stack.enter_context(sc.server())
            except BenchError as exc:
                results[sc.name].error = str(exc)
                continue
            results[sc.name].startup_seconds.append(servers[sc.name].startup_seconds)
            results[sc.name].plugins = _plugin_states(servers[sc.name])
            results[sc.name].rss_start_bytes = servers[sc.name].rss_bytes()
        for conns in opts.connections:
            for sc in scenarios:
                if sc.name not in servers:
                    continue
                say(f"  {sc.name}: {conns} connection(s), {opts.duration:g} s")
                run = load(
                    servers[sc.name],
                    sc.path,
                    conns,
                    opts.duration,
                    headers=sc.headers,
                    threads=opts.threads,
                    warmup=opts.warmup,
                )
                results[sc.name].runs.append(run)
        for sc in scenarios:
            server = servers.get(sc.name)
            if server is None:
                continue
            results[sc.name].rss_bytes = server.rss_bytes()
            results[sc.name].peak_rss_bytes = server.peak_rss_bytes()
            if sc.collect is not None:
                results[sc.name].extra = sc.collect(server)
        idle = [sc.name for sc in scenarios if sc.idle and sc.name in servers]
        if idle and opts.idle_seconds > 0:
            say(f"idle CPU of {', '.join(idle)} over {opts.idle_seconds:g} s")
            time.sleep(1.0)  # let the last connections close
            shares = idle_cpu_percent([servers[n].pid for n in idle], opts.idle_seconds)
            for name, share in zip(idle, shares, strict=True):
                results[name].idle_cpu_percent = share
    for sc in scenarios:
        if results[sc.name].error:
            continue
        for i in range(opts.startup_runs - 1):
            say(f"  {sc.name}: start-up sample {i + 2}/{opts.startup_runs}")
            try:
                with sc.server() as server:
                    results[sc.name].startup_seconds.append(server.startup_seconds)
            except BenchError as exc:
                results[sc.name].error = str(exc)
                break
    return results


# -- targets ---------------------------------------------------------------------


@dataclass
class Verdict:
    scenario: str
    name: str
    measured: str
    limit: str
    result: str  # PASS, MISS or INVALID

    def as_dict(self) -> dict[str, str]:
        return vars(self).copy()


def judge(scenario: Scenario, results: Mapping[str, ScenarioResult]) -> list[Verdict]:
    t = scenario.targets
    res = results[scenario.name]
    out: list[Verdict] = []

    def add(name: str, value: float | None, limit: float, fmt: str, *, at_least: bool) -> None:
        if value is None:
            out.append(Verdict(scenario.name, name, "-", "", "INVALID"))
            return
        ok = value >= limit if at_least else value <= limit
        sign = ">=" if at_least else "<="
        out.append(
            Verdict(
                scenario.name,
                name,
                fmt.format(value),
                f"{sign} {fmt.format(limit)}",
                "PASS" if ok else "MISS",
            )
        )

    def valid(run: WrkResult | None) -> WrkResult | None:
        return run if run is not None and run.valid else None

    if t.min_ratio is not None and scenario.baseline:
        base = results.get(scenario.baseline)
        for conns in (r.connections for r in res.runs):
            mine = valid(res.run_at(conns))
            theirs = valid(base.run_at(conns)) if base else None
            ratio = (
                mine.requests_per_second / theirs.requests_per_second
                if mine and theirs and theirs.requests_per_second
                else None
            )
            add(
                f"req/s vs {scenario.baseline}, {conns} conn",
                None if ratio is None else ratio * 100,
                t.min_ratio * 100,
                "{:.0f}%",
                at_least=True,
            )
    if t.max_p99_ms is not None:
        run = valid(res.run_at(t.p99_connections))
        add(
            f"p99 latency, {t.p99_connections} conn",
            run.p99_ms if run else None,
            t.max_p99_ms,
            "{:.2f} ms",
            at_least=False,
        )
    if t.max_p50_ms is not None:
        run = valid(res.run_at(t.p50_connections))
        add(
            f"p50 latency, {t.p50_connections} conn",
            run.p50_ms if run else None,
            t.max_p50_ms,
            "{:.2f} ms",
            at_least=False,
        )
    if t.max_rss_mb is not None:
        rss = res.rss_bytes / MB if res.rss_bytes is not None else None
        add("RSS after load", rss, t.max_rss_mb, "{:.1f} MB", at_least=False)
    if t.max_idle_cpu_percent is not None:
        add(
            "idle CPU (share of a core)",
            res.idle_cpu_percent,
            t.max_idle_cpu_percent,
            "{:.2f}%",
            at_least=False,
        )
    if t.max_startup_seconds is not None:
        add(
            "start-up to first 200 (median)",
            res.startup,
            t.max_startup_seconds,
            "{:.2f} s",
            at_least=False,
        )
    return out


# -- output ----------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def report(
    scenarios: Sequence[Scenario], results: Mapping[str, ScenarioResult], verdicts: list[Verdict]
) -> str:
    parts: list[str] = []
    rows = [
        ["scenario", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "CPU us/req", "vs baseline"]
    ]
    rows[0] += ["CPU vs baseline", "note"]
    for sc in scenarios:
        res = results[sc.name]
        base = results.get(sc.baseline) if sc.baseline else None
        for run in res.runs:
            ratio = cpu_ratio = "-"
            other = base.run_at(run.connections) if base else None
            if run.valid and other is not None and other.valid and other.requests_per_second:
                ratio = f"{run.requests_per_second / other.requests_per_second:.0%}"
                if run.cpu_us_per_request and other.cpu_us_per_request:
                    cpu_ratio = f"{other.cpu_us_per_request / run.cpu_us_per_request:.0%}"
            rows.append(
                [
                    sc.name,
                    str(run.connections),
                    f"{run.requests_per_second:.0f}",
                    f"{run.p50_ms:.2f}",
                    f"{run.p99_ms:.2f}",
                    f"{run.max_ms:.2f}",
                    f"{run.cpu_us_per_request:.0f}" if run.cpu_us_per_request else "-",
                    ratio,
                    cpu_ratio,
                    "" if run.valid else f"INVALID: {run.problem}",
                ]
            )
    parts.append(_table(rows, [False, *[True] * 8, False]))

    rows = [
        ["scenario", "start-up s", "RSS MB at start", "after load", "peak", "idle CPU %", "plugins"]
    ]
    for sc in scenarios:
        res = results[sc.name]
        plugins = ", ".join(f"{n}:{s}" for n, s in res.plugins.items()) or "-"
        rows.append(
            [
                sc.name,
                f"{res.startup:.3f}" if res.startup is not None else "-",
                f"{res.rss_start_bytes / MB:.1f}" if res.rss_start_bytes is not None else "-",
                f"{res.rss_bytes / MB:.1f}" if res.rss_bytes is not None else "-",
                f"{res.peak_rss_bytes / MB:.1f}" if res.peak_rss_bytes is not None else "-",
                f"{res.idle_cpu_percent:.2f}" if res.idle_cpu_percent is not None else "-",
                plugins,
            ]
        )
    parts.append(_table(rows, [False, True, True, True, True, True, False]))

    if verdicts:
        rows = [["scenario", "target", "measured", "limit", "result"]]
        rows += [[v.scenario, v.name, v.measured, v.limit, v.result] for v in verdicts]
        parts.append(_table(rows, [False, False, True, False, False]))
    for sc in scenarios:
        if results[sc.name].error:
            parts.append(f"{sc.name}: ERROR: {results[sc.name].error}")
    return "\n\n".join(parts)


# -- command line ----------------------------------------------------------------


def _selected(names: Sequence[str]) -> list[Scenario]:
    wanted: list[str] = []
    for name in names or [n for n, sc in SCENARIOS.items() if sc.default]:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        baseline = SCENARIOS[name].baseline
        for n in (baseline, name):
            if n is not None and n not in wanted:
                wanted.append(n)
    # Baselines first, then registry order.
    return sorted((SCENARIOS[n] for n in wanted), key=lambda s: list(SCENARIOS).index(s.name))


def _connections(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(not 1 <= v <= 10_000 for v in values):
        raise argparse.ArgumentTypeError("connection counts must be 1..10000")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s loads, 5 s idle, 1 start-up")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable; its baseline comes too; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--connections", type=_connections, help="e.g. 1,16,64")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10)")
    parser.add_argument("--idle", type=float, help="seconds of idle CPU measurement (default 30)")
    parser.add_argument("--startups", type=int, help="start-up samples (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/)")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    load_extensions(say)
    if args.list:
        for sc in SCENARIOS.values():
            flag = "" if sc.default else " (only with --scenario)"
            print(f"{sc.name:16} {sc.path:20} {sc.summary}{flag}")
        return 0

    opts = Options(threads=max(1, args.threads))
    if args.quick:
        opts.duration, opts.idle_seconds, opts.startup_runs = 3.0, 5.0, 1
    if args.connections:
        opts.connections = args.connections
    if args.duration is not None:
        opts.duration = max(1.0, args.duration)
    if args.idle is not None:
        opts.idle_seconds = max(0.0, args.idle)
    if args.startups is not None:
        opts.startup_runs = max(1, args.startups)
    scenarios = _selected(args.scenario)

    info = machine()
    say(
        f"raspapi benchmark: {info['nproc']} CPU ({info['cpu_model']}), Python {info['python']}, "
        f"{info['wrk']}; {opts.duration:g} s per run, idle {opts.idle_seconds:g} s"
    )
    if info["loadavg"][0] > 0.25 * (info["nproc"] or 1):
        say(
            f"warning: the machine is busy (load average {info['loadavg'][0]:.2f}); "
            "throughput and latency will be low and noisy"
        )
    started_at = datetime.now(UTC)
    results = run_all(scenarios, opts, say)
    info["loadavg_after"] = os.getloadavg()
    verdicts = [v for sc in scenarios for v in judge(sc, results)]
    print(report(scenarios, results, verdicts))

    out = args.out or REPO / "bench" / "results" / f"{started_at:%Y%m%dT%H%M%SZ}.json"
    document = {
        "started_at": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "options": vars(opts),
        "scenarios": {name: r.as_dict() for name, r in results.items()},
        "targets": [v.as_dict() for v in verdicts],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    say(f"results written to {out}")

    if any(r.error for r in results.values()) or any(v.result == "INVALID" for v in verdicts):
        return 2
    if any(not run.valid for r in results.values() for run in r.runs):
        return 2
    return 1 if any(v.result == "MISS" for v in verdicts) else 0


if __name__ == "__main__":
    # Run as the module ``bench.run`` so that scenario modules importing
    # ``bench.run`` share its SCENARIOS and classes (not a second copy).
    from bench.run import main as _main

    sys.exit(_main())

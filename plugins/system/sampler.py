"""CPU use of the machine and of each process, from two /proc snapshots.

A request never sleeps to measure: each sampler keeps its previous snapshot
(the first is taken at startup) and compares the new one with it. When no
clock tick has passed since (two requests within a few milliseconds), the
baseline is kept and the last figures are answered again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from raspapi.plugin import PluginContext

from .probe import meminfo, percent, read

MAX_PROCESSES = 16384
#: How many processes each top list keeps (the largest ``?limit=``).
TOP = 50


@dataclass(frozen=True)
class CpuTimes:
    total: int
    idle: int


def parse_stat(text: str) -> tuple[dict[str, CpuTimes], int | None]:
    """/proc/stat: clock ticks per ``cpu``/``cpuN`` line, and the boot time."""
    cpus: dict[str, CpuTimes] = {}
    boot: int | None = None
    for line in text.splitlines()[:4096]:
        if line.startswith("cpu"):
            name, *fields = line.split()
            try:
                # user nice system idle iowait irq softirq steal (guest is inside user)
                ticks = [int(v) for v in fields[:8]]
            except ValueError:
                continue
            if len(ticks) >= 4:
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
                cpus[name] = CpuTimes(sum(ticks), idle)
        elif line.startswith("btime "):
            value = line.split()[1:2]
            boot = int(value[0]) if value and value[0].isdigit() else None
    return cpus, boot


def _busy(before: CpuTimes, after: CpuTimes) -> float | None:
    total = after.total - before.total
    idle = min(max(after.idle - before.idle, 0), total)
    return round((total - idle) * 100 / total, 1) if total > 0 else None


class CpuSampler:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._base: tuple[float, dict[str, CpuTimes]] | None = None
        self._last: dict[str, Any] = {
            "percent": None,
            "per_core_percent": [],
            "interval_seconds": None,
        }

    def _snapshot(self) -> dict[str, CpuTimes]:
        return parse_stat(read(self.ctx, "/proc/stat", 1 << 20) or "")[0]

    def prime(self) -> None:
        with self._lock:
            self._base = (time.monotonic(), self._snapshot())

    def sample(self) -> dict[str, Any]:
        with self._lock:
            now, snap = time.monotonic(), self._snapshot()
            base = self._base
            if base is None or "cpu" not in base[1] or "cpu" not in snap:
                self._base = (now, snap)
                return self._last
            then, old = base
            if snap["cpu"].total < old["cpu"].total:  # counters restarted: a new baseline
                self._base = (now, snap)
            if snap["cpu"].total <= old["cpu"].total:
                return self._last
            cores = sorted((n for n in snap if n[3:].isdigit()), key=lambda n: int(n[3:]))
            self._last = {
                "percent": _busy(old["cpu"], snap["cpu"]),
                "per_core_percent": [_busy(old[n], snap[n]) if n in old else None for n in cores],
                "interval_seconds": round(now - then, 3),
            }
            self._base = (now, snap)
            return self._last


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str
    state: str
    ticks: int
    threads: int
    start: int
    rss_pages: int


def parse_proc_stat(text: str) -> Proc | None:
    """One /proc/<pid>/stat line; the name may hold spaces and parentheses."""
    head, sep, rest = text.rpartition(")")
    pid_text, _, name = head.partition(" (")
    fields = rest.split()
    if not sep or len(fields) < 22 or not pid_text.strip().isdigit():
        return None
    try:
        return Proc(
            pid=int(pid_text),
            name=name,
            state=fields[0],
            ticks=int(fields[11]) + int(fields[12]),
            threads=int(fields[17]),
            start=int(fields[19]),
            rss_pages=int(fields[21]),
        )
    except ValueError:
        return None


class ProcessSampler:
    """Top processes by CPU and by memory.

    A process's CPU share is its utime+stime ticks over the ticks one CPU had
    between the snapshots (as ``top`` shows it: a busy 4-thread process can
    reach 400). The clock is /proc/stat's own tick count, so the figure stays
    right however long a refresh takes.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._base: tuple[float, float, dict[tuple[int, int], int]] | None = None
        self._last_pct: dict[tuple[int, int], float] = {}

    def _clock(self) -> float | None:
        cpus, _ = parse_stat(read(self.ctx, "/proc/stat", 1 << 20) or "")
        cores = sum(1 for n in cpus if n[3:].isdigit()) or 1
        return cpus["cpu"].total / cores if "cpu" in cpus else None

    def _scan(self) -> Iterator[Proc]:
        try:
            entries = os.scandir(self.ctx.path("/proc"))
        except OSError:
            return
        with entries:
            seen = 0
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                seen += 1
                if seen > MAX_PROCESSES:
                    break
                text = read(self.ctx, f"/proc/{entry.name}/stat", 4096)
                proc = parse_proc_stat(text) if text else None
                if proc is not None:
                    yield proc

    def prime(self) -> None:
        with self._lock:
            clock = self._clock()
            procs = {(p.pid, p.start): p.ticks for p in self._scan()}
            self._base = (time.monotonic(), clock, procs) if clock is not None else None

    def sample(self) -> dict[str, Any]:
        with self._lock:
            now, clock = time.monotonic(), self._clock()
            procs = list(self._scan())
            ticks = {(p.pid, p.start): p.ticks for p in procs}
            base = self._base
            elapsed = clock - base[1] if base is not None and clock is not None else 0.0
            interval: float | None = None
            if elapsed > 0 and base is not None:
                old = base[2]
                # A process new since the baseline spent all its ticks inside the interval.
                self._last_pct = {
                    key: round(max(t - old.get(key, 0), 0) * 100 / elapsed, 1)
                    for key, t in ticks.items()
                }
                interval = round(now - base[0], 3)
            if clock is not None and (base is None or elapsed != 0):
                self._base = (now, clock, ticks)
            pct = {key: self._last_pct.get(key) for key in ticks}
            total_kb = meminfo(self.ctx).get("MemTotal", 0)
            users = _users(self.ctx)
            uids: dict[int, int | None] = {}

            def row(p: Proc) -> dict[str, Any]:
                rss = p.rss_pages * self._page
                if p.pid not in uids:
                    uids[p.pid] = _uid(self.ctx, p.pid)
                uid = uids[p.pid]
                return {
                    "pid": p.pid,
                    "name": p.name,
                    "uid": uid,
                    "user": users.get(uid) if uid is not None else None,
                    "state": p.state,
                    "threads": p.threads,
                    "cpu_percent": pct[(p.pid, p.start)],
                    "rss_bytes": rss,
                    "memory_percent": percent(rss, total_kb * 1024),
                }

            by_cpu = sorted(procs, key=lambda p: (-(pct[(p.pid, p.start)] or 0.0), p.pid))
            by_mem = sorted(procs, key=lambda p: (-p.rss_pages, p.pid))
            return {
                "count": len(procs),
                "interval_seconds": interval,
                "top_cpu": [row(p) for p in by_cpu[:TOP]],
                "top_memory": [row(p) for p in by_mem[:TOP]],
            }


def _uid(ctx: PluginContext, pid: int) -> int | None:
    for line in (read(ctx, f"/proc/{pid}/status", 8192) or "").splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def _users(ctx: PluginContext) -> dict[int, str]:
    names: dict[int, str] = {}
    for line in (read(ctx, "/etc/passwd", 1 << 20) or "").splitlines()[:10000]:
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names

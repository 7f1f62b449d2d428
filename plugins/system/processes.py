"""CPU and memory use of each process, from two snapshots of psutil's process
table (ticks from /proc/<pid>/stat), against the machine's CPU clock.

Apart from ``sampler.py`` (the machine's CPU, which /system's start-up primes):
this module, and psutil, are imported when the process table is first read.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raspapi.plugin import PluginContext

from .probe import meminfo, percent, read
from .procfs import at_root
from .sampler import parse_stat

if TYPE_CHECKING:
    import psutil

MAX_PROCESSES = 16384
#: How many processes each top list keeps (the largest ``?limit=``).
TOP = 50


#: psutil's status names, back to the kernel's letter (``ps``'s STAT column).
STATE_LETTERS = {
    "running": "R",
    "sleeping": "S",
    "disk-sleep": "D",
    "stopped": "T",
    "tracing-stop": "t",
    "zombie": "Z",
    "dead": "X",
    "wake-kill": "K",
    "waking": "W",
    "idle": "I",
    "parked": "P",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    """A process of the table, as one scan saw it."""

    process: psutil.Process
    name: str
    state: str
    #: utime + stime, in clock ticks
    ticks: int
    rss: int


def _failures() -> tuple[type[BaseException], ...]:
    import psutil

    # Gone since listed, unreadable, or a file psutil cannot parse.
    return (psutil.Error, OSError, ValueError, IndexError)


class ProcessSampler:
    """Top processes by CPU and by memory, from psutil's process table.

    A process's CPU share is its utime+stime ticks over the ticks one CPU had
    between the snapshots (as ``top`` shows it: a busy 4-thread process can
    reach 400). The clock is /proc/stat's own tick count, so the figure stays
    right however long a refresh takes.

    As ``psutil.process_iter`` does, a pid still listed keeps its
    ``psutil.Process`` from the previous scan (making one reads its stat file
    once more). A pid reused by a new process since is told by its ticks going
    back: they are then all counted in the interval, as for any new process.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._handles: dict[int, psutil.Process] = {}
        self._base: tuple[float, float, dict[int, int]] | None = None
        self._last_pct: dict[int, float] = {}

    def _clock(self) -> float | None:
        cpus, _ = parse_stat(read(self.ctx, "/proc/stat", 1 << 20) or "")
        cores = sum(1 for n in cpus if n[3:].isdigit()) or 1
        return cpus["cpu"].total / cores if "cpu" in cpus else None

    def _scan(self) -> list[Proc]:
        import psutil

        failures = _failures()
        out: list[Proc] = []
        handles: dict[int, psutil.Process] = {}
        with at_root(self.ctx):
            try:
                pids = psutil.pids()
            except OSError:
                pids = []
            for pid in pids[:MAX_PROCESSES]:
                try:
                    process = self._handles.get(pid) or psutil.Process(pid)
                    with process.oneshot():  # one read of stat, one of statm
                        times = process.cpu_times()
                        rss = process.memory_info().rss
                        state = STATE_LETTERS.get(process.status(), "?")
                        # psutil completes a name the kernel cut at 15 characters
                        # from the command line.
                        name = process.name()
                except failures:
                    continue
                handles[pid] = process
                ticks = round((times.user + times.system) * CLOCK_TICKS)
                out.append(Proc(process, name, state, ticks, rss))
        self._handles = handles
        return out

    def prime(self) -> None:
        with self._lock:
            clock = self._clock()
            procs = {p.process.pid: p.ticks for p in self._scan()}
            self._base = (time.monotonic(), clock, procs) if clock is not None else None

    def sample(self) -> dict[str, Any]:
        with self._lock:
            now, clock = time.monotonic(), self._clock()
            procs = self._scan()
            ticks = {p.process.pid: p.ticks for p in procs}
            base = self._base
            elapsed = clock - base[1] if base is not None and clock is not None else 0.0
            interval: float | None = None
            if elapsed > 0 and base is not None:
                old = base[2]
                # A process new since the baseline spent all its ticks inside the interval.
                self._last_pct = {
                    pid: round(_spent(t, old.get(pid)) * 100 / elapsed, 1)
                    for pid, t in ticks.items()
                }
                interval = round(now - base[0], 3)
            if clock is not None and (base is None or elapsed != 0):
                self._base = (now, clock, ticks)
            pct = {pid: self._last_pct.get(pid) for pid in ticks}
            total_kb = meminfo(self.ctx).get("MemTotal", 0)
            users = _users(self.ctx)
            rows: dict[int, dict[str, Any]] = {}

            def row(p: Proc) -> dict[str, Any]:
                pid = p.process.pid
                if pid not in rows:
                    uid, threads = _owner(p.process)
                    rows[pid] = {
                        "pid": pid,
                        "name": p.name,
                        "uid": uid,
                        "user": users.get(uid) if uid is not None else None,
                        "state": p.state,
                        "threads": threads,
                        "cpu_percent": pct[pid],
                        "rss_bytes": p.rss,
                        "memory_percent": percent(p.rss, total_kb * 1024),
                    }
                return rows[pid]

            by_cpu = sorted(procs, key=lambda p: (-(pct[p.process.pid] or 0.0), p.process.pid))
            by_mem = sorted(procs, key=lambda p: (-p.rss, p.process.pid))
            return {
                "count": len(procs),
                "interval_seconds": interval,
                "top_cpu": [row(p) for p in by_cpu[:TOP]],
                "top_memory": [row(p) for p in by_mem[:TOP]],
            }


def _spent(ticks: int, before: int | None) -> int:
    """Ticks spent since the baseline: all of them for a process new since (or a
    reused pid, whose ticks went back)."""
    return ticks - before if before is not None and ticks >= before else ticks


def _owner(process: psutil.Process) -> tuple[int | None, int]:
    """The real uid and the thread count (from /proc/<pid>/status), read for the
    rows shown only; (None, 0) when status cannot be read (the process went)."""
    try:
        with process.oneshot():
            return process.uids().real, process.num_threads()
    except _failures():
        return None, 0


def _users(ctx: PluginContext) -> dict[int, str]:
    names: dict[int, str] = {}
    for line in (read(ctx, "/etc/passwd", 1 << 20) or "").splitlines()[:10000]:
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names

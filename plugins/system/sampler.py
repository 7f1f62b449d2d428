"""CPU use of the machine, from two snapshots of /proc/stat (its tick deltas
are the figure); each process's is in ``processes.py``.

A request never sleeps to measure: each sampler keeps its previous snapshot
(the first is taken at startup) and compares the new one with it. When no
clock tick has passed since (two requests within a few milliseconds), the
baseline is kept and the last figures are answered again.
"""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

from raspapi.plugin import PluginContext

from .probe import read


class CpuTimes(NamedTuple):
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

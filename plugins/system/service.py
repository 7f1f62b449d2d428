"""The ``system`` plugin's domain: RaspAP's /system facts and the fuller overview.

Plain Python (no Starlette): the handlers in ``api.py`` answer these dicts.
Files are read in cache loaders (so in a thread, and at most once per cache
period however many dashboards poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from raspapi.plugin import PluginContext, rfc3339

from . import board, probe
from .sampler import CpuSampler, parse_stat
from .schema import LEGACY_TYPES

if TYPE_CHECKING:
    from .processes import ProcessSampler

#: Seconds after start at which the process table's first baseline is taken,
#: unless a request needs it sooner: psutil is not imported before the first answers.
PRIME_DELAY = 2.0
#: The wall clock /system's ``systime`` shows (tests set a fixed instant).
clock: Callable[[], float] = time.time


class SystemService:
    """One per app: the CPU baselines live as long as the app."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.cpu = CpuSampler(ctx)
        self._processes: ProcessSampler | None = None
        #: The history's own baseline: its CPU figure covers the whole interval.
        self.history_cpu = CpuSampler(ctx)
        self._warned: set[str] = set()
        self._priming: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()

    @property
    def processes(self) -> ProcessSampler:
        """The process table's sampler, made (and psutil imported) on first use."""
        if self._processes is None:
            from .processes import ProcessSampler

            self._processes = ProcessSampler(self.ctx)
        return self._processes

    async def start(self) -> None:
        """Take the first baselines: /proc/stat's now, the process table's later.

        The process table's (psutil's import and a read of every process) is
        taken :data:`PRIME_DELAY` after start, off the path of the first
        answers, or at once when a request needs it (which then waits for it).
        """
        await asyncio.to_thread(self.prime)
        self._priming = asyncio.create_task(self._prime_processes())

    async def _prime_processes(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PRIME_DELAY):
                await self._wanted.wait()
        await asyncio.to_thread(self.processes.prime)

    async def stop(self) -> None:
        if self._priming is not None:
            self._wanted.set()
            await asyncio.wait({self._priming})

    def prime(self) -> None:
        self.cpu.prime()
        self.history_cpu.prime()

    # -- RaspAP ----------------------------------------------------------------

    async def legacy(self) -> dict[str, Any]:
        """RaspAP's 14 keys in RaspAP's order and types, other plugins' fields merged."""
        # The other plugins' fields are asked for first: their reads (in
        # threads) overlap this plugin's own when neither is cached yet.
        fields = asyncio.ensure_future(self.ctx.hooks.system_fields())
        try:
            facts = await self.ctx.cache.get("legacy", self._legacy_facts)
        except BaseException:
            fields.cancel()
            raise
        body: dict[str, Any] = dict.fromkeys(LEGACY_TYPES)
        body.update(facts)
        body.update(systime=probe.systime(clock()), systemTemperature=0.0, hostapdStatus=0)
        for key, value in (await fields).items():
            kind = LEGACY_TYPES.get(key)
            if kind is None:
                continue
            coerced = _coerce(value, kind)
            if coerced is None:
                self._warn(key, f"ignored a {type(value).__name__} for /system {key}")
            else:
                body[key] = coerced
        return body

    def _legacy_facts(self) -> dict[str, Any]:
        ctx = self.ctx
        cpu = probe.cpuinfo(ctx)
        load1 = round(probe.loadavg(ctx)[0], 2)
        up = probe.uptime_seconds(ctx)
        disk = probe.disk_usage(ctx.path("/"))
        return {
            "hostname": probe.first_line(ctx, "/proc/sys/kernel/hostname"),
            "uptime": probe.uptime_pretty(up) if up is not None else "",
            "usedMemory": _free_percent(probe.meminfo(ctx)),
            "usedDisk": float(probe.df_percent(disk[1], disk[2])) if disk else 0.0,
            "processorCount": cpu.processors,
            "LoadAvg1Min": load1,
            "systemLoadPercentage": round(load1 * 100 / cpu.processors, 2),
            "operatingSystem": probe.os_release(ctx).get("PRETTY_NAME", ""),
            "kernelVersion": probe.first_line(ctx, "/proc/sys/kernel/osrelease"),
            "rpiRevision": board.decode(cpu.revision).name,
            "raspapVersion": probe.raspap_version(ctx),
        }

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.logger.warning("%s", message)

    # -- /api/v1/system ----------------------------------------------------------

    async def overview(self, limit: int) -> dict[str, Any]:
        """Host, OS, board, uptime, load, CPU, memory, disks, users and ``limit`` top processes."""
        if self._priming is not None and not self._priming.done():
            # The process table's first baseline (a failure shows in the sample itself).
            self._wanted.set()
            await asyncio.wait({self._priming})
        cache = self.ctx.cache
        info, cpu, procs = await asyncio.gather(
            cache.get("info", self._info),
            cache.get("cpu", self.cpu.sample),
            cache.get("processes", self.processes.sample),
        )
        static = info["cpu"]
        return {
            **info,
            "cpu": {"count": static["count"], **cpu, "frequency": static["frequency"]},
            "processes": {
                **procs,
                "top_cpu": procs["top_cpu"][:limit],
                "top_memory": procs["top_memory"][:limit],
            },
        }

    def _info(self) -> dict[str, Any]:
        ctx = self.ctx
        release = probe.os_release(ctx)
        cpu = probe.cpuinfo(ctx)
        pi = board.decode(cpu.revision)
        up = probe.uptime_seconds(ctx)
        boot = parse_stat(probe.read(ctx, "/proc/stat", 1 << 20) or "")[1]
        if boot is None and up is not None:
            boot = int(time.time() - up)
        mem = probe.meminfo(ctx)
        load = probe.loadavg(ctx)
        return {
            "hostname": probe.first_line(ctx, "/proc/sys/kernel/hostname"),
            "os": {
                "pretty_name": release.get("PRETTY_NAME", ""),
                "id": release.get("ID"),
                "version_id": release.get("VERSION_ID"),
                "codename": release.get("VERSION_CODENAME"),
            },
            "kernel": probe.first_line(ctx, "/proc/sys/kernel/osrelease"),
            "board": {
                "model": probe.device_tree_model(ctx) or cpu.model,
                "name": pi.name,
                "revision_code": pi.code or None,
                "type": pi.type,
                "revision": pi.revision,
                "memory_mb": pi.memory_mb,
                "manufacturer": pi.manufacturer,
                "processor": pi.processor,
            },
            "uptime_seconds": up,
            "boot_at": rfc3339(boot),
            "load": {"avg_1m": load[0], "avg_5m": load[1], "avg_15m": load[2]},
            "cpu": {"count": cpu.processors, "frequency": probe.cpu_frequencies(ctx)},
            "memory": _usage(mem, "MemTotal", _available(mem)),
            "swap": _usage(mem, "SwapTotal", mem.get("SwapFree", 0)),
            "disks": probe.disks(ctx),
            "users": probe.users(ctx),
            "processes": None,
        }


def _available(mem: dict[str, int]) -> int:
    if "MemAvailable" in mem:
        return mem["MemAvailable"]
    return mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)


def _usage(mem: dict[str, int], total_key: str, available_kb: int) -> dict[str, Any]:
    total = mem.get(total_key, 0) * 1024
    available = min(available_kb * 1024, total)
    return {
        "total_bytes": total,
        "used_bytes": total - available,
        "available_bytes": available,
        "percent": probe.percent(total - available, total),
    }


def _free_percent(mem: dict[str, int]) -> float:
    """RaspAP's usedMemory: ``free -m`` used/total*100, as awk prints it, rounded."""
    total_kb = mem.get("MemTotal", 0)
    total = total_kb // 1024
    if total <= 0:
        return 0.0
    # procps: used = MemTotal - MemAvailable in kB, then scaled down to MiB.
    used = max(total_kb - _available(mem), 0) // 1024
    # awk prints with 6 significant digits before RaspAP rounds to 2 decimals.
    return round(float(f"{used / total * 100:.6g}"), 2)


def _coerce(value: Any, kind: type) -> Any:
    """A contributed /system value in RaspAP's type, or None when it has none."""
    try:
        if kind is str:
            return value if isinstance(value, str) else None
        if isinstance(value, str):
            value = float(value.strip())
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return int(value) if kind is int else round(float(value), 2)
    except (ValueError, OverflowError):
        return None

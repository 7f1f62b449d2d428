"""The ``system`` plugin: RaspAP's ``GET /system`` and the fuller ``GET /api/v1/system``.

Everything is read from /proc, /sys and /etc under the configured root, in
cache loaders (so in a thread, and at most once per cache period however many
dashboards poll). Other plugins add their RaspAP fields (``systemTemperature``,
``hostapdStatus``) through ``raspapi_system_fields``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import ApiRoute, PluginContext, Query, hookimpl

from . import board, probe, telemetry
from .sampler import CpuSampler, ProcessSampler, parse_stat
from .schema import LEGACY, LEGACY_TYPES, OVERVIEW

#: The wall clock /system's ``systime`` shows (tests set a fixed instant).
clock: Callable[[], float] = time.time

LIMIT = Query(
    "limit",
    int,
    default=5,
    minimum=1,
    maximum=50,
    description="How many processes each top list holds.",
)


class SystemService:
    """One per app: the CPU baselines live as long as the app."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.cpu = CpuSampler(ctx)
        self.processes = ProcessSampler(ctx)
        #: The history's own baseline: its CPU figure covers the whole interval.
        self.history_cpu = CpuSampler(ctx)
        self._warned: set[str] = set()

    def prime(self) -> None:
        self.cpu.prime()
        self.processes.prime()
        self.history_cpu.prime()

    # -- RaspAP ----------------------------------------------------------------

    async def legacy(self, request: Request) -> JSONResponse:
        """System summary, as RaspAP's RestAPI answers it.

        Exactly RaspAP's 14 keys in RaspAP's order and types. Missing files give
        empty strings and zeros, never an error.
        """
        facts = await self.ctx.cache.get("legacy", self._legacy_facts)
        body: dict[str, Any] = dict.fromkeys(LEGACY_TYPES)
        body.update(facts)
        body.update(systime=probe.systime(clock()), systemTemperature=0.0, hostapdStatus=0)
        for key, value in (await self.ctx.hooks.system_fields()).items():
            kind = LEGACY_TYPES.get(key)
            if kind is None:
                continue
            coerced = _coerce(value, kind)
            if coerced is None:
                self._warn(key, f"ignored a {type(value).__name__} for /system {key}")
            else:
                body[key] = coerced
        return JSONResponse(body)

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

    async def overview(self, request: Request) -> JSONResponse:
        """Host, OS, board, uptime, load, CPU, memory, disks, users and top processes.

        CPU figures compare /proc/stat with the previous refresh (the first
        baseline is taken at startup); `interval_seconds` says over how long.
        """
        limit = LIMIT.parse(request) or 5
        cache = self.ctx.cache
        info, cpu, procs = await asyncio.gather(
            cache.get("info", self._info),
            cache.get("cpu", self.cpu.sample),
            cache.get("processes", self.processes.sample),
        )
        static = info["cpu"]
        body = {
            **info,
            "cpu": {"count": static["count"], **cpu, "frequency": static["frequency"]},
            "processes": {
                **procs,
                "top_cpu": procs["top_cpu"][:limit],
                "top_memory": procs["top_memory"][:limit],
            },
        }
        return JSONResponse(body)

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
            "boot_at": probe.rfc3339(boot) if boot is not None else None,
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


# -- hooks ------------------------------------------------------------------------


def _service(ctx: PluginContext) -> SystemService:
    return ctx.service(SystemService)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [ApiRoute("/system", _service(ctx).legacy, methods=["GET"], response=LEGACY)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [
        ApiRoute("/", _service(ctx).overview, methods=["GET"], response=OVERVIEW, query=[LIMIT])
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await asyncio.to_thread(_service(ctx).prime)


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float]:
    # Plain: called in the samples' one worker-thread visit, it reads /proc directly.
    return telemetry.samples(ctx, _service(ctx).history_cpu)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    # A scrape after the cache period gets the last refresh's families (rendered once)
    # while the next one runs in the background, as hostapd's and wireguard's do.
    families: list[Any] = await ctx.cache.get(
        "metrics", lambda: telemetry.families(ctx), stale=2 * ctx.cache.ttl
    )
    return families

"""The system plugin's history samples and Prometheus metrics (blocking: call from a loader).

Metric names, labels and help texts are node_exporter's, exactly (``node_load1``,
``node_cpu_seconds_total``, ``node_memory_MemAvailable_bytes``...; see ``node.py``),
so the dashboards people already use for it work unchanged.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import PluginContext

from . import probe
from .sampler import CpuSampler

#: The /proc/meminfo fields the samples use.
_MEMINFO_KEYS = frozenset({"MemTotal", "MemAvailable", "MemFree", "SwapTotal", "SwapFree"})


def samples(ctx: PluginContext, cpu: CpuSampler) -> dict[str, float]:
    """``cpu.percent`` (since the previous sample), memory, swap, load and the root disk."""
    out: dict[str, float] = {}
    busy = cpu.sample()["percent"]
    if busy is not None:
        out["cpu.percent"] = busy
    mem = probe.meminfo(ctx, _MEMINFO_KEYS)
    total = mem.get("MemTotal", 0) * 1024
    if total > 0:
        available = mem.get("MemAvailable", mem.get("MemFree", 0)) * 1024
        out["memory.used_bytes"] = float(total - available)
        out["memory.percent"] = probe.percent(total - available, total)
    swap_total = mem.get("SwapTotal", 0) * 1024
    swap_used = swap_total - mem.get("SwapFree", 0) * 1024
    out["swap.used_bytes"] = float(swap_used)
    out["swap.percent"] = probe.percent(swap_used, swap_total)
    load = probe.loadavg(ctx)
    out["load.avg_1m"], out["load.avg_5m"], out["load.avg_15m"] = load
    disk = probe.disk_usage(ctx.path("/"))
    if disk is not None:
        out["disk.root.percent"] = probe.percent(disk[1], disk[1] + disk[2])
    return out


def families(ctx: PluginContext) -> list[Any]:
    """node_exporter's families (``node.py``), then CPU frequencies."""
    from prometheus_client.core import GaugeMetricFamily

    # node.py (its regexes, ctypes for adjtimex) serves only /metrics: imported
    # on the first scrape, not at start.
    from . import node

    out: list[Any] = list(node.families(ctx))
    spec = (
        ("", "current_mhz", "Current scaled CPU thread frequency in hertz."),
        ("_max", "max_mhz", "Maximum scaled CPU thread frequency in hertz."),
        ("_min", "min_mhz", "Minimum scaled CPU thread frequency in hertz."),
    )
    frequencies = probe.cpu_frequencies(ctx)
    for suffix, key, text in spec:
        family = GaugeMetricFamily(
            f"node_cpu_scaling_frequency{suffix}_hertz", text, labels=["cpu"]
        )
        for entry in frequencies:
            if entry[key] is not None:
                family.add_metric([str(entry["cpu"])], entry[key] * 1_000_000)
        out.append(family)
    return out

"""The system plugin's history samples and Prometheus metrics (blocking: call from a loader).

Metric names are node_exporter's (``node_load1``, ``node_cpu_seconds_total``,
``node_filesystem_avail_bytes``...), so the dashboards people already use for it
work; memory is the exception (``node_memory_available_bytes`` for node_exporter's
``node_memory_MemAvailable_bytes``): promtool's lint rejects camelCase names.
"""

from __future__ import annotations

import os
import time
from typing import Any

from raspapi.plugin import PluginContext

from . import probe
from .sampler import CpuSampler

#: /proc/stat's columns after the CPU name, as node_exporter labels them.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
#: /proc/meminfo fields, by metric name. node_exporter writes node_memory_MemTotal_bytes,
#: but promtool's lint rejects camelCase names, so these are in snake case.
MEMORY = {
    "total": "MemTotal",
    "free": "MemFree",
    "available": "MemAvailable",
    "buffers": "Buffers",
    "cached": "Cached",
    "swap_total": "SwapTotal",
    "swap_free": "SwapFree",
}
MAX_CPUS = 1024


def samples(ctx: PluginContext, cpu: CpuSampler) -> dict[str, float]:
    """``cpu.percent`` (since the previous sample), memory, swap, load and the root disk."""
    out: dict[str, float] = {}
    busy = cpu.sample()["percent"]
    if busy is not None:
        out["cpu.percent"] = busy
    mem = probe.meminfo(ctx)
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


def cpu_seconds(text: str) -> dict[str, list[float]]:
    """Seconds per mode for each ``cpuN`` line of /proc/stat."""
    hertz = os.sysconf("SC_CLK_TCK") or 100
    out: dict[str, list[float]] = {}
    for line in text.splitlines()[: MAX_CPUS + 1]:
        name, *fields = line.split()
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        try:
            out[name[3:]] = [int(v) / hertz for v in fields[: len(MODES)]]
        except ValueError:
            continue
    return out


def families(ctx: PluginContext) -> list[Any]:
    """node_exporter's basics: CPU time, load, memory, boot time, filesystems, frequency."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    out: list[Any] = []
    stat = probe.read(ctx, "/proc/stat", 1 << 20) or ""
    cpu = CounterMetricFamily(
        "node_cpu_seconds", "Seconds the CPUs spent in each mode", labels=["cpu", "mode"]
    )
    for number, seconds in cpu_seconds(stat).items():
        for mode, spent in zip(MODES, seconds, strict=False):
            cpu.add_metric([number, mode], spent)
    out.append(cpu)
    for line in stat.splitlines():
        if line.startswith("btime ") and line[6:].strip().isdigit():
            out.append(
                GaugeMetricFamily(
                    "node_boot_time_seconds",
                    "Node boot time, in unixtime",
                    value=int(line[6:]),
                )
            )
            break
    out.append(GaugeMetricFamily("node_time_seconds", "System time in seconds", value=time.time()))
    for minutes, load in zip((1, 5, 15), probe.loadavg(ctx), strict=True):
        out.append(GaugeMetricFamily(f"node_load{minutes}", f"{minutes}m load average", load))
    mem = probe.meminfo(ctx)
    for name, key in MEMORY.items():
        if key in mem:
            out.append(
                GaugeMetricFamily(
                    f"node_memory_{name}_bytes",
                    f"Memory information field {key} (/proc/meminfo), in bytes",
                    value=mem[key] * 1024,
                )
            )
    labels = ["device", "fstype", "mountpoint"]
    size = GaugeMetricFamily(
        "node_filesystem_size_bytes", "Filesystem size in bytes", labels=labels
    )
    free = GaugeMetricFamily(
        "node_filesystem_free_bytes", "Filesystem free space in bytes", labels=labels
    )
    avail = GaugeMetricFamily(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes",
        labels=labels,
    )
    readonly = GaugeMetricFamily(
        "node_filesystem_readonly", "Filesystem read-only status", labels=labels
    )
    for fs in probe.disks(ctx):
        where = [fs["device"], fs["fs_type"], fs["mount_point"]]
        size.add_metric(where, fs["total_bytes"])
        free.add_metric(where, fs["total_bytes"] - fs["used_bytes"])
        avail.add_metric(where, fs["available_bytes"])
        readonly.add_metric(where, 1 if fs["read_only"] else 0)
    out += [size, free, avail, readonly]
    frequency = GaugeMetricFamily(
        "node_cpu_scaling_frequency_hertz", "Current scaled CPU thread frequency", labels=["cpu"]
    )
    for entry in probe.cpu_frequencies(ctx):
        frequency.add_metric([str(entry["cpu"])], entry["current_mhz"] * 1_000_000)
    out.append(frequency)
    uname = GaugeMetricFamily(
        "node_uname_info", "Labeled system information", labels=["nodename", "release"]
    )
    uname.add_metric(
        [
            probe.first_line(ctx, "/proc/sys/kernel/hostname"),
            probe.first_line(ctx, "/proc/sys/kernel/osrelease"),
        ],
        1,
    )
    out.append(uname)
    return out

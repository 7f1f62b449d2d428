"""node_exporter's families, read straight from /proc and /sys (blocking: call from a loader).

The names, types, labels and help texts are node_exporter's own (its default
Linux collectors: cpu, stat, meminfo, loadavg, pressure, filesystem, diskstats,
time, timex, uname, vmstat, entropy, filefd, sockstat, netstat, arp, softnet,
schedstat, conntrack, udp_queues), so Grafana's "Node Exporter Full" and every
other node dashboard work unchanged. The exact kernel fields are the contract,
so these readers parse the raw files rather than a library's summary of them,
and every path is resolved under the plugin context's root.

Each reader is bounded (bytes read, lines, devices) and skips what it cannot
parse: a missing or odd file leaves its families out, never the scrape.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from raspapi.plugin import (
    PluginContext,
)

#: /proc/stat's columns after the CPU name, as node_exporter labels them.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("user", "nice")
MAX_CPUS = 1024
MAX_DEVICES = 1024
MAX_MOUNTS = 1024
MAX_LINES = 20_000
SECTOR = 512

# node_exporter's default exclusions (--collector.filesystem.*-exclude, diskstats).
FS_TYPES_EXCLUDE = re.compile(
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|erofs|sysfs|tracefs)$"
)
MOUNT_POINTS_EXCLUDE = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
#: statvfs on a remote filesystem whose server is gone hangs: these are left out.
NETWORK_FS = re.compile(
    r"^(9p|afs|ceph|cifs|davfs|glusterfs|ncpfs|nfs|nfs4|smb3|smbfs|sshfs|fuse\..*)$"
)
DISKS_EXCLUDE = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
VMSTAT_FIELDS = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")
NETSTAT_FIELDS = re.compile(
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: /proc/diskstats columns after the name: (metric, help, scale), node_exporter's.
DISKSTATS: tuple[tuple[str, str, float], ...] = (
    ("reads_completed", "The total number of reads completed successfully.", 1),
    ("reads_merged", "The total number of reads merged.", 1),
    ("read_bytes", "The total number of bytes read successfully.", SECTOR),
    ("read_time_seconds", "The total number of seconds spent by all reads.", 0.001),
    ("writes_completed", "The total number of writes completed successfully.", 1),
    ("writes_merged", "The number of writes merged.", 1),
    ("written_bytes", "The total number of bytes written successfully.", SECTOR),
    ("write_time_seconds", "This is the total number of seconds spent by all writes.", 0.001),
    ("io_now", "The number of I/Os currently in progress.", 1),
    ("io_time_seconds", "Total seconds spent doing I/Os.", 0.001),
    ("io_time_weighted_seconds", "The weighted # of seconds spent doing I/Os.", 0.001),
    ("discards_completed", "The total number of discards completed successfully.", 1),
    ("discards_merged", "The total number of discards merged.", 1),
    ("discarded_sectors", "The total number of sectors discarded successfully.", 1),
    ("discard_time_seconds", "This is the total number of seconds spent by all discards.", 0.001),
    ("flush_requests", "The total number of flush requests completed successfully", 1),
    (
        "flush_requests_time_seconds",
        "This is the total number of seconds spent by all flush requests.",
        0.001,
    ),
)
PRESSURE = (
    ("cpu", "some", "cpu_waiting", "processes have waited for CPU time"),
    ("io", "some", "io_waiting", "processes have waited due to IO congestion"),
    ("io", "full", "io_stalled", "no process could make progress due to IO congestion"),
    ("memory", "some", "memory_waiting", "processes have waited for memory"),
    ("memory", "full", "memory_stalled", "no process could make progress due to memory congestion"),
    ("irq", "full", "irq_stalled", "no process could make progress due to IRQ congestion"),
)
SOFTNET = (
    ("processed", "Number of processed packets"),
    ("dropped", "Number of dropped packets"),
    ("times_squeezed", "Number of times processing packets ran out of quota"),
)


def read(ctx: PluginContext, path: str, limit: int = 1 << 20) -> str | None:
    """A file's text under the context's root; None when absent or unreadable."""
    try:
        with open(ctx.path(path), "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _lines(ctx: PluginContext, path: str, limit: int = 1 << 20) -> list[str]:
    return (read(ctx, path, limit) or "").splitlines()[:MAX_LINES]


def _first(ctx: PluginContext, path: str) -> str:
    return (read(ctx, path, 4096) or "").strip().split("\n", 1)[0].strip()


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# -- collectors: each returns its families -------------------------------------------


def cpu_and_stat(ctx: PluginContext) -> list[Any]:
    """``cpu`` (seconds per mode, guest seconds) and ``stat`` (boot, switches, forks...)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    hertz = os.sysconf("SC_CLK_TCK") or 100
    cpu = CounterMetricFamily(
        "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
    )
    guest = CounterMetricFamily(
        "node_cpu_guest_seconds",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        labels=["cpu", "mode"],
    )
    out: list[Any] = [cpu, guest]
    counters = {
        "intr": ("node_intr", "Total number of interrupts serviced."),
        "ctxt": ("node_context_switches", "Total number of context switches."),
        "processes": ("node_forks", "Total number of forks."),
    }
    gauges = {
        "btime": ("node_boot_time_seconds", "Node boot time, in unixtime."),
        "procs_running": ("node_procs_running", "Number of processes in runnable state."),
        "procs_blocked": (
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
        ),
    }
    cpus = 0
    for line in _lines(ctx, "/proc/stat", 4 << 20):
        name, _, rest = line.partition(" ")
        fields = rest.split()
        if name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
            if cpus > MAX_CPUS:
                continue
            numbers = [_int(f) for f in fields[:10]]
            if len(numbers) < 4 or None in numbers:
                continue
            values = [n / hertz for n in numbers if n is not None]
            for mode, spent in zip(MODES, values, strict=False):
                cpu.add_metric([name[3:], mode], spent)
            for mode, spent in zip(GUEST_MODES, values[8:], strict=False):
                guest.add_metric([name[3:], mode], spent)
        elif name in counters and fields and (number := _int(fields[0])) is not None:
            metric, text = counters[name]
            out.append(CounterMetricFamily(metric, text, value=number))
        elif name in gauges and fields and (number := _int(fields[0])) is not None:
            metric, text = gauges[name]
            out.append(GaugeMetricFamily(metric, text, value=number))
    return out


def meminfo(ctx: PluginContext) -> list[Any]:
    """Every /proc/meminfo field as ``node_memory_<Field>_bytes`` (kB fields) or
    ``node_memory_<Field>`` (page counts), ``Active(anon)`` written ``Active_anon``."""
    from prometheus_client.core import GaugeMetricFamily

    out: dict[str, Any] = {}
    for line in _lines(ctx, "/proc/meminfo", 65536)[:500]:
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or len(parts) > 2:
            continue
        number = _int(parts[0])
        if number is None:
            continue
        key = key.strip().replace("(", "_").replace(")", "")
        if len(parts) == 2:
            if parts[1] != "kB":
                continue
            key, number = f"{key}_bytes", number * 1024
        if not _NAME.fullmatch(key) or key in out:
            continue
        out[key] = GaugeMetricFamily(
            f"node_memory_{key}", f"Memory information field {key}.", value=number
        )
    return list(out.values())


def loadavg(ctx: PluginContext) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    parts = [_float(p) for p in (read(ctx, "/proc/loadavg", 256) or "").split()[:3]]
    if len(parts) < 3:
        return []
    return [
        GaugeMetricFamily(f"node_load{minutes}", f"{minutes}m load average.", value=load)
        for minutes, load in zip((1, 5, 15), parts, strict=True)
        if load is not None
    ]


def pressure(ctx: PluginContext) -> list[Any]:
    """``node_pressure_*`` from /proc/pressure (kernel 4.20+, when PSI is on)."""
    from prometheus_client.core import CounterMetricFamily

    totals: dict[tuple[str, str], float] = {}
    for resource in ("cpu", "io", "memory", "irq"):
        for line in _lines(ctx, f"/proc/pressure/{resource}", 4096)[:4]:
            kind, *fields = line.split()
            for field in fields:
                key, _, number = field.partition("=")
                if key == "total" and (value := _int(number)) is not None:
                    totals[(resource, kind)] = value / 1_000_000
    return [
        CounterMetricFamily(
            f"node_pressure_{name}_seconds", f"Total time in seconds that {text}", value=seconds
        )
        if kind == "some"
        else CounterMetricFamily(
            f"node_pressure_{name}_seconds", f"Total time in seconds {text}", value=seconds
        )
        for resource, kind, name, text in PRESSURE
        if (seconds := totals.get((resource, kind))) is not None
    ]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem(ctx: PluginContext) -> list[Any]:
    """Size, free, available, inodes, read-only and errors of every mounted filesystem
    node_exporter would list (its default exclusions), remote ones left out."""
    from prometheus_client.core import GaugeMetricFamily

    labels = ["device", "mountpoint", "fstype", "device_error"]
    spec = (
        ("size_bytes", "Filesystem size in bytes."),
        ("free_bytes", "Filesystem free space in bytes."),
        ("avail_bytes", "Filesystem space available to non-root users in bytes."),
        ("files", "Filesystem total file nodes."),
        ("files_free", "Filesystem total free file nodes."),
        ("readonly", "Filesystem read-only status."),
        (
            "device_error",
            "Whether an error occurred while getting statistics for the given device.",
        ),
    )
    families = {
        name: GaugeMetricFamily(f"node_filesystem_{name}", text, labels=labels)
        for name, text in spec
    }
    seen: set[tuple[str, str]] = set()
    for line in _lines(ctx, "/proc/mounts")[: MAX_MOUNTS * 4]:
        parts = line.split()
        if len(parts) < 4:
            continue
        device, mountpoint, fstype = _unescape(parts[0]), _unescape(parts[1]), parts[2]
        if (
            FS_TYPES_EXCLUDE.match(fstype)
            or NETWORK_FS.match(fstype)
            or MOUNT_POINTS_EXCLUDE.match(mountpoint)
            or not mountpoint.startswith("/")
            or (device, mountpoint) in seen
        ):
            continue
        seen.add((device, mountpoint))
        if len(seen) > MAX_MOUNTS:
            break
        readonly = 1 if "ro" in parts[3].split(",") else 0
        try:
            st = os.statvfs(ctx.path(mountpoint))
        except (OSError, ValueError) as exc:
            error = (getattr(exc, "strerror", None) or str(exc))[:200]
            families["device_error"].add_metric([device, mountpoint, fstype, error], 1)
            families["readonly"].add_metric([device, mountpoint, fstype, error], readonly)
            continue
        where = [device, mountpoint, fstype, ""]
        size = st.f_frsize or st.f_bsize
        for name, value in (
            ("size_bytes", st.f_blocks * size),
            ("free_bytes", st.f_bfree * size),
            ("avail_bytes", st.f_bavail * size),
            ("files", st.f_files),
            ("files_free", st.f_ffree),
            ("readonly", readonly),
            ("device_error", 0),
        ):
            families[name].add_metric(where, value)
    return list(families.values())


def diskstats(ctx: PluginContext) -> list[Any]:
    """``node_disk_*`` from /proc/diskstats (partitions of sd/vd/nvme and loop, ram,
    zram devices left out, as node_exporter does)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families = [
        GaugeMetricFamily(f"node_disk_{name}", text, labels=["device"])
        if name == "io_now"
        else CounterMetricFamily(f"node_disk_{name}", text, labels=["device"])
        for name, text, _scale in DISKSTATS
    ]
    info = GaugeMetricFamily(
        "node_disk_info",
        "Info of /sys/block/<block_device>.",
        labels=["device", "major", "minor"],
    )
    devices = 0
    for line in _lines(ctx, "/proc/diskstats"):
        parts = line.split()
        if len(parts) < 14 or DISKS_EXCLUDE.match(parts[2]):
            continue
        numbers = [_int(p) for p in parts[3:]]
        if None in numbers:
            continue
        devices += 1
        if devices > MAX_DEVICES:
            break
        device = parts[2]
        info.add_metric([device, parts[0], parts[1]], 1)
        for family, (_name, _text, scale), number in zip(
            families, DISKSTATS, numbers, strict=False
        ):
            family.add_metric([device], (number or 0) * scale)
    return [*families, info]


def time_and_uname(ctx: PluginContext) -> list[Any]:
    """``time`` (clock, zone offset, clock sources) and ``uname``."""
    from prometheus_client.core import GaugeMetricFamily

    now = time.time()
    local = time.localtime(now)
    zone = GaugeMetricFamily(
        "node_time_zone_offset_seconds", "System time zone offset in seconds.", labels=["time_zone"]
    )
    zone.add_metric([local.tm_zone or "UTC"], local.tm_gmtoff or 0)
    out: list[Any] = [
        GaugeMetricFamily("node_time_seconds", "System time in seconds since epoch (1970).", now),
        zone,
    ]
    base = "/sys/devices/system/clocksource"
    try:
        sources = sorted(
            e.name for e in os.scandir(ctx.path(base)) if re.fullmatch(r"clocksource\d+", e.name)
        )[:64]
    except OSError:
        sources = []
    available = GaugeMetricFamily(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        labels=["device", "clocksource"],
    )
    current = GaugeMetricFamily(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        labels=["device", "clocksource"],
    )
    for name in sources:
        number = name.removeprefix("clocksource")
        for source in _first(ctx, f"{base}/{name}/available_clocksource").split()[:32]:
            available.add_metric([number, source], 1)
        if chosen := _first(ctx, f"{base}/{name}/current_clocksource"):
            current.add_metric([number, chosen], 1)
    out += [available, current]
    uname = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=["sysname", "release", "version", "machine", "nodename", "domainname"],
    )
    kernel = "/proc/sys/kernel"
    uname.add_metric(
        [
            _first(ctx, f"{kernel}/ostype") or "Linux",
            _first(ctx, f"{kernel}/osrelease"),
            _first(ctx, f"{kernel}/version"),
            os.uname().machine,
            _first(ctx, f"{kernel}/hostname"),
            _first(ctx, f"{kernel}/domainname") or "(none)",
        ],
        1,
    )
    out.append(uname)
    return out


def vmstat(ctx: PluginContext) -> list[Any]:
    from prometheus_client.core import UnknownMetricFamily

    out = []
    for line in _lines(ctx, "/proc/vmstat", 65536)[:1000]:
        parts = line.split()
        if len(parts) != 2 or not VMSTAT_FIELDS.match(parts[0]) or not _NAME.fullmatch(parts[0]):
            continue
        if (number := _int(parts[1])) is not None:
            out.append(
                UnknownMetricFamily(
                    f"node_vmstat_{parts[0]}",
                    f"/proc/vmstat information field {parts[0]}.",
                    value=number,
                )
            )
    return out


def entropy_and_filefd(ctx: PluginContext) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    out: list[Any] = []
    random = "/proc/sys/kernel/random"
    for name, path, text in (
        ("node_entropy_available_bits", f"{random}/entropy_avail", "Bits of available entropy."),
        ("node_entropy_pool_size_bits", f"{random}/poolsize", "Bits of entropy pool."),
    ):
        if (value := _int(_first(ctx, path))) is not None:
            out.append(GaugeMetricFamily(name, text, value=value))
    parts = _first(ctx, "/proc/sys/fs/file-nr").split()
    if len(parts) == 3 and (allocated := _int(parts[0])) is not None:
        for name, value in (("allocated", allocated), ("maximum", _int(parts[2]))):
            if value is not None:
                out.append(
                    GaugeMetricFamily(
                        f"node_filefd_{name}", f"File descriptor statistics: {name}.", value=value
                    )
                )
    return out


def sockstat(ctx: PluginContext) -> list[Any]:
    """``node_sockstat_*`` from /proc/net/sockstat and sockstat6 (``mem`` also in bytes)."""
    from prometheus_client.core import GaugeMetricFamily

    page = os.sysconf("SC_PAGE_SIZE") or 4096
    out: dict[str, Any] = {}
    for path in ("/proc/net/sockstat", "/proc/net/sockstat6"):
        for line in _lines(ctx, path, 8192)[:32]:
            protocol, sep, rest = line.partition(":")
            fields = rest.split()
            if not sep or not _NAME.fullmatch(protocol):
                continue
            if protocol == "sockets" and fields[:1] == ["used"] and len(fields) >= 2:
                if (used := _int(fields[1])) is not None:
                    out["sockets_used"] = GaugeMetricFamily(
                        "node_sockstat_sockets_used", "Number of IPv4 sockets in use.", value=used
                    )
                continue
            for key, number in zip(fields[::2], fields[1::2], strict=False):
                value = _int(number)
                if value is None or not _NAME.fullmatch(key):
                    continue
                pairs = [(key, value)] + ([("mem_bytes", value * page)] if key == "mem" else [])
                for state, amount in pairs:
                    name = f"{protocol}_{state}"
                    if name not in out:
                        out[name] = GaugeMetricFamily(
                            f"node_sockstat_{name}",
                            f"Number of {protocol} sockets in state {state}.",
                            value=amount,
                        )
    return list(out.values())


#: The fields node_exporter serves, by the header line (or snmp6 name) they are in:
#: the kernel's few hundred names never change, so each is matched once.
_NETSTAT_PICKS: dict[str, list[tuple[int, str]]] = {}
_SNMP6 = re.compile(r"(Ip6|Icmp6|Udp6|UdpLite6)(.+)")


def _picks(header: str, names: list[str]) -> list[tuple[int, str]]:
    picks = _NETSTAT_PICKS.get(header)
    if picks is None:
        picks = [
            (index, key)
            for index, key in enumerate(names)
            if NETSTAT_FIELDS.match(key) and _NAME.fullmatch(key)
        ]
        if len(_NETSTAT_PICKS) < 1024:
            _NETSTAT_PICKS[header] = picks
    return picks


def netstat(ctx: PluginContext) -> list[Any]:
    """node_exporter's default ``node_netstat_*`` fields, from /proc/net/netstat, snmp
    and snmp6."""
    from prometheus_client.core import UnknownMetricFamily

    values: dict[str, str] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = _lines(ctx, path, 65536)[:64]
        for header, numbers in zip(lines[::2], lines[1::2], strict=False):
            protocol, _, names = header.partition(":")
            other, _, counts = numbers.partition(":")
            if protocol != other:
                continue
            keys = [f"{protocol}_{name}" for name in names.split()]
            found = counts.split()
            for index, key in _picks(header, keys) if len(header) < 8192 else []:
                if index < len(found):
                    values.setdefault(key, found[index])
    for line in _lines(ctx, "/proc/net/snmp6", 65536)[:500]:
        parts = line.split()
        match = _SNMP6.match(parts[0]) if len(parts) == 2 else None
        if match:
            key = f"{match.group(1)}_{match.group(2)}"
            if _picks(parts[0], [key]):
                values.setdefault(key, parts[1])
    out = []
    for key, count in values.items():
        if (number := _float(count)) is not None:
            out.append(
                UnknownMetricFamily(
                    f"node_netstat_{key}", f"Statistic {key.replace('_', '', 1)}.", number
                )
            )
    return out


def arp_softnet_conntrack(ctx: PluginContext) -> list[Any]:
    """``node_arp_entries``, ``node_softnet_*`` and ``node_nf_conntrack_entries*``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    out: list[Any] = []
    arp: dict[str, int] = {}
    for line in _lines(ctx, "/proc/net/arp")[1:]:
        parts = line.split()
        if len(parts) >= 6 and (parts[5] in arp or len(arp) < MAX_DEVICES):
            arp[parts[5]] = arp.get(parts[5], 0) + 1
    entries = GaugeMetricFamily("node_arp_entries", "ARP entries by device", labels=["device"])
    for device, count in arp.items():
        entries.add_metric([device], count)
    out.append(entries)
    softnet = {
        name: CounterMetricFamily(f"node_softnet_{name}", text, labels=["cpu"])
        for name, text in SOFTNET
    }
    for number, line in enumerate(_lines(ctx, "/proc/net/softnet_stat")[:MAX_CPUS]):
        fields = line.split()
        try:
            counts = [int(f, 16) for f in fields[:3]]
        except ValueError:
            continue
        for (name, _), count in zip(SOFTNET, counts, strict=False):
            softnet[name].add_metric([str(number)], count)
    out += softnet.values()
    base = "/proc/sys/net/netfilter"
    for name, path, text in (
        (
            "node_nf_conntrack_entries",
            f"{base}/nf_conntrack_count",
            "Number of currently allocated flow entries for connection tracking.",
        ),
        (
            "node_nf_conntrack_entries_limit",
            f"{base}/nf_conntrack_max",
            "Maximum size of connection tracking table.",
        ),
    ):
        if (value := _int(_first(ctx, path))) is not None:
            out.append(GaugeMetricFamily(name, text, value=value))
    return out


def schedstat(ctx: PluginContext) -> list[Any]:
    """``node_schedstat_*`` per CPU, from /proc/schedstat (nanoseconds to seconds)."""
    from prometheus_client.core import CounterMetricFamily

    running = CounterMetricFamily(
        "node_schedstat_running_seconds",
        "Number of seconds CPU spent running a process.",
        labels=["cpu"],
    )
    waiting = CounterMetricFamily(
        "node_schedstat_waiting_seconds",
        "Number of seconds spent by processing waiting for this CPU.",
        labels=["cpu"],
    )
    slices = CounterMetricFamily(
        "node_schedstat_timeslices", "Number of timeslices executed by CPU.", labels=["cpu"]
    )
    for line in _lines(ctx, "/proc/schedstat")[: MAX_CPUS * 4]:
        parts = line.split()
        if len(parts) < 10 or not parts[0].startswith("cpu") or not parts[0][3:].isdigit():
            continue
        numbers = [_int(p) for p in parts[-3:]]
        if None in numbers:
            continue
        number = parts[0][3:]
        running.add_metric([number], (numbers[0] or 0) / 1e9)
        waiting.add_metric([number], (numbers[1] or 0) / 1e9)
        slices.add_metric([number], numbers[2] or 0)
    return [running, waiting, slices]


class _Timex(ctypes.Structure):
    """Linux's ``struct timex`` (adjtimex(2)); ctypes lays ``long`` out per platform."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


_STA_NANO = 0x2000
_TIME_ERROR = 5
_PPM16 = 65536e6
_libc: Any = None


def timex(ctx: PluginContext) -> list[Any]:
    """``node_timex_*`` from adjtimex(2) with no mode bits set (a read). A sandbox that
    refuses the call (systemd's ProtectClock=) leaves these out, as node_exporter does."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    value = _Timex()
    state = _libc.adjtimex(ctypes.byref(value))
    if state < 0:
        return []
    divisor = 1e9 if value.status & _STA_NANO else 1e6
    spec: tuple[tuple[str, str, float], ...] = (
        (
            "sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            0 if state == _TIME_ERROR else 1,
        ),
        (
            "offset_seconds",
            "Time offset in between local system and reference clock.",
            value.offset / divisor,
        ),
        (
            "frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1 + value.freq / _PPM16,
        ),
        ("maxerror_seconds", "Maximum error in seconds.", value.maxerror / 1e6),
        ("estimated_error_seconds", "Estimated error in seconds.", value.esterror / 1e6),
        ("status", "Value of the status array bits.", value.status),
        ("loop_time_constant", "Phase-locked loop time constant.", value.constant),
        ("tick_seconds", "Seconds between clock ticks.", value.tick / 1e6),
        ("pps_frequency_hertz", "Pulse per second frequency.", value.ppsfreq / _PPM16),
        ("pps_jitter_seconds", "Pulse per second jitter.", value.jitter / divisor),
        ("pps_shift_seconds", "Pulse per second interval duration.", value.shift),
        (
            "pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            value.stabil / _PPM16,
        ),
        (
            "pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            value.jitcnt,
        ),
        ("pps_calibration_total", "Pulse per second count of calibration intervals.", value.calcnt),
        ("pps_error_total", "Pulse per second count of calibration errors.", value.errcnt),
        (
            "pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            value.stbcnt,
        ),
        ("tai_offset_seconds", "International Atomic Time (TAI) offset.", value.tai),
    )
    return [
        CounterMetricFamily(f"node_timex_{name}", text, value=number)
        if name.endswith("_total")
        else GaugeMetricFamily(f"node_timex_{name}", text, value=number)
        for name, text, number in spec
    ]


def udp_queues(ctx: PluginContext) -> list[Any]:
    """``node_udp_queues{ip,queue}``: bytes queued on UDP sockets, from /proc/net/udp{,6}."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
        labels=["ip", "queue"],
    )
    for ip, path in (("v4", "/proc/net/udp"), ("v6", "/proc/net/udp6")):
        lines = _lines(ctx, path, 4 << 20)
        if not lines:
            continue
        tx = rx = 0
        for line in lines[1:]:
            parts = line.split()
            if len(parts) < 5:
                continue
            queued, _, received = parts[4].partition(":")
            try:
                tx, rx = tx + int(queued, 16), rx + int(received, 16)
            except ValueError:
                continue
        family.add_metric([ip, "tx"], tx)
        family.add_metric([ip, "rx"], rx)
    return [family]


COLLECTORS: dict[str, Callable[[PluginContext], list[Any]]] = {
    "cpu": cpu_and_stat,
    "meminfo": meminfo,
    "loadavg": loadavg,
    "pressure": pressure,
    "filesystem": filesystem,
    "diskstats": diskstats,
    "time": time_and_uname,
    "vmstat": vmstat,
    "entropy": entropy_and_filefd,
    "sockstat": sockstat,
    "netstat": netstat,
    "arp": arp_softnet_conntrack,
    "schedstat": schedstat,
    "timex": timex,
    "udp_queues": udp_queues,
}


def families(ctx: PluginContext) -> Iterator[Any]:
    """Every collector's families, then node_exporter's own
    ``node_scrape_collector_duration_seconds`` and ``_success`` for each."""
    from prometheus_client.core import GaugeMetricFamily

    duration = GaugeMetricFamily(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        labels=["collector"],
    )
    success = GaugeMetricFamily(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        labels=["collector"],
    )
    for name, collect in COLLECTORS.items():
        started = time.perf_counter()
        try:
            found = collect(ctx)
        except Exception:  # one odd file must not cost the other collectors
            failed: set[str] = ctx.state.setdefault("node_failed", set())
            if name not in failed:  # once, not on every scrape
                failed.add(name)
                ctx.logger.exception("node collector %s failed", name)
            found = []
            ok = 0
        else:
            ok = 1
        duration.add_metric([name], time.perf_counter() - started)
        success.add_metric([name], ok)
        yield from found
    yield duration
    yield success

"""Reads the machine's facts from /proc, /sys and /etc (blocking: call from a loader).

psutil reads the mount table and (on the machine itself) the logged-in users;
disk usage is psutil's arithmetic on one statvfs(3). The rest is read by hand
where psutil has no call for it (board revision, device-tree model,
os-release, RaspAP's version), answers only for the running machine
(hostname, load, uptime), or does not give the exact figure the contract
needs (``free -m``'s /proc/meminfo arithmetic, per-CPU frequencies: see
``cpu_frequencies``).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from raspapi.plugin import PluginContext, rfc3339

from .procfs import at_root

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# fmt: off
#: Filesystems that hold no user data (or live in RAM) and are not disks.
PSEUDO_FS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nfsd", "nsfs", "overlay", "proc",
    "pstore", "ramfs", "rootfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
    "tmpfs", "tracefs",
})
#: Remote filesystems: statvfs on a dead server hangs, so they are not listed.
NETWORK_FS = frozenset({
    "9p", "afs", "ceph", "cifs", "davfs", "glusterfs", "ncpfs", "nfs", "nfs4", "smb3", "smbfs",
    "sshfs",
})
# fmt: on
MAX_MOUNTS = 256
MAX_CPUS = 1024

#: glibc's ``struct utmp`` on Linux: 384 bytes on every architecture.
UTMP = struct.Struct("=hxxi32s4s32s256shhiii4i20x")
USER_PROCESS = 7
MAX_UTMP_RECORDS = 4096


def read(ctx: PluginContext, path: str, limit: int = 1 << 20) -> str | None:
    """A file's text, None when it is absent or unreadable (a process may exit mid-read)."""
    try:
        with open(ctx.path(path), "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return None


def read_int(ctx: PluginContext, path: str) -> int | None:
    text = read(ctx, path, 64)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def first_line(ctx: PluginContext, path: str) -> str:
    text = read(ctx, path, 4096)
    return text.strip().split("\n", 1)[0].strip() if text else ""


# -- /system text ---------------------------------------------------------------


def uptime_pretty(seconds: float) -> str:
    """What procps 4.0.2 ``uptime -p`` prints.

    Years (365 days), weeks, days and hours are shown when not zero, taken in
    turn from the whole seconds; minutes are always shown. procps computes in
    floating point and misreports some values that fall exactly on a whole
    second; that glitch is not copied.
    """
    left = int(seconds) if seconds > 0 else 0
    parts: list[str] = []
    for unit, size in (("year", 31_536_000), ("week", 604_800), ("day", 86_400), ("hour", 3600)):
        count, left = divmod(left, size)
        if count:
            parts.append(_plural(count, unit))
    parts.append(_plural(left // 60, "minute"))
    return "up " + ", ".join(parts)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def systime(epoch: float) -> str:
    """Local time as ``date`` prints it in en_GB (Raspberry Pi OS), English names always."""
    t = time.localtime(epoch)
    zone = t.tm_zone or time.tzname[t.tm_isdst > 0]
    return (
        f"{DAYS[t.tm_wday]} {t.tm_mday:2d} {MONTHS[t.tm_mon - 1]} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {zone} {t.tm_year}"
    )


# -- small files ------------------------------------------------------------------


def os_release(ctx: PluginContext) -> dict[str, str]:
    text = read(ctx, "/etc/os-release", 65536)
    if text is None:
        text = read(ctx, "/usr/lib/os-release", 65536) or ""
    values: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw.strip("\"'")]
        values[key] = " ".join(words)
    return values


class CpuInfo(NamedTuple):
    processors: int
    revision: str | None
    model: str | None
    hardware: str | None


def cpuinfo(ctx: PluginContext) -> CpuInfo:
    text = read(ctx, "/proc/cpuinfo") or ""
    processors = 0
    fields: dict[str, str] = {}
    for line in text.splitlines()[:20000]:
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "processor":
            processors += 1
        elif key in ("Revision", "Model", "Hardware"):
            fields.setdefault(key, value.strip())
    return CpuInfo(
        processors or os.cpu_count() or 1,
        fields.get("Revision"),
        fields.get("Model"),
        fields.get("Hardware"),
    )


def device_tree_model(ctx: PluginContext) -> str | None:
    text = read(ctx, "/proc/device-tree/model", 4096) or ""
    return text.split("\0", 1)[0].strip() or None


def meminfo(ctx: PluginContext, keys: frozenset[str] | None = None) -> dict[str, int]:
    """/proc/meminfo in kB (only ``keys`` when given: the history samples want five)."""
    values: dict[str, int] = {}
    for line in (read(ctx, "/proc/meminfo", 65536) or "").splitlines()[:200]:
        key, _, rest = line.partition(":")
        if keys is not None and key.strip() not in keys:
            continue
        number = rest.split()
        if number and number[0].isdigit():
            values[key.strip()] = int(number[0])
    return values


def _number(text: str) -> float | None:
    """A finite, non-negative number (JSON has no NaN), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def loadavg(ctx: PluginContext) -> tuple[float, float, float]:
    parts = [_number(p) for p in (read(ctx, "/proc/loadavg", 256) or "").split()[:3]]
    if len(parts) < 3 or None in parts:
        return 0.0, 0.0, 0.0
    return parts[0] or 0.0, parts[1] or 0.0, parts[2] or 0.0


def uptime_seconds(ctx: PluginContext) -> float | None:
    parts = (read(ctx, "/proc/uptime", 256) or "").split()
    return _number(parts[0]) if parts else None


def raspap_version(ctx: PluginContext) -> str:
    """RASPI_VERSION as RaspAP reads it: the 4th '-separated field of its line."""
    text = read(ctx, "/var/www/html/includes/defaults.php", 1 << 20) or ""
    for line in text.splitlines():
        if "RASPI_VERSION" in line:
            fields = line.split("'")
            if len(fields) >= 4:
                return fields[3].strip()
    return ""


# -- disks ------------------------------------------------------------------------


class Mount(NamedTuple):
    device: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...]


def mounts(ctx: PluginContext) -> list[Mount]:
    """The mount table, as psutil reads it (getmntent(3) on ``<root>/proc/self/mounts``)."""
    import psutil

    with at_root(ctx):
        try:
            partitions = psutil.disk_partitions(all=True)
        except OSError:
            return []
    return [
        Mount(p.device, p.mountpoint, p.fstype, tuple(p.opts.split(",")))
        for p in partitions[:MAX_MOUNTS]
    ]


def is_disk(mount: Mount) -> bool:
    kind = mount.fs_type
    # fuse.* are user-space filesystems (sshfs, rclone, gvfs): often remote.
    return not (kind in PSEUDO_FS or kind in NETWORK_FS or kind.startswith("fuse."))


def disk_usage(path: Path) -> tuple[int, int, int] | None:
    """(total, used, available) bytes of the filesystem holding ``path``, as df counts.

    One statvfs(3), with psutil's own arithmetic (``psutil.disk_usage`` is this
    call): RaspAP's ``/system`` needs nothing else from psutil, whose import is
    about 0.14 s of a first answer under arm64 emulation."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    total = st.f_blocks * st.f_frsize
    return total, (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize


def df_percent(used: int, available: int) -> int:
    """df's Use%: used over (used + available), rounded up."""
    total = used + available
    return -(-used * 100 // total) if total > 0 else 0


def disks(ctx: PluginContext) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for mount in mounts(ctx):
        if not is_disk(mount) or not mount.mount_point.startswith("/"):
            continue
        path = ctx.path(mount.mount_point)
        if not path.is_dir():
            continue
        usage = disk_usage(path)
        if usage is None:
            continue
        total, used, available = usage
        found[mount.mount_point] = {
            "mount_point": mount.mount_point,
            "device": mount.device,
            "fs_type": mount.fs_type,
            "read_only": "ro" in mount.options,
            "total_bytes": total,
            "used_bytes": used,
            "available_bytes": available,
            "percent": percent(used, used + available),
        }
    return list(found.values())


def percent(part: float, whole: float) -> float:
    return round(part * 100 / whole, 1) if whole > 0 else 0.0


# -- users, CPU frequency ------------------------------------------------------------


def users(ctx: PluginContext) -> list[dict[str, Any]]:
    """Logged-in users, as ``who`` lists them.

    On the machine itself psutil reads them (utmp through the C library's
    getutent(3)). The C library only knows the running machine's utmp, so
    under another root (a fixture machine) that root's utmp file is read here.
    """
    if ctx.settings.root != Path("/"):
        return root_users(ctx)
    import psutil

    try:
        found = psutil.users()
    except OSError:
        return []
    return [
        {
            "user": u.name,
            "terminal": u.terminal or "",
            "host": u.host or None,
            "login_at": rfc3339(u.started),
            "pid": u.pid or 0,
        }
        for u in found[:MAX_UTMP_RECORDS]
    ]


def root_users(ctx: PluginContext) -> list[dict[str, Any]]:
    """Logged-in users from the utmp file under the root."""
    for name in ("/run/utmp", "/var/run/utmp"):
        try:
            with open(ctx.path(name), "rb") as fh:
                data = fh.read(UTMP.size * MAX_UTMP_RECORDS)
        except OSError:
            continue
        return list(_utmp_users(data))
    return []


def _utmp_users(data: bytes) -> Iterator[dict[str, Any]]:
    for offset in range(0, len(data) - UTMP.size + 1, UTMP.size):
        kind, pid, line, _id, user, host, _t, _e, _s, sec, _usec, *_addr = UTMP.unpack_from(
            data, offset
        )
        name = _cstr(user)
        if kind != USER_PROCESS or not name:
            continue
        yield {
            "user": name,
            "terminal": _cstr(line),
            "host": _cstr(host) or None,
            "login_at": rfc3339(sec),
            "pid": pid,
        }


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def cpu_frequencies(ctx: PluginContext) -> list[dict[str, Any]]:
    """Each CPU's scaling frequencies, from its own ``cpufreq`` folder.

    Not psutil's ``cpu_freq(percpu=True)``: that lists one entry per cpufreq
    policy (a single one for the four cores of a Pi), names no CPU, and
    prefers /proc/cpuinfo's "cpu MHz" for the current figure, while this list
    and node_exporter's ``node_cpu_scaling_frequency_hertz{cpu}`` are per CPU.
    """
    base = ctx.path("/sys/devices/system/cpu")
    try:
        names = [e.name for e in os.scandir(base) if re.fullmatch(r"cpu\d+", e.name)]
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for name in sorted(names, key=lambda n: int(n[3:]))[:MAX_CPUS]:
        folder = f"/sys/devices/system/cpu/{name}/cpufreq"
        current = read_int(ctx, f"{folder}/scaling_cur_freq")
        if current is None:
            continue
        low = read_int(ctx, f"{folder}/scaling_min_freq")
        high = read_int(ctx, f"{folder}/scaling_max_freq")
        out.append(
            {
                "cpu": int(name[3:]),
                "current_mhz": current / 1000,
                "min_mhz": low / 1000 if low is not None else None,
                "max_mhz": high / 1000 if high is not None else None,
            }
        )
    return out

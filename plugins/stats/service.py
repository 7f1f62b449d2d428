"""The ``stats`` plugin's domain: the V6Direct RASPAPI figures, read as psutil does.

What is served and where it differs from V6Direct on purpose: the package's
docstring.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from socket import AF_INET, AF_INET6
from typing import Any

from raspapi.plugin import (
    CommandError,
    PluginContext,
    Store,
    transaction,
)

#: The wall clock the snapshots are stamped with (tests set a fixed one).
clock: Callable[[], float] = time.time

CACHE_SECONDS = 30.0
HISTORY_SAMPLES = 60
#: V6Direct's NodeInfo defaults; NODE_ROLE and NODE_ASN in the environment override
#: the first and the last, as in V6Direct.
NODE_ROLE = "raspi-telemetry"
NETWORK_NAME = "V6Direct"
NODE_ASN = "AS213413"
#: Hardware sensors psutil is asked for, in V6Direct's order.
TEMPERATURE_SENSORS = ("cpu_thermal", "coretemp", "cpu-thermal", "thermal_zone0")
MAX_LINES = 4096

MIGRATIONS = ["CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, sample TEXT NOT NULL);"]


# -- reading the machine, as psutil does -------------------------------------------


def _read(ctx: PluginContext, path: str, limit: int = 1 << 20) -> str:
    return ctx.read_text(path, limit=limit) or ""


def _percent(used: float, total: float) -> float:
    """psutil's usage_percent(..., round_=1)."""
    return round(used / total * 100, 1) if total > 0 else 0.0


def cpu_times(text: str) -> dict[str, tuple[int, int]]:
    """(busy, total) clock ticks for ``cpu`` and each ``cpuN`` line of /proc/stat.

    As psutil: guest time is already inside user time and is not counted
    twice; idle is idle plus iowait.
    """
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines()[:MAX_LINES]:
        if not line.startswith("cpu"):
            continue
        name, *fields = line.split()
        try:
            ticks = [int(v) for v in fields[:10]]
        except ValueError:
            continue
        if len(ticks) < 4:
            continue
        total = sum(ticks[:8])
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        out[name] = (total - idle, total)
    return out


def _busy(before: tuple[int, int] | None, after: tuple[int, int]) -> float:
    if before is None:
        return 0.0
    total = after[1] - before[1]
    busy = after[0] - before[0]
    return round(min(max(busy / total * 100, 0.0), 100.0), 1) if total > 0 else 0.0


def meminfo(ctx: PluginContext) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in _read(ctx, "/proc/meminfo", 65536).splitlines()[:200]:
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key.strip()] = int(number[0]) * 1024
    return values


def memory(ctx: PluginContext) -> dict[str, Any]:
    mem = meminfo(ctx)
    total, free = mem.get("MemTotal", 0), mem.get("MemFree", 0)
    buffers = mem.get("Buffers", 0)
    cached = mem.get("Cached", 0) + mem.get("SReclaimable", 0)
    used = total - free - cached - buffers
    if used < 0:
        used = total - free
    available = mem.get("MemAvailable", free + buffers + cached)
    swap_total = mem.get("SwapTotal", 0)
    swap_used = swap_total - mem.get("SwapFree", 0)
    return {
        "total_mb": round(total / 1e6, 2),
        "available_mb": round(available / 1e6, 2),
        "used_mb": round(used / 1e6, 2),
        "percent": _percent(total - available, total),
        "swap_total_mb": round(swap_total / 1e6, 2),
        "swap_used_mb": round(swap_used / 1e6, 2),
        "swap_percent": _percent(swap_used, swap_total),
    }


def frequency_mhz(ctx: PluginContext) -> float | None:
    """The mean current frequency of the CPUs (cpufreq, else /proc/cpuinfo)."""
    values: list[float] = []
    try:
        names = sorted(os.listdir(ctx.path("/sys/devices/system/cpu")))
    except OSError:
        names = []
    for name in names[:MAX_LINES]:
        if re.fullmatch(r"cpu\d+", name):
            text = _read(ctx, f"/sys/devices/system/cpu/{name}/cpufreq/scaling_cur_freq", 64)
            if text.strip().isdigit():
                values.append(int(text) / 1000)
    if not values:
        for line in _read(ctx, "/proc/cpuinfo").splitlines()[:MAX_LINES]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "cpu mhz":
                try:
                    values.append(float(value))
                except ValueError:
                    continue
    return round(sum(values) / len(values), 2) if values else None


def temperature(ctx: PluginContext) -> float | None:
    """The first sensor psutil.sensors_temperatures() names in V6Direct's list."""
    found: dict[str, float] = {}
    for folder, kind in (("/sys/class/hwmon", "hwmon"), ("/sys/class/thermal", "thermal_zone")):
        try:
            entries = sorted(e for e in os.listdir(ctx.path(folder)) if e.startswith(kind))
        except OSError:
            continue
        for entry in entries[:64]:
            base = f"{folder}/{entry}"
            if kind == "hwmon":
                name = _read(ctx, f"{base}/name", 256).strip()
                text = _read(ctx, f"{base}/temp1_input", 64).strip()
            else:
                name = _read(ctx, f"{base}/type", 256).strip()
                text = _read(ctx, f"{base}/temp", 64).strip()
            if name and name not in found and text.lstrip("-").isdigit():
                found[name] = int(text) / 1000
    for key in TEMPERATURE_SENSORS:
        if found.get(key):
            return round(found[key], 2)
    return None


def loadavg(ctx: PluginContext) -> tuple[float, float, float]:
    parts = _read(ctx, "/proc/loadavg", 256).split()[:3]
    try:
        one, five, fifteen = (float(p) for p in parts)
    except ValueError:
        return 0.0, 0.0, 0.0
    return one, five, fifteen


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def disks(ctx: PluginContext) -> list[dict[str, Any]]:
    """psutil.disk_partitions(all=False): filesystems on a device, with their usage."""
    nodev = {
        line.split()[1]
        for line in _read(ctx, "/proc/filesystems", 65536).splitlines()
        if line.startswith("nodev") and len(line.split()) > 1
    }
    physical = {
        line.split()[-1]
        for line in _read(ctx, "/proc/filesystems", 65536).splitlines()
        if line.strip() and not line.startswith("nodev")
    }
    out: list[dict[str, Any]] = []
    for line in _read(ctx, "/proc/mounts").splitlines()[:MAX_LINES]:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mountpoint, fstype = _unescape(fields[0]), _unescape(fields[1]), fields[2]
        # Without /proc/filesystems (a fixture tree), devices under /dev count.
        if physical or nodev:
            if fstype not in physical and fstype != "zfs":
                continue
        elif not device.startswith("/dev/"):
            continue
        try:
            st = os.statvfs(ctx.path(mountpoint))
        except (OSError, ValueError):
            continue
        size = st.f_frsize or st.f_bsize
        total, free = st.f_blocks * size, st.f_bavail * size
        used = (st.f_blocks - st.f_bfree) * size
        out.append(
            {
                "mountpoint": mountpoint,
                "total_gb": round(total / 1e9, 3),
                "used_gb": round(used / 1e9, 3),
                "free_gb": round(free / 1e9, 3),
                "percent": _percent(used, used + free),
            }
        )
    return out


def net_counters(ctx: PluginContext) -> list[tuple[str, list[int]]]:
    """/proc/net/dev's 16 numbers per interface, in its order."""
    out: list[tuple[str, list[int]]] = []
    for line in _read(ctx, "/proc/net/dev").splitlines()[2 : MAX_LINES + 2]:
        name, sep, rest = line.partition(":")
        try:
            numbers = [int(v) for v in rest.split()[:16]]
        except ValueError:
            continue
        if sep and name.strip() and len(numbers) == 16:
            out.append((name.strip(), numbers))
    return out


def parse_addresses(text: str) -> dict[str, list[str]]:
    """``ip -j address show``: each interface's MAC, IPv4 and (not link-local) IPv6
    addresses, in the order psutil.net_if_addrs() lists them."""
    data = json.loads(text)
    out: dict[str, list[str]] = {}
    if not isinstance(data, list):
        return out
    for entry in data[:MAX_LINES]:
        if not isinstance(entry, dict) or not isinstance(entry.get("ifname"), str):
            continue
        found: list[str] = []
        mac = entry.get("address")
        if isinstance(mac, str) and mac and entry.get("link_type") != "none":
            found.append(mac)
        infos = entry.get("addr_info")
        if not isinstance(infos, list):
            infos = []
        for family in ("inet", "inet6"):
            for info in infos[:256]:
                if isinstance(info, dict) and info.get("family") == family:
                    local = info.get("local")
                    if isinstance(local, str) and local and not local.startswith("fe80"):
                        found.append(local)
        out[entry["ifname"]] = found
    return out


def psutil_addresses() -> dict[str, list[str]]:
    """The running machine's addresses as V6Direct lists them, from
    psutil.net_if_addrs() itself (blocking: a thread): the MAC, then IPv4, then
    IPv6 that is not link-local, per interface."""
    import psutil  # on first use: nothing reads addresses before /stats/network

    out: dict[str, list[str]] = {}
    for name, entries in list(psutil.net_if_addrs().items())[:MAX_LINES]:
        by_family: dict[int, list[str]] = {psutil.AF_LINK: [], AF_INET: [], AF_INET6: []}
        for entry in entries:
            address = entry.address.split("%", 1)[0]
            if entry.family in by_family and address and not address.startswith("fe80"):
                by_family[entry.family].append(address)
        out[name] = [*by_family[psutil.AF_LINK], *by_family[AF_INET], *by_family[AF_INET6]]
    return out


def _utc(epoch: float) -> str:
    """What V6Direct's ``datetime.utcfromtimestamp(...).isoformat() + "Z"`` prints."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat() + "Z"


# -- the service -------------------------------------------------------------------


class Stats:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.store: Store = ctx.store(MIGRATIONS)
        self._cpu_lock = threading.Lock()
        self._cpu_base: dict[str, tuple[int, int]] = {}
        self._poll_lock = asyncio.Lock()
        self.snapshot: dict[str, Any] | None = None
        self.taken_at = 0.0
        self._warned_addresses = False

    def prime(self) -> None:
        with self._cpu_lock:
            self._cpu_base = cpu_times(_read(self.ctx, "/proc/stat"))

    def _cpu(self) -> tuple[float, list[float], int | None]:
        text = _read(self.ctx, "/proc/stat")
        with self._cpu_lock:
            now, base = cpu_times(text), self._cpu_base
            self._cpu_base = now
        cores = sorted((n for n in now if n[3:].isdigit()), key=lambda n: int(n[3:]))
        boot = re.search(r"^btime (\d+)", text, re.M)
        return (
            _busy(base.get("cpu"), now["cpu"]) if "cpu" in now else 0.0,
            [_busy(base.get(n), now[n]) for n in cores],
            int(boot.group(1)) if boot else None,
        )

    def _read_machine(self) -> dict[str, Any]:
        ctx = self.ctx
        usage, per_core, boot = self._cpu()
        temp = temperature(ctx)
        load = loadavg(ctx)
        now = clock()
        if boot is None:
            uptime = _read(ctx, "/proc/uptime", 256).split()[:1]
            boot = int(now - float(uptime[0])) if uptime else int(now)
        return {
            "timestamp_utc": _utc(now),
            "node": {
                "hostname": _read(ctx, "/proc/sys/kernel/hostname", 4096).strip(),
                "platform": f"Linux {_read(ctx, '/proc/sys/kernel/osrelease', 4096).strip()}",
                "architecture": platform.machine(),
                "python_version": platform.python_version(),
                "boot_time_utc": _utc(boot),
                "uptime_seconds": int(now - boot),
                "node_role": os.environ.get("NODE_ROLE", NODE_ROLE),
                "network_name": NETWORK_NAME,
                "asn": os.environ.get("NODE_ASN", NODE_ASN),
            },
            "cpu": {
                "usage_percent": usage,
                "per_core": per_core,
                "frequency_mhz": frequency_mhz(ctx),
                "temperature_celcius": temp,
                "load_avg_1m": round(load[0], 3),
                "load_avg_5m": round(load[1], 3),
                "load_avg_15m": round(load[2], 3),
            },
            "memory": memory(ctx),
            "disks": disks(ctx),
            "counters": net_counters(ctx),
        }

    async def _addresses(self) -> dict[str, list[str]]:
        if self.ctx.settings.root == Path("/"):
            # The machine itself: psutil, as V6Direct, without starting `ip`.
            return await asyncio.to_thread(psutil_addresses)
        try:
            result = await self.ctx.runner.run(
                ["ip", "-j", "address", "show"], timeout=5, max_output=4 << 20
            )
            return parse_addresses(result.text)
        except (CommandError, ValueError, RecursionError) as exc:
            if not self._warned_addresses:
                self._warned_addresses = True
                self.ctx.logger.warning("/stats/network lists no addresses: %s", exc)
            return {}

    async def get(self, force: bool = False, clear: bool = False) -> dict[str, Any]:
        """The cached snapshot (at most 30 s old), polled afresh when stale or forced."""
        async with self._poll_lock:
            now = time.monotonic()
            if not force and self.snapshot is not None and now - self.taken_at < CACHE_SECONDS:
                return {**self.snapshot, "cache_age_seconds": round(now - self.taken_at, 2)}
            machine, addresses = await asyncio.gather(
                asyncio.to_thread(self._read_machine), self._addresses()
            )
            counters = machine.pop("counters")
            machine["interfaces"] = [
                {
                    "name": name,
                    "bytes_sent": n[8],
                    "bytes_recv": n[0],
                    "packets_sent": n[9],
                    "packets_recv": n[1],
                    "errors_in": n[2],
                    "errors_out": n[10],
                    "drop_in": n[3],
                    "drop_out": n[11],
                    "addresses": addresses.get(name, []),
                }
                for name, n in counters
            ]
            machine["cache_age_seconds"] = 0.0
            snapshot = {key: machine[key] for key in SNAPSHOT_KEYS}
            sample = {
                "timestamp_utc": snapshot["timestamp_utc"],
                "cpu_percent": snapshot["cpu"]["usage_percent"],
                "memory_percent": snapshot["memory"]["percent"],
                "swap_percent": snapshot["memory"]["swap_percent"],
            }
            await self.store.run(lambda conn: _remember(conn, sample, clear))
            self.snapshot, self.taken_at = snapshot, time.monotonic()
            return snapshot

    async def history(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.store.run(
            lambda conn: conn.execute(
                "SELECT sample FROM history ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [json.loads(row[0]) for row in reversed(rows)]


#: V6Direct's SystemSnapshots, in its order.
SNAPSHOT_KEYS = (
    "timestamp_utc",
    "node",
    "cpu",
    "memory",
    "disks",
    "interfaces",
    "cache_age_seconds",
)


def _remember(conn: sqlite3.Connection, sample: dict[str, Any], clear: bool) -> None:
    with transaction(conn):
        if clear:
            conn.execute("DELETE FROM history")
        conn.execute("INSERT INTO history (sample) VALUES (?)", (json.dumps(sample),))
        conn.execute(
            "DELETE FROM history WHERE id NOT IN (SELECT id FROM history ORDER BY id DESC LIMIT ?)",
            (HISTORY_SAMPLES,),
        )

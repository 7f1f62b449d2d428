"""The networking plugin's domain: links, addresses, counters and rates (no Starlette).

Where each figure comes from: the package's docstring.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import os
import re
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raspapi.plugin import CommandError, NotFound, PluginContext, Status, rfc3339

from .schema import COUNTERS

SYS_NET = "/sys/class/net"
PROC_NET_DEV = "/proc/net/dev"
#: Where each counter sits among the 16 numbers of a /proc/net/dev line.
_DEV_COLUMN = {name: i for i, name in zip((0, 1, 2, 3, 8, 9, 10, 11), COUNTERS, strict=True)}
MAX_INTERFACES = 1024
MAX_ADDRESSES = 256
#: Samples closer together than this keep the previous rates (noise, not data).
MIN_RATE_INTERVAL = 0.5
ADDRESSES_TTL = 5.0
#: What the kernel accepts as an interface name (dev_valid_name).
_IFNAME = re.compile(r"[^/:\s\x00]{1,15}")
_LEGACY_SKIP = ("lo", "docker")


def valid_ifname(name: str) -> bool:
    return (
        _IFNAME.fullmatch(name) is not None
        and name not in (".", "..")
        and len(name.encode("utf-8", "surrogatepass")) <= 15
    )


@dataclass(frozen=True, slots=True)
class Address:
    family: str  # "inet" or "inet6"
    address: str
    prefix_length: int
    scope: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "prefix_length": self.prefix_length, "scope": self.scope}

    @property
    def netmask(self) -> str:
        return str(ipaddress.ip_network(f"0.0.0.0/{self.prefix_length}").netmask)


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    ifindex: int | None = None
    mac_address: str | None = None
    mtu: int | None = None
    operstate: str = "unknown"
    carrier: bool | None = None
    speed_mbps: int | None = None
    counters: dict[str, int] | None = None
    addresses: tuple[Address, ...] = ()

    @property
    def up(self) -> bool:
        # Tunnels and loopback say "unknown"; their carrier tells.
        return self.operstate == "up" or (self.operstate == "unknown" and self.carrier is True)

    def first(self, family: str) -> Address | None:
        return next((a for a in self.addresses if a.family == family), None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    monotonic: float
    sampled_at: str
    links: tuple[Link, ...]
    #: Why addresses are missing (``ip`` absent or failing), else None.
    addresses_error: str | None


# -- reading -------------------------------------------------------------------


def _read(path: Path, limit: int = 4096) -> str | None:
    """A sysfs/procfs value; None when absent or unreadable (speed of a down link)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_proc_net_dev(text: str | None) -> dict[str, dict[str, int]]:
    """Counters per interface from /proc/net/dev; malformed lines are skipped."""
    out: dict[str, dict[str, int]] = {}
    if not text:
        return out
    for line in text.splitlines()[2 : MAX_INTERFACES + 2]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or not valid_ifname(name) or len(fields) < 16:
            continue
        try:
            numbers = [int(f) for f in fields[:16]]
        except ValueError:
            continue
        if any(n < 0 for n in numbers):
            continue
        out[name] = {counter: numbers[col] for counter, col in _DEV_COLUMN.items()}
    return out


def _sys_counters(base: Path) -> dict[str, int] | None:
    values = {name: _int(_read(base / "statistics" / name)) for name in COUNTERS}
    if any(v is None or v < 0 for v in values.values()):
        return None
    return {k: v for k, v in values.items() if v is not None}


def _read_link(base: Path, name: str, counters: dict[str, int] | None) -> Link:
    directory = base / name
    mac = (_read(directory / "address") or "").lower() or None
    carrier = _read(directory / "carrier")
    speed = _int(_read(directory / "speed"))
    return Link(
        name=name,
        ifindex=_int(_read(directory / "ifindex")),
        mac_address=mac,
        mtu=_int(_read(directory / "mtu")),
        operstate=(_read(directory / "operstate") or "unknown").lower(),
        carrier=None if carrier not in ("0", "1") else carrier == "1",
        speed_mbps=speed if speed is not None and speed > 0 else None,
        counters=counters if counters is not None else _sys_counters(directory),
    )


def read_links(ctx: PluginContext) -> list[Link]:
    """Every interface of /sys/class/net (else of /proc/net/dev), in ifindex order."""
    base = ctx.path(SYS_NET)
    dev = parse_proc_net_dev(_read(ctx.path(PROC_NET_DEV), limit=1 << 20))
    try:
        names = [n for n in os.listdir(base)[:MAX_INTERFACES] if valid_ifname(n)]
    except OSError:
        names = list(dev)
    links = [_read_link(base, name, dev.get(name)) for name in names]
    links.sort(key=lambda link: (link.ifindex is None, link.ifindex or 0, link.name))
    return links


def parse_ip_addresses(text: str) -> dict[str, list[Address]]:
    """Addresses per interface from ``ip -j address show``; odd entries skipped."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    out: dict[str, list[Address]] = {}
    for entry in data[:MAX_INTERFACES]:
        if not isinstance(entry, dict) or not isinstance(entry.get("ifname"), str):
            continue
        infos = entry.get("addr_info")
        if not isinstance(infos, list):
            continue
        found = out.setdefault(entry["ifname"], [])
        for info in infos[:MAX_ADDRESSES]:
            address = _address(info)
            if address is not None:
                found.append(address)
    return out


def _address(info: Any) -> Address | None:
    if not isinstance(info, dict):
        return None
    family, local, prefix = info.get("family"), info.get("local"), info.get("prefixlen")
    if family not in ("inet", "inet6") or not isinstance(local, str):
        return None
    if not isinstance(prefix, int) or isinstance(prefix, bool):
        return None
    try:
        ip = ipaddress.ip_address(local)
    except ValueError:
        return None
    if ip.version != (4 if family == "inet" else 6) or not 0 <= prefix <= ip.max_prefixlen:
        return None
    scope = info.get("scope")
    return Address(family, str(ip), prefix, scope if isinstance(scope, str) else None)


def psutil_addresses() -> dict[str, list[Address]]:
    """The running machine's addresses per interface, from psutil (blocking: a thread)."""
    import psutil  # on first use: nothing reads addresses before the first request

    out: dict[str, list[Address]] = {}
    for name, entries in list(psutil.net_if_addrs().items())[:MAX_INTERFACES]:
        found = out.setdefault(name, [])
        for entry in entries[:MAX_ADDRESSES]:
            address = _from_psutil(entry.family, entry.address, entry.netmask)
            if address is not None:
                found.append(address)
    return out


def _from_psutil(family: int, local: str, netmask: str | None) -> Address | None:
    if family == socket.AF_INET:
        kind = "inet"
    elif family == socket.AF_INET6:
        kind = "inet6"
    else:
        return None
    try:
        ip = ipaddress.ip_address(local.split("%", 1)[0])  # fe80::1%eth0
        mask = ipaddress.ip_address(netmask) if netmask else None
    except ValueError:
        return None
    prefix: int = ip.max_prefixlen
    if mask is not None and mask.version == ip.version:
        prefix = bin(int(mask)).count("1")
    # The scope ip(8) shows: loopback is host, fe80::/10 and 169.254/16 are link.
    scope = "host" if ip.is_loopback else "link" if ip.is_link_local else "global"
    return Address(kind, str(ip), prefix, scope)


async def read_addresses(ctx: PluginContext) -> tuple[dict[str, list[Address]], str | None]:
    if ctx.settings.root == Path("/"):
        try:
            return await asyncio.to_thread(psutil_addresses), None
        except OSError as exc:
            return {}, f"cannot list addresses: {exc}"
    try:
        result = await ctx.runner.run(
            ["ip", "-j", "address", "show"], timeout=5, max_output=4 << 20
        )
    except CommandError as exc:
        return {}, str(exc)
    try:
        return parse_ip_addresses(result.text), None
    except (ValueError, RecursionError) as exc:
        return {}, f"ip printed no usable JSON: {exc}"


async def take_snapshot(ctx: PluginContext) -> Snapshot:
    # Addresses change rarely (a DHCP renewal): one `ip` run per few seconds.
    addresses_ttl = max(ctx.settings.cache_ttl, ADDRESSES_TTL)
    links, (addresses, error) = await asyncio.gather(
        asyncio.to_thread(read_links, ctx),
        ctx.cache.get("addresses", functools.partial(read_addresses, ctx), ttl=addresses_ttl),
    )
    merged = tuple(replace(link, addresses=tuple(addresses.get(link.name, ()))) for link in links)
    now = rfc3339(time.time())
    return Snapshot(time.monotonic(), now, merged, error)


# -- rates ---------------------------------------------------------------------


class Rates:
    """Per-second rates between the last two snapshots far enough apart."""

    def __init__(self) -> None:
        self._base: Snapshot | None = None
        self._seen: Snapshot | None = None
        self.rates: dict[str, dict[str, float]] = {}
        self.interval: float | None = None

    def observe(self, snapshot: Snapshot) -> None:
        if snapshot is self._seen:
            return
        self._seen = snapshot
        base = self._base
        if base is None:
            self._base = snapshot
            return
        elapsed = snapshot.monotonic - base.monotonic
        if elapsed < MIN_RATE_INTERVAL:
            return
        before = {link.name: link.counters for link in base.links}
        rates: dict[str, dict[str, float]] = {}
        for link in snapshot.links:
            old, new = before.get(link.name), link.counters
            # A counter that went down means the interface was re-created.
            if old is None or new is None or any(new[k] < old[k] for k in COUNTERS):
                continue
            rates[link.name] = {k: round((new[k] - old[k]) / elapsed, 2) for k in COUNTERS}
        self._base = snapshot
        self.rates = rates
        self.interval = round(elapsed, 3)


class Networking:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.rates = Rates()
        self._logged: str | None = None

    async def snapshot(self) -> Snapshot:
        snapshot: Snapshot = await self.ctx.cache.get(
            "snapshot", functools.partial(take_snapshot, self.ctx)
        )
        if snapshot.addresses_error and snapshot.addresses_error != self._logged:
            self.ctx.logger.warning("no interface addresses: %s", snapshot.addresses_error)
        self._logged = snapshot.addresses_error
        return snapshot

    # -- RaspAP ----------------------------------------------------------------

    async def legacy(self) -> dict[str, Any]:
        """RaspAP's shape; lo* and docker* are left out."""
        snapshot = await self.snapshot()
        interfaces: dict[str, Any] = {}
        throughput: dict[str, Any] = {}
        for link in snapshot.links:
            if link.name.startswith(_LEGACY_SKIP):
                continue
            v4 = link.first("inet")
            interfaces[link.name] = {
                "IP_address": v4.address if v4 else None,
                "Netmask": v4.netmask if v4 else None,
                "MAC_address": link.mac_address,
            }
            if link.counters is not None:
                throughput[link.name] = {
                    "RX_packets": link.counters["rx_packets"],
                    "RX_bytes": link.counters["rx_bytes"],
                    "TX_packets": link.counters["tx_packets"],
                    "TX_bytes": link.counters["tx_bytes"],
                }
        return {"interfaces": interfaces, "throughput": throughput}

    # -- v1 --------------------------------------------------------------------

    def _interface(self, link: Link) -> dict[str, Any]:
        rates = self.rates.rates.get(link.name)
        return {
            "name": link.name,
            "ifindex": link.ifindex,
            "mac_address": link.mac_address,
            "mtu": link.mtu,
            "operstate": link.operstate,
            "carrier": link.carrier,
            "up": link.up,
            "speed_mbps": link.speed_mbps,
            "ipv4": [a.as_dict() for a in link.addresses if a.family == "inet"],
            "ipv6": [a.as_dict() for a in link.addresses if a.family == "inet6"],
            "counters": {k: link.counters[k] if link.counters else None for k in COUNTERS},
            "rates": {f"{k}_per_second": rates[k] if rates else None for k in COUNTERS},
        }

    def _meta(self, snapshot: Snapshot) -> dict[str, Any]:
        return {
            "sampled_at": snapshot.sampled_at,
            "rate_interval_seconds": self.rates.interval,
            "addresses_error": snapshot.addresses_error,
        }

    async def overview(self) -> dict[str, Any]:
        snapshot = await self.snapshot()
        self.rates.observe(snapshot)
        body = self._meta(snapshot)
        body["interfaces"] = [self._interface(link) for link in snapshot.links]
        return body

    async def one(self, name: str) -> dict[str, Any]:
        snapshot = await self.snapshot()
        self.rates.observe(snapshot)
        link = next((x for x in snapshot.links if x.name == name), None)
        if link is None or not valid_ifname(name):
            raise NotFound(f"no network interface named {name[:64]!r}", code="unknown_interface")
        return {**self._interface(link), **self._meta(snapshot)}


def self_check(ctx: PluginContext) -> Status:
    has_sys = ctx.path(SYS_NET).is_dir()
    has_dev = ctx.path(PROC_NET_DEV).is_file()
    if not has_sys and not has_dev:
        return Status.unavailable(f"neither {SYS_NET} nor {PROC_NET_DEV} can be read")
    ip = "psutil" if ctx.settings.root == Path("/") else ctx.runner.which("ip")
    return Status.ok(
        interfaces=len(read_links(ctx)),
        addresses=f"from {ip}" if ip else "none: ip (iproute2) is not installed",
    )

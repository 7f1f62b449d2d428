"""The dhcp plugin's domain: dnsmasq's ranges and static leases, dhcpcd's static router
and DNS, current leases.

RaspAP's ``GET /dhcp`` reads the wlan0 range from ``/etc/dnsmasq.d/090_wlan0.conf``
and the gateway and name servers from the wlan0 block of ``/etc/dhcpcd.conf``.
``/api/v1/dhcp`` reports every ``dhcp-range`` and ``dhcp-host`` of every dnsmasq
file, and the leases in dnsmasq's leases file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from raspapi.plugin import PluginContext, open_regular, rfc3339

from .._dnsmasq import dnsmasq_files

WLAN0_CONF = "/etc/dnsmasq.d/090_wlan0.conf"
DHCPCD_CONF = "/etc/dhcpcd.conf"
LEASES_FILE = "/var/lib/misc/dnsmasq.leases"
#: At most this much of each dnsmasq file is read (how many: _dnsmasq.MAX_CONF_FILES).
MAX_FILE_BYTES = 1024 * 1024

_MAC = re.compile(r"^(?:[0-9A-Fa-f*]{1,2}[:-]){5}[0-9A-Fa-f*]{1,2}$")
_LEASE = re.compile(r"^(?:(\d+)([smhdw]?)|infinite|deprecated)$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RANGE_MODES = frozenset(
    {"static", "proxy", "ra-only", "ra-names", "ra-stateless", "slaac", "ra-advrouter", "off-link"}
)
_HOSTNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# -- dnsmasq configuration ------------------------------------------------------


def strip_comment(line: str) -> str:
    """The line without its comment: dnsmasq starts one at a ``#`` that follows
    white space (or starts the line) outside double quotes."""
    quoted = False
    white = True
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "#" and white:
            return line[:i]
        white = char.isspace()
    return line


def directives(text: str) -> list[tuple[str, str]]:
    """``(option, value)`` for each ``option[=value]`` line of a dnsmasq file."""
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = strip_comment(raw).strip()
        if line:
            name, _, value = line.partition("=")
            out.append((name.strip().lower(), value.strip()))
    return out


def lease_seconds(text: str) -> int | None:
    """``12h`` -> 43200; None for ``infinite`` (and ``deprecated``)."""
    match = _LEASE.match(text)
    if match is None or match.group(1) is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def _ip_version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


@dataclass(frozen=True)
class DhcpRange:
    start: str
    end: str | None
    netmask: str | None
    broadcast: str | None
    prefix_length: int | None
    lease_time: str | None
    modes: tuple[str, ...]
    tags: tuple[str, ...]
    set_tag: str | None
    interface: str | None
    ip_version: int


def parse_range(value: str, file_interface: str | None = None) -> DhcpRange | None:
    """One ``dhcp-range=`` value, or None when it is not one dnsmasq would take.

    Forms: ``[tag:t,][set:t,|interface:if,]start[,end|mode][,netmask[,broadcast]][,lease]``
    and, for IPv6, ``start[,end][,constructor:if][,mode...][,prefix-len][,lease]``.
    """
    tags: list[str] = []
    set_tag: str | None = None
    interface: str | None = None
    rest: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        lowered = item.lower()
        if lowered.startswith("tag:"):
            tags.append(item[4:])
        elif lowered.startswith(("set:", "net:")):
            set_tag = item[4:]
        elif lowered.startswith("interface:"):
            interface = item[10:]
        elif lowered.startswith("constructor:"):
            interface = item[12:]
        elif item:
            rest.append(item)
    if not rest:
        return None
    version = _ip_version(rest[0])
    if version is None:
        return None
    end: str | None = None
    addresses: list[str] = []
    modes: list[str] = []
    numbers: list[str] = []
    for item in rest[1:]:
        if _ip_version(item) is not None and not numbers:
            if end is None and not modes and _ip_version(item) == version:
                end = item
            elif version == 4 and len(addresses) < 2:
                addresses.append(item)
            else:
                return None
        elif item.lower() in _RANGE_MODES and not numbers:
            modes.append(item.lower())
        elif _LEASE.match(item) and len(numbers) < 2:
            numbers.append(item)
        else:
            return None
    prefix: int | None = None
    # dnsmasq: for IPv6 a bare integer up to 128 before the lease is the prefix length.
    if version == 6 and numbers and numbers[0].isdigit() and int(numbers[0]) <= 128:
        prefix = int(numbers.pop(0))
    if len(numbers) > 1:
        return None
    return DhcpRange(
        start=rest[0],
        end=end,
        netmask=addresses[0] if addresses else None,
        broadcast=addresses[1] if len(addresses) > 1 else None,
        prefix_length=prefix,
        lease_time=numbers[0] if numbers else None,
        modes=tuple(modes),
        tags=tuple(tags),
        set_tag=set_tag,
        interface=interface or file_interface,
        ip_version=version,
    )


@dataclass(frozen=True)
class StaticLease:
    mac: str | None
    client_id: str | None
    ip: str | None
    hostname: str | None
    lease_time: str | None
    ignore: bool


def parse_host(value: str) -> StaticLease | None:
    """One ``dhcp-host=`` value:
    ``[mac][,id:client-id][,set:tag][,ip][,[ipv6]][,hostname][,lease][,ignore]``."""
    macs: list[str] = []
    client_id: str | None = None
    ip: str | None = None
    hostname: str | None = None
    lease: str | None = None
    ignore = False
    for item in (part.strip() for part in value.split(",")):
        lowered = item.lower()
        if not item or lowered.startswith(("set:", "tag:", "net:")):
            continue
        if lowered.startswith("id:"):
            client_id = item[3:] if item[3:] not in ("", "*") else None
        elif _MAC.match(item):
            macs.append(lowered.replace("-", ":"))
        elif item.startswith("[") and item.endswith("]") and _ip_version(item[1:-1]) == 6:
            ip = ip or item[1:-1]
        elif _ip_version(item) == 4:
            ip = item
        elif lowered == "ignore":
            ignore = True
        elif _LEASE.match(item) and lease is None:
            lease = item
        elif _HOSTNAME.match(item) and hostname is None:
            hostname = item
        else:
            return None
    if not (macs or client_id or hostname or ip):
        return None
    return StaticLease(macs[0] if macs else None, client_id, ip, hostname, lease, ignore)


# -- dhcpcd.conf ------------------------------------------------------------------


@dataclass
class DhcpcdBlock:
    interface: str
    ip_address: str | None = None
    routers: str | None = None
    name_servers: list[str] | None = None


def parse_dhcpcd(text: str) -> dict[str, DhcpcdBlock]:
    """The ``static`` options of each ``interface`` block of dhcpcd.conf."""
    blocks: dict[str, DhcpcdBlock] = {}
    current: DhcpcdBlock | None = None
    for raw in text.splitlines():
        line = strip_comment(raw).strip()
        if not line:
            continue
        keyword, _, arg = line.partition(" ")
        arg = arg.strip()
        if keyword in ("interface", "ssid", "profile"):
            # ssid and profile blocks belong to no interface.
            name = arg.split()[0] if keyword == "interface" and arg else None
            current = blocks.setdefault(name, DhcpcdBlock(name)) if name else None
        elif keyword == "static" and current is not None:
            option, _, option_value = arg.partition("=")
            option, option_value = option.strip(), option_value.strip()
            if option == "ip_address":
                current.ip_address = option_value or None
            elif option == "routers":
                current.routers = option_value
            elif option in ("domain_name_server", "domain_name_servers"):
                servers = option_value.replace(",", " ").split()
                current.name_servers = (current.name_servers or []) + servers
    return blocks


# -- dnsmasq leases ---------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    expires: int
    mac: str | None
    ip: str
    hostname: str | None
    client_id: str | None


def parse_leases(text: str) -> list[Lease]:
    """dnsmasq's leases file: ``expiry mac ip hostname client-id`` (``*``: unknown).

    After a ``duid`` line come DHCPv6 leases, whose second field is the IAID.
    """
    leases: list[Lease] = []
    v6 = False
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "duid":
            v6 = True
            continue
        if len(fields) < 4 or not fields[0].isdigit() or _ip_version(fields[2]) is None:
            continue
        if not v6 and not _MAC.match(fields[1]) and ":" not in fields[1]:
            continue
        leases.append(
            Lease(
                expires=int(fields[0]),
                mac=None if v6 else fields[1].lower(),
                ip=fields[2],
                hostname=None if fields[3] == "*" else fields[3],
                client_id=None if len(fields) < 5 or fields[4] == "*" else fields[4],
            )
        )
    return leases


# -- reading the machine ----------------------------------------------------------


def read_text(ctx: PluginContext, path: str, limit: int = MAX_FILE_BYTES) -> str:
    """A config file's text ("" when absent or unreadable); past ``limit`` bytes
    it ends at the last whole line."""
    fh = open_regular(ctx.path(path))
    if fh is None:
        return ""
    with fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        data = data[: data.rfind(b"\n", 0, limit) + 1]
    return data.decode("utf-8", errors="replace")


def _file_interface(pairs: list[tuple[str, str]]) -> str | None:
    """The interface a file serves, when it names exactly one (RaspAP's 090_<if>.conf)."""
    names = [n.strip() for option, v in pairs if option == "interface" for n in v.split(",")]
    return names[0] if len(names) == 1 and names[0] else None


def legacy_payload(ctx: PluginContext) -> dict[str, Any]:
    text = read_text(ctx, WLAN0_CONF)
    pairs = directives(text)
    wlan0 = _first_ipv4_range(pairs)
    block = parse_dhcpcd(read_text(ctx, DHCPCD_CONF)).get("wlan0")
    return {
        "range_start": wlan0.start if wlan0 else "",
        "range_end": (wlan0.end or "") if wlan0 else "",
        "range_subnet_mask": (wlan0.netmask or "") if wlan0 else "",
        "range_lease_time": (wlan0.lease_time or "") if wlan0 else "",
        "range_gateway": (block.routers or "") if block else "",
        "range_nameservers": list(block.name_servers or []) if block else [],
    }


def _first_ipv4_range(pairs: list[tuple[str, str]]) -> DhcpRange | None:
    for option, value in pairs:
        if option == "dhcp-range":
            parsed = parse_range(value)
            if parsed is not None and parsed.ip_version == 4:
                return parsed
    return None


def api_payload(ctx: PluginContext) -> dict[str, Any]:
    ranges: list[dict[str, Any]] = []
    static: list[dict[str, Any]] = []
    for file in dnsmasq_files(ctx):
        pairs = directives(read_text(ctx, file))
        interface = _file_interface(pairs)
        for option, value in pairs:
            if option == "dhcp-range":
                rng = parse_range(value, interface)
                if rng is not None:
                    ranges.append(_range_json(rng, file))
            elif option == "dhcp-host":
                host = parse_host(value)
                if host is not None:
                    static.append(_host_json(host, file))
    leases = [
        {
            "mac": lease.mac,
            "ip": lease.ip,
            "hostname": lease.hostname,
            "client_id": lease.client_id,
            "expires_at": rfc3339(lease.expires, lenient=True) if lease.expires else None,
        }
        for lease in parse_leases(read_text(ctx, LEASES_FILE))
    ]
    interfaces = [
        {
            "interface": block.interface,
            "ip_address": block.ip_address,
            "routers": (block.routers or "").split(),
            "name_servers": list(block.name_servers or []),
        }
        for block in parse_dhcpcd(read_text(ctx, DHCPCD_CONF)).values()
    ]
    return {
        "ranges": ranges,
        "static_leases": static,
        "leases": leases,
        "static_interfaces": interfaces,
    }


def _range_json(rng: DhcpRange, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "interface": rng.interface,
        "set_tag": rng.set_tag,
        "tags": list(rng.tags),
        "ip_version": rng.ip_version,
        "start": rng.start,
        "end": rng.end,
        "netmask": rng.netmask,
        "broadcast": rng.broadcast,
        "prefix_length": rng.prefix_length,
        "modes": list(rng.modes),
        "lease_time": rng.lease_time,
        "lease_seconds": lease_seconds(rng.lease_time) if rng.lease_time else None,
    }


def _host_json(host: StaticLease, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "mac": host.mac,
        "client_id": host.client_id,
        "ip": host.ip,
        "hostname": host.hostname,
        "lease_time": host.lease_time,
        "lease_seconds": lease_seconds(host.lease_time) if host.lease_time else None,
        "ignore": host.ignore,
    }


class Dhcp:
    """The payloads of both routes, read in a thread and cached."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def legacy(self) -> dict[str, Any]:
        return await self.ctx.cache.get("legacy", lambda: legacy_payload(self.ctx))

    async def api(self) -> dict[str, Any]:
        return await self.ctx.cache.get("api", lambda: api_payload(self.ctx))

    async def files(self) -> list[str]:
        return await self.ctx.cache.get("files", lambda: dnsmasq_files(self.ctx))

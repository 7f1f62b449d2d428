"""The ``clients`` plugin's domain: who is on the hotspot, kicks and bans (no Starlette).

The sources it joins and what RaspAP expects of them: the package's docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raspapi.plugin import (
    Conflict,
    NotFound,
    PluginContext,
    Unavailable,
    atomic_write,
    rfc3339,
)

LEASES = "/var/lib/misc/dnsmasq.leases"
NEIGHBOURS = "/proc/net/arp"
MAX_FILE_BYTES = 8 << 20
MAX_BANS = 256
MAX_BAN_SECONDS = 7 * 24 * 3600
#: When lifting a ban fails (hostapd away), try again this much later, this many times.
LIFT_RETRY_SECONDS = 30.0
LIFT_ATTEMPTS = 10
BANS_FILE = "clients-bans.json"
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_ATF_COM = 0x2
TYPES = ("wireless", "ethernet", "unknown")


@dataclass(frozen=True, slots=True)
class Lease:
    expiry: int
    mac: str
    ip: str
    hostname: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Neighbour:
    ip: str
    mac: str
    device: str


@dataclass(slots=True)
class Client:
    mac: str
    connection_type: str
    interface: str | None
    ip: str | None
    lease: Lease | None
    station: dict[str, Any] | None

    def legacy(self, *, with_type: bool = True) -> dict[str, Any]:
        """RaspAP's item: the lease's fields (``*`` where dnsmasq knows none)."""
        lease = self.lease
        item: dict[str, Any] = {
            "timestamp": lease.expiry if lease else 0,
            "mac_address": lease.mac if lease else self.mac,
            "ip_address": self.ip or "",
            "hostname": lease.hostname if lease else "*",
            "client_id": lease.client_id if lease else "*",
        }
        if with_type:
            item["connection_type"] = self.connection_type
        return item

    def v1(self) -> dict[str, Any]:
        station = self.station or {}
        lease = self.lease
        hostname = lease.hostname if lease and lease.hostname != "*" else None
        return {
            "mac": self.mac,
            "ip": self.ip,
            "hostname": hostname,
            "interface": self.interface,
            "connection_type": self.connection_type,
            "signal_dbm": station.get("signal_dbm"),
            "rx_bytes": station.get("rx_bytes"),
            "tx_bytes": station.get("tx_bytes"),
            "rx_bitrate_kbps": station.get("rx_bitrate_kbps"),
            "tx_bitrate_kbps": station.get("tx_bitrate_kbps"),
            "connected_seconds": station.get("connected_seconds"),
            "inactive_ms": station.get("inactive_ms"),
            "authorized": station.get("authorized"),
            "lease_expires_at": rfc3339(lease.expiry) if lease and lease.expiry > 0 else None,
        }


@dataclass(slots=True)
class Ban:
    mac: str
    banned_at: float
    expires_at: float
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def due_at(self) -> float:
        return max(self.expires_at, self.retry_at)

    def view(self, now: float) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "banned_at": rfc3339(self.banned_at),
            "expires_at": rfc3339(self.expires_at),
            "remaining_seconds": max(0, round(self.expires_at - now)),
        }


# -- reading the machine ---------------------------------------------------------------


def parse_leases(text: str) -> dict[str, Lease]:
    """dnsmasq's leases by MAC (IPv4 lines: expiry, MAC, IP, host name, client id)."""
    out: dict[str, Lease] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        mac = fields[1].lower()
        if not MAC.fullmatch(mac):
            continue  # the duid line, IPv6 leases (an IAID there), junk
        hostname = fields[3] if len(fields) > 3 else "*"
        client_id = fields[4] if len(fields) > 4 else "*"
        out[mac] = Lease(int(fields[0]), fields[1], fields[2], hostname, client_id)
    return out


def parse_neighbours(text: str) -> list[Neighbour]:
    """Complete entries of /proc/net/arp (incomplete ones have no MAC yet)."""
    out: list[Neighbour] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        mac = fields[3].lower()
        if flags & _ATF_COM and MAC.fullmatch(mac) and mac != "00:00:00:00:00:00":
            out.append(Neighbour(fields[0], mac, fields[5]))
    return out


def join(
    stations: list[dict[str, Any]],
    leases: dict[str, Lease],
    neighbours: list[Neighbour],
    wireless_devices: set[str],
) -> list[Client]:
    """One list: every station, then every leased device seen in the neighbour table."""
    ip_of: dict[str, str] = {}
    for n in neighbours:
        ip_of.setdefault(n.mac, n.ip)
    ap_interfaces = {str(s.get("interface")) for s in stations} | wireless_devices
    clients: dict[str, Client] = {}
    for station in stations:
        mac = str(station.get("mac", "")).lower()
        if not MAC.fullmatch(mac) or mac in clients:
            continue
        lease = leases.get(mac)
        ip = lease.ip if lease else ip_of.get(mac)
        interface = station.get("interface")
        clients[mac] = Client(
            mac, "wireless", str(interface) if interface else None, ip, lease, station
        )
    for n in neighbours:
        lease = leases.get(n.mac)
        if lease is None or n.mac in clients:
            continue
        kind = "unknown" if n.device in ap_interfaces else "ethernet"
        clients[n.mac] = Client(n.mac, kind, n.device, lease.ip, lease, None)
    return list(clients.values())


@dataclass(slots=True)
class Snapshot:
    """The joined view of one cache period, and the answers rendered from it.

    Each answer is serialised once per period however many dashboards ask;
    only answers for interfaces that have clients are kept (a caller cannot
    grow it with made-up names).
    """

    clients: list[Client]
    interfaces: frozenset[str] = frozenset()
    rendered: dict[tuple[str | None, ...], bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interfaces = frozenset(c.interface for c in self.clients if c.interface)

    def select(self, interface: str | None, kind: str | None) -> list[Client]:
        return [
            c
            for c in self.clients
            if (interface is None or c.interface == interface)
            and (kind is None or c.connection_type == kind)
        ]

    def render(self, key: tuple[str | None, ...], build: Callable[[], Any]) -> bytes:
        body = self.rendered.get(key)
        if body is None:
            body = json.dumps(build(), ensure_ascii=False, separators=(",", ":")).encode()
            if len(key) < 2 or key[1] is None or key[1] in self.interfaces:
                self.rendered[key] = body
        return body


def legacy_body(clients: list[Client]) -> dict[str, Any]:
    counts = _counts(clients)
    return {
        "active_clients_amount": len(clients),
        "active_wireless_clients_amount": counts["wireless"],
        "active_ethernet_clients_amount": counts["ethernet"],
        "active_clients": [c.legacy() for c in clients],
    }


def legacy_interface_body(clients: list[Client]) -> dict[str, Any]:
    return {
        "active_clients_amount": len(clients),
        "active_clients": [c.legacy(with_type=False) for c in clients],
    }


def v1_body(clients: list[Client]) -> dict[str, Any]:
    return {"count": len(clients), "counts": _counts(clients), "clients": [c.v1() for c in clients]}


# -- the plugin's state ------------------------------------------------------------------


class Clients:
    """One per app."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.bans: dict[str, Ban] = {}
        self._bans_path = ctx.settings.state_dir / BANS_FILE
        self._wake = asyncio.Event()
        self._lifter: asyncio.Task[None] | None = None
        self._bans_lock = asyncio.Lock()

    # -- life cycle --

    async def start(self) -> None:
        self.bans = await asyncio.to_thread(self._load_bans)
        self._lifter = asyncio.create_task(self._lift_loop())

    async def stop(self) -> None:
        if self._lifter is not None:
            self._lifter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lifter

    # -- the joined view --

    async def snapshot(self) -> Snapshot:
        result: Snapshot = await self.ctx.cache.get("clients", self._load)
        return result

    async def _load(self) -> Snapshot:
        stations, (leases, neighbours, wireless) = await asyncio.gather(
            self.ctx.hooks.stations(), asyncio.to_thread(self._read_files)
        )
        return Snapshot(join(stations, leases, neighbours, wireless))

    def _read_files(self) -> tuple[dict[str, Lease], list[Neighbour], set[str]]:
        leases = parse_leases(self.ctx.read_text(LEASES, limit=MAX_FILE_BYTES) or "")
        neighbours = parse_neighbours(self.ctx.read_text(NEIGHBOURS, limit=MAX_FILE_BYTES) or "")
        wireless = {
            device
            for device in {n.device for n in neighbours}
            if _is_wireless(self.ctx.path(f"/sys/class/net/{device}"))
        }
        return leases, neighbours, wireless

    # -- requests --

    async def kick(self, mac: str, ban_seconds: int | None) -> dict[str, Any]:
        """Deauthenticate ``mac`` if connected; with ``ban_seconds``, ban it too."""
        stations = {str(s.get("mac", "")).lower() for s in await self.ctx.hooks.stations()}
        connected = mac in stations
        if not connected and ban_seconds is None:
            raise NotFound(f"no Wi-Fi station {mac} is connected", code="not_connected")
        ban: Ban | None = None
        if ban_seconds is not None:
            ban = await self._ban(mac, ban_seconds)
        if connected:
            await self._act("deauthenticate", mac)
        self.ctx.cache.invalidate("clients")
        self.ctx.logger.info(
            "kicked %s%s", mac, f", banned for {ban_seconds} s" if ban_seconds else ""
        )
        return {
            "mac": mac,
            "deauthenticated": connected,
            "ban": ban.view(time.time()) if ban else None,
        }

    async def list_bans(self) -> dict[str, Any]:
        # Under the lock: a ban being lifted right now (its DELMAC sent, not
        # yet forgotten) is never listed half-way.
        async with self._bans_lock:
            now = time.time()
            bans = sorted(self.bans.values(), key=lambda b: b.expires_at)
        return {"bans": [b.view(now) for b in bans]}

    async def delete_ban(self, mac: str) -> dict[str, Any]:
        async with self._bans_lock:
            if mac not in self.bans:
                raise NotFound(f"{mac} is not banned", code="not_banned")
            await self._act("allow", mac)
            del self.bans[mac]
            await self._save_bans()
        self._wake.set()
        self.ctx.logger.info("ban of %s lifted by request", mac)
        return {"mac": mac, "lifted": True}

    # -- bans --

    async def _ban(self, mac: str, seconds: int) -> Ban:
        async with self._bans_lock:
            if mac not in self.bans and len(self.bans) >= MAX_BANS:
                raise Conflict(
                    f"{MAX_BANS} MACs are banned already; lift one first", code="too_many_bans"
                )
            await self._act("deny", mac)
            now = time.time()
            ban = self.bans[mac] = Ban(mac, now, now + seconds)
            await self._save_bans()
        self._wake.set()
        return ban

    async def _act(self, action: str, mac: str) -> None:
        outcome = await self.ctx.hooks.station_action(action, mac)
        if not outcome:
            raise Unavailable("no plugin runs an access point to act on the station")
        if all(reason is not None for reason in outcome.values()):
            reasons = "; ".join(f"{name}: {reason}" for name, reason in outcome.items())
            raise Unavailable(f"could not {action} {mac}: {reasons}")

    async def _lift_loop(self) -> None:
        while True:
            now = time.time()
            for ban in [b for b in self.bans.values() if b.due_at <= now]:
                await self._lift_expired(ban)
            upcoming = [b.due_at for b in self.bans.values()]
            wait = min(max(0.0, min(upcoming) - time.time()), 3600.0) if upcoming else 3600.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _lift_expired(self, ban: Ban) -> None:
        async with self._bans_lock:
            if self.bans.get(ban.mac) is not ban:
                return
            try:
                await self._act("allow", ban.mac)
            except Unavailable as exc:
                ban.attempts += 1
                if ban.attempts < LIFT_ATTEMPTS:
                    ban.retry_at = time.time() + LIFT_RETRY_SECONDS
                    self.ctx.logger.warning("cannot lift the ban of %s yet: %s", ban.mac, exc)
                    return
                self.ctx.logger.error("gave up lifting the ban of %s: %s", ban.mac, exc)
            else:
                self.ctx.logger.info("ban of %s ran out and was lifted", ban.mac)
            del self.bans[ban.mac]
            await self._save_bans()

    def _load_bans(self) -> dict[str, Ban]:
        try:
            raw = json.loads(self._bans_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.ctx.logger.warning("ignoring %s: %s", self._bans_path, exc)
            return {}
        bans: dict[str, Ban] = {}
        for entry in raw if isinstance(raw, list) else []:
            try:
                mac = str(entry["mac"]).lower()
                ban = Ban(mac, float(entry["banned_at"]), float(entry["expires_at"]))
            except (KeyError, TypeError, ValueError):
                continue
            if MAC.fullmatch(mac) and len(bans) < MAX_BANS:
                bans[mac] = ban
        return bans

    async def _save_bans(self) -> None:
        data = json.dumps(
            [
                {"mac": b.mac, "banned_at": b.banned_at, "expires_at": b.expires_at}
                for b in self.bans.values()
            ]
        ).encode()
        try:
            await asyncio.to_thread(atomic_write, self._bans_path, data, mode=0o600)
        except OSError as exc:
            self.ctx.logger.warning("cannot save bans to %s: %s", self._bans_path, exc)


# -- helpers ---------------------------------------------------------------------------


def _is_wireless(sysdir: Path) -> bool:
    return (sysdir / "wireless").exists() or (sysdir / "phy80211").exists()


def _counts(clients: list[Client]) -> dict[str, int]:
    counts = dict.fromkeys(TYPES, 0)
    for client in clients:
        counts[client.connection_type] += 1
    return counts

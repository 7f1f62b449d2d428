"""The wifi plugin's work: wpa_supplicant's client interfaces, over its control socket.

It knows nothing of HTTP: methods take checked values and return JSON-ready
dicts, or raise the public API's errors (:mod:`raspapi.plugin`) the core renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from raspapi.plugin import (
    Conflict,
    ControlSocket,
    CtrlError,
    CtrlEvent,
    CtrlFailed,
    EventMonitor,
    Invalid,
    NotFound,
    PluginContext,
    Status,
    Unavailable,
    close_all,
    is_mac,
    rfc3339,
)

from . import validate
from .validate import Join

CTRL_DIR_ENV = "RASPAPI_WIFI_CTRL_DIR"
CONNECT_TIMEOUT_ENV = "RASPAPI_WIFI_CONNECT_TIMEOUT"
SCAN_TIMEOUT_ENV = "RASPAPI_WIFI_SCAN_TIMEOUT"
#: Where wpa_supplicant puts its control sockets (``ctrl_interface=``) by default.
DEFAULT_CTRL_DIR = "/var/run/wpa_supplicant"
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_SCAN_TIMEOUT = 10.0
#: Where NetworkManager keeps its runtime state: present while it runs.
NM_RUN_DIR = "/run/NetworkManager"
#: How long one control request may take (a reply is normally under a millisecond).
CTRL_TIMEOUT = 2.0
#: Client interfaces looked at, at most (sockets in the control folder).
MAX_INTERFACES = 32
#: Known networks read, at most (one GET_NETWORK each for the priority).
MAX_NETWORKS = 256
#: Scan results kept, at most (a crowded city block has a few hundred).
MAX_SCAN_RESULTS = 512
PROGRAM = "wpa_supplicant"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Network:
    """One ``LIST_NETWORKS`` line."""

    id: int
    ssid: bytes
    flags: str

    @property
    def current(self) -> bool:
        return "[CURRENT]" in self.flags

    @property
    def disabled(self) -> bool:
        return "[DISABLED]" in self.flags


@dataclass(frozen=True, slots=True)
class Outcome:
    """How waiting for a connection ended: ``reason`` is wpa_supplicant's
    (``WRONG_KEY``, ``NETWORK_NOT_FOUND``...), None when connected."""

    connected: bool
    reason: str | None = None
    detail: str | None = None


class Wifi:
    """One per app. Every read goes through the plugin's cache."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.ctrl_dir = DEFAULT_CTRL_DIR
        self.connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self.scan_timeout = DEFAULT_SCAN_TIMEOUT
        #: Keyed only by interfaces found in the control folder (at most MAX_INTERFACES).
        self.sockets: dict[str, ControlSocket] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        #: Per interface: (ssid, bssid) while connected, None while not; when since.
        self.seen: dict[str, tuple[str | None, str | None] | None] = {}
        self.since: dict[str, float] = {}

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        raw = (self.ctx.settings.option(CTRL_DIR_ENV) or "").strip()
        if raw:
            if not raw.startswith("/") or "\x00" in raw or len(raw) > 200:
                raise ValueError(f"{CTRL_DIR_ENV}={raw!r} is not an absolute path")
            self.ctrl_dir = raw.rstrip("/") or "/"
        self.connect_timeout = _seconds(CONNECT_TIMEOUT_ENV, self.ctx, 1, 120, self.connect_timeout)
        self.scan_timeout = _seconds(SCAN_TIMEOUT_ENV, self.ctx, 1, 60, self.scan_timeout)

    async def stop(self) -> None:
        close_all(self.sockets)

    # -- interfaces -----------------------------------------------------------------

    async def interfaces(self) -> list[str]:
        """The interfaces wpa_supplicant has a control socket for (sorted)."""
        found: list[str] = await self.ctx.cache.get("interfaces", self._list)
        for name in [n for n in self.sockets if n not in found]:
            self.sockets.pop(name).close()
        for table in (self.seen, self.since):
            for name in [n for n in table if n not in found]:
                del table[name]
        for name in [n for n in self.locks if n not in found and not self.locks[n].locked()]:
            del self.locks[name]
        return found

    def _list(self) -> list[str]:
        folder = self.ctx.path(self.ctrl_dir)
        out: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("p2p-dev-") or not validate.INTERFACE.fullmatch(name):
                        continue
                    with contextlib.suppress(OSError):
                        if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                            out.append(name)
                    if len(out) >= MAX_INTERFACES:
                        break
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return []
        return sorted(out)

    async def interface(self, name: str) -> str:
        """A path's interface name, checked (404 when wpa_supplicant runs none such)."""
        return validate.interface(name, await self.interfaces())

    def socket(self, interface: str) -> ControlSocket:
        sock = self.sockets.get(interface)
        if sock is None:
            name = f"{self.ctrl_dir.rstrip('/')}/{interface}"
            sock = self.sockets[interface] = ControlSocket(
                self.ctx.path(name), name=name, timeout=CTRL_TIMEOUT, program=PROGRAM
            )
        return sock

    def monitor(self, interface: str) -> EventMonitor:
        name = f"{self.ctrl_dir.rstrip('/')}/{interface}"
        return EventMonitor(self.ctx.path(name), name=name, timeout=CTRL_TIMEOUT, program=PROGRAM)

    def lock(self, interface: str) -> asyncio.Lock:
        """The lock that keeps two changes of one interface from interleaving.
        Only checked interface names get here, so the table stays small."""
        lock = self.locks.get(interface)
        if lock is None:
            lock = self.locks[interface] = asyncio.Lock()
        return lock

    async def not_running(self) -> str:
        """Why no interface is there: wpa_supplicant stopped, or NetworkManager."""
        return await asyncio.to_thread(self._not_running)

    def _not_running(self) -> str:
        if os.path.isdir(self.ctx.path(NM_RUN_DIR)):
            return (
                "NetworkManager manages Wi-Fi on this machine: its wpa_supplicant has no "
                f"control socket in {self.ctrl_dir} (NetworkManager drives it over D-Bus), so "
                "the upstream network is NetworkManager's to show and change (nmcli)"
            )
        return f"wpa_supplicant is not running (no control socket in {self.ctrl_dir})"

    # -- reading -------------------------------------------------------------------

    async def state(self, interface: str) -> dict[str, Any]:
        """One interface's view (STATUS and SIGNAL_POLL); raises CtrlError."""

        async def load() -> dict[str, Any]:
            sock = self.socket(interface)
            status = await sock.pairs("STATUS")
            signal: dict[str, str] = {}
            if status.get("wpa_state") == "COMPLETED":
                with contextlib.suppress(CtrlFailed):  # a wired or a quiet driver
                    signal = await sock.pairs("SIGNAL_POLL")
            view = summarize(interface, status, signal)
            self._observe(interface, view)
            view["connected_since"] = rfc3339(self.since.get(interface))
            return view

        result: dict[str, Any] = await self.ctx.cache.get(("status", interface), load)
        return result

    async def overview(self) -> list[dict[str, Any]]:
        """Every client interface; one that does not answer says why."""
        out: list[dict[str, Any]] = []
        for interface in await self.interfaces():
            try:
                out.append(await self.state(interface))
            except CtrlError as exc:
                out.append({**summarize(interface, {}, {}), "state": "unknown", "error": str(exc)})
        return out

    async def status(self) -> Status:
        interfaces = await self.interfaces()
        if not interfaces:
            return Status.unavailable(await self.not_running())
        errors: list[str] = []
        connected: list[str] = []
        for interface in interfaces:
            try:
                view = await self.state(interface)
            except CtrlError as exc:
                errors.append(str(exc))
                continue
            if view["connected"]:
                connected.append(interface)
        if len(errors) == len(interfaces):
            return Status.unavailable(errors[0])
        return Status.ok(interfaces=interfaces, connected=connected)

    async def networks(self, interface: str) -> list[dict[str, Any]]:
        """Known networks: id, ssid, priority, disabled, current. Never a key."""

        async def load() -> list[dict[str, Any]]:
            sock = self.socket(interface)
            out = []
            for network in await self._list_networks(sock):
                priority = None
                with contextlib.suppress(CtrlFailed):
                    priority = _int(await sock.request(f"GET_NETWORK {network.id} priority"))
                out.append(
                    {
                        "id": network.id,
                        "ssid": display(network.ssid),
                        "priority": priority if priority is not None else 0,
                        "disabled": network.disabled,
                        "current": network.current,
                    }
                )
            return out

        return await self._ask(self.ctx.cache.get(("networks", interface), load))

    async def scan(self, interface: str, *, refresh: bool) -> dict[str, Any]:
        """Nearby networks from the last scan (a new one first when ``refresh``)."""
        refreshed = False
        reason = None
        if refresh:
            async with self.lock(interface):
                refreshed, reason = await self._ask(self._scan(interface))
            self.ctx.cache.invalidate(("scan", interface))

        async def load() -> list[dict[str, Any]]:
            sock = self.socket(interface)
            known = {n.ssid for n in await self._list_networks(sock)}
            reply = await sock.request("SCAN_RESULTS")
            if reply.startswith(("FAIL", "UNKNOWN")):
                raise CtrlFailed(f"{PROGRAM} answered {reply.strip()[:40]!r} to SCAN_RESULTS")
            return parse_scan(reply, known)

        results = await self._ask(self.ctx.cache.get(("scan", interface), load))
        return {
            "interface": interface,
            "refreshed": refreshed,
            "refresh_error": reason,
            "networks": results,
        }

    async def _scan(self, interface: str) -> tuple[bool, str | None]:
        sock = self.socket(interface)

        def done(event: CtrlEvent) -> bool:
            return event.name in ("CTRL-EVENT-SCAN-RESULTS", "CTRL-EVENT-SCAN-FAILED")

        async with self.monitor(interface) as events:
            reply = (await sock.request("SCAN")).strip()
            if reply not in ("OK", "FAIL-BUSY"):  # busy: a scan runs; wait for its results
                return False, f"{PROGRAM} answered {reply[:40]!r} to SCAN"
            event = await events.wait(done, self.scan_timeout)
        if event is None:
            return False, f"no scan results within {self.scan_timeout:g} s"
        if event.name == "CTRL-EVENT-SCAN-FAILED":
            return False, f"the scan failed ({event.text[:80]})"
        return True, None

    # -- control -------------------------------------------------------------------

    async def action(self, interface: str, name: str) -> dict[str, Any]:
        """DISCONNECT or RECONNECT."""
        async with self.lock(interface):
            await self._ask(self.socket(interface).command(name.upper()))
            self._invalidate(interface)
        state = None
        with contextlib.suppress(CtrlError):
            state = (await self.state(interface))["state"]
        return {"action": name, "interface": interface, "state": state}

    async def forget(self, interface: str, network_id: int) -> dict[str, Any]:
        """REMOVE_NETWORK, then SAVE_CONFIG."""
        sock = self.socket(interface)
        async with self.lock(interface):
            try:
                networks = {n.id: n for n in await self._ask(self._list_networks(sock))}
                network = networks.get(network_id)
                if network is None:
                    raise NotFound(
                        f"{interface} has no known network {network_id}", code="unknown_network"
                    )
                await self._ask(sock.command(f"REMOVE_NETWORK {network_id}"))
                saved, save_error = await self._save(sock)
            finally:
                self._invalidate(interface)
        self.ctx.logger.info("forgot Wi-Fi network %d on %s", network_id, interface)
        return {
            "interface": interface,
            "removed": network_id,
            "ssid": display(network.ssid),
            "was_current": network.current,
            "saved": saved,
            "save_error": save_error,
        }

    async def connect(self, interface: str, join: Join) -> dict[str, Any]:
        """Join a network, falling back to the previous one when that fails.

        The new network is added beside the known ones (never edited in place,
        so a failure leaves them exactly as they were), selected, and given
        ``connect_timeout`` seconds to send CTRL-EVENT-CONNECTED. On success the
        older entries of the same SSID are removed, the networks SELECT_NETWORK
        disabled are enabled again, and the configuration is saved. Otherwise
        the new entry is removed and the previous network selected again.
        """
        sock = self.socket(interface)
        async with self.lock(interface):
            try:
                return await self._ask(self._connect(interface, sock, join))
            finally:
                self._invalidate(interface)

    async def _connect(self, interface: str, sock: ControlSocket, join: Join) -> dict[str, Any]:
        before = await self._list_networks(sock)
        status = await sock.pairs("STATUS")
        previous = _int(status.get("id")) if status.get("wpa_state") == "COMPLETED" else None
        if previous is None:
            previous = next((n.id for n in before if n.current), None)
        enabled = [n.id for n in before if not n.disabled]
        reply = (await sock.request("ADD_NETWORK")).strip()
        if not reply.isdigit():
            raise Conflict(f"{PROGRAM} answered {reply[:40]!r} to ADD_NETWORK", code="refused")
        new_id = int(reply)
        ssid_text = display(join.ssid)
        selected = False
        try:
            await self._configure(sock, new_id, join)
            async with self.monitor(interface) as events:
                selected = True
                await sock.command(f"SELECT_NETWORK {new_id}")
                outcome = await wait_connected(events, new_id, self.connect_timeout)
        except BaseException:
            # Refused, cancelled or gone: put things back as they were.
            with contextlib.suppress(CtrlError):
                if selected:
                    await asyncio.shield(self._undo(interface, sock, new_id, previous, enabled))
                else:
                    await asyncio.shield(sock.command(f"REMOVE_NETWORK {new_id}"))
            raise
        answer: dict[str, Any] = {
            "interface": interface,
            "ssid": ssid_text,
            "connected": outcome.connected,
            "reason": outcome.reason,
            "detail": outcome.detail,
            "network_id": None,
            "previous_network_id": previous,
            "restored": None,
            "saved": False,
            "save_error": None,
        }
        if outcome.connected:
            for network in before:
                if network.ssid == join.ssid:
                    with contextlib.suppress(CtrlFailed):
                        await sock.command(f"REMOVE_NETWORK {network.id}")
            await self._enable(sock, [i for i in enabled if i not in _ids(before, join.ssid)])
            answer["saved"], answer["save_error"] = await self._save(sock)
            answer["network_id"] = new_id
            answer["result"] = "connected"
            self.ctx.logger.info("%s joined the Wi-Fi network %r", interface, ssid_text)
            return answer
        restored = await self._undo(interface, sock, new_id, previous, enabled, wait=True)
        answer["restored"] = restored if previous is not None else None
        answer["result"] = "fell_back" if previous is not None else "failed"
        self.ctx.logger.warning(
            "%s could not join the Wi-Fi network %r (%s); %s",
            interface,
            ssid_text,
            outcome.reason,
            "the previous network is selected again" if previous is not None else "",
        )
        return answer

    async def _configure(self, sock: ControlSocket, network_id: int, join: Join) -> None:
        async def put(name: str, value: str, field: str) -> None:
            try:
                await sock.command(f"SET_NETWORK {network_id} {name} {value}")
            except CtrlFailed as exc:
                raise Invalid(field, f"{PROGRAM} refused it ({exc})") from None

        # Hex, never quoted: no byte of the SSID is protocol text.
        await put("ssid", join.ssid.hex(), "ssid")
        if join.psk is None:
            await put("key_mgmt", "NONE", "passphrase")
        else:
            await put("psk", join.psk, "passphrase")
            try:  # WPA3 (SAE) too where this wpa_supplicant has it, else WPA2 only
                await sock.command(f"SET_NETWORK {network_id} key_mgmt WPA-PSK SAE")
                with contextlib.suppress(CtrlFailed):
                    await sock.command(f"SET_NETWORK {network_id} ieee80211w 1")
            except CtrlFailed:
                await put("key_mgmt", "WPA-PSK", "passphrase")
        if join.hidden:
            await put("scan_ssid", "1", "hidden")
        if join.priority is not None:
            await put("priority", str(join.priority), "priority")

    async def _undo(
        self,
        interface: str,
        sock: ControlSocket,
        new_id: int,
        previous: int | None,
        enabled: list[int],
        *,
        wait: bool = False,
    ) -> bool:
        """Remove the new network and select the previous one again; whether
        it is connected again (when ``wait``)."""
        with contextlib.suppress(CtrlFailed):
            await sock.command(f"REMOVE_NETWORK {new_id}")
        restored = False
        if previous is not None:
            try:
                if wait:
                    async with self.monitor(interface) as events:
                        await sock.command(f"SELECT_NETWORK {previous}")
                        restored = (
                            await wait_connected(events, previous, self.connect_timeout)
                        ).connected
                else:
                    await sock.command(f"SELECT_NETWORK {previous}")
            except CtrlFailed as exc:
                self.ctx.logger.warning("could not select the previous network again: %s", exc)
        await self._enable(sock, [i for i in enabled if i != new_id])
        return restored

    async def _enable(self, sock: ControlSocket, ids: Iterable[int]) -> None:
        """ENABLE_NETWORK each one (SELECT_NETWORK disabled all the others)."""
        for network_id in ids:
            with contextlib.suppress(CtrlFailed):
                await sock.command(f"ENABLE_NETWORK {network_id}")

    async def _save(self, sock: ControlSocket) -> tuple[bool, str | None]:
        try:
            await sock.command("SAVE_CONFIG")
        except CtrlFailed:
            return False, (
                f"{PROGRAM} could not save its configuration (its file needs update_config=1 "
                "and must be writable); the change lasts until it restarts"
            )
        return True, None

    async def _list_networks(self, sock: ControlSocket) -> list[Network]:
        reply = await sock.request("LIST_NETWORKS")
        if reply.startswith(("FAIL", "UNKNOWN")):
            raise CtrlFailed(f"{PROGRAM} answered {reply.strip()[:40]!r} to LIST_NETWORKS")
        return parse_networks(reply)

    async def _ask(self, awaitable: Awaitable[T]) -> T:
        """Await a control exchange; its CtrlError as a 503 (or 409 when refused)."""
        try:
            return await awaitable
        except CtrlFailed as exc:
            raise Conflict(str(exc), code="refused") from None
        except CtrlError as exc:
            raise Unavailable(str(exc)) from None

    def _invalidate(self, interface: str) -> None:
        for what in ("status", "networks", "scan"):
            self.ctx.cache.invalidate((what, interface))

    # -- events --------------------------------------------------------------------

    def _observe(self, interface: str, view: dict[str, Any]) -> None:
        now: tuple[str | None, str | None] | None = (
            (view["ssid"], view["bssid"]) if view["connected"] else None
        )
        first = interface not in self.seen
        before = self.seen.get(interface)
        self.seen[interface] = now
        if now == before and not first:
            return
        if now is None:
            self.since.pop(interface, None)
        else:
            self.since[interface] = time.time()
        if first:
            return
        if before is not None and (now is None or now[0] != before[0]):
            self.ctx.events.publish(
                "wifi.disconnected", {"interface": interface, "ssid": before[0]}
            )
        if now is not None and (before is None or now[0] != before[0]):
            self.ctx.events.publish(
                "wifi.connected", {"interface": interface, "ssid": now[0], "bssid": now[1]}
            )

    async def watch(self) -> None:
        """Read every interface (the cache allowing): changes become events."""
        for interface in await self.interfaces():
            with contextlib.suppress(CtrlError):
                await self.state(interface)


# -- wpa_supplicant's text ----------------------------------------------------------


async def wait_connected(events: EventMonitor, network_id: int, timeout: float) -> Outcome:
    """Wait for CTRL-EVENT-CONNECTED to ``network_id``; a temporary disable of
    it (wrong key, failed authentication) ends the wait early."""
    last: list[tuple[str, str]] = []

    def decisive(event: CtrlEvent) -> bool:
        words = event.text.split()
        if event.name == "CTRL-EVENT-CONNECTED":
            return f"[id={network_id}" in event.text
        if event.name == "CTRL-EVENT-SSID-TEMP-DISABLED":
            if f"id={network_id}" not in words:
                return False
            reason = _field(words, "reason") or "TEMP_DISABLED"
            last.append((reason, f"{PROGRAM} disabled the network for a while ({reason})"))
            return True
        if event.name == "CTRL-EVENT-NETWORK-NOT-FOUND":
            last.append(("NETWORK_NOT_FOUND", "no access point of this network was found"))
        elif event.name == "CTRL-EVENT-ASSOC-REJECT":
            code = _field(words, "status_code") or "?"
            last.append(("ASSOC_REJECT", f"the access point refused the association ({code})"))
        elif event.name == "CTRL-EVENT-AUTH-REJECT":
            code = _field(words, "status_code") or "?"
            last.append(("AUTH_REJECT", f"the access point refused authentication ({code})"))
        elif event.name == "CTRL-EVENT-DISCONNECTED" and "locally_generated=1" not in words:
            # (leaving the previous network is local, and no reason to give)
            code = _field(words, "reason") or "?"
            last.append(("DISCONNECTED", f"disconnected during the attempt (reason {code})"))
        return False

    event = await events.wait(decisive, timeout)
    if event is not None and event.name == "CTRL-EVENT-CONNECTED":
        return Outcome(True)
    if last:
        reason, detail = last[-1]
        if event is None:
            detail += f"; not connected within {timeout:g} s"
        return Outcome(False, reason, detail)
    return Outcome(False, "TIMEOUT", f"not connected within {timeout:g} s")


def summarize(interface: str, status: dict[str, str], signal: dict[str, str]) -> dict[str, Any]:
    """STATUS and SIGNAL_POLL in our field names."""
    state = status.get("wpa_state", "").lower() or "unknown"
    connected = state == "completed"
    freq = _int(signal.get("FREQUENCY")) or _int(status.get("freq")) or None
    rssi = _int(signal.get("RSSI"))
    bssid = status.get("bssid", "").lower()
    return {
        "interface": interface,
        "state": state,
        "connected": connected,
        "ssid": display(unescape(status["ssid"])) if connected and "ssid" in status else None,
        "bssid": bssid if connected and is_mac(bssid) else None,
        "network_id": _int(status.get("id")) if connected else None,
        "frequency_mhz": freq if connected else None,
        "band": band_of(freq) if connected else None,
        "signal_dbm": rssi if connected and rssi is not None and -150 < rssi < 0 else None,
        "link_speed_mbps": _int(signal.get("LINKSPEED")) if connected else None,
        "key_mgmt": (status.get("key_mgmt") or None) if connected else None,
        "ip_address": status.get("ip_address") or None,
        "connected_since": None,
    }


def parse_networks(text: str) -> list[Network]:
    """``LIST_NETWORKS``: ``id<TAB>ssid<TAB>bssid<TAB>flags`` after a header."""
    out: list[Network] = []
    for line in text.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        out.append(Network(int(parts[0]), unescape(parts[1]), parts[3] if len(parts) > 3 else ""))
        if len(out) >= MAX_NETWORKS:
            break
    return out


def parse_scan(text: str, known: set[bytes]) -> list[dict[str, Any]]:
    """``SCAN_RESULTS``: ``bssid<TAB>freq<TAB>signal<TAB>flags<TAB>ssid``, strongest first."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines()[1:]:
        parts = line.split("\t", 4)
        if len(parts) < 4 or not is_mac(parts[0].lower()):
            continue
        raw = unescape(parts[4]) if len(parts) > 4 else b""
        hidden = not raw.strip(b"\x00")
        freq = _int(parts[1])
        out.append(
            {
                "ssid": None if hidden else display(raw),
                "hidden": hidden,
                "bssid": parts[0].lower(),
                "frequency_mhz": freq,
                "band": band_of(freq),
                "signal_dbm": _int(parts[2]),
                "security": security(parts[3]),
                "flags": parts[3][:200],
                "known": not hidden and raw in known,
            }
        )
        if len(out) >= MAX_SCAN_RESULTS:
            break
    out.sort(key=lambda n: -n["signal_dbm"] if n["signal_dbm"] is not None else 1 << 20)
    return out


def security(flags: str) -> str:
    """A scan result's flags (``[WPA2-PSK-CCMP][ESS]``) as one word."""
    f = flags.upper()
    if "EAP" in f:
        return "enterprise"
    if "SAE" in f:
        return "wpa2-wpa3" if "PSK" in f else "wpa3-sae"
    if "OWE" in f:
        return "owe"
    if "PSK" in f:
        return "wpa2-psk" if ("WPA2" in f or "RSN" in f) else "wpa-psk"
    if "WEP" in f:
        return "wep"
    return "open"


_ESCAPES = {ord("\\"): 0x5C, ord('"'): 0x22, ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09,
            ord("e"): 0x1B}  # fmt: skip


def unescape(text: str) -> bytes:
    """wpa_supplicant's printf-escaped SSID text (``\\xNN``, ``\\"``...) as bytes."""
    data = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(data) and len(out) < 64:
        c = data[i]
        if c == 0x5C and i + 1 < len(data):
            nxt = data[i + 1]
            if nxt == ord("x") and i + 3 < len(data) and _is_hex(data[i + 2 : i + 4]):
                out.append(int(data[i + 2 : i + 4], 16))
                i += 4
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return bytes(out)


def display(raw: bytes) -> str:
    """An SSID's bytes as text: UTF-8 where it is, U+FFFD for what is not."""
    return raw.decode("utf-8", errors="replace")


def band_of(freq: int | None) -> str | None:
    if freq is None:
        return None
    if 2400 <= freq < 2500:
        return "2.4"
    if 4900 <= freq < 5925:
        return "5"
    if 5925 <= freq <= 7125:
        return "6"
    return None


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(b) in "0123456789abcdefABCDEF" for b in pair)


def _ids(networks: list[Network], ssid: bytes) -> set[int]:
    return {n.id for n in networks if n.ssid == ssid}


def _field(words: list[str], name: str) -> str | None:
    prefix = f"{name}="
    for word in words:
        if word.startswith(prefix):
            return word[len(prefix) :][:40]
    return None


def _int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def _seconds(name: str, ctx: PluginContext, low: float, high: float, default: float) -> float:
    raw = (ctx.settings.option(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        raise ValueError(f"{name}={raw!r} is not a number of seconds from {low:g} to {high:g}")
    return value

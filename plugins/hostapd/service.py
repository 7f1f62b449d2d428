"""The hostapd plugin's work: configuration, live state, control, rollback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from raspapi.plugin import (
    ApiError,
    CommandError,
    CommandNotFound,
    Conflict,
    ControlSocket,
    CtrlError,
    CtrlFailed,
    CtrlUnavailable,
    Invalid,
    NotFound,
    PluginContext,
    Status,
    Systemd,
    Unavailable,
    atomic_write,
    close_all,
    rfc3339,
)

from . import config as hconf
from .config import HostapdConf, display, is_secret
from .schema import AP_KEYS
from .validate import DEFAULT_HW_MODE, FIELD_OF, plan

DEFAULT_CONFIRM_SECONDS = 60.0
MAX_CONFIRM_SECONDS = 3600.0
CONFIRM_URL = "/api/v1/hostapd/config/confirm"
UNIT = "hostapd.service"
MAX_CONF_BYTES = 1 << 20
#: How long a control request may take (a reply is normally under a millisecond).
CTRL_TIMEOUT = 2.0
#: ENABLE and DISABLE set the radio up or down: allow them longer.
RADIO_TIMEOUT = 10.0
#: systemctl is a fork and exec: its answer is kept a little longer.
SERVICE_TTL = 5.0
#: How many cache periods a poll or a scrape may be answered from the last
#: value while the next is fetched (two: the last value is one period late at most).
STALE_PERIODS = 2
#: The cache key of the Prometheus families (telemetry.py): dropped with the
#: live state after a control action, so the next scrape asks hostapd again.
METRICS_KEY = "metric_families"


class Rejected(Exception):
    """hostapd refused a new setting (``field`` is the API field, None: the whole change)."""

    def __init__(self, field: str | None, reason: str, *, was_up: bool) -> None:
        super().__init__(reason)
        self.field = field
        self.was_up = was_up


class Loaded(NamedTuple):
    """hostapd.conf as read: None when absent; ``ctrl``: each interface in it
    whose control socket path exists then, and whether it is a socket (an
    absent one is not asked: no thread hop, no connect, until the next read)."""

    conf: HostapdConf | None
    raw: bytes | None = None
    mode: int = 0o644
    too_big: bool = False
    ctrl: Mapping[str, bool] = MappingProxyType({})

    def check_ctrl(self, interface: str) -> None:
        """Raise CtrlUnavailable, as connecting would, when ``interface``'s control
        socket was absent at the read (the conf is known)."""
        if self.conf is not None and interface not in self.ctrl:
            name = ctrl_name(self.conf, interface)
            raise CtrlUnavailable(f"hostapd is not running (no control socket at {name})")


class Pending:
    """An unconfirmed change: what to put back, and when."""

    def __init__(
        self, backup: bytes, mode: int, keys: set[str], fields: list[str], deadline: float
    ) -> None:
        self.backup = backup
        self.mode = mode
        self.keys = keys
        self.fields = fields
        self.deadline = deadline
        self.task: asyncio.Task[None] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "changed": list(self.fields),
            "confirm_by": rfc3339(self.deadline),
            "confirm_url": CONFIRM_URL,
            "seconds_left": round(max(0.0, self.deadline - time.time()), 1),
        }


class Hostapd:
    """One per app. Every read goes through the plugin's cache."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.systemd = Systemd(ctx.runner)
        self.sockets: dict[str, ControlSocket] = {}
        self.confirm_seconds = DEFAULT_CONFIRM_SECONDS
        self.pending: Pending | None = None
        self._change_lock = asyncio.Lock()
        #: The last bytes of hostapd.conf parsed, and their parse (never changed
        #: in place: a change is made on a fresh parse), for the next read of
        #: the same bytes (every interval's samples and station sweep).
        self._parsed: tuple[bytes, HostapdConf] | None = None

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        self.confirm_seconds = self.ctx.option(
            "confirm_seconds", float, DEFAULT_CONFIRM_SECONDS, min=0.1, max=MAX_CONFIRM_SECONDS
        )

    async def stop(self) -> None:
        """An unconfirmed change does not outlive the daemon: it is rolled back."""
        async with self._change_lock:
            pending, self.pending = self.pending, None
            if pending is not None:
                await _cancel(pending.task)
                await self._roll_back(pending, "the daemon is stopping")
        close_all(self.sockets)

    # -- reading -----------------------------------------------------------------

    async def loaded(self) -> Loaded:
        result: Loaded = await self.ctx.cache.get("config", self.read_config)
        return result

    @property
    def stale_seconds(self) -> float:
        """How old a last value may be and still be answered while the next is fetched."""
        return STALE_PERIODS * self.ctx.cache.ttl

    def read_config(self) -> Loaded:
        """hostapd.conf as read now (blocking: a thread; :meth:`loaded` caches it)."""
        path = self.ctx.path(hconf.PATH)
        try:
            with open(path, "rb") as fh:
                mode = os.fstat(fh.fileno()).st_mode & 0o7777
                raw = fh.read(MAX_CONF_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            return Loaded(None)
        too_big = len(raw) > MAX_CONF_BYTES
        if too_big:
            raw = raw[:MAX_CONF_BYTES]
        last = self._parsed
        if last is not None and last[0] == raw:
            conf = last[1]
        else:
            conf = HostapdConf.parse(raw.decode("utf-8", "surrogateescape"))
            self._parsed = (raw, conf)
        return Loaded(conf, raw, mode, too_big, self._ctrl_files(conf))

    def _ctrl_files(self, conf: HostapdConf) -> dict[str, bool]:
        """Each interface whose control socket path exists: is it a socket?
        (Blocking: :meth:`read_config`'s thread.) Only a path that is not
        there is left out: anything else is tried and answers as before."""
        out: dict[str, bool] = {}
        for interface in conf.interfaces():
            try:
                mode = os.stat(self.ctx.path(ctrl_name(conf, interface))).st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                out[interface] = False
                continue
            out[interface] = stat.S_ISSOCK(mode)
        return out

    def socket(self, conf: HostapdConf, interface: str) -> ControlSocket:
        """The control socket of ``interface`` (reused while the path stays)."""
        name = ctrl_name(conf, interface)
        path = self.ctx.path(name)
        sock = self.sockets.get(interface)
        if sock is None or sock.path != path:
            if sock is not None:
                sock.close()
            sock = self.sockets[interface] = ControlSocket(path, name=name, timeout=CTRL_TIMEOUT)
        return sock

    async def live(self) -> dict[str, str]:
        """hostapd's ``STATUS`` for the radio's interface; raises CtrlError or Unavailable."""
        loaded = await self._checked()
        conf = loaded.conf
        assert conf is not None

        async def load() -> dict[str, str]:
            loaded.check_ctrl(conf.interface)
            return await self.socket(conf, conf.interface).pairs("STATUS")

        result: dict[str, str] = await self.ctx.cache.get("status", load)
        return result

    async def _conf(self) -> HostapdConf:
        conf = (await self._checked()).conf
        assert conf is not None
        return conf

    async def _checked(self) -> Loaded:
        """hostapd.conf with an interface; raises Unavailable."""
        loaded = await self.loaded()
        if loaded.conf is None:
            raise Unavailable(f"no hostapd configuration at {hconf.PATH}")
        if not loaded.conf.interface:
            raise Unavailable(f"{hconf.PATH} names no interface= for hostapd")
        return loaded

    async def status(self) -> Status:
        try:
            conf = await self._conf()
            live = await self.live()
        except (CtrlError, Unavailable) as exc:
            return Status.unavailable(str(exc))
        return Status.ok(interface=conf.interface, state=live.get("state", "").lower() or None)

    async def running(self) -> bool:
        try:
            await self.live()
        except (CtrlError, Unavailable):
            return False
        return True

    async def stations(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Every station of every BSS in hostapd.conf: one sweep per cache period,
        and a poll never waits for it once there is a previous answer (``fresh``:
        it does, for work that itself runs behind a poll)."""
        # Served stale for one more cache period at most: 2 x ttl since the sweep.
        result: list[dict[str, Any]] = await self.ctx.cache.get(
            "stations", self._sweep, stale=0.0 if fresh else self.stale_seconds
        )
        return result

    async def _sweep(self) -> list[dict[str, Any]]:
        loaded = await self.loaded()
        if loaded.conf is None:
            return []
        out: list[dict[str, Any]] = []
        for interface in loaded.conf.interfaces():
            try:
                loaded.check_ctrl(interface)
                found = await self.socket(loaded.conf, interface).stations()
            except CtrlError as exc:
                self.ctx.logger.debug("no stations from %s: %s", interface, exc)
                continue
            out.extend(station_record(s.mac, interface, s.fields) for s in found)
        return out

    async def station_action(self, action: str, mac: str) -> bool | None:
        """Deauthenticate, deny or allow ``mac`` on every BSS hostapd runs."""
        commands = {
            "deauthenticate": f"DEAUTHENTICATE {mac}",
            "deny": f"DENY_ACL ADD_MAC {mac}",
            "allow": f"DENY_ACL DEL_MAC {mac}",
        }
        if action not in commands:
            raise ValueError(f"unknown station action {action!r}")
        loaded = await self.loaded()
        if loaded.conf is None or not loaded.conf.interfaces():
            return None
        errors: list[str] = []
        done = 0
        for interface in loaded.conf.interfaces():
            try:
                await self.socket(loaded.conf, interface).command(commands[action])
            except CtrlError as exc:
                errors.append(str(exc))
            else:
                done += 1
        self.ctx.cache.invalidate("stations")
        if done == 0:
            raise CtrlError("; ".join(errors))
        return True

    # -- RaspAP ------------------------------------------------------------------

    async def legacy_ap(self, admin: bool) -> dict[str, Any]:
        """RaspAP's ``/ap``: its 17 keys from hostapd.conf, the band from the live
        frequency; the passphrase for admin keys only."""
        loaded = await self.loaded()
        values = loaded.conf.values() if loaded.conf is not None else {}
        body: dict[str, Any] = {key: display(values.get(key, "")) for key in AP_KEYS}
        band = None
        if loaded.conf is not None and loaded.conf.interface:
            with contextlib.suppress(CtrlError, Unavailable):
                band = band_of(_int((await self.live()).get("freq")))
        body["frequency_band"] = band if band in ("2.4", "5") else None
        if not admin:
            body["wpa_passphrase"] = ""
        return body

    # -- v1 ------------------------------------------------------------------------

    async def overview(self, admin: bool) -> dict[str, Any]:
        """Live status, configuration and hostapd.service, each with why it is missing."""
        status: dict[str, Any] | None = None
        status_reason = None
        try:
            status = await self._status_view()
        except (CtrlError, Unavailable) as exc:
            status_reason = str(exc)
        service: dict[str, Any] | None = None
        service_reason = None
        try:
            service = await self.ctx.cache.get("service", self._service, ttl=SERVICE_TTL)
        except CommandError as exc:
            service_reason = str(exc)
        return {
            "status": status,
            "status_reason": status_reason,
            "config": await self.config_view(admin),
            "service": service,
            "service_reason": service_reason,
        }

    async def _service(self) -> dict[str, Any]:
        return (await self.systemd.state(UNIT)).as_dict()

    async def live_status(self) -> dict[str, Any]:
        """hostapd's ``STATUS`` in our field names; raises Unavailable."""
        try:
            return await self._status_view()
        except CtrlError as exc:
            raise Unavailable(str(exc)) from None

    async def _status_view(self) -> dict[str, Any]:
        conf = await self._conf()
        return summarize(await self.live(), conf)

    async def config_view(self, admin: bool) -> dict[str, Any]:
        """hostapd.conf, parsed; secrets null unless ``admin``; raises NotFound."""
        loaded = await self.loaded()
        if loaded.conf is None:
            raise NotFound(f"no hostapd configuration at {hconf.PATH}")
        values: dict[str, str | None] = {}
        redacted: list[str] = []
        for key, value in loaded.conf.values().items():
            if is_secret(key) and not admin:
                values[key] = None
                redacted.append(key)
            else:
                values[key] = display(value)
        return {
            "path": hconf.PATH,
            "interface": loaded.conf.interface or None,
            "interfaces": loaded.conf.interfaces(),
            "ctrl_interface": loaded.conf.ctrl_dir(),
            "values": values,
            "redacted": redacted,
            "pending_change": self.pending.view() if self.pending else None,
        }

    async def action(self, name: str) -> dict[str, Any]:
        """ENABLE, DISABLE or RELOAD through the control socket."""
        conf = await self._conf()
        sock = self.socket(conf, conf.interface)
        try:
            state = (await sock.pairs("STATUS")).get("state", "")
            disabled = state == "DISABLED"
            already = disabled if name == "disable" else (name == "enable" and not disabled)
            changed = not already
            if changed:
                await sock.command(name.upper(), timeout=RADIO_TIMEOUT)
            after = (await sock.pairs("STATUS")).get("state", "")
        except CtrlFailed as exc:
            raise Conflict(str(exc), code="hostapd_refused") from None
        except CtrlError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            self._invalidate_live()
        return {
            "action": name,
            "interface": conf.interface,
            "changed": changed,
            "state": after.lower() or None,
        }

    async def restart(self) -> dict[str, Any]:
        """``systemctl restart hostapd.service``: hostapd reads hostapd.conf again."""
        try:
            await self.systemd.act("restart", UNIT)
        except CommandNotFound:
            raise Unavailable("systemctl is not available to restart hostapd.service") from None
        except CommandError as exc:
            raise ApiError(str(exc), code="restart_failed", status_code=502) from None
        finally:
            close_all(self.sockets)
            self._invalidate_live()
            self.ctx.cache.invalidate("service")
            self.ctx.cache.invalidate("config")  # its control socket is made anew
        state = None
        with contextlib.suppress(CommandError):
            state = (await self.systemd.state(UNIT)).active_state
        return {"action": "restart", "interface": UNIT, "changed": True, "state": state}

    # -- configuration changes ------------------------------------------------------

    async def patch_config(self, body: Any) -> dict[str, Any]:
        """Rewrite hostapd.conf with the change in ``body`` (the API's fields), apply
        it to the running hostapd and arm its rollback; raises Invalid, Conflict,
        Unavailable."""
        async with self._change_lock:
            self.ctx.cache.invalidate("config")
            loaded = await self.loaded()
            if loaded.conf is None or loaded.raw is None:
                raise Unavailable(f"no hostapd configuration at {hconf.PATH}")
            if loaded.too_big:
                raise Conflict(f"{hconf.PATH} is larger than {MAX_CONF_BYTES} bytes; not rewritten")
            change = plan(body, loaded.conf)
            if not change.fields:
                return self._patch_answer([], None, None)
            new = HostapdConf.parse(loaded.conf.render())
            new.delete(change.deletes)
            for key, value in change.sets.items():
                new.set(key, value)
            try:
                await self._write(new.render().encode("utf-8", "surrogateescape"), loaded.mode)
            except OSError as exc:
                raise Unavailable(f"cannot write {hconf.PATH}: {exc.strerror or exc}") from None
            try:
                apply_error = await self._apply(new, change.sets)
            except Rejected as exc:
                await self._write(loaded.raw, loaded.mode)
                await self._restore(
                    loaded.conf, restore_settings(loaded.conf, change.sets), up=exc.was_up
                )
                field = exc.field or change.fields[0]
                raise Invalid(
                    field, f"hostapd refused the change ({exc}); the previous settings are back"
                ) from None
            except BaseException:
                await asyncio.shield(self._write(loaded.raw, loaded.mode))
                raise
            self._arm(loaded, change.sets.keys() | set(change.deletes), change.fields)
            return self._patch_answer(change.fields, apply_error, self.pending)

    async def confirm(self) -> dict[str, Any]:
        """Keep the last configuration change (cancels its rollback); raises Conflict."""
        async with self._change_lock:
            pending, self.pending = self.pending, None
            if pending is None:
                raise Conflict(
                    "no configuration change is waiting for confirmation",
                    code="nothing_to_confirm",
                )
            await _cancel(pending.task)
        self.ctx.logger.info(
            "hostapd configuration change confirmed: %s", ", ".join(pending.fields)
        )
        return {"confirmed": True, "changed": pending.fields}

    def _patch_answer(
        self, fields: list[str], apply_error: str | None, pending: Pending | None
    ) -> dict[str, Any]:
        view = pending.view() if pending else {}
        return {
            "changed": fields,
            "applied": bool(fields) and apply_error is None,
            "apply_error": apply_error,
            "confirm_by": view.get("confirm_by"),
            "confirm_url": view.get("confirm_url"),
        }

    def _arm(self, before: Loaded, keys: Iterable[str], fields: list[str]) -> None:
        assert before.raw is not None
        pending = self.pending
        if pending is None:
            pending = Pending(before.raw, before.mode, set(), [], 0.0)
        else:
            # Still unconfirmed: the rollback goes back to the last confirmed file.
            if pending.task is not None:
                pending.task.cancel()
        pending.keys.update(keys)
        pending.fields.extend(f for f in fields if f not in pending.fields)
        pending.deadline = time.time() + self.confirm_seconds
        pending.task = asyncio.create_task(self._expire(pending, self.confirm_seconds))
        self.pending = pending
        self.ctx.logger.warning(
            "hostapd configuration changed (%s); rolled back in %g s unless confirmed",
            ", ".join(pending.fields),
            self.confirm_seconds,
        )

    async def _expire(self, pending: Pending, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._change_lock:
            if self.pending is not pending:
                return
            self.pending = None
            await self._roll_back(pending, f"not confirmed within {self.confirm_seconds:g} s")

    async def _roll_back(self, pending: Pending, why: str) -> None:
        try:
            await self._write(pending.backup, pending.mode)
        except OSError as exc:
            self.ctx.logger.error("cannot restore %s (%s): %s", hconf.PATH, why, exc)
            return
        old = HostapdConf.parse(pending.backup.decode("utf-8", "surrogateescape"))
        await self._restore(old, restore_settings(old, pending.keys), up=None)
        self.ctx.logger.warning(
            "rolled back the hostapd configuration change of %s (%s): restored the previous %s",
            ", ".join(pending.fields),
            why,
            hconf.PATH,
        )

    async def _write(self, data: bytes, mode: int) -> None:
        path = self.ctx.path(hconf.PATH)
        try:
            await asyncio.to_thread(atomic_write, path, data, mode=mode)
        finally:
            self.ctx.cache.invalidate("config")

    async def _apply(self, conf: HostapdConf, sets: Mapping[str, str]) -> str | None:
        """Give the running hostapd the new settings. None when it took them, or
        why it could not be asked; raises Rejected when it refused them."""
        sock = self.socket(conf, conf.interface)
        up = True
        try:
            up = (await sock.pairs("STATUS")).get("state", "") != "DISABLED"
            for key, value in sets.items():
                try:
                    await sock.command(f"SET {key} {value}")
                except CtrlFailed as exc:
                    raise Rejected(FIELD_OF.get(key), str(exc), was_up=up) from None
            if up:
                # The radio takes channel, band and (on full-MAC chips) SSID
                # changes only when the interface is set up again.
                await sock.command("DISABLE", timeout=RADIO_TIMEOUT)
                await sock.command("ENABLE", timeout=RADIO_TIMEOUT)
        except CtrlFailed as exc:
            raise Rejected(
                None, f"the access point did not start again: {exc}", was_up=up
            ) from None
        except CtrlError as exc:
            return str(exc)
        finally:
            self._invalidate_live()
        return None

    async def _restore(
        self, conf: HostapdConf, sets: Mapping[str, str], *, up: bool | None
    ) -> None:
        """Best effort: give hostapd back ``sets`` and set the interface up
        again (when ``up``; None: when it is up now)."""
        sock = self.socket(conf, conf.interface)
        problems: list[str] = []
        try:
            if up is None:
                up = (await sock.pairs("STATUS")).get("state", "") != "DISABLED"
            for key, value in sets.items():
                try:
                    await sock.command(f"SET {key} {value}")
                except CtrlFailed as exc:
                    problems.append(str(exc))
            if up:
                with contextlib.suppress(CtrlFailed):  # already down after a failed ENABLE
                    await sock.command("DISABLE", timeout=RADIO_TIMEOUT)
                await sock.command("ENABLE", timeout=RADIO_TIMEOUT)
        except CtrlError as exc:
            problems.append(str(exc))
        finally:
            self._invalidate_live()
        if problems:
            self.ctx.logger.warning(
                "hostapd did not take all the restored settings: %s", "; ".join(problems)
            )

    def _invalidate_live(self) -> None:
        self.ctx.cache.invalidate("status")
        self.ctx.cache.invalidate("stations")
        self.ctx.cache.invalidate(METRICS_KEY)


# -- helpers -----------------------------------------------------------------------


def ctrl_name(conf: HostapdConf, interface: str) -> str:
    """Where ``interface``'s control socket is, on the target system."""
    return f"{conf.ctrl_dir().rstrip('/')}/{interface}"


def restore_settings(old: HostapdConf, keys: Iterable[str]) -> dict[str, str]:
    """The settings that put hostapd back as ``old`` has it, for the keys changed."""
    values = old.values()
    out: dict[str, str] = {}
    for key in keys:
        if key in ("wpa_passphrase", "wpa_psk"):
            last = old.last_of(("wpa_passphrase", "wpa_psk"))
            if last is not None:
                out[last] = values[last]
        elif key in values:
            out[key] = values[key]
        elif key == "ignore_broadcast_ssid":
            out[key] = "0"
        elif key == "hw_mode":
            out[key] = DEFAULT_HW_MODE
    return out


def station_record(mac: str, interface: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One station in our units (rates: hostapd reports 100 kbit/s steps)."""

    def rate(name: str) -> int | None:
        raw = fields.get(name, "").split(" ", 1)[0]
        return int(raw) * 100 if raw.isdigit() else None

    flags = fields.get("flags", "")
    return {
        "mac": mac,
        "interface": interface,
        "signal_dbm": _int(fields.get("signal")),
        "rx_bytes": _int(fields.get("rx_bytes")),
        "tx_bytes": _int(fields.get("tx_bytes")),
        "rx_packets": _int(fields.get("rx_packets")),
        "tx_packets": _int(fields.get("tx_packets")),
        "rx_bitrate_kbps": rate("rx_rate_info"),
        "tx_bitrate_kbps": rate("tx_rate_info"),
        "connected_seconds": _int(fields.get("connected_time")),
        "inactive_ms": _int(fields.get("inactive_msec")),
        "authorized": "[AUTHORIZED]" in flags,
    }


def summarize(status: Mapping[str, str], conf: HostapdConf) -> dict[str, Any]:
    """hostapd's ``STATUS`` in our field names."""
    bss: list[dict[str, Any]] = []
    for i in range(256):
        name = status.get(f"bss[{i}]")
        if name is None:
            break
        bss.append(
            {
                "interface": name,
                "bssid": status.get(f"bssid[{i}]"),
                "ssid": display(status[f"ssid[{i}]"]) if f"ssid[{i}]" in status else None,
                "num_stations": _int(status.get(f"num_sta[{i}]")) or 0,
            }
        )
    first = bss[0] if bss else {}
    freq = _int(status.get("freq")) or None
    values = conf.values()
    return {
        "state": status.get("state", "unknown").lower(),
        "interface": first.get("interface") or conf.interface,
        "ssid": first.get("ssid"),
        "bssid": first.get("bssid"),
        "channel": _int(status.get("channel")),
        "frequency_mhz": freq,
        "band": band_of(freq),
        "hw_mode": values.get("hw_mode") or None,
        "country_code": values.get("country_code") or None,
        "num_stations": sum(b["num_stations"] for b in bss),
        "ieee80211n": status.get("ieee80211n") == "1",
        "ieee80211ac": status.get("ieee80211ac") == "1",
        "ieee80211ax": status.get("ieee80211ax") == "1",
        "bss": bss,
    }


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


def _int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

"""The WireGuard plugin's work: refreshes, control actions and the RaspAP answer.

No Starlette here: the routes (``api.py``) call into :class:`WireGuard`, which
returns dicts and bytes and raises the public API's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import itertools
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raspapi.plugin import (
    ApiError,
    CommandError,
    CommandNotFound,
    Conflict,
    Invalid,
    NotFound,
    PluginContext,
    Status,
    Systemd,
    Unavailable,
    atomic_write,
)

from . import files, model, peers
from .dump import LiveInterface, parse_dump
from .schema import NewPeer

#: An answer older than this is not served while a refresh runs: it is waited for.
_STALE_SECONDS = 10.0
#: Where wireguard-go (and other userspace implementations) put their sockets.
USERSPACE_SOCKETS = "/var/run/wireguard"
#: At most this many entries of /sys/class/net or USERSPACE_SOCKETS are looked at.
_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class AddedPeer:
    """A peer just added: the answer of ``POST /{interface}/peers``, and its client config."""

    #: The JSON answer's fields but ``client_config`` and ``qr_svg``.
    fields: dict[str, Any]
    #: The client config, holding the peer's private and preshared keys: shown once.
    client_config: str

    @property
    def public_key(self) -> str:
        key: str = self.fields["public_key"]
        return key


class WireGuard:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.root = ctx.settings.root
        self.folder = ctx.path(files.CONFIG_DIR)
        self.systemd = Systemd(ctx.runner)
        #: One lock per interface name with a change under way, and how many
        #: requests hold or wait for it; the entry goes when the last one leaves,
        #: so names from URLs cannot grow the table.
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        #: sha256(private key) -> public key, for interfaces that are down.
        self._public_keys: dict[str, str | None] = {}
        #: The last ``wg show all dump`` output and its parse, reused while unchanged.
        self._last_dump: tuple[str, dict[str, LiveInterface]] | None = None
        #: Each config file's parse, reused while the file is unchanged.
        self._parsed = files.ParseCache()

    # -- reading -------------------------------------------------------------

    async def live(self) -> tuple[dict[str, LiveInterface] | None, str | None]:
        # `wg` is a program start (fork, exec, netlink) on every refresh: not
        # worth it, every 10 s all day, on a machine with no tunnel at all.
        if not await asyncio.to_thread(self.interfaces_exist):
            return {}, None
        try:
            result = await self.ctx.runner.run(["wg", "show", "all", "dump"], timeout=10)
        except CommandNotFound:
            return None, "wg is not installed (package wireguard-tools)"
        except CommandError as exc:
            return None, f"wg show all dump: {exc.message}"
        if self._last_dump is not None and self._last_dump[0] == result.text:
            return self._last_dump[1], None
        parsed = parse_dump(result.text)
        self._last_dump = (result.text, parsed)
        return parsed, None

    def interfaces_exist(self) -> bool:
        """Whether any WireGuard interface can exist (blocking; a thread).

        Kernel interfaces say ``DEVTYPE=wireguard`` in
        ``/sys/class/net/<name>/uevent``; userspace ones (wireguard-go) have a
        socket in ``/var/run/wireguard/``. Both under the context's root.
        """
        sockets = self.ctx.path(USERSPACE_SOCKETS)
        with contextlib.suppress(OSError), os.scandir(sockets) as entries:
            for entry in itertools.islice(entries, _MAX_ENTRIES):
                if entry.name.endswith(".sock") and stat.S_ISSOCK(
                    entry.stat(follow_symlinks=False).st_mode
                ):
                    return True
        names: list[str] = []
        with contextlib.suppress(OSError), os.scandir(self.ctx.path("/sys/class/net")) as entries:
            names = [entry.name for entry in itertools.islice(entries, _MAX_ENTRIES)]
        for name in names:
            uevent = self.ctx.read_text(f"/sys/class/net/{name}/uevent", limit=4096)
            if uevent is not None and "DEVTYPE=wireguard" in uevent.splitlines():
                return True
        return False

    async def snapshot(self) -> model.Snapshot:
        """The latest refresh, never waiting on the next one once there is one.

        A request after the cache period starts a refresh in the background and
        is answered from the previous one, so a poll never waits for
        ``wg show``; one older than ``_STALE_SECONDS`` (a stuck refresh) or
        invalidated by a change is waited for.
        """
        snap: model.Snapshot = await self.ctx.cache.get(
            "snapshot", self._load, stale=_STALE_SECONDS
        )
        return snap

    async def _load(self) -> model.Snapshot:
        live, live_error = await self.live()
        configs, config_error, flags = await asyncio.to_thread(self._read_files, list(live or {}))
        derived: dict[str, str | None] = {}
        for name, conf in configs.items():
            section = conf.config.interface
            if (live is None or name not in live) and section and section.private_key:
                derived[name] = await self._public_key_of(section.private_key)
        # Merging and rendering 500 peers takes milliseconds: off the event loop.
        return await asyncio.to_thread(
            model.build, live, live_error, configs, config_error, flags, derived
        )

    def _read_files(
        self, live_names: list[str]
    ) -> tuple[dict[str, files.ConfigFile], str | None, dict[str, bool]]:
        configs, error = files.read_all(self.root, self.folder, self._parsed)
        flags: dict[str, bool] = {}
        for name in live_names:
            raw = self.ctx.read_text(f"/sys/class/net/{name}/flags", limit=64)
            if raw is not None:
                with contextlib.suppress(ValueError):
                    flags[name] = bool(int(raw.strip(), 16) & 1)  # IFF_UP
        return configs, error, flags

    async def _public_key_of(self, private_key: str) -> str | None:
        digest = hashlib.sha256(private_key.encode()).hexdigest()
        if digest not in self._public_keys:
            if len(self._public_keys) > 64:
                self._public_keys.clear()
            try:
                self._public_keys[digest] = await peers.derive_public_key(
                    self.ctx.runner, private_key
                )
            except CommandError:
                return None
        return self._public_keys[digest]

    async def status(self) -> Status:
        if self.ctx.runner.which("wg") is None:
            return Status.unavailable("wg is not installed (package wireguard-tools)")
        snap = await self.snapshot()
        problems = {"live_error": snap.live_error, "config_error": snap.config_error}
        problems = {k: v for k, v in problems.items() if v}
        if not snap.interfaces:
            reason = snap.config_error or snap.live_error
            return Status.unavailable(
                reason
                or f"no WireGuard interface: none is running and {files.CONFIG_DIR} has no config"
            )
        interfaces = {
            i["name"]: {
                "up": i["up"],
                "peers": i["peer_count"],
                "connected_peers": i["connected_peer_count"],
            }
            for i in snap.interfaces
        }
        return Status.ok(interfaces=interfaces, **problems)

    def invalidate(self) -> None:
        self.ctx.cache.invalidate("snapshot")
        self.ctx.cache.invalidate("legacy")

    # -- GET -----------------------------------------------------------------

    async def list_body(self) -> bytes:
        """The answer of ``GET /api/v1/wireguard``, rendered once per refresh."""
        return (await self.snapshot()).body

    async def interface_body(self, name: str) -> bytes:
        """The answer of ``GET /api/v1/wireguard/{name}``; NotFound for an unknown name."""
        body = (await self.snapshot()).bodies.get(name)
        if body is None:
            raise NotFound(_unknown(name), code="unknown_interface")
        return body

    # -- control -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        entry = self._locks.get(name)
        if entry is None:
            entry = self._locks[name] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[name]

    async def _known(self, name: str) -> None:
        """A 404 for an interface that has neither a config file nor a running
        instance, from the shared cached snapshot: an unknown name from a URL costs
        no `wg show` of its own."""
        if await asyncio.to_thread(self._has_config, name):
            return
        if name not in (await self.snapshot()).bodies:
            raise NotFound(_unknown(name), code="unknown_interface")

    async def _fresh(self, name: str) -> tuple[LiveInterface | None, files.ConfigFile | None]:
        live, error = await self.live()
        if error is not None:
            raise Unavailable(f"cannot tell whether {name} is running: {error}")
        try:
            conf = await asyncio.to_thread(files.read_one, self.root, self.folder, name)
        except OSError as exc:
            raise Unavailable(
                f"cannot read {files.CONFIG_DIR}/{name}.conf: {files.describe(exc)}"
            ) from None
        return (live or {}).get(name), conf

    async def add_peer(self, name: str, peer: NewPeer, host_header: str | None) -> AddedPeer:
        """Adds a peer to ``name``'s config and running interface (see ``api.add_peer``).

        ``host_header`` is the request's Host header: the endpoint phones connect
        to when the body and the config's ``# Endpoint =`` comment name none.
        """
        await self._known(name)
        async with self._lock(name):
            live, conf = await self._fresh(name)
            if conf is None:
                if live is None:
                    raise NotFound(_unknown(name), code="unknown_interface")
                raise Conflict(
                    f"{name} runs without {files.CONFIG_DIR}/{name}.conf: there is no config "
                    "to add the peer to",
                    code="no_config",
                )
            section = conf.config.interface
            if section is None:
                raise Conflict(f"{conf.file_name} has no [Interface] section", code="bad_config")
            taken = [ip for p in conf.config.peers for ip in p.allowed_ips]
            taken += [ip for p in (live.peers if live else []) for ip in p.allowed_ips]
            try:
                assigned = peers.allocate(section.addresses, taken)
            except peers.AllocationError as exc:
                raise Conflict(f"{conf.file_name}: {exc}", code="no_address") from None
            _check_overlap(peer.allowed_ips, taken)
            server_key = live.public_key if live is not None else None
            if server_key is None and section.private_key:
                server_key = await self._public_key_of(section.private_key)
            if server_key is None:
                raise Conflict(
                    f"cannot tell {name}'s public key: it is down and its config has no PrivateKey",
                    code="bad_config",
                )
            host, port = self._endpoint(host_header, peer.endpoint, section.endpoint_hint)
            port = port or (live.listen_port if live else None) or section.listen_port
            if port is None:
                raise Conflict(
                    f"{name} has no ListenPort: phones would not know which port to reach; "
                    'add ListenPort to its config or pass "endpoint": "host:port"',
                    code="bad_config",
                )
            try:
                keys = await peers.generate_keys(self.ctx.runner)
            except CommandError as exc:
                raise Unavailable(f"cannot generate keys: {exc.message}") from None
            allowed = [str(a.network) for a in assigned] + [str(n) for n in peer.allowed_ips]
            old = conf.config.text
            new = conf.config.with_peer(peers.server_block(peer.name, keys, allowed))
            await self._write(conf.path, new)
            applied = False
            if live is not None:
                try:
                    await self.ctx.runner.run(
                        [
                            "wg", "set", name, "peer", keys.public_key,
                            "preshared-key", "/dev/stdin",
                            "allowed-ips", ",".join(allowed),
                        ],
                        input=(keys.preshared_key + "\n").encode(),
                        timeout=10,
                    )  # fmt: skip
                except CommandError as exc:
                    await self._write(conf.path, old)
                    raise ApiError(
                        f"wg set {name} failed ({exc.message}); the config was left unchanged",
                        code="apply_failed",
                        status_code=502,
                    ) from None
                applied = True
            self.invalidate()

        self.ctx.logger.info("added peer %s (%s) to %s", keys.public_key, peer.name, name)
        text = peers.client_config(
            name=peer.name,
            keys=keys,
            address=[str(a) for a in assigned],
            dns=peer.dns,
            server_public_key=server_key,
            endpoint=peers.format_endpoint(host, port),
            allowed_ips=[str(n) for n in peer.client_allowed_ips],
            keepalive=peer.keepalive,
        )
        fields: dict[str, Any] = {
            "interface": name,
            "public_key": keys.public_key,
            "name": peer.name,
            "address": [str(a) for a in assigned],
            "allowed_ips": allowed,
            "endpoint": peers.format_endpoint(host, port),
            "applied": applied,
        }
        return AddedPeer(fields, text)

    async def qr_code(self, text: str, kind: str) -> str | bytes:
        """``text`` as a QR code: ``svg`` (a string) or ``png`` (bytes), built in a thread."""
        if kind == "png":
            return await asyncio.to_thread(peers.qr_png, text)
        return await asyncio.to_thread(peers.qr_svg, text)

    def _endpoint(
        self, host_header: str | None, wanted: tuple[str, int | None] | None, hint: str | None
    ) -> tuple[str, int | None]:
        if wanted is not None:
            return wanted
        if hint:
            try:
                return peers.endpoint(hint, "# Endpoint")
            except Invalid:
                self.ctx.logger.warning("ignoring a bad '# Endpoint =' comment: %r", hint)
        host = peers.host_from_header(host_header)
        if host is None:
            raise Invalid("endpoint", "cannot tell the host phones should connect to: pass it")
        return host, None

    async def _write(self, path: Path, text: str) -> None:
        try:
            await asyncio.to_thread(atomic_write, path, files.encode(text), mode=0o600)
        except OSError as exc:
            raise Unavailable(f"cannot write {path.name}: {files.describe(exc)}") from None
        finally:
            self._parsed.forget(path)

    async def delete_peer(self, name: str, key: str) -> dict[str, Any]:
        """Removes peer ``key`` from ``name``'s config and running interface."""
        await self._known(name)
        async with self._lock(name):
            live, conf = await self._fresh(name)
            if live is None and conf is None:
                raise NotFound(_unknown(name), code="unknown_interface")
            in_live = live is not None and any(p.public_key == key for p in live.peers)
            new = conf.config.without_peer(key) if conf is not None else None
            if not in_live and new is None:
                raise NotFound(f"{name} has no peer {key}", code="unknown_peer")
            if in_live:
                try:
                    await self.ctx.runner.run(
                        ["wg", "set", name, "peer", key, "remove"], timeout=10
                    )
                except CommandError as exc:
                    raise ApiError(
                        f"wg set {name} failed ({exc.message}); nothing was removed",
                        code="apply_failed",
                        status_code=502,
                    ) from None
            if conf is not None and new is not None:
                await self._write(conf.path, new)
            self.invalidate()
        self.ctx.logger.info("removed peer %s from %s", key, name)
        return {
            "interface": name,
            "public_key": key,
            "removed_from_config": new is not None,
            "removed_from_interface": in_live,
        }

    async def unit(self, name: str, action: str) -> dict[str, Any]:
        """Starts (``up``) or stops (``down``) ``wg-quick@<name>`` with systemctl."""
        if not await asyncio.to_thread(self._has_config, name):
            raise NotFound(
                f"no {files.CONFIG_DIR}/{name}.conf: wg-quick@{name} has nothing to "
                f"{'start' if action == 'up' else 'stop'}",
                code="unknown_interface",
            )
        unit = f"wg-quick@{name}.service"
        try:
            async with self._lock(name):
                await self.systemd.act("start" if action == "up" else "stop", unit)
        except CommandNotFound:
            raise Unavailable(f"systemctl is not installed: cannot control {unit}") from None
        except CommandError as exc:
            raise ApiError(
                f"systemctl {'start' if action == 'up' else 'stop'} {unit}: {exc.message}",
                code="systemctl_failed",
                status_code=502,
            ) from None
        finally:
            self.invalidate()
        try:
            state: str | None = (await self.systemd.state(unit)).active_state
        except CommandError:
            state = None
        self.ctx.logger.info("%s: %s", unit, "started" if action == "up" else "stopped")
        return {"interface": name, "unit": unit, "action": action, "active_state": state}

    def _has_config(self, name: str) -> bool:
        try:
            return files.config_path(self.root, self.folder, name).is_file()
        except OSError:
            return False

    # -- RaspAP --------------------------------------------------------------

    async def legacy(self) -> dict[str, Any]:
        """RaspAP's ``GET /wireguard`` answer, from the cache."""
        body: dict[str, Any] = await self.ctx.cache.get("legacy", self._legacy_body)
        return body

    def _legacy_body(self) -> dict[str, Any]:
        count = 0
        names: list[dict[str, str]] = []
        active = ""
        try:
            real = files.resolve_under(self.root, self.folder)
            with os.scandir(real) as it:
                entries = sorted(e.name for e in itertools.islice(it, files.MAX_ENTRIES))
            count = _count_files(real)
            names = [{"config": n} for n in entries if n != "wg0.conf" and not n.startswith(".")]
            active = _active(real / "wg0.conf")
        except OSError:
            return {"client_configs": "0", "client_config_names": [], "client_config_active": ""}
        return {
            "client_configs": str(count),
            "client_config_names": names,
            "client_config_active": active,
        }


def _count_files(folder: Path) -> int:
    """Regular files in the folder and below, as RaspAP's `find -type f | wc -l` counts."""
    count = 0
    stack = [(folder, 0)]
    seen = 0
    while stack and seen < 100_000:
        path, depth = stack.pop()
        try:
            with os.scandir(path) as it:
                for entry in it:
                    seen += 1
                    if entry.is_file(follow_symlinks=False):
                        count += 1
                    elif entry.is_dir(follow_symlinks=False) and depth < 8:
                        stack.append((Path(entry.path), depth + 1))
        except OSError:
            continue
    return count


def _active(link: Path) -> str:
    """RaspAP's `client_config_active`: wg0.conf's link target, or "wg0.conf" when it is a file."""
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return ""
    except OSError:
        return "wg0.conf" if link.is_file() else ""
    prefix = files.CONFIG_DIR + "/"
    return target[len(prefix) :] if target.startswith(prefix) else target


def _check_overlap(extra: list[peers.IPNetwork], taken: list[str]) -> None:
    for net in extra:
        for text in taken:
            try:
                other = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
            if other.version == net.version and net.overlaps(other):
                raise Invalid(
                    "allowed_ips",
                    f"{net} overlaps {other}, which another peer already routes; WireGuard "
                    "would move it away from that peer",
                )


def _unknown(name: str) -> str:
    return f"no WireGuard interface {name}: none running and no {files.CONFIG_DIR}/{name}.conf"

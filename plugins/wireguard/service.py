"""The WireGuard plugin's work: refreshes, control actions and the RaspAP route."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import itertools
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from raspapi.plugin import (
    ApiError,
    BadRequest,
    CommandError,
    CommandNotFound,
    Conflict,
    Invalid,
    NotFound,
    PluginContext,
    Query,
    Status,
    Systemd,
    Unavailable,
    atomic_write,
    read_json,
)

from . import files, model, peers
from .dump import LiveInterface, parse_dump

FORMAT: Query[str] = Query(
    "format",
    str,
    default="json",
    description=(
        "json: the peer, its client config and an SVG QR code in one object; "
        "conf: the client config as text/plain; svg or png: the QR code alone"
    ),
    choices=("json", "conf", "svg", "png"),
)
BODY_FIELDS = frozenset(
    {
        "name",
        "allowed_ips",
        "client_allowed_ips",
        "dns",
        "endpoint",
        "persistent_keepalive_seconds",
    }
)
_NO_STORE = {"Cache-Control": "no-store"}
#: An answer older than this is not served while a refresh runs: it is waited for.
_STALE_SECONDS = 10.0
#: Where wireguard-go (and other userspace implementations) put their sockets.
USERSPACE_SOCKETS = "/var/run/wireguard"
#: At most this many entries of /sys/class/net or USERSPACE_SOCKETS are looked at.
_MAX_ENTRIES = 1024


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
        configs, error = files.read_all(self.root, self.folder)
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

    async def list_all(self, request: Request) -> Response:
        snap = await self.snapshot()
        return Response(snap.body, media_type="application/json")

    async def get_interface(self, request: Request) -> Response:
        name = peers.interface_name(request.path_params["interface"])
        snap = await self.snapshot()
        body = snap.bodies.get(name)
        if body is None:
            raise NotFound(_unknown(name), code="unknown_interface")
        return Response(body, media_type="application/json")

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

    async def add_peer(self, request: Request) -> Response:
        """Add a peer (a phone, a laptop) and get its client config and QR code, once.

        Generates the peer's key pair and a preshared key, takes the next free
        address in the interface's subnet, appends a `[Peer]` section to
        `/etc/wireguard/<interface>.conf` (every other byte kept) and applies it
        to the running interface. The private and preshared keys are in this
        answer only: they are not stored anywhere but in the config files.
        """
        name = peers.interface_name(request.path_params["interface"])
        fmt = FORMAT.parse(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object", code="body_invalid")
        for key in body:
            if key not in BODY_FIELDS:
                raise Invalid(
                    str(key), f"unknown field; fields are {', '.join(sorted(BODY_FIELDS))}"
                )
        if "name" not in body:
            raise Invalid("name", "is required")
        label = peers.peer_name(body["name"])
        extra = peers.networks(body.get("allowed_ips", []), "allowed_ips")
        routes = peers.networks(
            body.get("client_allowed_ips", list(peers.DEFAULT_CLIENT_ALLOWED_IPS)),
            "client_allowed_ips",
        )
        if not routes:
            raise Invalid("client_allowed_ips", "must name at least one network")
        dns = peers.addresses(body.get("dns", []), "dns")
        keepalive = body.get("persistent_keepalive_seconds", peers.DEFAULT_KEEPALIVE)
        if (
            isinstance(keepalive, bool)
            or not isinstance(keepalive, int)
            or not 0 <= keepalive <= 65535
        ):
            raise Invalid(
                "persistent_keepalive_seconds", "must be a whole number from 0 (off) to 65535"
            )
        requested = body.get("endpoint")
        if requested is not None and not isinstance(requested, str):
            raise Invalid("endpoint", "must be a string: host or host:port")
        wanted = peers.endpoint(requested) if requested else None

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
            _check_overlap(extra, taken)
            server_key = live.public_key if live is not None else None
            if server_key is None and section.private_key:
                server_key = await self._public_key_of(section.private_key)
            if server_key is None:
                raise Conflict(
                    f"cannot tell {name}'s public key: it is down and its config has no PrivateKey",
                    code="bad_config",
                )
            host, port = self._endpoint(request, wanted, section.endpoint_hint)
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
            allowed = [str(a.network) for a in assigned] + [str(n) for n in extra]
            old = conf.config.text
            new = conf.config.with_peer(peers.server_block(label, keys, allowed))
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

        self.ctx.logger.info("added peer %s (%s) to %s", keys.public_key, label, name)
        text = peers.client_config(
            name=label,
            keys=keys,
            address=[str(a) for a in assigned],
            dns=dns,
            server_public_key=server_key,
            endpoint=peers.format_endpoint(host, port),
            allowed_ips=[str(n) for n in routes],
            keepalive=keepalive,
        )
        headers = {**_NO_STORE, "X-Peer-Public-Key": keys.public_key}
        if fmt == "conf":
            return Response(text, status_code=201, media_type="text/plain", headers=headers)
        if fmt == "svg":
            svg = await asyncio.to_thread(peers.qr_svg, text)
            return Response(svg, status_code=201, media_type="image/svg+xml", headers=headers)
        if fmt == "png":
            png = await asyncio.to_thread(peers.qr_png, text)
            return Response(png, status_code=201, media_type="image/png", headers=headers)
        svg = await asyncio.to_thread(peers.qr_svg, text)
        answer: dict[str, Any] = {
            "interface": name,
            "public_key": keys.public_key,
            "name": label,
            "address": [str(a) for a in assigned],
            "allowed_ips": allowed,
            "endpoint": peers.format_endpoint(host, port),
            "applied": applied,
            "client_config": text,
            "qr_svg": svg,
        }
        return JSONResponse(answer, status_code=201, headers=headers)

    def _endpoint(
        self, request: Request, wanted: tuple[str, int | None] | None, hint: str | None
    ) -> tuple[str, int | None]:
        if wanted is not None:
            return wanted
        if hint:
            try:
                return peers.endpoint(hint, "# Endpoint")
            except Invalid:
                self.ctx.logger.warning("ignoring a bad '# Endpoint =' comment: %r", hint)
        host = peers.host_from_header(request.headers.get("host"))
        if host is None:
            raise Invalid("endpoint", "cannot tell the host phones should connect to: pass it")
        return host, None

    async def _write(self, path: Path, text: str) -> None:
        try:
            await asyncio.to_thread(atomic_write, path, files.encode(text), mode=0o600)
        except OSError as exc:
            raise Unavailable(f"cannot write {path.name}: {files.describe(exc)}") from None

    async def delete_peer(self, request: Request) -> Response:
        """Remove a peer from the config file and the running interface.

        The key may be standard base64 with `/` as `%2F` (or plain), or URL-safe
        base64 (`-` and `_`); the trailing `=` may be left out.
        """
        name = peers.interface_name(request.path_params["interface"])
        key = peers.public_key(request.path_params["public_key"])
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
        return JSONResponse(
            {
                "interface": name,
                "public_key": key,
                "removed_from_config": new is not None,
                "removed_from_interface": in_live,
            }
        )

    async def up(self, request: Request) -> Response:
        """Start the interface with `systemctl start wg-quick@<interface>`."""
        return await self._unit(request, "up")

    async def down(self, request: Request) -> Response:
        """Stop the interface with `systemctl stop wg-quick@<interface>`."""
        return await self._unit(request, "down")

    async def _unit(self, request: Request, action: str) -> Response:
        name = peers.interface_name(request.path_params["interface"])
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
        return JSONResponse(
            {"interface": name, "unit": unit, "action": action, "active_state": state}
        )

    def _has_config(self, name: str) -> bool:
        try:
            return files.config_path(self.root, self.folder, name).is_file()
        except OSError:
            return False

    # -- RaspAP --------------------------------------------------------------

    async def legacy(self, request: Request) -> Response:
        """RaspAP's WireGuard profiles: the file count, the names and the active one.

        Works whether `wg0.conf` is a regular file, a symlink or absent; an
        unreadable folder gives the empty answer (and the plugin's status says why).
        """
        body: dict[str, Any] = await self.ctx.cache.get("legacy", self._legacy_body)
        return JSONResponse(body)

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

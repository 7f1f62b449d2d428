"""The ``openvpn`` plugin's domain: the client profiles folder and switching (no Starlette).

RaspAP keeps each uploaded profile as ``<name>_client.conf`` (and its
credentials as ``<name>_login.conf``) in /etc/openvpn/client/, and points the
``client.conf`` and ``login.conf`` symlinks at the active pair; the
``openvpn-client@client`` unit runs ``client.conf``. Switching writes the same
absolute link targets RaspAP's GUI writes, each link replaced atomically
(a new link next to it, renamed over the old one), so OpenVPN or a reader never
finds ``client.conf`` missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from raspapi.plugin import (
    ApiError,
    CommandError,
    CommandNotFound,
    CommandTimeout,
    Conflict,
    NotFound,
    PluginContext,
    Systemd,
    Unavailable,
    describe_failure,
    fsync_dir,
)

FOLDER = "/etc/openvpn/client"
CONFIG_LINK = "client.conf"
LOGIN_LINK = "login.conf"
CONFIG_SUFFIX = "_client.conf"
LOGIN_SUFFIX = "_login.conf"
UNIT = "openvpn-client@client.service"
#: RaspAP's pattern for a profile id (ajax/openvpn/*), with a length bound.
_PROFILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
MAX_ENTRIES = 4096
MAX_CONFIG_BYTES = 1 << 20
MAX_LINK_HOPS = 8


def _shown(name: str) -> str:
    """A user-supplied name as error messages quote it: bounded."""
    return repr(name if len(name) <= 64 else name[:64] + "...")


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str  # client.conf or login.conf
    kind: str  # "missing", "symlink", "file" or "other"
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Folder:
    exists: bool
    #: Visible entries, sorted (what ``ls`` lists).
    entries: tuple[str, ...] = ()
    #: Regular files below the folder (what ``find -type f`` counts).
    regular_files: int = 0
    #: Regular files directly in the folder.
    files: frozenset[str] = frozenset()
    config: LinkInfo = LinkInfo(CONFIG_LINK, "missing")
    login: LinkInfo = LinkInfo(LOGIN_LINK, "missing")

    def profiles(self) -> list[str]:
        names = (e[: -len(CONFIG_SUFFIX)] for e in self.entries if e.endswith(CONFIG_SUFFIX))
        return [n for n in names if _PROFILE.fullmatch(n) and f"{n}{CONFIG_SUFFIX}" in self.files]

    def active_profile(self) -> str | None:
        name = link_name(self.config)
        if name is None or not name.endswith(CONFIG_SUFFIX):
            return None
        profile = name[: -len(CONFIG_SUFFIX)]
        return profile if profile in self.profiles() else None


def link_name(link: LinkInfo) -> str | None:
    """What a link points to: a name when it lies in the folder itself.

    A regular file in the link's place (RaspAP's older uploads) is itself the
    active one.
    """
    if link.kind == "file":
        return link.name
    if link.kind != "symlink" or not link.target:
        return None
    target = os.path.normpath(link.target)
    if target.startswith("/"):
        path = PurePosixPath(target)
        return path.name if str(path.parent) == FOLDER else link.target
    return target if "/" not in target and target not in (".", "..") else link.target


def _link_info(path: Path) -> LinkInfo:
    try:
        st = os.lstat(path)
    except OSError:
        return LinkInfo(path.name, "missing")
    if stat.S_ISLNK(st.st_mode):
        try:
            return LinkInfo(path.name, "symlink", os.readlink(path))
        except OSError:
            return LinkInfo(path.name, "missing")
    return LinkInfo(path.name, "file" if stat.S_ISREG(st.st_mode) else "other")


def _count_regular_files(base: Path) -> int:
    """``find <base> -type f | wc -l``, bounded."""
    count, budget, stack = 0, MAX_ENTRIES, [base]
    while stack and budget > 0:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    budget -= 1
                    if budget < 0:
                        break
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        count += 1
        except OSError:
            continue
    return count


def read_folder(ctx: PluginContext) -> Folder:
    base = ctx.path(FOLDER)
    entries: list[str] = []
    files: set[str] = set()
    try:
        with os.scandir(base) as it:
            for i, entry in enumerate(it):
                if i >= MAX_ENTRIES:
                    break
                if not entry.name.startswith("."):
                    entries.append(entry.name)
                    if entry.is_file(follow_symlinks=False):
                        files.add(entry.name)
    except OSError:
        return Folder(exists=False)
    return Folder(
        exists=True,
        entries=tuple(sorted(entries)),
        regular_files=_count_regular_files(base),
        files=frozenset(files),
        config=_link_info(base / CONFIG_LINK),
        login=_link_info(base / LOGIN_LINK),
    )


def valid_file_name(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and not name.startswith(".")
        and ".." not in name
        and not any(c in name for c in "/\\\x00")
    )


class OpenVpn:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.systemd = Systemd(ctx.runner)
        self.lock = asyncio.Lock()

    @property
    def folder(self) -> Path:
        return self.ctx.path(FOLDER)

    async def read(self) -> Folder:
        folder: Folder = await self.ctx.cache.get("folder", lambda: read_folder(self.ctx))
        return folder

    async def service(self) -> tuple[dict[str, Any] | None, str | None]:
        async def load() -> tuple[dict[str, Any] | None, str | None]:
            try:
                return (await self.systemd.state(UNIT)).as_dict(), None
            except CommandError as exc:
                return None, describe_failure(exc)

        result: tuple[dict[str, Any] | None, str | None] = await self.ctx.cache.get("service", load)
        return result

    # -- RaspAP ----------------------------------------------------------------

    async def legacy_overview(self) -> dict[str, Any]:
        folder = await self.read()
        return {
            "client_configs": str(folder.regular_files),
            "client_config_names": [
                {"config": e} for e in folder.entries if e != CONFIG_LINK and "_client" in e
            ],
            "client_config_active": link_name(folder.config) or "",
            "client_login_names": [
                {"login": e} for e in folder.entries if e != CONFIG_LINK and "_login" in e
            ],
            "client_login_active": link_name(folder.login) or "",
        }

    def _resolve(self, name: str) -> Path | None:
        """The regular file ``name`` in the folder, following links that stay in it."""
        folder = self.folder
        path = folder / name
        for _ in range(MAX_LINK_HOPS):
            try:
                st = os.lstat(path)
            except OSError:
                return None
            if not stat.S_ISLNK(st.st_mode):
                return path if stat.S_ISREG(st.st_mode) and path.parent == folder else None
            try:
                target = os.readlink(path)
            except OSError:
                return None
            if target.startswith("/"):
                path = self.ctx.path(os.path.normpath(target))
            else:
                path = Path(os.path.normpath(path.parent / target))
        return None

    def _config_lines(self, name: str) -> list[str]:
        path = self._resolve(name) if valid_file_name(name) else None
        if path is None:
            raise NotFound(f"no OpenVPN client config named {_shown(name)}", code="unknown_config")
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise NotFound(
                f"cannot read OpenVPN client config {_shown(name)}: {exc.strerror}",
                code="unknown_config",
            ) from None
        if len(data) > MAX_CONFIG_BYTES:
            raise ApiError(
                f"{_shown(name)} is larger than {MAX_CONFIG_BYTES} bytes",
                code="too_large",
                status_code=413,
            )
        return data.decode("utf-8", "replace").strip().split("\n")

    async def config_lines(self, name: str) -> list[str]:
        return await asyncio.to_thread(self._config_lines, name)

    # -- v1 --------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        folder, (service, service_error) = await asyncio.gather(self.read(), self.service())
        active = folder.active_profile()
        return {
            "profiles": [
                {
                    "name": name,
                    "config": f"{name}{CONFIG_SUFFIX}",
                    "has_login": f"{name}{LOGIN_SUFFIX}" in folder.files,
                    "active": name == active,
                }
                for name in folder.profiles()
            ],
            "active_profile": active,
            "active_config": link_name(folder.config),
            "active_login": link_name(folder.login),
            "service": service,
            "service_error": service_error,
        }

    def _switch(self, name: str) -> list[str]:
        """Point client.conf (and login.conf, when the profile has one) at ``name``."""
        folder = self.folder
        if not _PROFILE.fullmatch(name) or not _is_regular(folder / f"{name}{CONFIG_SUFFIX}"):
            raise NotFound(f"no OpenVPN profile named {_shown(name)}", code="unknown_profile")
        links = [(CONFIG_LINK, f"{name}{CONFIG_SUFFIX}")]
        if _is_regular(folder / f"{name}{LOGIN_SUFFIX}"):
            links.append((LOGIN_LINK, f"{name}{LOGIN_SUFFIX}"))
        for link, _ in links:
            kind = _link_info(folder / link).kind
            if kind not in ("missing", "symlink"):
                raise Conflict(
                    f"{FOLDER}/{link} is a regular file, not a link to a profile; "
                    f"save it as <name>{CONFIG_SUFFIX if link == CONFIG_LINK else LOGIN_SUFFIX} "
                    "first so switching does not destroy it",
                    code="not_a_link",
                )
        done: list[str] = []
        try:
            for link, target in links:
                replace_symlink(folder / link, f"{FOLDER}/{target}")
                done.append(f"{link} -> {target}")
        except OSError as exc:
            switched = f" (switched: {', '.join(done)})" if done else " (nothing was switched)"
            raise Unavailable(
                f"cannot switch the OpenVPN profile links in {FOLDER}: "
                f"{exc.strerror or exc}{switched}",
                code="write_failed",
            ) from None
        fsync_dir(folder)
        return done

    async def activate(self, name: str) -> dict[str, Any]:
        """Switch to profile ``name``, restart the unit, and return the new state."""
        async with self.lock:
            done = await asyncio.to_thread(self._switch, name)
            self.ctx.cache.invalidate()
            self.ctx.logger.info("OpenVPN profile %r activated: %s", name, ", ".join(done))
            try:
                await self.systemd.act("restart", UNIT)
            except CommandError as exc:
                self.ctx.cache.invalidate()
                detail = (
                    f"the profile links were switched ({', '.join(done)}), but restarting "
                    f"{UNIT} failed: {describe_failure(exc)}"
                )
                if isinstance(exc, CommandNotFound):
                    raise Unavailable(detail, code="systemd_unavailable") from None
                status = 504 if isinstance(exc, CommandTimeout) else 502
                raise ApiError(detail, code="restart_failed", status_code=status) from None
            self.ctx.cache.invalidate()
        return await self.state()


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: a temporary link renamed over it."""
    for _ in range(16):
        tmp = link.with_name(f".{link.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary link next to {link}")
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

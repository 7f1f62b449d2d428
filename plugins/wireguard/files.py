"""The files under /etc/wireguard: configs read byte-exact, symlinks resolved inside the root."""

from __future__ import annotations

import errno
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import config as wgconfig
from .peers import INTERFACE_NAME

CONFIG_DIR = "/etc/wireguard"
#: A config bigger than this is not read (500 peers take about 100 KiB).
MAX_CONFIG_BYTES = 4 << 20
#: Entries looked at in the folder; RaspAP keeps a handful.
MAX_ENTRIES = 4096
_HOPS = 8
#: A file changed less than this long before it was read may change again
#: without its size or modification time telling (a coarse file-system
#: clock): its parse is not reused.
_SETTLE_NS = 1_000_000_000


def resolve_under(root: Path, path: Path) -> Path:
    """``path`` with its last component's symlinks followed, staying inside ``root``.

    RaspAP links ``wg0.conf`` to ``/etc/wireguard/<profile>.conf`` with an
    absolute target: that target is read under the root, never on the host.
    """
    root_text = os.path.normpath(root)
    for _ in range(_HOPS):
        try:
            target = os.readlink(path)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return path
            raise
        joined = root / target.lstrip("/") if target.startswith("/") else path.parent / target
        path = Path(os.path.normpath(joined))
        if os.path.commonpath([root_text, str(path)]) != root_text:
            raise OSError(errno.EACCES, "symlink points outside the root", str(path))
    raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))


def read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES} bytes", str(path))
    return data


def decode(data: bytes) -> str:
    # surrogateescape: bytes that are not UTF-8 come back unchanged on encode().
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


@dataclass
class ConfigFile:
    #: The interface name: the file name without ``.conf``.
    name: str
    file_name: str
    #: Where the bytes are (the symlink's target when the file is a link).
    path: Path
    config: wgconfig.WgConfig


#: What tells a file changed: device, inode, size and modification time, from one stat.
StatKey = tuple[int, int, int, int]


class ParseCache:
    """Each config's parse, reused while its file is unchanged (issue 15).

    A refresh reads every config in the folder; a 500-peer config costs
    milliseconds to parse. An entry is keyed by the file's path (the link
    target for a link) and holds its :data:`StatKey` when read: a new inode, a
    new size or a new modification time means the file is read and parsed
    again. Bounded: :func:`read_all` keeps only the files it saw last, one
    entry per interface config. Used from one worker thread at a time.
    """

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[StatKey, wgconfig.WgConfig]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def read(
        self, path: Path, seen: dict[Path, tuple[StatKey, wgconfig.WgConfig]]
    ) -> wgconfig.WgConfig:
        """``path``'s config, parsed again only when its stat changed; recorded in ``seen``."""
        st = os.stat(path)
        key: StatKey = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = seen.get(path) or self._entries.get(path)
        if cached is not None and cached[0] == key:
            seen[path] = cached
            return cached[1]
        parsed = wgconfig.parse(decode(read_bytes(path)))
        if time.time_ns() - st.st_mtime_ns >= _SETTLE_NS:
            seen[path] = (key, parsed)
        return parsed

    def keep(self, seen: dict[Path, tuple[StatKey, wgconfig.WgConfig]]) -> None:
        """Only the entries of the files the last read saw."""
        self._entries = seen

    def forget(self, path: Path) -> None:
        """Drops ``path``'s entry (the plugin has just rewritten it)."""
        self._entries.pop(path, None)


def describe(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def config_path(root: Path, folder: Path, name: str) -> Path:
    """Where ``name``'s config lives (its link target when it is a link)."""
    return resolve_under(root, folder / f"{name}.conf")


def read_one(root: Path, folder: Path, name: str) -> ConfigFile | None:
    """``name``'s config read afresh, None when there is none. Raises OSError when unreadable."""
    try:
        path = config_path(root, folder, name)
        text = decode(read_bytes(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return ConfigFile(name, f"{name}.conf", path, wgconfig.parse(text))


def read_all(
    root: Path, folder: Path, cache: ParseCache | None = None
) -> tuple[dict[str, ConfigFile], str | None]:
    """Every interface config in the folder, and what went wrong reading it (if anything).

    A ``*.conf`` counts when its name is an interface name and it has an
    ``[Interface]`` section. A profile that another config links to (RaspAP's
    ``wg0.conf -> client.conf``) is shown once, under the link's name. With a
    ``cache``, a file unchanged since the last call is not parsed again.
    """
    try:
        real = resolve_under(root, folder)
        with os.scandir(real) as it:
            entries = sorted(itertools.islice(it, MAX_ENTRIES), key=lambda e: e.name)
    except FileNotFoundError:
        if cache is not None:
            cache.keep({})
        return {}, None
    except OSError as exc:
        if cache is not None:
            cache.keep({})
        return {}, f"cannot read {CONFIG_DIR}: {describe(exc)}"
    found: dict[str, ConfigFile] = {}
    linked: set[str] = set()
    problems: list[str] = []
    seen: dict[Path, tuple[StatKey, wgconfig.WgConfig]] = {}
    for entry in entries:
        name, dot, ext = entry.name.rpartition(".")
        if not dot or ext != "conf" or entry.name.startswith(".") or not INTERFACE_NAME.match(name):
            continue
        try:
            path = resolve_under(root, Path(entry.path))
            if path.parent == real and path.name != entry.name:
                linked.add(path.name)
            if cache is None:
                parsed = wgconfig.parse(decode(read_bytes(path)))
            else:
                parsed = cache.read(path, seen)
        except (IsADirectoryError, FileNotFoundError):
            continue
        except OSError as exc:
            problems.append(f"cannot read {CONFIG_DIR}/{entry.name}: {describe(exc)}")
            continue
        if parsed.interface is not None:
            found[name] = ConfigFile(name, entry.name, path, parsed)
    if cache is not None:
        cache.keep(seen)
    for file_name in linked:
        found.pop(file_name.removesuffix(".conf"), None)
    return found, "; ".join(problems) or None

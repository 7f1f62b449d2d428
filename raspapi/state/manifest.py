"""What each plugin implemented when it last loaded: its hooks and its routes.

The daemon answers before every plugin is imported (``create_app(deferred=True)``).
To know which plugins a request needs, it reads what each plugin was at its
last full load, kept in ``plugins.json`` in the state folder. An entry counts
only while its plugin's files are unchanged (the ``signature``: sizes and
modification times); a plugin without a valid entry is *unknown*, and is
loaded before anything that may need it. The file is only a hint for the
order of loading: answers never depend on it being right (see
``PluginManager.needed_for``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from raspapi.host.files import atomic_write

FILE_NAME = "plugins.json"
#: Bumped when the file's meaning changes: an older file is then ignored.
FORMAT = 1
#: A manifest larger than this is not ours to trust (the built-in plugins: about 9 kB).
MAX_BYTES = 1 << 20


class Entry(NamedTuple):
    """One plugin as it last loaded."""

    signature: str
    hooks: frozenset[str]
    #: ``(methods, path)`` of each route, as routed (namespaced or at the root).
    routes: tuple[tuple[frozenset[str], str], ...]


def read(path: Path) -> dict[str, Entry]:
    """The entries in ``path``; none when it is missing, too large or not ours."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return {}
        document = json.loads(data)
        if document.get("format") != FORMAT:
            return {}
        return {name: _entry(value) for name, value in document["plugins"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _entry(value: Any) -> Entry:
    routes = tuple((frozenset(map(str, methods)), str(p)) for methods, p in value["routes"])
    return Entry(str(value["signature"]), frozenset(map(str, value["hooks"])), routes)


def write(path: Path, entries: Mapping[str, Entry]) -> None:
    """Replace ``path`` with ``entries`` (atomically; blocking: call from a thread)."""
    document = {
        "format": FORMAT,
        "plugins": {
            name: {
                "signature": entry.signature,
                "hooks": sorted(entry.hooks),
                "routes": [[sorted(methods), p] for methods, p in entry.routes],
            }
            for name, entry in sorted(entries.items())
        },
    }
    atomic_write(path, json.dumps(document, separators=(",", ":")).encode(), mode=0o644)


def signature(version: str, location: Path) -> str | None:
    """A plugin's version and files (``location``: a module file or a package
    folder), as sizes and modification times; None when they cannot be read."""
    parts = [version]
    try:
        if location.is_dir():
            _describe_folder(str(location), "", parts)
        else:
            st = os.stat(location)
            parts.append(f"{location.name}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        return None
    return "|".join(parts)


def _describe_folder(folder: str, prefix: str, parts: list[str]) -> None:
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    _describe_folder(entry.path, f"{prefix}{entry.name}/", parts)
            elif entry.name.endswith(".py"):
                st = entry.stat()
                parts.append(f"{prefix}{entry.name}:{st.st_size}:{st.st_mtime_ns}")

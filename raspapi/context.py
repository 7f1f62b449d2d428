"""What a plugin is handed: settings, paths under the root, runner, cache, logger."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from raspapi.cache import Cache
from raspapi.runner import CommandRunner
from raspapi.settings import Settings
from raspapi.storage import Store


class Hooks(Protocol):
    """Other plugins' contributions, for a plugin that gathers them."""

    async def system_fields(self) -> dict[str, Any]: ...


@dataclass
class PluginContext:
    """One per plugin; passed to every hook as ``ctx``."""

    name: str
    settings: Settings
    runner: CommandRunner
    cache: Cache
    logger: logging.Logger
    hooks: Hooks
    _stores: dict[str, Store] = field(default_factory=dict, repr=False)

    def path(self, path: str | Path) -> Path:
        """``path`` (absolute, as on the machine) resolved under RASPAPI_ROOT."""
        text = str(path)
        if not text.startswith("/"):
            raise ValueError(f"system paths are absolute: {text!r}")
        return self.settings.root / text.lstrip("/")

    def read_text(self, path: str | Path, *, limit: int = 1 << 20) -> str | None:
        """A small system file's text (at most ``limit`` bytes), None if absent.

        Blocking: call it from a cache loader or another thread, never from a
        handler directly.
        """
        try:
            with open(self.path(path), "rb") as fh:
                return fh.read(limit).decode("utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            return None

    def store(self, migrations: Sequence[str] = (), *, name: str | None = None) -> Store:
        """The plugin's SQLite database in the state folder (``<name>.db``),
        opened on first use with ``migrations`` applied; closed at shutdown."""
        key = name or self.name
        if key not in self._stores:
            path = self.settings.state_dir / f"{key}.db"
            self._stores[key] = Store(path, migrations)
        return self._stores[key]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()

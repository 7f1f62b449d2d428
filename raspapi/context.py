"""What a plugin is handed (settings, paths under the root, runner, cache, logger),
and what it answers about its health (:class:`Status`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from raspapi.events.bus import EventBus
from raspapi.host.files import open_regular
from raspapi.host.runner import CommandRunner
from raspapi.settings import Settings
from raspapi.state.cache import Cache
from raspapi.state.storage import Store

if TYPE_CHECKING:
    from raspapi.security.audit import AuditLog

T = TypeVar("T")
_SERVICE = "__service__"
#: The longest option value read (a bound on what a .env line can make us parse).
MAX_OPTION_CHARS = 4096
#: Paths ``PluginContext.path`` keeps resolved, at most (a plugin reads a few dozen).
MAX_RESOLVED_PATHS = 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class OptionError(ValueError):
    """A plugin option's value is not of its type or out of its range; the
    message names the variable (the plugin is then marked failed with it)."""


class Hooks(Protocol):
    """Other plugins' contributions, for a plugin that gathers them.

    ``gather("raspapi_<hook>", **args)`` calls any hook and answers
    ``{plugin: result}``; the others merge a hook's results as their
    hookspecs say (each is named after its hook: a test checks it).
    """

    async def gather(self, hook: str, **args: Any) -> dict[str, Any]: ...

    async def system_fields(self) -> dict[str, Any]: ...

    async def stations(self) -> list[dict[str, Any]]: ...

    async def station_action(self, action: str, mac: str) -> dict[str, str | None]: ...

    async def samples(
        self, then: Callable[[dict[str, float]], object] | None = None
    ) -> dict[str, float]: ...


class PluginContext:
    """One per plugin; passed to every hook as ``ctx``.

    A plain class (not a dataclass, which compiles its methods at every
    start: a few ms each on a Pi, before the first answer)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        runner: CommandRunner,
        cache: Cache,
        logger: logging.Logger,
        hooks: Hooks,
        *,
        events: EventBus | None = None,
        audit_log: AuditLog | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.runner = runner
        self.cache = cache
        self.logger = logger
        self.hooks = hooks
        #: The plugin's own in-memory state (previous samples, timers...).
        self.state: dict[str, Any] = {}
        #: The daemon's event bus: ``ctx.events.publish("thermal.throttling", {...})``
        #: reaches every ``GET /api/v1/events`` stream; ``ctx.events.watch(fn)``
        #: calls ``fn`` every few seconds while a stream is open.
        self.events = events if events is not None else EventBus()
        #: The daemon's audit log, set by the app (None in a bare context).
        self.audit_log = audit_log
        self._stores: dict[str, Store] = {}
        #: ``path()``'s answers, by path, for ``_resolved_root``: each interval's
        #: samples resolve the same few dozen paths, and pathlib's join cost a
        #: fifth of their work. Cleared past :data:`MAX_RESOLVED_PATHS`.
        self._resolved: dict[str, Path] = {}
        self._resolved_root: Path | None = None

    def __repr__(self) -> str:
        return f"PluginContext(name={self.name!r})"

    def audit(self, event: str, detail: str) -> None:
        """Record what the plugin did on its own (no request behind it) in the
        audit log, e.g. ``ctx.audit("usage.quota_exceeded", "blocked ...")``.
        Never put a key or a secret here."""
        if self.audit_log is not None:
            self.audit_log.record_event(self.name, event, detail)

    def path(self, path: str | Path) -> Path:
        """``path`` (absolute, as on the machine) resolved under RASPAPI_ROOT."""
        text = path if isinstance(path, str) else str(path)
        root = self.settings.root
        if self._resolved_root is not root:
            self._resolved, self._resolved_root = {}, root
        found = self._resolved.get(text)
        if found is None:
            if not text.startswith("/"):
                raise ValueError(f"system paths are absolute: {text!r}")
            found = root / text.lstrip("/")
            if len(self._resolved) >= MAX_RESOLVED_PATHS:
                self._resolved.clear()
            self._resolved[text] = found
        return found

    def read_text(self, path: str | Path, *, limit: int = 1 << 20) -> str | None:
        """A small system file's text (at most ``limit`` bytes), None if absent.

        Only regular files are read (a FIFO or device in its place would hang
        the reading thread). Blocking: call it from a cache loader or another
        thread, never from a handler directly.
        """
        fh = open_regular(self.path(path))
        if fh is None:
            return None
        try:
            with fh:
                data = fh.read(limit)
        except OSError:
            # Unreadable, or a sysfs attribute the driver refuses (EINVAL from
            # a down link's "speed"): all mean "no value".
            return None
        return data.decode("utf-8", errors="replace")

    def option(
        self,
        name: str,
        type: type[T],
        default: T,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> T:
        """The plugin's option ``RASPAPI_<PLUGIN>_<NAME>`` (process environment,
        else the .env file) as ``type`` (``int``, ``float``, ``bool`` or ``str``),
        ``default`` when unset or blank. ``min``/``max`` bound a number (a
        string's length). Raises :class:`OptionError` naming the variable."""
        var = f"RASPAPI_{self.name}_{name}".upper().replace("-", "_")
        raw = (self.settings.option(var) or "").strip()
        if not raw:
            return default
        low = "" if min is None else f"{min:g}"
        high = "" if max is None else f"{max:g}"
        bounds = (
            f" from {low} to {high}"
            if low and high
            else (f" of at least {low}" if low else (f" of at most {high}" if high else ""))
        )
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        if len(raw) > MAX_OPTION_CHARS:
            raise OptionError(f"{var} is longer than {MAX_OPTION_CHARS} characters")
        value: Any
        if type is bool:
            if raw.lower() not in _TRUE | _FALSE:
                raise OptionError(f"{var}={shown!r} is not one of yes/no, true/false, on/off, 1/0")
            return cast(T, raw.lower() in _TRUE)
        if type is str:
            value, measure, what = raw, len(raw), "text"
        elif type is int or type is float:
            what = "a whole number" if type is int else "a number"
            try:
                value = int(raw) if type is int else float(raw)
            except ValueError:
                raise OptionError(f"{var}={shown!r} is not {what}{bounds}") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise OptionError(f"{var}={shown!r} is not {what}{bounds}")
            measure = value
        else:
            raise TypeError(f"option type must be int, float, bool or str, not {type!r}")
        if (min is not None and measure < min) or (max is not None and measure > max):
            if type is str:
                raise OptionError(f"{var} must be{bounds.replace(' of', '')} characters long")
            raise OptionError(f"{var}={shown!r} is not {what}{bounds}")
        return cast(T, value)

    def service(self, factory: Callable[[PluginContext], T]) -> T:
        """The plugin's one service object for this app, made by ``factory(ctx)``
        on first use. (A plugin module is imported once, but every app has its
        own context: keep per-app state here, never in module globals.)"""
        service = self.state.get(_SERVICE)
        if service is None:
            service = self.state[_SERVICE] = factory(self)
        return cast(T, service)

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


#: A plugin's health: ok, degraded (serving, but a request handler raised lately),
#: unavailable (its hardware or program is absent) or failed.
State = Literal["ok", "degraded", "unavailable", "failed", "disabled"]


@dataclass(frozen=True)
class Status:
    state: State
    reason: str | None = None
    #: Facts a plugin adds to ``/ready`` (interface names, versions, counts).
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **details: Any) -> Status:
        return cls("ok", None, details)

    @classmethod
    def unavailable(cls, reason: str, **details: Any) -> Status:
        return cls("unavailable", reason, details)

    @classmethod
    def failed(cls, reason: str) -> Status:
        return cls("failed", reason)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "reason": self.reason}
        if self.details:
            out["details"] = self.details
        return out

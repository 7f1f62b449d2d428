"""The public plugin API: everything a plugin may import from raspapi, in one place.

A plugin (built-in or third-party) imports from here and nowhere else in
raspapi; the rest of the package is internal and may change between releases.
``tests/test_plugin_api.py`` holds the built-in plugins to this.

The admin page's :class:`Panel` and :class:`Bar` are imported when first
asked for (PEP 562): no plugin on the way to the first answers uses them,
and their module is a few hundredths of a second of a Pi's start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raspapi import hookimpl
from raspapi.context import OptionError, PluginContext, Status
from raspapi.host.files import atomic_write, fsync_dir, open_regular
from raspapi.host.runner import (
    CommandError,
    CommandFailed,
    CommandNotFound,
    CommandResult,
    CommandRunner,
    CommandTimeout,
    OutputTooLarge,
)
from raspapi.host.systemd import Action, Systemd, UnitState, describe_failure
from raspapi.host.wpactrl import (
    ControlSocket,
    CtrlError,
    CtrlEvent,
    CtrlFailed,
    CtrlTimeout,
    CtrlUnavailable,
    EventMonitor,
    Station,
    close_all,
    is_mac,
    parse_pairs,
)
from raspapi.http.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)
from raspapi.http.routing import ApiRoute, Query, parse_int, read_json
from raspapi.http.timefmt import parse_rfc3339, parse_when, rfc3339, rfc3339_ms
from raspapi.security.audit import note
from raspapi.security.auth import Principal, is_admin, key_from_headers, principal
from raspapi.security.keystore import KeyStore
from raspapi.state.storage import Store, transaction

if TYPE_CHECKING:
    from raspapi.admin.panels import Bar, Panel


def __getattr__(name: str) -> Any:
    """``Bar`` and ``Panel``, from the admin page's module (imported when first asked for)."""
    if name in ("Bar", "Panel"):
        from raspapi.admin import panels

        return getattr(panels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Action",
    "ApiError",
    "ApiRoute",
    "BadRequest",
    "Bar",
    "CommandError",
    "CommandFailed",
    "CommandNotFound",
    "CommandResult",
    "CommandRunner",
    "CommandTimeout",
    "Conflict",
    "ControlSocket",
    "CtrlError",
    "CtrlEvent",
    "CtrlFailed",
    "CtrlTimeout",
    "CtrlUnavailable",
    "EventMonitor",
    "Forbidden",
    "Invalid",
    "KeyStore",
    "NotFound",
    "OptionError",
    "OutputTooLarge",
    "Panel",
    "PluginContext",
    "Principal",
    "Query",
    "Station",
    "Status",
    "Store",
    "Systemd",
    "Unauthorized",
    "Unavailable",
    "UnitState",
    "atomic_write",
    "close_all",
    "describe_failure",
    "fsync_dir",
    "hookimpl",
    "is_admin",
    "is_mac",
    "key_from_headers",
    "note",
    "open_regular",
    "parse_int",
    "parse_pairs",
    "parse_rfc3339",
    "parse_when",
    "principal",
    "read_json",
    "rfc3339",
    "rfc3339_ms",
    "transaction",
]

"""Every hook a raspapi plugin can implement.

A plugin is a module (or object) with functions named after these hooks and
marked ``@raspapi.hookimpl``. Each hook takes only the arguments it names.
``ctx`` is the plugin's own :class:`raspapi.context.PluginContext`. A hook may
be a coroutine function where the docstring says "may be async".
"""

from __future__ import annotations

from typing import Any

import pluggy
from starlette.routing import Route

from raspapi.context import PluginContext
from raspapi.status import Status

hookspec = pluggy.HookspecMarker("raspapi")


@hookspec
def raspapi_routes(ctx: PluginContext) -> list[Route] | None:
    """Called once while the app is built. Return the plugin's own routes, with
    paths relative to ``/api/v1/<plugin name>`` (``"/"`` is the namespace itself).
    Use :class:`raspapi.routing.ApiRoute` to declare the scope a key needs
    (default ``read``), query parameters and response schema."""


@hookspec
def raspapi_legacy_routes(ctx: PluginContext) -> list[Route] | None:
    """Called once while the app is built. Return RaspAP-compatible routes at
    the root (``/system``, ``/ap``...), answering with RaspAP's JSON shapes.
    Errors on these routes keep RaspAP's bodies (``{"detail": ...}``)."""


@hookspec
def raspapi_startup(ctx: PluginContext) -> None:
    """Called when the daemon starts serving; may be async. Open sockets, start
    background tasks. Raising marks the plugin ``failed``; the rest serves."""


@hookspec
def raspapi_shutdown(ctx: PluginContext) -> None:
    """Called when the daemon stops; may be async. Close what startup opened."""


@hookspec
def raspapi_status(ctx: PluginContext) -> Status | None:
    """The plugin's self-check; may be async. Return ``Status.ok()`` or
    ``Status.unavailable(reason)`` when its hardware or program is absent
    (its ``/api/v1`` routes then answer 503 with that reason). Called for
    ``/ready``, ``raspapi check`` and before ``/api/v1`` requests (cached)."""


@hookspec
def raspapi_system_fields(ctx: PluginContext) -> dict[str, Any] | None:
    """Called for RaspAP's ``GET /system``; may be async. Return the fields
    this plugin owns, e.g. ``{"systemTemperature": 48.3}``. Only RaspAP's 14
    keys are used, each converted to RaspAP's type."""

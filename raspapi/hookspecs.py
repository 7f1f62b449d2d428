"""Every hook a raspapi plugin can implement.

A plugin is a module (or object) with functions named after these hooks and
marked ``@raspapi.hookimpl``. Each hook takes only the arguments it names.
``ctx`` is the plugin's own :class:`raspapi.context.PluginContext`. A hook may
be a coroutine function where the docstring says "may be async".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy
from starlette.routing import Route

from raspapi.context import PluginContext, Status

if TYPE_CHECKING:
    from raspapi.admin.panels import Panel  # imported when the admin page gathers panels

hookspec = pluggy.HookspecMarker("raspapi")


@hookspec
def raspapi_routes(ctx: PluginContext) -> list[Route] | None:
    """Called once while the app is built. Return the plugin's own routes, with
    paths relative to ``/api/v1/<plugin name>`` (``"/"`` is the namespace itself).
    Use :class:`raspapi.http.routing.ApiRoute` to declare the scope a key needs
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


@hookspec
def raspapi_stations(ctx: PluginContext) -> list[dict[str, Any]] | None:
    """Called when a plugin gathers Wi-Fi stations (``ctx.hooks.stations()``);
    may be async. A plugin that runs access points returns the stations
    associated with them now, one dict each with at least ``"mac"``
    (lower-case ``aa:bb:cc:dd:ee:ff``) and ``"interface"``, plus what it knows:
    ``signal_dbm``, ``rx_bytes``, ``tx_bytes`` (as the access point counts
    them), ``rx_bitrate_kbps``, ``tx_bitrate_kbps``, ``connected_seconds``,
    ``inactive_ms``. Serve it from a cache: dashboards poll it every second."""


@hookspec
def raspapi_station_action(ctx: PluginContext, action: str, mac: str) -> bool | None:
    """Called to act on a Wi-Fi station (``ctx.hooks.station_action(action,
    mac)``); may be async. ``action`` is ``"deauthenticate"``, ``"deny"`` (add
    to the access points' deny list) or ``"allow"`` (remove from it); ``mac``
    is validated and lower-case. Apply it on every access point this plugin
    runs and return True; return None when it runs none; raise when it cannot
    (the message is shown to the caller)."""


@hookspec
def raspapi_admin_panels(ctx: PluginContext) -> Panel | list[Panel] | None:
    """Called when the admin page is shown; may be async. Return the
    :class:`raspapi.admin.page.panels.Panel` (or list of them) to show on the plugin's
    page, ``/admin/plugins/<plugin>``, linked from the status page: a title,
    text, (label, value) rows and links. Values are escaped, never HTML."""


@hookspec
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | None:
    """Called by the history sampler every ``RASPAPI_HISTORY_INTERVAL`` seconds
    (``ctx.hooks.samples()``). Return the plugin's current values as
    ``{name: number}``: dot-separated, group first and unit last, e.g.
    ``cpu.percent``, ``temperature.thermal_zone0.celsius``,
    ``net.wlan0.rx_bytes_per_second`` (letters, digits and ``_.:@+/=-``, at
    most 200). A name that disappears is no longer sampled, its history stays.

    Prefer a plain function: every plain implementation is called in one
    worker thread per interval, one after the other, so it reads its files
    directly (no ``ctx.cache``, no ``asyncio.to_thread``) and an idle
    interval costs the event loop one hand-off in all. Keep it quick (the
    plugins share ``COLLECT_TIMEOUT``, 5 s) and thread-safe towards the
    loop (its own state only). When it needs the loop (a control socket, a
    program), it returns an awaitable instead, awaited on the loop after the
    visit: check cheaply first whether anything can answer (a socket file, an
    interface), and return ``{}`` when nothing can. An ``async``
    implementation runs on the loop, concurrently with the others, as any
    async hook. Either way one that raises or is late is logged once and adds
    nothing."""


@hookspec
def raspapi_metrics(ctx: PluginContext) -> list[Any] | None:
    """Called for each scrape of ``GET /metrics``; may be async. Return
    Prometheus metric families (``prometheus_client.core.GaugeMetricFamily``,
    ``CounterMetricFamily``... built anew each call), named as users already
    graph them (``node_load1``, ``hostapd_station_signal_dbm``). Read through
    ``ctx.cache``: scrapes must not block the event loop."""

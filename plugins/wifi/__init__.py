"""The ``wifi`` plugin: the upstream Wi-Fi network, through wpa_supplicant's control socket.

A travel router joins the upstream network with a second radio (or its only
one, in client mode) run by wpa_supplicant. ``/api/v1/wifi`` shows each
client interface (state, SSID, signal), its known networks and the nearby
ones, and joins a network with an automatic fall-back to the previous one
when the new one does not connect (a mistyped passphrase never costs the
uplink). wpa_supplicant is reached over its control socket
(``ctrl_interface=``, ``/var/run/wpa_supplicant/<interface>`` by default);
``wpa_cli`` is never run. Without one the plugin is ``unavailable`` and says
why (wpa_supplicant stopped, or NetworkManager drives it over D-Bus).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from raspapi.plugin import (
    ApiRoute,
    Panel,
    PluginContext,
    Status,
    hookimpl,
)

from .._handlers import bind
from . import api, schema, telemetry
from .service import Wifi


def _service(ctx: PluginContext) -> Wifi:
    return ctx.service(Wifi)


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    wifi = _service(ctx)
    control: dict[str, Any] = {"scope": "control"}
    return [
        ApiRoute("/", bind(api.overview, wifi), methods=["GET"], response=schema.OVERVIEW),
        ApiRoute(
            "/{interface}/networks",
            bind(api.networks, wifi),
            methods=["GET"],
            response=schema.NETWORKS,
        ),
        ApiRoute(
            "/{interface}/scan",
            bind(api.scan, wifi),
            methods=["GET"],
            response=schema.SCAN,
            query=[schema.REFRESH],
        ),
        ApiRoute(
            "/{interface}/connect",
            bind(api.connect, wifi),
            methods=["POST"],
            body=schema.CONNECT,
            response=schema.CONNECTED,
            **control,
        ),
        ApiRoute(
            "/{interface}/disconnect",
            bind(api.disconnect, wifi),
            methods=["POST"],
            response=schema.ACTION,
            **control,
        ),
        ApiRoute(
            "/{interface}/reconnect",
            bind(api.reconnect, wifi),
            methods=["POST"],
            response=schema.ACTION,
            **control,
        ),
        ApiRoute(
            "/{interface}/networks/{id}",
            bind(api.forget, wifi),
            methods=["DELETE"],
            response=schema.FORGET,
            **control,
        ),
    ]


@hookimpl
def raspapi_startup(ctx: PluginContext) -> None:
    wifi = _service(ctx)
    wifi.start()
    ctx.events.watch(wifi.watch, "wifi.connected")


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _service(ctx).stop()


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    return await _service(ctx).status()


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | Awaitable[dict[str, float]]:
    # Plain: without a wpa_supplicant control socket, {} from the samples' worker thread.
    return telemetry.read_samples(_service(ctx))


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return await telemetry.families(_service(ctx))


@hookimpl
async def raspapi_admin_panels(ctx: PluginContext) -> Panel:
    return await telemetry.panel(_service(ctx))

"""The ``hostapd`` plugin: the access point, through hostapd's control socket.

RaspAP's ``GET /ap``; ``/api/v1/hostapd`` with live status, the parsed
configuration and ``hostapd.service``; control (enable, disable, reload,
restart); configuration changes with an automatic rollback unless confirmed.
It contributes ``hostapdStatus`` to ``/system``, and the stations and the
station actions (deauthenticate, deny, allow) other plugins ask for through
``ctx.hooks`` (the ``clients`` plugin uses them).

hostapd is reached over its control socket (``ctrl_interface=`` in
hostapd.conf, ``/var/run/hostapd/<interface>`` by default); ``hostapd_cli`` is
never run. When hostapd is not running the plugin is ``unavailable`` and its
``/api/v1`` routes answer 503 with the reason; ``/ap`` still answers from the
file.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, schema, telemetry
from .service import Hostapd


def _service(ctx: PluginContext) -> Hostapd:
    return ctx.service(Hostapd)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [
        ApiRoute(
            "/ap", bind(api.legacy_ap, _service(ctx)), methods=["GET"], response=schema.LEGACY_AP
        )
    ]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    hostapd = _service(ctx)
    control: dict[str, Any] = {"methods": ["POST"], "scope": "control", "response": schema.ACTION}
    return [
        ApiRoute("/", bind(api.overview, hostapd), methods=["GET"], response=schema.OVERVIEW),
        ApiRoute(
            "/status", bind(api.live_status, hostapd), methods=["GET"], response=schema.STATUS
        ),
        ApiRoute("/config", bind(api.get_config, hostapd), methods=["GET"], response=schema.CONFIG),
        ApiRoute(
            "/config",
            bind(api.patch_config, hostapd),
            methods=["PATCH"],
            scope="control",
            body=schema.PATCH_BODY,
            response=schema.PATCH,
            when_unavailable=True,
        ),
        ApiRoute(
            "/config/confirm",
            bind(api.confirm, hostapd),
            methods=["POST"],
            scope="control",
            response=schema.CONFIRM,
            when_unavailable=True,
        ),
        ApiRoute("/enable", bind(api.enable, hostapd), **control),
        ApiRoute("/disable", bind(api.disable, hostapd), **control),
        ApiRoute("/reload", bind(api.reload, hostapd), **control),
        # Restarting (and fixing the configuration) is how a stopped AP comes back.
        ApiRoute("/restart", bind(api.restart, hostapd), **control, when_unavailable=True),
    ]


@hookimpl
def raspapi_startup(ctx: PluginContext) -> None:
    _service(ctx).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _service(ctx).stop()


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    return await _service(ctx).status()


@hookimpl
async def raspapi_system_fields(ctx: PluginContext) -> dict[str, Any]:
    return {"hostapdStatus": 1 if await _service(ctx).running() else 0}


@hookimpl
async def raspapi_stations(ctx: PluginContext) -> list[dict[str, Any]]:
    return await _service(ctx).stations()


@hookimpl
async def raspapi_station_action(ctx: PluginContext, action: str, mac: str) -> bool | None:
    return await _service(ctx).station_action(action, mac)


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | Awaitable[dict[str, float]]:
    # Plain: without hostapd's control socket, {} from the samples' worker thread.
    return telemetry.read_samples(_service(ctx))


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return await telemetry.families(_service(ctx))

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

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from . import schema, telemetry
from .service import Hostapd


def _service(ctx: PluginContext) -> Hostapd:
    return ctx.service(Hostapd)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    hostapd = _service(ctx)
    return [ApiRoute("/ap", hostapd.legacy_ap, methods=["GET"], response=schema.LEGACY_AP)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    hostapd = _service(ctx)

    async def enable(request: Request) -> JSONResponse:
        """Enable the access point interface (hostapd's ENABLE)."""
        return JSONResponse(await hostapd.action("enable"))

    async def disable(request: Request) -> JSONResponse:
        """Disable the access point interface (hostapd's DISABLE); hostapd keeps running."""
        return JSONResponse(await hostapd.action("disable"))

    async def reload(request: Request) -> JSONResponse:
        """hostapd's RELOAD: apply the running configuration again (keys, beacons).

        Changes made with `PATCH /api/v1/hostapd/config` are applied at once and
        need no reload; to have hostapd read a hand-edited hostapd.conf, restart it.
        """
        return JSONResponse(await hostapd.action("reload"))

    async def restart(request: Request) -> JSONResponse:
        """Restart hostapd.service (systemctl); hostapd reads hostapd.conf again."""
        return JSONResponse(await hostapd.restart())

    control: dict[str, Any] = {"methods": ["POST"], "scope": "control", "response": schema.ACTION}
    return [
        ApiRoute("/", hostapd.overview, methods=["GET"], response=schema.OVERVIEW),
        ApiRoute("/status", hostapd.live_status, methods=["GET"], response=schema.STATUS),
        ApiRoute("/config", hostapd.get_config, methods=["GET"], response=schema.CONFIG),
        ApiRoute(
            "/config",
            hostapd.patch_config,
            methods=["PATCH"],
            scope="control",
            body=schema.PATCH_BODY,
            response=schema.PATCH,
            when_unavailable=True,
        ),
        ApiRoute(
            "/config/confirm",
            hostapd.confirm,
            methods=["POST"],
            scope="control",
            response=schema.CONFIRM,
            when_unavailable=True,
        ),
        ApiRoute("/enable", enable, **control),
        ApiRoute("/disable", disable, **control),
        ApiRoute("/reload", reload, **control),
        # Restarting (and fixing the configuration) is how a stopped AP comes back.
        ApiRoute("/restart", restart, **control, when_unavailable=True),
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

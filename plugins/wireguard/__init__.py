"""WireGuard: live tunnels and peers, adding and removing peers, and RaspAP's ``/wireguard``.

Live state comes from ``wg show all dump`` (the kernel module and wireguard-go
alike), merged with the wg-quick configs in ``/etc/wireguard``. Private and
preshared keys never appear in an answer, except in the client config handed
out once when a peer is added.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, schema, telemetry
from .service import WireGuard


def _service(ctx: PluginContext) -> WireGuard:
    return ctx.service(WireGuard)


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    wg = _service(ctx)
    control: dict[str, Any] = {"scope": "control"}
    return [
        ApiRoute(
            "/", bind(api.list_all, wg), methods=["GET"], name="interfaces", response=schema.LIST
        ),
        ApiRoute(
            "/{interface}",
            bind(api.one, wg),
            methods=["GET"],
            name="interface",
            response=schema.INTERFACE,
        ),
        ApiRoute(
            "/{interface}/peers",
            bind(api.add_peer, wg),
            methods=["POST"],
            name="add_peer",
            body=schema.ADD_BODY,
            query=[schema.FORMAT],
            response=schema.ADDED,
            status_code=201,
            media_types=("application/json", "text/plain", "image/svg+xml", "image/png"),
            **control,
        ),
        ApiRoute(
            "/{interface}/peers/{public_key:path}",
            bind(api.delete_peer, wg),
            methods=["DELETE"],
            name="delete_peer",
            response=schema.REMOVED,
            **control,
        ),
        ApiRoute(
            "/{interface}/up",
            bind(api.up, wg),
            methods=["POST"],
            name="up",
            response=schema.UNIT,
            **control,
        ),
        ApiRoute(
            "/{interface}/down",
            bind(api.down, wg),
            methods=["POST"],
            name="down",
            response=schema.UNIT,
            **control,
        ),
    ]


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [
        ApiRoute(
            "/wireguard",
            bind(api.legacy, _service(ctx)),
            methods=["GET"],
            name="wireguard",
            response=schema.LEGACY,
        )
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    return await _service(ctx).status()


@hookimpl
def raspapi_startup(ctx: PluginContext) -> None:
    # Checked only while a GET /api/v1/events stream is open.
    wg = _service(ctx)
    ctx.events.watch(lambda: telemetry.watch_handshakes(wg), "wireguard.handshake")


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | Awaitable[dict[str, float]]:
    wg = _service(ctx)
    # Samples are of running interfaces only: with none, not even the configs
    # are read (one look at /sys and /var/run/wireguard per interval, in the
    # samples' worker thread). With one, `wg show` runs on the loop.
    if not wg.interfaces_exist():
        return {}
    return telemetry.samples(wg)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return await telemetry.families(_service(ctx))

"""The ``clients`` plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from raspapi.plugin import BadRequest, read_json

from . import schema
from .service import Clients, legacy_body, legacy_interface_body, v1_body


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def legacy_all(service: Clients, request: Request) -> Response:
    """Clients on the hotspot, as RaspAP's RestAPI answers (counts agree with the list).

    Wireless: the access point's stations. Ethernet: devices with a DHCP
    lease seen on a wired interface. Unknown: devices with a lease still in
    the neighbour table of a wireless interface but no longer associated.
    """
    snapshot = await service.snapshot()
    return _json(snapshot.render(("legacy",), lambda: legacy_body(snapshot.clients)))


async def legacy_interface(service: Clients, request: Request) -> Response:
    """Clients on one interface, as RaspAP's RestAPI answers (unknown: 0 and [])."""
    interface = request.path_params["wireless_interface"]
    snapshot = await service.snapshot()
    return _json(
        snapshot.render(
            ("legacy", interface),
            lambda: legacy_interface_body(snapshot.select(interface, None)),
        )
    )


# -- v1 --


async def list_clients(service: Clients, request: Request) -> Response:
    """Every client: Wi-Fi stations with signal and traffic, and wired clients.

    `rx_*` and `tx_*` are counted by the access point: `rx_bytes` is what it
    received from the station. Bit rates in kbit/s.
    """
    interface = schema.INTERFACE.parse(request)
    kind = schema.CONNECTION_TYPE.parse(request)
    snapshot = await service.snapshot()
    return _json(
        snapshot.render(("v1", interface, kind), lambda: v1_body(snapshot.select(interface, kind)))
    )


async def kick(service: Clients, request: Request) -> JSONResponse:
    """Disconnect a station; with `ban_seconds`, also keep it out for that long.

    The station is deauthenticated. A ban adds the MAC to the access
    points' deny list and lifts it automatically when it runs out (or with
    `DELETE /api/v1/clients/bans/{mac}`). A MAC that is not connected can
    be banned, not kicked (404).
    """
    mac = schema.mac(request.path_params["mac"])
    ban_seconds = schema.ban_seconds(await _optional_json(request))
    return JSONResponse(await service.kick(mac, ban_seconds))


async def list_bans(service: Clients, request: Request) -> JSONResponse:
    """MACs kept off the access points, and when each ban is lifted."""
    return JSONResponse(await service.list_bans())


async def delete_ban(service: Clients, request: Request) -> JSONResponse:
    """Lift a ban now."""
    mac = schema.mac(request.path_params["mac"])
    return JSONResponse(await service.delete_ban(mac))


async def _optional_json(request: Request) -> Any:
    try:
        return await read_json(request, max_bytes=4096)
    except BadRequest as exc:
        if exc.code == "body_missing":
            return {}
        raise

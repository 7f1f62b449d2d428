"""The wifi plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import ApiRoute, Query, note, read_json

from . import schema, validate
from .service import Wifi

REFRESH = Query(
    "refresh",
    bool,
    default=False,
    description="Scan now and wait for the results (bounded by RASPAPI_WIFI_SCAN_TIMEOUT).",
)


def routes(wifi: Wifi) -> list[ApiRoute]:
    """The routes under /api/v1/wifi, their handlers bound to the plugin's service."""

    async def interface(request: Request) -> str:
        return await wifi.interface(str(request.path_params["interface"]))

    async def overview(request: Request) -> JSONResponse:
        """Each Wi-Fi client interface: state, SSID, BSSID, band, signal, link speed, IP."""
        return JSONResponse({"ctrl_interface": wifi.ctrl_dir, "interfaces": await wifi.overview()})

    async def networks(request: Request) -> JSONResponse:
        """Known networks (id, SSID, priority, disabled, current); never a passphrase."""
        name = await interface(request)
        return JSONResponse({"interface": name, "networks": await wifi.networks(name)})

    async def scan(request: Request) -> JSONResponse:
        """Nearby networks from the last scan, strongest first.

        `?refresh=true` starts a scan and waits for its results (at most
        RASPAPI_WIFI_SCAN_TIMEOUT seconds); if none come in time, the previous
        results are served with `refreshed: false` and the reason.
        """
        name = await interface(request)
        return JSONResponse(await wifi.scan(name, refresh=bool(REFRESH.parse(request))))

    async def connect(request: Request) -> JSONResponse:
        """Join a network; fall back to the previous one if it does not connect.

        The network is added and selected; wpa_supplicant has
        RASPAPI_WIFI_CONNECT_TIMEOUT seconds to connect. Then it is saved
        (SAVE_CONFIG) and older entries of the same SSID are replaced. If it
        does not connect (a wrong passphrase, an absent network), it is removed
        again and the previous network selected: `result` is `fell_back` (or
        `failed` when there was none), with wpa_supplicant's `reason`.
        """
        name = await interface(request)
        join = validate.join(await read_json(request, max_bytes=4096))
        answer = await wifi.connect(name, join)
        note(request, f"{answer['result']}: {name} to SSID {answer['ssid']!r}")
        return JSONResponse(answer)

    async def disconnect(request: Request) -> JSONResponse:
        """Disconnect from the upstream network (wpa_supplicant's DISCONNECT) until reconnect."""
        name = await interface(request)
        return JSONResponse(await wifi.action(name, "disconnect"))

    async def reconnect(request: Request) -> JSONResponse:
        """Connect again (wpa_supplicant's RECONNECT), to the best known network."""
        name = await interface(request)
        return JSONResponse(await wifi.action(name, "reconnect"))

    async def forget(request: Request) -> JSONResponse:
        """Forget a known network (REMOVE_NETWORK, then SAVE_CONFIG)."""
        name = await interface(request)
        network_id = validate.network_id(str(request.path_params["id"]))
        answer = await wifi.forget(name, network_id)
        note(request, f"forgot network {network_id} ({answer['ssid']!r}) on {name}")
        return JSONResponse(answer)

    control: dict[str, Any] = {"scope": "control"}
    return [
        ApiRoute("/", overview, methods=["GET"], response=schema.OVERVIEW),
        ApiRoute("/{interface}/networks", networks, methods=["GET"], response=schema.NETWORKS),
        ApiRoute("/{interface}/scan", scan, methods=["GET"], response=schema.SCAN, query=[REFRESH]),
        ApiRoute(
            "/{interface}/connect",
            connect,
            methods=["POST"],
            body=schema.CONNECT,
            response=schema.CONNECTED,
            **control,
        ),
        ApiRoute(
            "/{interface}/disconnect",
            disconnect,
            methods=["POST"],
            response=schema.ACTION,
            **control,
        ),
        ApiRoute(
            "/{interface}/reconnect", reconnect, methods=["POST"], response=schema.ACTION, **control
        ),
        ApiRoute(
            "/{interface}/networks/{id}",
            forget,
            methods=["DELETE"],
            response=schema.FORGET,
            **control,
        ),
    ]

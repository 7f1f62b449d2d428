"""The wifi plugin's HTTP handlers (Starlette); the work is in ``service.py``.

The routes are built in ``__init__.py``, each handler bound to the plugin's
service with ``bind``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import note, read_json

from . import schema, validate
from .service import Wifi


async def _interface(service: Wifi, request: Request) -> str:
    return await service.interface(str(request.path_params["interface"]))


async def overview(service: Wifi, request: Request) -> JSONResponse:
    """Each Wi-Fi client interface: state, SSID, BSSID, band, signal, link speed, IP."""
    return JSONResponse(
        {"ctrl_interface": service.ctrl_dir, "interfaces": await service.overview()}
    )


async def networks(service: Wifi, request: Request) -> JSONResponse:
    """Known networks (id, SSID, priority, disabled, current); never a passphrase."""
    name = await _interface(service, request)
    return JSONResponse({"interface": name, "networks": await service.networks(name)})


async def scan(service: Wifi, request: Request) -> JSONResponse:
    """Nearby networks from the last scan, strongest first.

    `?refresh=true` starts a scan and waits for its results (at most
    RASPAPI_WIFI_SCAN_TIMEOUT seconds); if none come in time, the previous
    results are served with `refreshed: false` and the reason.
    """
    name = await _interface(service, request)
    return JSONResponse(await service.scan(name, refresh=bool(schema.REFRESH.parse(request))))


async def connect(service: Wifi, request: Request) -> JSONResponse:
    """Join a network; fall back to the previous one if it does not connect.

    The network is added and selected; wpa_supplicant has
    RASPAPI_WIFI_CONNECT_TIMEOUT seconds to connect. Then it is saved
    (SAVE_CONFIG) and older entries of the same SSID are replaced. If it
    does not connect (a wrong passphrase, an absent network), it is removed
    again and the previous network selected: `result` is `fell_back` (or
    `failed` when there was none), with wpa_supplicant's `reason`.
    """
    name = await _interface(service, request)
    join = validate.join(await read_json(request, max_bytes=4096))
    answer = await service.connect(name, join)
    note(request, f"{answer['result']}: {name} to SSID {answer['ssid']!r}")
    return JSONResponse(answer)


async def disconnect(service: Wifi, request: Request) -> JSONResponse:
    """Disconnect from the upstream network (wpa_supplicant's DISCONNECT) until reconnect."""
    name = await _interface(service, request)
    return JSONResponse(await service.action(name, "disconnect"))


async def reconnect(service: Wifi, request: Request) -> JSONResponse:
    """Connect again (wpa_supplicant's RECONNECT), to the best known network."""
    name = await _interface(service, request)
    return JSONResponse(await service.action(name, "reconnect"))


async def forget(service: Wifi, request: Request) -> JSONResponse:
    """Forget a known network (REMOVE_NETWORK, then SAVE_CONFIG)."""
    name = await _interface(service, request)
    network_id = validate.network_id(str(request.path_params["id"]))
    answer = await service.forget(name, network_id)
    note(request, f"forgot network {network_id} ({answer['ssid']!r}) on {name}")
    return JSONResponse(answer)

"""The hostapd plugin's HTTP handlers (Starlette); the work is in ``service.py``.

Each handler parses the request, calls the service and answers its dict as
JSON; the docstrings are the routes' OpenAPI summaries and descriptions. The
routes are built in ``__init__.py``, each handler bound to the plugin's
service with ``bind``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import is_admin, read_json

from .service import Hostapd


async def legacy_ap(service: Hostapd, request: Request) -> JSONResponse:
    """Access point settings, as RaspAP's RestAPI answers them.

    RaspAP's 17 keys in its order, from a real parse of
    /etc/hostapd/hostapd.conf (comments ignored, the last line of a key
    wins). `frequency_band` ("2.4", "5" or null) comes from the live
    frequency. `wpa_passphrase` is shown to admin keys only ("" otherwise).
    """
    return JSONResponse(await service.legacy_ap(is_admin(request)))


# -- v1 --


async def overview(service: Hostapd, request: Request) -> JSONResponse:
    """The access point: live status, configuration and hostapd.service."""
    return JSONResponse(await service.overview(is_admin(request)))


async def live_status(service: Hostapd, request: Request) -> JSONResponse:
    """hostapd's live status: state, SSID, channel, frequency, stations."""
    return JSONResponse(await service.live_status())


async def get_config(service: Hostapd, request: Request) -> JSONResponse:
    """hostapd.conf, parsed; secrets only for admin keys."""
    return JSONResponse(await service.config_view(is_admin(request)))


async def patch_config(service: Hostapd, request: Request) -> JSONResponse:
    """Change the SSID, passphrase, channel, band, country or hidden flag.

    hostapd.conf is rewritten atomically (every other line kept), the
    running hostapd takes the new settings at once (SET, then DISABLE and
    ENABLE), and a rollback is armed: unless `POST /api/v1/hostapd/config/confirm`
    arrives by `confirm_by`, the previous file is put back and applied.
    """
    return JSONResponse(await service.patch_config(await read_json(request)))


async def confirm(service: Hostapd, request: Request) -> JSONResponse:
    """Keep the last configuration change (cancels its rollback)."""
    return JSONResponse(await service.confirm())


async def enable(service: Hostapd, request: Request) -> JSONResponse:
    """Enable the access point interface (hostapd's ENABLE)."""
    return JSONResponse(await service.action("enable"))


async def disable(service: Hostapd, request: Request) -> JSONResponse:
    """Disable the access point interface (hostapd's DISABLE); hostapd keeps running."""
    return JSONResponse(await service.action("disable"))


async def reload(service: Hostapd, request: Request) -> JSONResponse:
    """hostapd's RELOAD: apply the running configuration again (keys, beacons).

    Changes made with `PATCH /api/v1/hostapd/config` are applied at once and
    need no reload; to have hostapd read a hand-edited hostapd.conf, restart it.
    """
    return JSONResponse(await service.action("reload"))


async def restart(service: Hostapd, request: Request) -> JSONResponse:
    """Restart hostapd.service (systemctl); hostapd reads hostapd.conf again."""
    return JSONResponse(await service.restart())

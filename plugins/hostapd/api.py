"""The hostapd plugin's HTTP handlers (Starlette); the work is in ``service.py``.

Each handler parses the request, calls the service and answers its dict as
JSON; the docstrings are the routes' OpenAPI summaries and descriptions.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import ApiRoute, is_admin, read_json

from . import schema
from .service import Hostapd


def legacy_routes(hostapd: Hostapd) -> list[ApiRoute]:
    """RaspAP's ``GET /ap``, bound to the plugin's service."""

    async def legacy_ap(request: Request) -> JSONResponse:
        """Access point settings, as RaspAP's RestAPI answers them.

        RaspAP's 17 keys in its order, from a real parse of
        /etc/hostapd/hostapd.conf (comments ignored, the last line of a key
        wins). `frequency_band` ("2.4", "5" or null) comes from the live
        frequency. `wpa_passphrase` is shown to admin keys only ("" otherwise).
        """
        return JSONResponse(await hostapd.legacy_ap(is_admin(request)))

    return [ApiRoute("/ap", legacy_ap, methods=["GET"], response=schema.LEGACY_AP)]


def routes(hostapd: Hostapd) -> list[ApiRoute]:
    """The routes under /api/v1/hostapd, bound to the plugin's service."""

    async def overview(request: Request) -> JSONResponse:
        """The access point: live status, configuration and hostapd.service."""
        return JSONResponse(await hostapd.overview(is_admin(request)))

    async def live_status(request: Request) -> JSONResponse:
        """hostapd's live status: state, SSID, channel, frequency, stations."""
        return JSONResponse(await hostapd.live_status())

    async def get_config(request: Request) -> JSONResponse:
        """hostapd.conf, parsed; secrets only for admin keys."""
        return JSONResponse(await hostapd.config_view(is_admin(request)))

    async def patch_config(request: Request) -> JSONResponse:
        """Change the SSID, passphrase, channel, band, country or hidden flag.

        hostapd.conf is rewritten atomically (every other line kept), the
        running hostapd takes the new settings at once (SET, then DISABLE and
        ENABLE), and a rollback is armed: unless `POST /api/v1/hostapd/config/confirm`
        arrives by `confirm_by`, the previous file is put back and applied.
        """
        return JSONResponse(await hostapd.patch_config(await read_json(request)))

    async def confirm(request: Request) -> JSONResponse:
        """Keep the last configuration change (cancels its rollback)."""
        return JSONResponse(await hostapd.confirm())

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
        ApiRoute("/", overview, methods=["GET"], response=schema.OVERVIEW),
        ApiRoute("/status", live_status, methods=["GET"], response=schema.STATUS),
        ApiRoute("/config", get_config, methods=["GET"], response=schema.CONFIG),
        ApiRoute(
            "/config",
            patch_config,
            methods=["PATCH"],
            scope="control",
            body=schema.PATCH_BODY,
            response=schema.PATCH,
            when_unavailable=True,
        ),
        ApiRoute(
            "/config/confirm",
            confirm,
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

"""The ``openvpn`` plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from .service import OpenVpn


async def legacy_overview(service: OpenVpn, request: Request) -> JSONResponse:
    """OpenVPN client configs and logins, and the active ones.

    RaspAP's shape: ``client_configs`` is a count as a string; a missing
    ``client.conf`` or ``login.conf`` link gives "" (RaspAP answered 500).
    """
    return JSONResponse(await service.legacy_overview())


async def legacy_config(service: OpenVpn, request: Request) -> JSONResponse:
    """The lines of one OpenVPN client config (admin keys only: it holds keys).

    ``config`` is a file name in /etc/openvpn/client/ (``client.conf`` is
    the active one); anything else answers a JSON 404.
    """
    name: str = request.path_params["config"]
    return JSONResponse({"client_config": await service.config_lines(name)})


async def overview(service: OpenVpn, request: Request) -> JSONResponse:
    """Profiles, the active one, and the state of the OpenVPN client service.

    ``service`` is ``openvpn-client@client.service`` as systemd reports it;
    null (with ``service_error`` saying why) when systemctl cannot answer.
    """
    return JSONResponse(await service.state())


async def activate(service: OpenVpn, request: Request) -> JSONResponse:
    """Make a profile the active one and restart the OpenVPN client.

    Switches the ``client.conf`` link (and ``login.conf``, when the profile
    has a ``<name>_login.conf``) atomically, then restarts
    ``openvpn-client@client.service``. Answers with the new state. When the
    restart fails the error says so, and that the links were switched.
    """
    name: str = request.path_params["name"]
    return JSONResponse(await service.activate(name))

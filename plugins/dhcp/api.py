"""The dhcp plugin's handlers: thin, the service does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from .service import Dhcp


async def legacy_dhcp(service: Dhcp, request: Request) -> JSONResponse:
    """RaspAP: the wlan0 DHCP range, gateway and name servers."""
    return JSONResponse(await service.legacy())


async def dhcp(service: Dhcp, request: Request) -> JSONResponse:
    """Every DHCP range, static lease and current lease dnsmasq has.

    Ranges and static leases come from /etc/dnsmasq.conf and
    /etc/dnsmasq.d/*.conf (with the file and the interface it serves);
    leases from /var/lib/misc/dnsmasq.leases (`expires_at` is null for
    an infinite lease, `hostname` and `client_id` null when unknown).
    """
    return JSONResponse(await service.api())

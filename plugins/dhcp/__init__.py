"""DHCP: dnsmasq's ranges and static leases, dhcpcd's static router and DNS, current leases.

RaspAP's ``GET /dhcp`` reads the wlan0 range from ``/etc/dnsmasq.d/090_wlan0.conf``
and the gateway and name servers from the wlan0 block of ``/etc/dhcpcd.conf``.
``/api/v1/dhcp`` reports every ``dhcp-range`` and ``dhcp-host`` of every dnsmasq
file, and the leases in dnsmasq's leases file.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._dnsmasq import DNSMASQ_CONF, DNSMASQ_DIR
from .._handlers import bind_lazy
from . import api
from .schema import API_SCHEMA, LEGACY_SCHEMA

if TYPE_CHECKING:
    from .service import Dhcp


def _dhcp(ctx: PluginContext) -> Dhcp:
    # The service module is imported on first use (a request, or the self-check
    # after start), not while the daemon starts.
    from .service import Dhcp

    return ctx.service(Dhcp)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    legacy = bind_lazy(api.legacy_dhcp, functools.partial(_dhcp, ctx))
    return [ApiRoute("/dhcp", legacy, methods=["GET"], response=LEGACY_SCHEMA)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    endpoint = bind_lazy(api.dhcp, functools.partial(_dhcp, ctx))
    return [ApiRoute("/", endpoint, methods=["GET"], response=API_SCHEMA)]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    files = await _dhcp(ctx).files()
    if not files:
        return Status.unavailable(
            f"no dnsmasq configuration ({DNSMASQ_CONF} or {DNSMASQ_DIR}/*.conf)"
        )
    return Status.ok(config_files=len(files))

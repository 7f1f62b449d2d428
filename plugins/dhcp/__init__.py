"""DHCP: dnsmasq's ranges and static leases, dhcpcd's static router and DNS, current leases.

RaspAP's ``GET /dhcp`` reads the wlan0 range from ``/etc/dnsmasq.d/090_wlan0.conf``
and the gateway and name servers from the wlan0 block of ``/etc/dhcpcd.conf``.
``/api/v1/dhcp`` reports every ``dhcp-range`` and ``dhcp-host`` of every dnsmasq
file, and the leases in dnsmasq's leases file.
"""

from __future__ import annotations

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._dnsmasq import DNSMASQ_CONF, DNSMASQ_DIR
from .._handlers import bind
from . import api
from .schema import API_SCHEMA, LEGACY_SCHEMA
from .service import Dhcp


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    legacy = bind(api.legacy_dhcp, ctx.service(Dhcp))
    return [ApiRoute("/dhcp", legacy, methods=["GET"], response=LEGACY_SCHEMA)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [ApiRoute("/", bind(api.dhcp, ctx.service(Dhcp)), methods=["GET"], response=API_SCHEMA)]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    files = await ctx.service(Dhcp).files()
    if not files:
        return Status.unavailable(
            f"no dnsmasq configuration ({DNSMASQ_CONF} or {DNSMASQ_DIR}/*.conf)"
        )
    return Status.ok(config_files=len(files))

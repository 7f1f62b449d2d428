"""The ``clients`` plugin: the devices on the hotspot, and kicking or banning them.

Who is there comes from three sources joined by MAC address:

- Wi-Fi stations, from whichever plugin runs the access points
  (``ctx.hooks.stations()``; the ``hostapd`` plugin), with signal, traffic,
  bit rates and connected time;
- the kernel's neighbour table (``/proc/net/arp``): a device with a DHCP lease
  seen on a wired interface is an ``ethernet`` client; one seen on a wireless
  interface without being a station (it has just left) is ``unknown``;
- dnsmasq's leases (``/var/lib/misc/dnsmasq.leases``): IP, host name, client id.

RaspAP's ``GET /clients`` counts and lists from this one joined view, so its
counts always agree with its list. Kicks and bans go through
``ctx.hooks.station_action()``; a ban is lifted by a timer, and bans are kept
in the state folder so a restart still lifts them on time.
"""

from __future__ import annotations

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, schema
from .service import Clients


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    clients = ctx.service(Clients)
    return [
        ApiRoute(
            "/clients", bind(api.legacy_all, clients), methods=["GET"], response=schema.LEGACY_ALL
        ),
        ApiRoute(
            "/clients/{wireless_interface}",
            bind(api.legacy_interface, clients),
            methods=["GET"],
            response=schema.LEGACY_INTERFACE,
        ),
    ]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    clients = ctx.service(Clients)
    return [
        ApiRoute(
            "/",
            bind(api.list_clients, clients),
            methods=["GET"],
            response=schema.LIST,
            query=[schema.INTERFACE, schema.CONNECTION_TYPE],
        ),
        ApiRoute(
            "/{mac}/kick",
            bind(api.kick, clients),
            methods=["POST"],
            scope="control",
            body=schema.KICK_BODY,
            response=schema.KICK,
        ),
        ApiRoute("/bans", bind(api.list_bans, clients), methods=["GET"], response=schema.BANS),
        ApiRoute(
            "/bans/{mac}",
            bind(api.delete_ban, clients),
            methods=["DELETE"],
            scope="control",
            response=schema.LIFTED,
        ),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await ctx.service(Clients).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await ctx.service(Clients).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    return Status.ok(bans=len(ctx.service(Clients).bans))

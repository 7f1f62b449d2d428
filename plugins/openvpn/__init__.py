"""OpenVPN client profiles: RaspAP's /openvpn routes, a v1 view, and switching profiles.

RaspAP keeps each uploaded profile as ``<name>_client.conf`` (and its
credentials as ``<name>_login.conf``) in /etc/openvpn/client/, and points the
``client.conf`` and ``login.conf`` symlinks at the active pair; the
``openvpn-client@client`` unit runs ``client.conf``. Switching writes the same
absolute link targets RaspAP's GUI writes, each link replaced atomically
(a new link next to it, renamed over the old one), so OpenVPN or a reader never
finds ``client.conf`` missing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind_lazy
from . import api, schema

if TYPE_CHECKING:
    from .service import OpenVpn


def _openvpn(ctx: PluginContext) -> OpenVpn:
    # The service module is imported on first use (a request, or the self-check
    # after start), not while the daemon starts.
    from .service import OpenVpn

    return ctx.service(OpenVpn)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    openvpn = functools.partial(_openvpn, ctx)
    return [
        ApiRoute(
            "/openvpn", bind_lazy(api.legacy_overview, openvpn), response=schema.LEGACY_SCHEMA
        ),
        ApiRoute(
            "/openvpn/{config}",
            bind_lazy(api.legacy_config, openvpn),
            scope="admin",
            response=schema.CONFIG_SCHEMA,
        ),
    ]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    openvpn = functools.partial(_openvpn, ctx)
    return [
        ApiRoute("/", bind_lazy(api.overview, openvpn), response=schema.STATE_SCHEMA),
        ApiRoute(
            "/profiles/{name}/activate",
            bind_lazy(api.activate, openvpn),
            methods=["POST"],
            scope="control",
            response=schema.STATE_SCHEMA,
        ),
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    from .service import FOLDER

    folder = await _openvpn(ctx).read()
    if not folder.exists:
        return Status.unavailable(f"no {FOLDER} folder: the OpenVPN client is not installed")
    return Status.ok(profiles=len(folder.profiles()), active=folder.active_profile())

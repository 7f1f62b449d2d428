"""The ``stats`` plugin: the V6Direct RASPAPI telemetry API, for its clients.

``GET /stats`` (a full snapshot), ``/stats/cpu``, ``/stats/memory``,
``/stats/network?interface=``, ``/stats/node``, ``/stats/history?limit=`` and
``POST /stats/refresh``, with V6Direct's field names, units (MB and GB of
10^6 and 10^9 bytes), rounding and its 30-second cache. Every figure is read
as psutil (which V6Direct uses) computes it, from /proc and /sys under the
root, in a thread; interface addresses come from psutil.net_if_addrs() on the
machine itself, and from ``ip -j address show`` under a fixture root.

Differences, on purpose: CPU use is measured since the previous snapshot
instead of by blocking the request for half a second; the 60-sample history
is kept in the state folder's SQLite instead of ``history.json`` in the
working folder; ``POST /stats/refresh`` needs the ``control`` scope (it
clears the history when ``full`` is true); a wrong key gets RaspAP's 403 body.
V6Direct's ``/`` and ``/health`` are not copied (raspapi has its own).
"""

from __future__ import annotations

import asyncio

from raspapi.plugin import ApiRoute, PluginContext, hookimpl

from .._handlers import bind
from . import api, schema
from .service import Stats


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    stats = ctx.service(Stats)
    return [
        ApiRoute("/stats", bind(api.full, stats), methods=["GET"], response=schema.SNAPSHOT),
        ApiRoute("/stats/cpu", bind(api.cpu, stats), methods=["GET"], response=schema.CPU),
        ApiRoute("/stats/memory", bind(api.memory, stats), methods=["GET"], response=schema.MEMORY),
        ApiRoute(
            "/stats/network",
            bind(api.network, stats),
            methods=["GET"],
            query=[schema.INTERFACE],
            response={"type": "array", "items": schema.INTERFACE_SCHEMA},
        ),
        ApiRoute("/stats/node", bind(api.node, stats), methods=["GET"], response=schema.NODE),
        ApiRoute(
            "/stats/history",
            bind(api.recent, stats),
            methods=["GET"],
            query=[schema.LIMIT],
            response=schema.HISTORY,
        ),
        ApiRoute(
            "/stats/refresh",
            bind(api.refresh, stats),
            methods=["POST"],
            scope="control",
            body=schema.REFRESH_BODY,
            response=schema.REFRESH,
        ),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await asyncio.to_thread(ctx.service(Stats).prime)

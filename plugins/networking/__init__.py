"""Network interfaces: addresses, link state, traffic counters and rates.

RaspAP's ``GET /networking`` (each throughput label filled from the counter its
name says) and ``/api/v1/networking``.

Sources, all under the root: ``/sys/class/net/<iface>/`` for the link
attributes, ``/proc/net/dev`` for the counters (one read for every interface;
``/sys/class/net/<iface>/statistics/`` when an interface is missing there), and
the addresses. /sys holds no address, and /proc/net/fib_trie names no
interface and gives no prefix length per address (nor secondary addresses
apart): on the machine itself (root ``/``) psutil reads them through
getifaddrs(3), without starting a program; under any other root (a fixture
machine) ``ip -j address show`` found there is asked, as getifaddrs can only
see the running kernel.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, telemetry
from .schema import LEGACY_SCHEMA, ONE_SCHEMA, OVERVIEW_SCHEMA
from .service import Networking, self_check


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    legacy = bind(api.legacy, ctx.service(Networking))
    return [ApiRoute("/networking", legacy, response=LEGACY_SCHEMA)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    networking = ctx.service(Networking)
    return [
        ApiRoute("/", bind(api.overview, networking), response=OVERVIEW_SCHEMA),
        ApiRoute("/{interface}", bind(api.one, networking), response=ONE_SCHEMA),
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    status: Status = await ctx.cache.get("status", lambda: self_check(ctx), ttl=10)
    return status


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float]:
    """``net.<interface>.rx_bytes_per_second`` and ``tx_bytes_per_second`` (plain: read
    in the samples' worker thread)."""
    return telemetry.samples(ctx)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    """node_exporter's ``node_network_*`` counters (every /proc/net/dev column) and its
    netclass facts (up, info, MTU, speed, carrier), per interface."""
    return await telemetry.metrics(ctx)

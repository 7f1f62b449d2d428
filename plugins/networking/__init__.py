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

import functools
from typing import TYPE_CHECKING, Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind_lazy
from . import api
from .schema import LEGACY_SCHEMA, ONE_SCHEMA, OVERVIEW_SCHEMA

if TYPE_CHECKING:
    from .service import Networking

# service.py and telemetry.py are imported on first use (a request, a sample,
# a scrape, the self-check after start), not while the daemon starts.


def _networking(ctx: PluginContext) -> Networking:
    from .service import Networking

    return ctx.service(Networking)


def _self_check(ctx: PluginContext) -> Status:
    from .service import self_check

    return self_check(ctx)


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    legacy = bind_lazy(api.legacy, functools.partial(_networking, ctx))
    return [ApiRoute("/networking", legacy, response=LEGACY_SCHEMA)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    networking = functools.partial(_networking, ctx)
    return [
        ApiRoute("/", bind_lazy(api.overview, networking), response=OVERVIEW_SCHEMA),
        ApiRoute("/{interface}", bind_lazy(api.one, networking), response=ONE_SCHEMA),
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    status: Status = await ctx.cache.get("status", lambda: _self_check(ctx), ttl=10)
    return status


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float]:
    """``net.<interface>.rx_bytes_per_second`` and ``tx_bytes_per_second`` (plain: read
    in the samples' worker thread)."""
    from . import telemetry

    return telemetry.samples(ctx)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    """node_exporter's ``node_network_*`` counters (every /proc/net/dev column) and its
    netclass facts (up, info, MTU, speed, carrier), per interface."""
    from . import telemetry

    return await telemetry.metrics(ctx)

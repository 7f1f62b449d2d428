"""The ``system`` plugin: RaspAP's ``GET /system`` and the fuller ``GET /api/v1/system``.

Everything is read from /proc, /sys and /etc under the configured root (some
of it through psutil, see ``probe.py`` and ``processes.py``), in cache loaders
(so in a thread, and at most once per cache period however many dashboards
poll). Other plugins add their RaspAP fields (``systemTemperature``,
``hostapdStatus``) through ``raspapi_system_fields``.

Layout: the hooks here; ``service.py`` the domain; ``api.py`` the handlers;
``schema.py`` the schemas and the ``limit`` query; ``telemetry.py`` the
history samples and metrics; ``probe.py``, ``sampler.py`` (CPU),
``processes.py`` (the process table, imported on first use), ``board.py`` and
``node.py`` read and decode the machine.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, hookimpl

from .._handlers import bind
from . import api, telemetry
from .schema import LEGACY, LIMIT, OVERVIEW
from .service import SystemService


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    legacy = bind(api.legacy, ctx.service(SystemService))
    return [ApiRoute("/system", legacy, methods=["GET"], response=LEGACY)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    overview = bind(api.overview, ctx.service(SystemService))
    return [ApiRoute("/", overview, methods=["GET"], response=OVERVIEW, query=[LIMIT])]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await ctx.service(SystemService).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await ctx.service(SystemService).stop()


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float]:
    # Plain: called in the samples' one worker-thread visit, it reads /proc directly.
    return telemetry.samples(ctx, ctx.service(SystemService).history_cpu)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    # A scrape after the cache period gets the last refresh's families (rendered once)
    # while the next one runs in the background, as hostapd's and wireguard's do.
    families: list[Any] = await ctx.cache.get(
        "metrics", lambda: telemetry.families(ctx), stale=2 * ctx.cache.ttl
    )
    return families

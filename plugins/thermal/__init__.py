"""The ``thermal`` plugin: temperatures, and a Raspberry Pi's throttling flags.

Reads every thermal zone (/sys/class/thermal) and hwmon temperature sensor
(/sys/class/hwmon). On a Pi, the firmware's throttling and under-voltage flags
come from ``vcgencmd get_throttled`` or, when that program is missing or
cannot reach the firmware (the service user is not in the ``video`` group),
from the firmware driver's sysfs file. Contributes RaspAP's
``systemTemperature`` (thermal_zone0) to ``GET /system``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, schema
from .service import Thermal


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    handler = bind(api.thermal, ctx.service(Thermal))
    return [ApiRoute("/", handler, methods=["GET"], response=schema.RESPONSE)]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    return await ctx.service(Thermal).status()


@hookimpl
async def raspapi_system_fields(ctx: PluginContext) -> dict[str, Any]:
    """RaspAP's systemTemperature: thermal_zone0 in degrees Celsius, 2 decimals."""
    return await ctx.service(Thermal).system_fields()


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | Awaitable[dict[str, float]]:
    """``temperature.<zone>.celsius``, ``temperature.<hwmonN>.<label>.celsius`` and
    ``throttling.<flag>`` (1 while the firmware's flag is set, else 0). Plain: read
    in the samples' worker thread, unless ``vcgencmd`` is to be run (on the loop)."""
    return ctx.service(Thermal).read_samples()


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    """node_exporter's ``node_thermal_zone_temp`` and ``node_hwmon_temp_celsius``, and
    the firmware's throttling flags, now and since boot."""
    return await ctx.service(Thermal).metrics()


@hookimpl
def raspapi_startup(ctx: PluginContext) -> None:
    # Checked only while a GET /api/v1/events stream is open.
    ctx.events.watch(ctx.service(Thermal).watch_throttling, "thermal.throttling")

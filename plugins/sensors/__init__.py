"""The ``sensors`` plugin: time series pushed by devices on the hotspot.

ESP8266/ESP32 sensors push batches of points to ``/api/v1/sensors`` with a key
of the ``ingest`` scope; dashboards read them back downsampled (min, avg and
max per step) or as CSV with a ``read`` key. The routes of timeseries-api
(``/series``, ``/series/new``, ``/point/new``...) are served too, so sketches
written for it post here unchanged (see ``compat.py``).

Points live in ``sensors.db`` in the state folder (SQLite, WAL), clustered by
series and time, with 10-second and 5-minute rollups written in each batch's
own transaction; a batch is stored whole or not at all. A background task
deletes points past their series' retention, a bounded amount per run.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from . import schema
from .compat import Compat
from .service import CURSOR, FIELDS, LIMIT, ORDER, SINCE, STEP, STEPS, UNTIL, Sensors


def _sensors(ctx: PluginContext) -> Sensors:
    sensors = ctx.state.get("sensors")
    if sensors is None:
        sensors = ctx.state["sensors"] = Sensors(ctx)
    assert isinstance(sensors, Sensors)
    return sensors


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    s = _sensors(ctx)
    return [
        ApiRoute("/series", s.list_series, methods=["GET"], response=schema.SERIES_LIST),
        ApiRoute(
            "/series",
            s.create_series,
            methods=["POST"],
            scope="ingest",
            body=schema.CREATE,
            response=schema.SERIES,
            status_code=201,
        ),
        ApiRoute("/series/{id}", s.get_series, methods=["GET"], response=schema.SERIES),
        ApiRoute(
            "/series/{id}",
            s.delete_series,
            methods=["DELETE"],
            scope="ingest",
            response=schema.DELETED,
        ),
        ApiRoute(
            "/series/{id}/points",
            s.push,
            methods=["POST"],
            scope="ingest",
            body=schema.PUSH,
            response=schema.PUSHED,
            status_code=201,
        ),
        ApiRoute(
            "/series/{id}/points",
            s.points,
            methods=["GET"],
            query=[SINCE, UNTIL, STEP, STEPS, FIELDS, LIMIT, CURSOR, ORDER],
            response=schema.POINTS,
        ),
        ApiRoute(
            "/series/{id}/points.csv",
            s.export,
            methods=["GET"],
            query=[SINCE, UNTIL, STEP, STEPS, FIELDS],
            response=schema.CSV,
            media_types=("text/csv",),
        ),
    ]


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    return Compat(_sensors(ctx)).routes()


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await _sensors(ctx).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _sensors(ctx).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    s = _sensors(ctx)
    if s.db is None:
        return Status.unavailable("the sensors store is not open yet")
    return Status.ok(
        series=len(s.db.series),
        points_ingested=s.ingested,
        batches_rejected=s.rejected,
        points_pruned=s.pruned,
    )


@hookimpl
def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    s = _sensors(ctx)
    return [
        GaugeMetricFamily(
            "raspapi_sensors_series", "Sensor series stored", value=len(s.db.series) if s.db else 0
        ),
        CounterMetricFamily(
            "raspapi_sensors_points_ingested", "Points stored since start", value=s.ingested
        ),
        CounterMetricFamily(
            "raspapi_sensors_batches_rejected",
            "Batches refused for bad input since start",
            value=s.rejected,
        ),
        CounterMetricFamily(
            "raspapi_sensors_points_pruned",
            "Points deleted by retention since start",
            value=s.pruned,
        ),
    ]

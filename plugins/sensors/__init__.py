"""The ``sensors`` plugin: time series pushed by devices on the hotspot.

ESP8266/ESP32 sensors push batches of points to ``/api/v1/sensors`` with a key
of the ``ingest`` scope; dashboards read them back downsampled (min, avg and
max per step) or as CSV with a ``read`` key. The routes of timeseries-api
(``/series``, ``/series/new``, ``/point/new``...) are served too, so sketches
written for it post here unchanged (see ``compat.py``).

Layout: the hooks here; ``service.py`` the domain (no HTTP), ``api.py`` and
``compat.py`` the thin handlers, ``schema.py`` the schemas and query
parameters, ``validate.py`` the input checks, ``store.py`` the SQLite tables.

Points live in ``sensors.db`` in the state folder (SQLite, WAL), clustered by
series and time, with 10-second and 5-minute rollups written in each batch's
own transaction; a batch is stored whole or not at all. A background task
deletes points past their series' retention, a bounded amount per run.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._handlers import bind
from . import api, compat, schema
from .service import Sensors


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    s = ctx.service(Sensors)
    return [
        ApiRoute("/series", bind(api.list_series, s), methods=["GET"], response=schema.SERIES_LIST),
        ApiRoute(
            "/series",
            bind(api.create_series, s),
            methods=["POST"],
            scope="ingest",
            body=schema.CREATE,
            response=schema.SERIES,
            status_code=201,
        ),
        ApiRoute("/series/{id}", bind(api.get_series, s), methods=["GET"], response=schema.SERIES),
        ApiRoute(
            "/series/{id}",
            bind(api.delete_series, s),
            methods=["DELETE"],
            scope="ingest",
            response=schema.DELETED,
        ),
        ApiRoute(
            "/series/{id}/points",
            bind(api.push, s),
            methods=["POST"],
            scope="ingest",
            body=schema.PUSH,
            response=schema.PUSHED,
            status_code=201,
        ),
        ApiRoute(
            "/series/{id}/points",
            bind(api.points, s),
            methods=["GET"],
            query=[*schema.POINTS_QUERY, schema.LIMIT, schema.CURSOR, schema.ORDER],
            response=schema.POINTS,
        ),
        ApiRoute(
            "/series/{id}/points.csv",
            bind(api.export, s),
            methods=["GET"],
            query=schema.POINTS_QUERY,
            response=schema.CSV,
            media_types=("text/csv",),
        ),
    ]


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    """timeseries-api's routes (``compat.py``)."""
    s = ctx.service(Sensors)
    # timeseries-api's readers (its viewer, its plotter, its own test) send no key.
    reads = None if s.config.public_read else "read"
    return [
        ApiRoute(
            "/series",
            bind(compat.list_series, s),
            methods=["GET"],
            scope=reads,
            response=schema.COMPAT_SERIES_LIST,
        ),
        ApiRoute(
            "/series/new",
            bind(compat.new_series, s),
            methods=["PUT"],
            scope=None,
            status_code=201,
            body=schema.COMPAT_NEW_SERIES,
            response=schema.COMPAT_NEW_SERIES_ID,
        ),
        ApiRoute(
            "/series/{id}",
            bind(compat.get_series, s),
            methods=["GET"],
            scope=reads,
            response=schema.COMPAT_POINTS,
        ),
        ApiRoute(
            "/series/{id}",
            bind(compat.delete_series, s),
            methods=["DELETE"],
            scope=None,
            status_code=204,
            body=schema.COMPAT_AUTH,
        ),
        ApiRoute(
            "/point/new",
            bind(compat.new_point, s),
            methods=["PUT"],
            scope=None,
            status_code=201,
            body=schema.COMPAT_NEW_POINT,
            response=schema.COMPAT_NEW_POINT_ID,
        ),
        ApiRoute(
            "/point/{id}",
            bind(compat.get_point, s),
            methods=["GET"],
            scope=reads,
            response=schema.COMPAT_POINT,
        ),
        ApiRoute(
            "/point/{id}",
            bind(compat.delete_point, s),
            methods=["DELETE"],
            scope=None,
            status_code=204,
            body=schema.COMPAT_AUTH,
        ),
        ApiRoute(
            "/points/count",
            bind(compat.count, s),
            methods=["GET"],
            response=schema.COMPAT_COUNT,
        ),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await ctx.service(Sensors).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await ctx.service(Sensors).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    s = ctx.service(Sensors)
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

    s = ctx.service(Sensors)
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

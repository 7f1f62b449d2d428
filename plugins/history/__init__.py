"""The ``history`` plugin: every plugin's samples, kept in SQLite, as series.

A background task asks every plugin for its samples (``raspapi_samples``)
every ``RASPAPI_HISTORY_INTERVAL`` seconds and writes them, in one
transaction per interval, to ``history.db`` in the state folder: the value
itself (kept ``RASPAPI_HISTORY_RETENTION_DAYS``) and its 5-minute rollup
(count, sum, min, max; kept ``RASPAPI_HISTORY_DOWNSAMPLED_DAYS``), updated
in the same transaction. WAL with ``synchronous=FULL``: a crash or a power
cut loses at most the interval being written, never the store's consistency.

``GET /api/v1/history?metric=&since=&until=&step=`` answers an aligned
series, min/avg/max per step; ``GET /api/v1/history/metrics`` lists the
names. Steps of 5 minutes or more are read from the rollups (each 5-minute
bucket counts in the step where it starts), shorter ones from the values.

Layout: ``service.py`` the sampler and the queries, ``store.py`` the
database, ``api.py`` the handlers, ``schema.py`` the schemas,
``telemetry.py`` the plugin's own metrics.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import ApiRoute, PluginContext, Query, Status, hookimpl

from .._handlers import bind
from . import api, schema, telemetry
from .service import History


def _history(ctx: PluginContext) -> History:
    return ctx.service(History)


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    history = _history(ctx)
    query: list[Query[Any]] = [schema.METRIC, schema.SINCE, schema.UNTIL, schema.STEP]
    return [
        ApiRoute(
            "/", bind(api.query, history), methods=["GET"], query=query, response=schema.SERIES
        ),
        ApiRoute("/metrics", bind(api.metrics, history), methods=["GET"], response=schema.NAMES),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await _history(ctx).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _history(ctx).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    history = _history(ctx)
    db = history.db
    return Status.ok(
        metrics=len(db.ids) if db else 0,
        interval_seconds=history.settings.history_interval,
        intervals_written=history.written,
        failed_intervals=history.failures,
    )


@hookimpl
def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return telemetry.families(_history(ctx))

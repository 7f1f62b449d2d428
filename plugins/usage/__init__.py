"""The ``usage`` plugin: bytes per device per hour and day, and quotas that enforce themselves.

Fed by the stations hook (``ctx.hooks.stations()``: the ``hostapd`` plugin)
every ``RASPAPI_HISTORY_INTERVAL`` seconds, like the history sampler: each
station's counters become deltas (a counter that went down is a new
association), added per MAC to hourly and daily buckets in ``usage.db``, one
transaction per interval. Host names come from dnsmasq's leases file.
Quotas block a device through the station actions (``deny`` and
``deauthenticate``; ``allow`` when the period resets), with a
``usage.quota_exceeded`` event and an audit entry.
"""

from __future__ import annotations

from typing import Any

from raspapi.plugin import (
    ApiRoute,
    Panel,
    PluginContext,
    Query,
    Status,
    hookimpl,
)

from .._handlers import bind
from . import api, schema, telemetry
from .service import Usage


def _service(ctx: PluginContext) -> Usage:
    return ctx.service(Usage)


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    usage = _service(ctx)
    ranged: list[Query[Any]] = [schema.SINCE, schema.UNTIL, schema.STEP, schema.TOP]
    # "/.csv" is the namespace's sibling: GET /api/v1/usage.csv.
    csv = ApiRoute(
        "/.csv",
        bind(api.report_csv, usage),
        methods=["GET"],
        query=ranged,
        response=schema.CSV,
        media_types=("text/csv",),
    )
    target: dict[str, Any] = {"scope": "control", "response": schema.QUOTA}
    return [
        ApiRoute(
            "/", bind(api.report, usage), methods=["GET"], query=ranged, response=schema.REPORT
        ),
        csv,
        ApiRoute("/quotas", bind(api.list_quotas, usage), methods=["GET"], response=schema.QUOTAS),
        ApiRoute(
            "/quotas/{target}",
            bind(api.put_quota, usage),
            methods=["PUT"],
            body=schema.QUOTA_BODY,
            **target,
        ),
        ApiRoute(
            "/quotas/{target}",
            bind(api.delete_quota, usage),
            methods=["DELETE"],
            scope="control",
            response=schema.DELETED,
        ),
        ApiRoute(
            "/{mac}",
            bind(api.device, usage),
            methods=["GET"],
            query=ranged[:3],
            response=schema.ONE,
        ),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await _service(ctx).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _service(ctx).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    usage = _service(ctx)
    return Status.ok(
        devices_today=len(usage.today_macs),
        quotas=len(usage.quotas),
        blocked=sum(1 for b in usage.blocks.values() if b.action == "block"),
        intervals_written=usage.written,
        failed_intervals=usage.failures,
    )


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return await telemetry.families(_service(ctx))


@hookimpl
async def raspapi_admin_panels(ctx: PluginContext) -> list[Panel]:
    return await telemetry.panels(_service(ctx))

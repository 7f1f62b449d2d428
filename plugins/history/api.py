"""The history plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import schema
from .service import History


async def query(history: History, request: Request) -> JSONResponse:
    """A metric's history: min, avg and max per step, aligned.

    `since` and `until` are RFC 3339 times, Unix seconds, or a time before
    now such as `-7d`, `-12h`, `-30m` (default: the last 24 hours up to
    now). Steps start at multiples of `step` since the Unix epoch; a step
    without values has nulls and count 0. Steps of 300 s or more are read
    from the 5-minute rollups (kept longer than the values).
    """
    window = history.window(
        schema.METRIC.parse(request), schema.SINCE.parse(request), schema.UNTIL.parse(request)
    )
    body = await history.series(window, schema.STEP.parse(request))
    return JSONResponse(body)


async def metrics(history: History, request: Request) -> JSONResponse:
    """Every metric with a history: its name, oldest and latest time, latest value."""
    return JSONResponse(await history.names())

"""The ``/api/v1/sensors`` handlers (Starlette): each parses the request, calls the
service and answers JSON or CSV; the work is in ``service.py``.

A handler's docstring is its route's OpenAPI description.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from raspapi.plugin import Forbidden, NotFound, Principal, parse_int, principal, read_json

from . import schema, service, validate
from .service import Sensors


async def list_series(sensors: Sensors, request: Request) -> JSONResponse:
    """Every series, with its point count and first and last point time."""
    return JSONResponse(await sensors.listing())


async def create_series(sensors: Sensors, request: Request) -> JSONResponse:
    """Create a series; the key that creates it owns it (only it, or an admin, writes to it).

    Body (every field optional): `description`, `device_description`,
    `device_id`, `units` (unit hints, e.g. `{"temperature": "°C"}`),
    `retention_days` (default from `RASPAPI_SENSORS_RETENTION_DAYS`), and,
    for an admin key only, `owner_key_id` to create it for a device's key.
    """
    caller = _caller(request)
    body = validate.series_body(await read_json(request))
    series = await sensors.create(caller, body, request.app.state.runtime.keys)
    return JSONResponse(sensors.describe(series, (0, None, None)), status_code=201)


async def get_series(sensors: Sensors, request: Request) -> JSONResponse:
    """One series, with its point count and first and last point time."""
    return JSONResponse(await sensors.one(_series_id(request)))


async def delete_series(sensors: Sensors, request: Request) -> JSONResponse:
    """Delete a series and its points (its owner's key or an admin key)."""
    series_id = _series_id(request)
    await sensors.delete(_caller(request), series_id)
    return JSONResponse({"id": series_id, "deleted": True})


async def push(sensors: Sensors, request: Request) -> JSONResponse:
    """Add a batch of points: all of them, or (on any problem) none.

    Body: `{"points": [{"at": "2030-01-31T12:00:00.250Z", "fields":
    {"temperature": 21.5, "humidity": 40}}, ...]}`. `at` is optional (the
    server's time), RFC 3339 with a zone or Unix seconds, never more than
    `RASPAPI_SENSORS_MAX_FUTURE_SECONDS` ahead; `fields` holds 1 to 16 finite
    numbers. A series has at most 16 field names over its life.
    """
    caller = _caller(request)
    series_id = _series_id(request)
    sensors.writable(caller, series_id)
    body = await read_json(request, max_bytes=sensors.config.max_body_bytes)
    batch = await sensors.ingest(caller, series_id, validate.push_body(body))
    return JSONResponse(sensors.pushed(series_id, batch), status_code=201)


async def points(sensors: Sensors, request: Request) -> JSONResponse:
    """A series' points in a time range, or with `step`, min/avg/max per step.

    Without `step`: the points, oldest first (`order=desc`: newest first),
    `limit` per page; `next_cursor` fetches the next page. With `step`
    (seconds): one entry per step from `since` (rounded down to a multiple
    of `step`) to `until`, each field's count, min, avg and max (nulls and
    count 0 for a step without values). Steps that are multiples of 10 s
    are read from rollups kept at each write, so a week or a year costs
    a few thousand rows, not its points.
    """
    series = sensors.series(_series_id(request))
    names, slots = service.fields(series, schema.FIELDS.parse(request))
    now = time.time()
    since, until = schema.SINCE.parse(request), schema.UNTIL.parse(request)
    stepped = service.window(
        since, until, schema.STEP.parse(request), schema.STEPS.parse(request), now
    )
    if stepped is not None:
        return JSONResponse(await sensors.stepped(series, names, slots, *stepped))
    span = service.span(since, until, now, int((now - service.DAY) * 1000))
    return JSONResponse(
        await sensors.page(
            series,
            names,
            slots,
            span,
            limit=schema.LIMIT.parse(request) or 1000,
            descending=schema.ORDER.parse(request) == "desc",
            cursor=schema.CURSOR.parse(request),
        )
    )


async def export(sensors: Sensors, request: Request) -> Response:
    """The points (or, with `step`, min/avg/max per step) as CSV, streamed.

    Columns: `at` (RFC 3339), then one per field (with `step`:
    `<field>_count`, `_min`, `_avg`, `_max`). Without `since`, the export
    starts at the first point.
    """
    series = sensors.series(_series_id(request))
    names, slots = service.fields(series, schema.FIELDS.parse(request))
    headers = {"Content-Disposition": f'attachment; filename="series-{series.id}.csv"'}
    now = time.time()
    since, until = schema.SINCE.parse(request), schema.UNTIL.parse(request)
    stepped = service.window(
        since, until, schema.STEP.parse(request), schema.STEPS.parse(request), now
    )
    if stepped is not None:
        text = await sensors.csv_steps(series, names, slots, *stepped)
        return Response(text, media_type="text/csv", headers=headers)
    span = service.span(since, until, now, 0)
    body = sensors.csv_points(series, names, slots, span)
    return StreamingResponse(body, media_type="text/csv", headers=headers)


def _series_id(request: Request) -> int:
    """The ``{id}`` of the path; a 404 when it cannot be a series id."""
    text = str(request.path_params["id"])
    series_id = parse_int(text, low=0)
    if series_id is None or text.startswith("-"):
        raise NotFound(f"series {text[:32]!r} does not exist", code="unknown_series")
    return series_id


def _caller(request: Request) -> Principal:
    caller = principal(request)
    if caller is None:  # the guard lets no request through without one
        raise Forbidden("a key is required")
    return caller

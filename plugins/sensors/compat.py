"""timeseries-api compatibility: the routes ESP8266/ESP32 sketches written for it call.

timeseries-api (a small Flask + flask-restful + dataset service) serves:

    GET    /series          {"<id>": {id, device_id, device_desc, desc, timestamp, user, count}}
    PUT    /series/new      {token, device_id, device_desc, desc?}    -> 201, the new id
    GET    /series/<id>     [{id, series_id, fields, timestamp}, ...] oldest first
    DELETE /series/<id>     {token}                                   -> 204
    PUT    /point/new       {token, series_id, fields}                -> 201, the new id
    GET    /point/<id>      {id, series_id, fields, timestamp}
    DELETE /point/<id>      {token}                                   -> 204
    GET    /points/count    the number of points

Same paths, methods, bodies, status codes and answers here, with the token
in the JSON body (these routes only) checked as a raspapi key with the
``ingest`` scope (or ``admin``); a header key works too. What differs, on
purpose: the GET routes need a key with the ``read`` scope in a header
(timeseries-api's were open to anyone), unless ``RASPAPI_SENSORS_PUBLIC_READ``
opens its three read routes (``GET /series``, ``/series/<id>``, ``/point/<id>``)
as timeseries-api does; a token only changes its own series
(there, any token could delete any series); every bad input is a 4xx, not
a 500; a point may carry its own ``timestamp`` (RFC 3339 with a zone, or Unix
seconds; otherwise the server's time, as there); field values are numbers
(numeric strings and booleans are taken as numbers); there is no JSONP.
Errors are ``{"message": ...}`` as flask-restful's, plus raspapi's
``detail`` and ``code``. Timestamps are ISO 8601 in UTC with ``+00:00``
(timeseries-api's were the server's local time without a zone).

This module is the adapter: the handlers (Starlette) and the answers in
timeseries-api's shapes; the work is in ``service.py``, the schemas in
``schema.py``. A handler's docstring is its route's OpenAPI description.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from raspapi.plugin import (
    ApiError,
    BadRequest,
    Forbidden,
    Invalid,
    NotFound,
    Principal,
    key_from_headers,
    parse_int,
    read_json,
)

from . import validate
from .service import Sensors
from .store import Series

#: Points ``GET /series/<id>`` answers at most (the newest; the total is in X-Total-Count).
MAX_SERIES_POINTS = 10_000
_ID_MAX = (1 << 63) - 1
_NAMES = {"description": "desc", "device_description": "device_desc"}
Handler = Callable[[Sensors, Request], Awaitable[Response]]


def _iso(ms: int) -> str:
    # Not the public rfc3339_ms on purpose: timeseries-api's timestamps are
    # datetime.isoformat() with microseconds and no "Z", and the sketches and
    # viewers written for it parse exactly that (here in UTC, with "+00:00").
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")


def _error(exc: ApiError) -> JSONResponse:
    # flask-restful's reqparse answers 400 to bad arguments; raspapi's 422 becomes that.
    status = 400 if exc.status_code == 422 else exc.status_code
    return JSONResponse(
        {"message": exc.detail, **exc.body()}, status_code=status, headers=exc.headers or None
    )


def _answer(handler: Handler) -> Handler:
    """Errors in flask-restful's shape: ``{"message": ...}``."""

    @functools.wraps(handler)
    async def wrapped(sensors: Sensors, request: Request) -> Response:
        try:
            return await handler(sensors, request)
        except ApiError as exc:
            return _error(exc)

    return wrapped


def _number_id(text: str, what: str) -> int:
    number = parse_int(text, low=0, high=_ID_MAX)
    if number is None or text.startswith("-"):
        raise NotFound(f"{what} {text[:32]} doesn't exist", code=f"unknown_{what.lower()}")
    return number


def _throttled(refused: Response) -> ApiError:
    """The rate limiter's 429 answer as an error of these routes."""
    detail = json.loads(bytes(refused.body))["detail"]
    retry = refused.headers.get("retry-after", "60")
    return ApiError(detail, code="rate_limited", status_code=429, headers={"Retry-After": retry})


async def _writer(request: Request, *, body_required: bool) -> tuple[Principal, dict[str, Any]]:
    """The caller, from ``token`` in the JSON body (or a key header), with ``ingest``."""
    try:
        body = await read_json(request)
    except BadRequest as exc:
        if body_required or exc.code != "body_missing":
            raise
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="body_invalid")
    token = body.get("token")
    if token is None:
        token = key_from_headers(request.scope["headers"])
    runtime = request.app.state.runtime
    # A token in the body is a key like any other: the failed-auth throttle of
    # the core's guard applies to it too.
    limiter = runtime.limiter
    if limiter is not None and (refused := limiter.before_auth(request.scope)) is not None:
        raise _throttled(refused)
    if not token:
        raise Forbidden("Authentication token is required for access.", code="unauthorized")
    caller = runtime.auth.authenticate(token) if isinstance(token, str) else None
    if caller is None:
        if limiter is not None and (refused := limiter.auth_failed(request.scope)) is not None:
            raise _throttled(refused)
        raise Forbidden("the token is not a valid key", code="unauthorized")
    if "ingest" not in caller.scopes:
        raise Forbidden("this key lacks the 'ingest' scope", code="missing_scope")
    return caller, body


def _series(sensors: Sensors, text: str) -> Series:
    series_id = _number_id(text, "Series")
    found = sensors.find(series_id)
    if found is None:
        raise NotFound(f"Series {series_id} doesn't exist", code="unknown_series")
    return found


def _point(series: Series, row: tuple[Any, ...]) -> dict[str, Any]:
    """``row`` is (id, ts, v0, v1, ...) in the series' slot order."""
    return {
        "id": row[0],
        "series_id": series.id,
        "fields": {
            name: value
            for name, value in zip(series.fields, row[2:], strict=False)
            if value is not None
        },
        "timestamp": _iso(row[1]),
    }


# -- series --


@_answer
async def list_series(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: every series by id, with its point count."""
    everything = sorted(tuple(sensors.database().series.values()), key=lambda s: s.id)
    counts = await sensors.counts()
    return JSONResponse(
        {
            str(s.id): {
                "id": s.id,
                "device_id": s.device_id,
                "device_desc": s.device_description,
                "desc": s.description or None,
                "timestamp": _iso(round(s.created_at * 1000)),
                "user": s.owner_name,
                "count": counts.get(s.id, (0, None, None))[0],
            }
            for s in everything
        }
    )


@_answer
async def new_series(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: create a series (token, device_id, device_desc, desc); answers its id."""
    caller, body = await _writer(request, body_required=True)
    for name in ("device_id", "device_desc"):
        if body.get(name) is None:
            raise BadRequest(f"{name}: is required", code="invalid", field=name)
    try:
        series = await sensors.create(
            caller,
            {
                "description": body.get("desc"),
                "device_description": body.get("device_desc"),
                "device_id": body.get("device_id"),
            },
        )
    except Invalid as exc:  # in timeseries-api's names
        name = _NAMES.get(exc.field or "", exc.field or "body")
        problem = exc.detail.split(": ", 1)[-1]
        raise Invalid(name, problem) from None
    return JSONResponse(series.id, status_code=201)


@_answer
async def get_series(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: the points of a series, oldest first (the newest 10 000 at most)."""
    series = _series(sensors, request.path_params["id"])
    rows = await sensors.newest(series, MAX_SERIES_POINTS)
    counts = await sensors.counts([series.id])
    return JSONResponse(
        [_point(series, row) for row in rows],
        headers={"X-Total-Count": str(counts.get(series.id, (0,))[0])},
    )


@_answer
async def delete_series(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: delete a series and its points (its owner's token, or an admin's)."""
    caller, _ = await _writer(request, body_required=False)
    series = _series(sensors, request.path_params["id"])
    await sensors.delete(caller, series.id)
    return Response(status_code=204)


# -- points --


@_answer
async def new_point(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: add a point (token, series_id, fields[, timestamp]); answers its id."""
    caller, body = await _writer(request, body_required=True)
    given = body.get("series_id")
    raw_id = parse_int(given.strip() if isinstance(given, str) else given, low=0, high=_ID_MAX)
    if raw_id is None:
        raise BadRequest("series_id: must be a series id", code="invalid", field="series_id")
    if sensors.find(raw_id) is None:
        raise NotFound(f"Series {raw_id} not found", code="unknown_series")
    point: dict[str, Any] = {"fields": body.get("fields")}
    if body.get("timestamp") is not None:
        point["timestamp"] = body["timestamp"]
    try:
        batch = await sensors.ingest(
            caller,
            raw_id,
            [point],
            where="",
            time_key="timestamp",
            coerce=validate.lenient_number,
        )
    except Forbidden:
        raise Forbidden("Permission denied", code="not_owner") from None
    return JSONResponse(batch.rows[0][1], status_code=201)


@_answer
async def get_point(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: one point."""
    point_id = _number_id(request.path_params["id"], "Point")
    row = await sensors.point(point_id)
    series = sensors.find(row[0]) if row is not None else None
    if row is None or series is None:
        raise NotFound(f"Point {point_id} doesn't exist", code="unknown_point")
    return JSONResponse(_point(series, (row[2], row[1], *row[3:])))


@_answer
async def delete_point(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: delete a point (its series' owner's token, or an admin's)."""
    caller, _ = await _writer(request, body_required=False)
    point_id = _number_id(request.path_params["id"], "Point")
    try:
        await sensors.delete_point(caller, point_id)
    except NotFound:
        raise NotFound(f"Point {point_id} doesn't exist", code="unknown_point") from None
    return Response(status_code=204)


@_answer
async def count(sensors: Sensors, request: Request) -> Response:
    """timeseries-api: the number of points in every series."""
    return JSONResponse(await sensors.total_points())

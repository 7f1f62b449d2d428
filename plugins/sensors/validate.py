"""Checks of everything a client sends: series descriptions, points, times, names.

Each problem raises ``Invalid(field, problem)`` (a 422 naming the field) before
anything is written. The points of a batch are checked in one pass that also
builds the rows to insert, so a valid batch costs little more than its parsing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from raspapi.plugin import Invalid, parse_when

from .config import SLOTS

FIELD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
#: Times before this are a device whose clock was never set (1970 plus uptime).
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
TEXT_MAX = 200
DEVICE_ID_MAX = 64
UNIT_MAX = 32
_POINT_KEYS = frozenset({"at", "fields"})
_SERIES_KEYS = frozenset(
    {"description", "device_description", "device_id", "units", "retention_days", "owner_key_id"}
)
_RFC3339_HINT = "an RFC 3339 time with a zone (2030-01-31T12:00:00Z) or Unix seconds"


# -- times -----------------------------------------------------------------------------


def time_ms(value: Any) -> int:
    """A point's time (RFC 3339 string with a zone, or Unix seconds) as integer ms.

    Raises ValueError with the problem."""
    kind = type(value)
    if kind is int or kind is float:
        try:
            seconds = float(value)
        except OverflowError:  # an int past the float range, such as 10**400
            raise ValueError("is not a time") from None
    elif kind is str:
        if not 10 <= len(value) <= 40:
            raise ValueError(f"expected {_RFC3339_HINT}")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected {_RFC3339_HINT}") from None
        if moment.tzinfo is None:
            raise ValueError("the time needs a zone, e.g. Z for UTC")
        seconds = moment.timestamp()
    else:
        raise ValueError(f"expected {_RFC3339_HINT}")
    if not -1e11 < seconds < 1e11:  # also NaN and infinities
        raise ValueError("is not a time")
    return round(seconds * 1000)


def check_time(ms: int, now_ms: int, max_future_ms: int) -> str | None:
    """Why a point's time is refused, or None."""
    if ms < EARLIEST_MS:
        return "is before 2000-01-01: is the device's clock set?"
    if ms > now_ms + max_future_ms:
        return f"is more than {max_future_ms / 1000:g} s in the future"
    return None


def query_time(field: str, text: str, now: float) -> float:
    """A query's ``since``/``until`` as Unix seconds: ``now``, ``-7d``, Unix seconds or
    RFC 3339 (the public ``parse_when``), and also Unix seconds before 1970 down to
    ``-1e11``, which this plugin has always taken. Invalid names ``field``."""
    try:
        return parse_when(field, text, now)
    except Invalid:
        try:
            seconds = float(text.strip())
        except ValueError:
            seconds = math.nan
        if not -1e11 < seconds < 0:  # also NaN and infinities: parse_when's answer
            raise
        return seconds


# -- bodies ----------------------------------------------------------------------------


def series_body(body: Any) -> dict[str, Any]:
    """The body of ``POST /series``: an object with known fields only."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    for key in body:
        if key not in _SERIES_KEYS:
            raise Invalid(
                str(key)[:64], f"unknown field; fields are {', '.join(sorted(_SERIES_KEYS))}"
            )
    return body


def push_body(body: Any) -> Any:
    """The points of a ``POST /series/{id}/points`` body ``{"points": [...]}`` (checked
    by :func:`points`)."""
    if not isinstance(body, dict) or "points" not in body:
        raise Invalid("points", 'the body must be {"points": [...]}')
    if len(body) > 1:
        extra = next(str(k) for k in body if k != "points")
        raise Invalid(extra[:64], 'unknown field; the body is {"points": [...]}')
    return body["points"]


# -- series ----------------------------------------------------------------------------


def text(
    body: Mapping[str, Any], name: str, limit: int = TEXT_MAX, *, required: bool = False
) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(name, "is required")
        return ""
    if not isinstance(value, str):
        raise Invalid(name, "must be a string")
    value = value.strip()
    if len(value) > limit or not value.isprintable():
        raise Invalid(name, f"must be at most {limit} printable characters")
    if required and not value:
        raise Invalid(name, "must not be empty")
    return value


def field_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise Invalid(
            where,
            "field names are 1 to 64 characters of letters, digits and _.:- "
            "(not starting with . : or -)",
        )
    return name


def units(value: Any) -> dict[str, str]:
    """Unit hints: ``{"temperature": "°C"}``, at most one per possible field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("units", 'must be an object such as {"temperature": "°C"}')
    if len(value) > SLOTS:
        raise Invalid("units", f"at most {SLOTS} entries (a series has at most {SLOTS} fields)")
    out: dict[str, str] = {}
    for name, unit in value.items():
        field_name(name, f"units.{str(name)[:64]}")
        if not isinstance(unit, str) or len(unit) > UNIT_MAX or not unit.isprintable():
            raise Invalid(f"units.{name}", f"must be at most {UNIT_MAX} printable characters")
        out[name] = unit
    return out


def retention_days(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("retention_days", "must be a number of days")
    if not 0.01 <= value <= 36500:
        raise Invalid("retention_days", "must be from 0.01 to 36500 days")
    return float(value)


# -- points ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """A checked batch: field names in column order, and one row per point:
    ``(series_id, point_id, ts_ms, value_of_names[0], ...)`` (None: field absent)."""

    names: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    first_ms: int
    last_ms: int


def number(value: Any) -> float | None:
    """The value as a finite float, or None when it is not one (bools are not numbers)."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None  # NaN and infinities fail
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def lenient_number(value: Any) -> float | None:
    """timeseries-api stored any JSON: numeric strings and booleans are taken as numbers."""
    kind = type(value)
    if kind is bool:
        return 1.0 if value else 0.0
    if kind is str and len(value) <= 40:
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return number(value)


def points(
    value: Any,
    *,
    series_id: int,
    first_id: int,
    now_ms: int,
    max_batch: int,
    max_future_ms: int,
    where: str = "points",
    time_key: str = "at",
    coerce: Callable[[Any], float | None] = number,
) -> Batch:
    """Checks a list of points ``{"at": time (optional), "fields": {name: number}}``."""
    if not isinstance(value, list):
        raise Invalid(where, "must be a list of points")
    count = len(value)
    if not count:
        raise Invalid(where, "must hold at least one point")
    if count > max_batch:
        raise Invalid(
            where, f"holds {count} points; at most {max_batch} per batch", code="batch_too_large"
        )
    allowed = _POINT_KEYS if time_key == "at" else frozenset({time_key, "fields"})

    def at(index: int, sub: str = "") -> str:
        """Where a problem is: ``points[3].fields.t`` (``fields.t`` when ``where`` is empty)."""
        head = f"{where}[{index}]" if where else ""
        return f"{head}.{sub}".strip(".") if sub else head or "body"

    names: dict[str, None] = {}
    times: list[int] = []
    checked: list[dict[str, float]] = []
    for index, point in enumerate(value):
        if type(point) is not dict:
            raise Invalid(at(index), 'must be an object {"at": ..., "fields": {...}}')
        if len(point) > 2 or not point.keys() <= allowed:
            extra = sorted(str(k) for k in point.keys() - allowed)
            raise Invalid(
                at(index),
                f"unknown key {extra[0][:64]!r}; a point has {time_key!r} and 'fields'",
            )
        fields = point.get("fields")
        if type(fields) is not dict or not fields:
            raise Invalid(at(index, "fields"), 'must be a non-empty object {"name": number}')
        if len(fields) > SLOTS:
            raise Invalid(at(index, "fields"), f"has {len(fields)} fields; at most {SLOTS}")
        clean: dict[str, float] = {}
        for name, raw in fields.items():
            number_value = coerce(raw)
            if number_value is None:
                raise Invalid(at(index, f"fields.{str(name)[:64]}"), "must be a finite number")
            if name not in names:
                field_name(name, at(index, f"fields.{str(name)[:64]}"))
                names[name] = None
                if len(names) > SLOTS:
                    raise Invalid(
                        at(index, "fields"),
                        f"the batch names more than {SLOTS} different fields",
                    )
            clean[name] = number_value
        checked.append(clean)
        moment = point.get(time_key)
        if moment is None:
            times.append(now_ms)
            continue
        try:
            ms = time_ms(moment)
        except ValueError as exc:
            raise Invalid(at(index, time_key), str(exc), code="bad_time") from None
        problem = check_time(ms, now_ms, max_future_ms)
        if problem is not None:
            raise Invalid(at(index, time_key), problem, code="bad_time")
        times.append(ms)
    order = tuple(names)
    rows: list[tuple[Any, ...]]
    if len(order) == 1:
        (only,) = order
        rows = [
            (series_id, first_id + i, ts, f[only])
            for i, (ts, f) in enumerate(zip(times, checked, strict=True))
        ]
    else:
        rows = [
            (series_id, first_id + i, ts, *[f.get(n) for n in order])
            for i, (ts, f) in enumerate(zip(times, checked, strict=True))
        ]
    return Batch(order, rows, min(times), max(times))

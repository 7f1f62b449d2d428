"""RFC 3339 UTC timestamps, as every ``*_at`` field carries them."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Literal, overload

from raspapi.http.errors import Invalid

_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@overload
def rfc3339(epoch: float, *, lenient: Literal[False] = False) -> str: ...
@overload
def rfc3339(epoch: None, *, lenient: bool = False) -> None: ...
@overload
def rfc3339(epoch: float | None, *, lenient: bool = False) -> str | None: ...


def rfc3339(epoch: float | None, *, lenient: bool = False) -> str | None:
    """``1710065471.2`` -> ``"2024-03-10T10:11:11Z"`` (None stays None).

    A time out of range raises OverflowError, OSError or ValueError; with
    ``lenient=True`` it is None instead (a timestamp read from a file).
    """
    if epoch is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        if lenient:
            return None
        raise
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def rfc3339_ms(ms: int) -> str:
    """Milliseconds since the epoch: ``1700000000123`` ->
    ``"2023-11-14T22:13:20.123Z"``; a whole second has no ``.000``
    (``1700000000000`` -> ``"2023-11-14T22:13:20Z"``). Out of range raises as
    :func:`rfc3339` does."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    spec = "seconds" if ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """An RFC 3339 timestamp with a time zone (``Z`` or ``+02:00``) as epoch seconds.

    Raises ValueError for anything else, including a time without a zone.
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("expected an RFC 3339 timestamp such as 2030-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an RFC 3339 timestamp such as 2030-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("the timestamp needs a time zone, e.g. Z for UTC")
    return moment.timestamp()


def parse_when(field: str, text: str, now: float) -> float:
    """A query's time as Unix seconds: ``now``, a time before now (``-7d``,
    ``-12h``, ``-30m``), Unix seconds, or RFC 3339. Raises :class:`Invalid`
    naming ``field`` for anything else."""
    text = text.strip()
    if text == "now":
        return now
    match = _RELATIVE.fullmatch(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        try:
            return parse_rfc3339(text)
        except ValueError as exc:
            raise Invalid(
                field, f"{exc}, Unix seconds, or a time before now such as -7d or -12h"
            ) from None
    if not math.isfinite(value) or not 0 <= value < 1e11:
        raise Invalid(field, "is not a time")
    return value

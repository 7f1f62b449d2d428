"""RFC 3339 UTC timestamps, as every ``*_at`` field carries them."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch: float | None) -> str | None:
    """``1710065471.2`` -> ``"2024-03-10T10:11:11Z"`` (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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

"""The usage plugin's request validation and response schemas."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import (
    BadRequest,
    Invalid,
    Query,
)

from .service import ACTIONS, MAX_QUOTA_BYTES
from .store import Quota

MAX_TOP = 200
DEFAULT_TOP = 20
#: The longest range per step: 31 days of hours, 10 years of days.
MAX_RANGE = {"hour": 31 * 86400, "day": 3660 * 86400}
#: Steps (devices x steps) one JSON answer holds at most; the CSV streams any number.
MAX_POINTS = 50_000
_FIELDS = ("daily_bytes", "monthly_bytes", "resets_on_day", "action")

SINCE = Query(
    "since", str, description="From: RFC 3339, Unix seconds, or -7d/-12h/-30m (default -7d)."
)
UNTIL = Query("until", str, description="To: RFC 3339, Unix seconds, -1h or now (default now).")
STEP = Query(
    "step", str, default="day", choices=("day", "hour"), description="Bucket size (default day)."
)
TOP = Query(
    "top",
    int,
    default=DEFAULT_TOP,
    minimum=1,
    maximum=MAX_TOP,
    description=f"The devices with the most bytes, at most {MAX_TOP} (default {DEFAULT_TOP}).",
)


def _size(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(name, "expected a whole number of bytes")
    if not 1 <= value <= MAX_QUOTA_BYTES:
        raise Invalid(name, f"must be 1 to {MAX_QUOTA_BYTES} bytes")
    return value


def parse_quota(body: Any, target: str, now: float) -> Quota:
    """``{"daily_bytes": N}`` or ``{"monthly_bytes": N, "resets_on_day": D}``, with an
    optional ``"action"``; anything else is a 422 naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="body_invalid")
    for name in body:
        if name not in _FIELDS:
            raise Invalid(str(name)[:64], f"unknown field; the fields are {', '.join(_FIELDS)}")
    has_daily, has_monthly = "daily_bytes" in body, "monthly_bytes" in body
    if has_daily == has_monthly:
        raise Invalid("daily_bytes", "give either daily_bytes or monthly_bytes")
    daily = _size(body, "daily_bytes") if has_daily else None
    monthly = _size(body, "monthly_bytes") if has_monthly else None
    resets: int | None = None
    if "resets_on_day" in body:
        if has_daily:
            raise Invalid("resets_on_day", "only goes with monthly_bytes")
        resets = body["resets_on_day"]
        if isinstance(resets, bool) or not isinstance(resets, int) or not 1 <= resets <= 31:
            raise Invalid(
                "resets_on_day", "expected a day of the month, 1 to 31 (past its end: its last)"
            )
    elif has_monthly:
        resets = 1
    action = body.get("action", "block")
    if action not in ACTIONS:
        raise Invalid("action", f"must be one of {', '.join(ACTIONS)}")
    return Quota(target, daily, monthly, resets, action, now)


_BYTES = {
    "rx_bytes": {"type": "integer", "description": "received by the access point"},
    "tx_bytes": {"type": "integer", "description": "sent by the access point"},
    "total_bytes": {"type": "integer"},
    "uploaded_bytes": {"type": "integer", "description": "sent by the device (= rx_bytes)"},
    "downloaded_bytes": {"type": "integer", "description": "received by the device (= tx_bytes)"},
}
DEVICE: dict[str, Any] = {
    "type": "object",
    "required": ["mac", "hostname", *_BYTES, "steps"],
    "properties": {
        "mac": {"type": "string", "description": "a MAC, or 'other': devices past the cap"},
        "hostname": {"type": ["string", "null"], "description": "its latest DHCP host name"},
        **_BYTES,
        "steps": {
            "type": "array",
            "description": "steps with traffic only, oldest first",
            "items": {
                "type": "object",
                "properties": {"start_at": {"type": "string", "format": "date-time"}, **_BYTES},
            },
        },
    },
}
REPORT: dict[str, Any] = {
    "type": "object",
    "required": ["since_at", "until_at", "step", "devices"],
    "properties": {
        "since_at": {"type": "string", "format": "date-time"},
        "until_at": {"type": "string", "format": "date-time"},
        "step": {"enum": ["day", "hour"]},
        "devices": {"type": "array", "items": DEVICE},
    },
}
ONE: dict[str, Any] = {
    "type": "object",
    "required": ["since_at", "until_at", "step", "device"],
    "properties": {
        "since_at": {"type": "string", "format": "date-time"},
        "until_at": {"type": "string", "format": "date-time"},
        "step": {"enum": ["day", "hour"]},
        "device": DEVICE,
    },
}
QUOTA_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "daily_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_QUOTA_BYTES},
        "monthly_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_QUOTA_BYTES},
        "resets_on_day": {"type": "integer", "minimum": 1, "maximum": 31, "default": 1},
        "action": {"enum": list(ACTIONS), "default": "block"},
    },
}
QUOTA: dict[str, Any] = {
    "type": "object",
    "required": ["target", "daily_bytes", "monthly_bytes", "action", "period", "resets_at"],
    "properties": {
        "target": {"type": "string", "description": "a MAC, or 'default' (every other device)"},
        "daily_bytes": {"type": ["integer", "null"]},
        "monthly_bytes": {"type": ["integer", "null"]},
        "resets_on_day": {"type": ["integer", "null"]},
        "action": {"enum": list(ACTIONS)},
        "period": {"type": "string", "description": "the current period"},
        "resets_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
STATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mac": {"type": "string"},
        "quota": {"enum": ["device", "default"]},
        "used_bytes": {"type": "integer"},
        "limit_bytes": {"type": "integer"},
        "period": {"type": "string"},
        "resets_at": {"type": "string", "format": "date-time"},
        "state": {"enum": ["ok", "exceeded", "blocked"]},
    },
}
QUOTAS: dict[str, Any] = {
    "type": "object",
    "required": ["quotas", "devices"],
    "properties": {
        "quotas": {"type": "array", "items": QUOTA},
        "devices": {"type": "array", "items": STATE},
    },
}
CSV: dict[str, Any] = {
    "type": "string",
    "contentMediaType": "text/csv",
    "description": "mac,hostname,start_at,rx_bytes,tx_bytes,total_bytes,uploaded_bytes,"
    "downloaded_bytes: one row per device and step",
}
DELETED: dict[str, Any] = {
    "type": "object",
    "properties": {"deleted": {"type": "string"}},
}

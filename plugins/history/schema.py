"""The history plugin's query parameters and response schemas."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Query

from .service import DEFAULT_POINTS, MAX_POINTS

METRIC = Query("metric", str, description="A name from /api/v1/history/metrics.")
SINCE = Query(
    "since", str, description="From: RFC 3339, Unix seconds, or -7d/-12h/-30m (default -24h)."
)
UNTIL = Query("until", str, description="To: RFC 3339, Unix seconds, or -1h (default now).")
STEP = Query(
    "step",
    float,
    minimum=0.1,
    maximum=366 * 86400,
    description=f"Seconds per point (default: the range in {DEFAULT_POINTS} points, "
    f"at most {MAX_POINTS} points).",
)

_NUMBER = {"type": ["number", "null"]}
SERIES: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "start_at", "end_at", "step_seconds", "source", "points"],
    "properties": {
        "metric": {"type": "string"},
        "start_at": {"type": "string", "format": "date-time", "description": "first step"},
        "end_at": {"type": "string", "format": "date-time"},
        "step_seconds": {"type": "number"},
        "source": {
            "enum": ["samples", "rollups", "mixed"],
            "description": "values (steps under 300 s), 5-minute rollups (longer steps, "
            "or where the values have expired), or both",
        },
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time", "description": "step start"},
                    "timestamp": {"type": "number", "description": "step start, Unix seconds"},
                    "min": _NUMBER,
                    "avg": _NUMBER,
                    "max": _NUMBER,
                    "count": {"type": "integer", "description": "values in the step"},
                },
            },
        },
    },
}
NAMES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interval_seconds": {"type": "number"},
        "retention_days": {"type": "number"},
        "downsampled_days": {"type": "number"},
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "first_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_value": _NUMBER,
                },
            },
        },
    },
}

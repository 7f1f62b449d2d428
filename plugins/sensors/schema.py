"""JSON schemas of the plugin's requests and answers (for ``/openapi.json``), and the
query parameters of ``/api/v1/sensors``: first the v1 routes, then timeseries-api's."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Query

from .config import MAX_LIMIT, MAX_STEPS, SLOTS
from .validate import DEVICE_ID_MAX, TEXT_MAX, UNIT_MAX

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NUMBER = {"type": ["number", "null"]}
_FIELD_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$"}

SERIES: dict[str, Any] = {
    "type": "object",
    "required": ["id", "fields", "owner_key_id", "point_count", "first_at", "last_at"],
    "properties": {
        "id": {"type": "integer"},
        "description": {"type": "string"},
        "device_description": {"type": "string"},
        "device_id": {"type": "string"},
        "units": {"type": "object", "additionalProperties": {"type": "string"}},
        "fields": {
            "type": "array",
            "items": _FIELD_NAME,
            "maxItems": SLOTS,
            "description": "Field names seen so far, in the order they first came.",
        },
        "owner_key_id": {
            "type": ["string", "null"],
            "description": "The key that may write to it (null: only admin keys).",
        },
        "owner": {"type": "string", "description": "That key's name."},
        "retention_days": {"type": "number"},
        "created_at": {"type": "string", "format": "date-time"},
        "point_count": {"type": "integer"},
        "first_at": _TIME,
        "last_at": _TIME,
    },
}
SERIES_LIST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "series": {"type": "array", "items": SERIES},
        "max_batch": {"type": "integer", "description": "Points one batch may hold."},
    },
}
CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "maxLength": TEXT_MAX},
        "device_description": {"type": "string", "maxLength": TEXT_MAX},
        "device_id": {"type": "string", "maxLength": DEVICE_ID_MAX},
        "units": {
            "type": "object",
            "maxProperties": SLOTS,
            "additionalProperties": {"type": "string", "maxLength": UNIT_MAX},
        },
        "retention_days": {"type": "number", "minimum": 0.01, "maximum": 36500},
        "owner_key_id": {"type": "string", "description": "Admin keys only."},
    },
    "examples": [
        {
            "description": "Greenhouse",
            "device_description": "ESP32 + BME280",
            "device_id": "a4:cf:12:9b:33:01",
            "units": {"temperature": "°C", "humidity": "%"},
        }
    ],
}
DELETED: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "deleted": {"const": True}},
}
PUSH: dict[str, Any] = {
    "type": "object",
    "required": ["points"],
    "additionalProperties": False,
    "properties": {
        "points": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["fields"],
                "additionalProperties": False,
                "properties": {
                    "at": {
                        "type": ["string", "number"],
                        "description": "RFC 3339 with a zone, or Unix seconds (default: now).",
                    },
                    "fields": {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": SLOTS,
                        "additionalProperties": {"type": "number"},
                    },
                },
            },
        }
    },
    "examples": [
        {
            "points": [
                {"at": "2030-01-31T12:00:00Z", "fields": {"temperature": 21.5, "humidity": 40}},
                {"at": 1895745610.5, "fields": {"temperature": 21.6}},
            ]
        }
    ],
}
PUSHED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "series_id": {"type": "integer"},
        "accepted": {"type": "integer"},
        "first_id": {"type": "integer", "description": "Ids of the points: first_id onwards."},
        "first_at": {"type": "string", "format": "date-time"},
        "last_at": {"type": "string", "format": "date-time"},
    },
}
_SUMMARY = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "min": _NUMBER,
        "avg": _NUMBER,
        "max": _NUMBER,
    },
}
POINTS: dict[str, Any] = {
    "type": "object",
    "description": "Without `step`: `points` and `next_cursor`. With `step`: `steps`.",
    "properties": {
        "series_id": {"type": "integer"},
        "fields": {"type": "array", "items": _FIELD_NAME},
        "units": {"type": "object", "additionalProperties": {"type": "string"}},
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "fields": {"type": "object", "additionalProperties": {"type": "number"}},
                },
            },
        },
        "next_cursor": {"type": ["string", "null"]},
        "start_at": {"type": "string", "format": "date-time"},
        "end_at": {"type": "string", "format": "date-time"},
        "step_seconds": {"type": "number"},
        "source": {
            "enum": ["points", "rollups_10s", "rollups_300s"],
            "description": "What most steps were read from.",
        },
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time", "description": "step start"},
                    "fields": {"type": "object", "additionalProperties": _SUMMARY},
                },
            },
        },
    },
}
CSV: dict[str, Any] = {"type": "string", "contentMediaType": "text/csv"}

# -- query parameters of GET /series/{id}/points and points.csv --------------------------

SINCE = Query(
    "since",
    str,
    description="From: RFC 3339, Unix seconds, or -7d/-12h/-30m (default -24h; a CSV export "
    "without `step`: the first point).",
)
UNTIL = Query(
    "until", str, description="To (excluded): RFC 3339, Unix seconds, or -1h (default now)."
)
STEP = Query(
    "step",
    float,
    minimum=0.001,
    maximum=366 * 86400,
    description="Seconds per step: min, avg and max of each field per step, steps aligned on "
    f"multiples of `step` since the Unix epoch (at most {MAX_STEPS} steps). Without it: the "
    "points themselves.",
)
STEPS = Query(
    "steps",
    int,
    minimum=1,
    maximum=MAX_STEPS,
    description="Instead of `step`: about this many steps. The step is the range divided by "
    "it, rounded up to whole seconds (to 10 s from 100 s, to 5 minutes from 3000 s) so that "
    "rollups serve it.",
)
FIELDS = Query("fields", str, description="Comma-separated field names (default: every field).")
LIMIT = Query(
    "limit", int, default=1000, minimum=1, maximum=MAX_LIMIT, description="Points per page."
)
CURSOR = Query("cursor", str, description="`next_cursor` of the previous page.")
ORDER = Query("order", str, default="asc", choices=("asc", "desc"), description="By time.")
#: What both the JSON and the CSV reads take.
POINTS_QUERY: list[Query[Any]] = [SINCE, UNTIL, STEP, STEPS, FIELDS]

# -- timeseries-api's routes (compat.py) --------------------------------------------------

_TOKEN = {"type": "string", "description": "A raspapi key with the ingest scope."}
COMPAT_POINT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "series_id": {"type": "integer"},
        "fields": {"type": "object", "additionalProperties": {"type": "number"}},
        "timestamp": {"type": "string", "format": "date-time"},
    },
}
COMPAT_POINTS: dict[str, Any] = {"type": "array", "items": COMPAT_POINT}
COMPAT_AUTH: dict[str, Any] = {
    "type": "object",
    "properties": {"token": _TOKEN},
    "description": "The token may be sent in a key header instead.",
}
COMPAT_SERIES_LIST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "device_id": {"type": "string"},
            "device_desc": {"type": "string"},
            "desc": {"type": ["string", "null"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "user": {"type": "string"},
            "count": {"type": "integer"},
        },
    },
}
COMPAT_NEW_SERIES: dict[str, Any] = {
    "type": "object",
    "required": ["token", "device_id", "device_desc"],
    "properties": {
        "token": _TOKEN,
        "device_id": {"type": "string", "maxLength": DEVICE_ID_MAX},
        "device_desc": {"type": "string", "maxLength": TEXT_MAX},
        "desc": {"type": "string", "maxLength": TEXT_MAX},
    },
}
COMPAT_NEW_SERIES_ID: dict[str, Any] = {"type": "integer", "description": "The new series' id."}
COMPAT_NEW_POINT: dict[str, Any] = {
    "type": "object",
    "required": ["token", "series_id", "fields"],
    "properties": {
        "token": _TOKEN,
        "series_id": {"type": "integer"},
        "fields": {"type": "object", "additionalProperties": {"type": "number"}},
        "timestamp": {
            "type": ["string", "number"],
            "description": "RFC 3339 with a zone, or Unix seconds; default now.",
        },
    },
}
COMPAT_NEW_POINT_ID: dict[str, Any] = {"type": "integer", "description": "The new point's id."}
COMPAT_COUNT: dict[str, Any] = {"type": "integer"}

"""The ``stats`` plugin's response schemas (V6Direct's models), query parameters and
input checks."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Invalid, Query

from .service import HISTORY_SAMPLES

MAX_REASON = 500

INTERFACE = Query("interface", str, description="Filter by interface name e.g. `eth0`, `wg0`")
LIMIT = Query(
    "limit",
    int,
    default=HISTORY_SAMPLES,
    minimum=1,
    maximum=HISTORY_SAMPLES,
    description="Number of samples to return (max 60)",
)


def boolean(value: Any) -> bool:
    """What pydantic accepts as a bool (V6Direct's ``full``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise Invalid("full", "must be true or false")


_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "y": True,
    "t": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
    "n": False,
    "f": False,
}

# -- V6Direct's response models, as JSON schemas -------------------------------------

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_STR = {"type": "string"}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


CPU = _object(
    {
        "usage_percent": _NUM,
        "per_core": {"type": "array", "items": _NUM},
        "frequency_mhz": _NUM_OR_NULL,
        "temperature_celcius": _NUM_OR_NULL,
        "load_avg_1m": _NUM,
        "load_avg_5m": _NUM,
        "load_avg_15m": _NUM,
    }
)
MEMORY = _object(
    {
        k: _NUM
        for k in (
            "total_mb",
            "available_mb",
            "used_mb",
            "percent",
            "swap_total_mb",
            "swap_used_mb",
            "swap_percent",
        )
    }
)
DISK = _object(
    {"mountpoint": _STR, "total_gb": _NUM, "used_gb": _NUM, "free_gb": _NUM, "percent": _NUM}
)
INTERFACE_SCHEMA = _object(
    {
        "name": _STR,
        **{
            k: _INT
            for k in (
                "bytes_sent",
                "bytes_recv",
                "packets_sent",
                "packets_recv",
                "errors_in",
                "errors_out",
                "drop_in",
                "drop_out",
            )
        },
        "addresses": {"type": "array", "items": _STR},
    }
)
NODE = _object(
    {
        "hostname": _STR,
        "platform": _STR,
        "architecture": _STR,
        "python_version": _STR,
        "boot_time_utc": _STR,
        "uptime_seconds": _INT,
        "node_role": _STR,
        "network_name": _STR,
        "asn": _STR,
    }
)
SNAPSHOT = _object(
    {
        "timestamp_utc": _STR,
        "node": NODE,
        "cpu": CPU,
        "memory": MEMORY,
        "disks": {"type": "array", "items": DISK},
        "interfaces": {"type": "array", "items": INTERFACE_SCHEMA},
        "cache_age_seconds": _NUM,
    }
)
HISTORY = {
    "type": "array",
    "items": _object(
        {"timestamp_utc": _STR, "cpu_percent": _NUM, "memory_percent": _NUM, "swap_percent": _NUM}
    ),
}
REFRESH_BODY = {
    "type": "object",
    "properties": {
        "reason": {"type": ["string", "null"], "description": "Optional reason for forced refresh"},
        "full": {"type": "boolean", "default": False, "description": "Also clears the history"},
    },
}
REFRESH = _object(
    {"success": {"type": "boolean"}, "message": _STR, "cleared_history": {"type": "boolean"}}
    | {"new_snapshot_timestamp": _STR}
)

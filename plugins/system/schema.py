"""JSON schemas of the system plugin's answers (they go into /openapi.json)."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Query

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUM: dict[str, Any] = {"type": "number"}
_OPT_STR: dict[str, Any] = {"type": ["string", "null"]}
_OPT_INT: dict[str, Any] = {"type": ["integer", "null"]}
_OPT_NUM: dict[str, Any] = {"type": ["number", "null"]}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


#: ``?limit=``: the length of each top-process list of /api/v1/system.
LIMIT = Query(
    "limit",
    int,
    default=5,
    minimum=1,
    maximum=50,
    description="How many processes each top list holds.",
)


def _obj(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props, **extra}


#: RaspAP's /system keys, in RaspAP's order, with RaspAP's types.
LEGACY_TYPES: dict[str, type] = {
    "hostname": str,
    "uptime": str,
    "systime": str,
    "usedMemory": float,
    "usedDisk": float,
    "processorCount": int,
    "LoadAvg1Min": float,
    "systemLoadPercentage": float,
    "systemTemperature": float,
    "hostapdStatus": int,
    "operatingSystem": str,
    "kernelVersion": str,
    "rpiRevision": str,
    "raspapVersion": str,
}

LEGACY = _obj(
    {
        key: {"type": {str: "string", int: "integer", float: "number"}[kind]}
        for key, kind in LEGACY_TYPES.items()
    },
    example={
        "hostname": "raspberrypi",
        "uptime": "up 23 hours, 3 minutes",
        "systime": "Sun 10 Mar 11:11:11 CET 2024",
        "usedMemory": 12.37,
        "usedDisk": 42.0,
        "processorCount": 4,
        "LoadAvg1Min": 0.42,
        "systemLoadPercentage": 10.5,
        "systemTemperature": 48.69,
        "hostapdStatus": 1,
        "operatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "kernelVersion": "6.6.51+rpt-rpi-v8",
        "rpiRevision": "Pi 4 Model B Rev 1.4 (4 GB)",
        "raspapVersion": "3.5.5",
    },
)

_USAGE = _obj(
    {
        "total_bytes": _INT,
        "used_bytes": _INT,
        "available_bytes": _INT,
        "percent": {**_NUM, "description": "used / total, one decimal"},
    }
)
_PROCESS = _obj(
    {
        "pid": _INT,
        "name": {
            **_STR,
            "description": "the kernel's name (comm); one cut at 15 characters is"
            " completed from the command line",
        },
        "uid": _OPT_INT,
        "user": _OPT_STR,
        "state": {**_STR, "description": "R running, S sleeping, D disk wait, Z zombie..."},
        "threads": {**_INT, "description": "0 when unknown (the process went)"},
        "cpu_percent": {
            **_OPT_NUM,
            "description": "share of one CPU over the interval (as top); null until measured",
        },
        "rss_bytes": _INT,
        "memory_percent": _NUM,
    }
)

OVERVIEW = _obj(
    {
        "hostname": _STR,
        "os": _obj(
            {
                "pretty_name": _STR,
                "id": _OPT_STR,
                "version_id": _OPT_STR,
                "codename": _OPT_STR,
            }
        ),
        "kernel": {**_STR, "description": "kernel release, as `uname -r`"},
        "board": _obj(
            {
                "model": {**_OPT_STR, "description": "/proc/device-tree/model"},
                "name": {**_STR, "description": "the name RaspAP's /system gives"},
                "revision_code": {**_OPT_STR, "description": "Revision in /proc/cpuinfo"},
                "type": {**_OPT_STR, "description": "4B, Zero 2 W, CM4, 5, 500..."},
                "revision": _OPT_STR,
                "memory_mb": _OPT_INT,
                "manufacturer": _OPT_STR,
                "processor": _OPT_STR,
            }
        ),
        "uptime_seconds": _OPT_NUM,
        "boot_at": {**_TIME, "type": ["string", "null"]},
        "load": _obj({"avg_1m": _NUM, "avg_5m": _NUM, "avg_15m": _NUM}),
        "cpu": _obj(
            {
                "count": _INT,
                "percent": {**_OPT_NUM, "description": "busy share of all CPUs"},
                "per_core_percent": {"type": "array", "items": _OPT_NUM},
                "interval_seconds": {
                    **_OPT_NUM,
                    "description": "time between the two /proc/stat snapshots compared",
                },
                "frequency": {
                    "type": "array",
                    "items": _obj(
                        {
                            "cpu": _INT,
                            "current_mhz": _NUM,
                            "min_mhz": _OPT_NUM,
                            "max_mhz": _OPT_NUM,
                        }
                    ),
                },
            }
        ),
        "memory": _USAGE,
        "swap": _USAGE,
        "disks": {
            "type": "array",
            "items": _obj(
                {
                    "mount_point": _STR,
                    "device": _STR,
                    "fs_type": _STR,
                    "read_only": {"type": "boolean"},
                    **_USAGE["properties"],
                }
            ),
        },
        "users": {
            "type": "array",
            "items": _obj(
                {
                    "user": _STR,
                    "terminal": _STR,
                    "host": _OPT_STR,
                    "login_at": _TIME,
                    "pid": _INT,
                }
            ),
        },
        "processes": _obj(
            {
                "count": _INT,
                "interval_seconds": _OPT_NUM,
                "top_cpu": {"type": "array", "items": _PROCESS},
                "top_memory": {"type": "array", "items": _PROCESS},
            }
        ),
    }
)

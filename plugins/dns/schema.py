"""The dns plugin's query parameters and response schemas."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Query

# The bounds the schemas state; service.py imports them from here (building the
# routes does not import the service).
LOG_FILE = "/var/log/dnsmasq.log"
#: Bounds on an ad-block list: bytes read and entries kept (the rest is reported truncated).
MAX_LIST_BYTES = 64 * 1024 * 1024
MAX_LIST_ENTRIES = 2_000_000
#: Log lines returned when not asked, and at most.
LOG_DEFAULT = 500
LOG_MAX = 5000

OFFSET = Query("offset", int, 0, "Index of the first item.", minimum=0)
LIMIT = Query("limit", int, 1000, "Items per page.", minimum=1, maximum=10000)
LOG_LIMIT = Query(
    "limit", int, LOG_DEFAULT, "How many of the last log lines.", minimum=1, maximum=LOG_MAX
)
SUMMARY_LOG_LIMIT = Query(
    "log_limit", int, 50, "How many of the last log lines.", minimum=0, maximum=LOG_MAX
)


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_LOG_ENTRY = {
    "type": "object",
    "properties": {
        "logged_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "UTC; syslog times carry no year or zone: local time of "
            "this year (last year when that is in the future) is assumed",
        },
        "time_text": {**_STR, "description": "the time as the log line has it"},
        "process": _STR,
        "pid": {"type": ["integer", "null"]},
        "message": _STR,
    },
}
_LIST_INFO = {
    "type": "object",
    "properties": {
        "file": _STR,
        "present": {"type": "boolean"},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
        "modified_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def page_schema(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "total": {"type": "integer"},
            "offset": {"type": "integer"},
            "limit": {"type": "integer"},
            "truncated": {
                "type": "boolean",
                "description": f"the file is larger than {MAX_LIST_BYTES} bytes or "
                f"{MAX_LIST_ENTRIES} entries; the rest is not listed",
            },
            key: {"type": "array", "items": _STR},
        },
    }


LEGACY_DOMAINS: dict[str, Any] = {
    "type": "object",
    "properties": {"domains": {"type": "array", "items": _STR}},
}
LEGACY_HOSTNAMES: dict[str, Any] = {
    "type": "object",
    "properties": {"hostnames": {"type": "array", "items": _STR}},
}
LEGACY_UPSTREAM: dict[str, Any] = {
    "type": "object",
    "properties": {"upstream_nameserver": _STR},
}
LEGACY_LOGS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"timestamp": _STR, "process": _STR, "message": _STR},
    },
}
SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "adblock": {
            "type": "object",
            "properties": {
                "enabled": {
                    "type": "boolean",
                    "description": "a dnsmasq file loads one of the lists",
                },
                "config_files": {"type": "array", "items": _STR},
                "domains": _LIST_INFO,
                "hostnames": _LIST_INFO,
            },
        },
        "upstream_servers": {"type": "array", "items": _STR},
        "log": {"type": "array", "items": _LOG_ENTRY},
    },
}
LOGS: dict[str, Any] = {
    "type": "object",
    "properties": {"log_file": _STR, "entries": {"type": "array", "items": _LOG_ENTRY}},
}

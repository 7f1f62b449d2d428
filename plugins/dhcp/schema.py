"""The dhcp plugin's response schemas."""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
LEGACY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "range_start": _STR,
        "range_end": _STR,
        "range_subnet_mask": _STR,
        "range_lease_time": _STR,
        "range_gateway": _STR,
        "range_nameservers": {"type": "array", "items": _STR},
    },
}
API_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ranges": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "file": _STR,
                    "interface": _NSTR,
                    "set_tag": _NSTR,
                    "tags": {"type": "array", "items": _STR},
                    "ip_version": {"enum": [4, 6]},
                    "start": _STR,
                    "end": _NSTR,
                    "netmask": _NSTR,
                    "broadcast": _NSTR,
                    "prefix_length": _NINT,
                    "modes": {"type": "array", "items": _STR},
                    "lease_time": {**_NSTR, "description": "as written, e.g. 12h or infinite"},
                    "lease_seconds": {**_NINT, "description": "null when infinite or unset"},
                },
            },
        },
        "static_leases": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "file": _STR,
                    "mac": _NSTR,
                    "client_id": _NSTR,
                    "ip": _NSTR,
                    "hostname": _NSTR,
                    "lease_time": _NSTR,
                    "lease_seconds": _NINT,
                    "ignore": {"type": "boolean"},
                },
            },
        },
        "leases": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "mac": _NSTR,
                    "ip": _STR,
                    "hostname": _NSTR,
                    "client_id": _NSTR,
                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
        "static_interfaces": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "interface": _STR,
                    "ip_address": _NSTR,
                    "routers": {"type": "array", "items": _STR},
                    "name_servers": {"type": "array", "items": _STR},
                },
            },
        },
    },
}

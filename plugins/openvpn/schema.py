"""The ``openvpn`` plugin's response schemas."""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
UNIT_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "unit": _STRING,
        "load_state": _STRING,
        "active_state": _STRING,
        "sub_state": _STRING,
        "unit_file_state": _STRING,
        "main_pid": {"type": ["integer", "null"]},
        "active_since": {**_NULLABLE_STRING, "description": "as systemctl prints it"},
        "memory_bytes": {"type": ["integer", "null"]},
    },
}
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "profiles": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": _STRING,
                    "config": _STRING,
                    "has_login": {"type": "boolean"},
                    "active": {"type": "boolean"},
                },
            },
        },
        "active_profile": _NULLABLE_STRING,
        "active_config": {**_NULLABLE_STRING, "description": "what client.conf points to"},
        "active_login": {**_NULLABLE_STRING, "description": "what login.conf points to"},
        "service": UNIT_SCHEMA,
        "service_error": _NULLABLE_STRING,
    },
}
LEGACY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "client_configs": {**_STRING, "description": "a count, as a string"},
        "client_config_names": {
            "type": "array",
            "items": {"type": "object", "properties": {"config": _STRING}},
        },
        "client_config_active": _STRING,
        "client_login_names": {
            "type": "array",
            "items": {"type": "object", "properties": {"login": _STRING}},
        },
        "client_login_active": _STRING,
    },
}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"client_config": {"type": "array", "items": _STRING}},
}

"""JSON schemas of the hostapd plugin's answers (for /openapi.json)."""

from __future__ import annotations

from typing import Any

from .validate import BODY_SCHEMA

#: RaspAP's ``/ap`` keys, in RaspAP's order.
AP_KEYS = (
    "driver",
    "ctrl_interface",
    "ctrl_interface_group",
    "auth_algs",
    "wpa_key_mgmt",
    "beacon_int",
    "ssid",
    "channel",
    "hw_mode",
    "ieee80211n",
    "frequency_band",
    "wpa_passphrase",
    "interface",
    "wpa",
    "wpa_pairwise",
    "country_code",
    "ignore_broadcast_ssid",
)

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_BAND = {"enum": ["2.4", "5", "6", None]}

LEGACY_AP: dict[str, Any] = {
    "type": "object",
    "properties": {
        key: ({"enum": ["2.4", "5", None]} if key == "frequency_band" else _STR) for key in AP_KEYS
    },
    "required": list(AP_KEYS),
}

STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "state": {
            "type": "string",
            "description": "hostapd's interface state, lower-case: enabled, disabled, "
            "country_update, acs, ht_scan, dfs, no_ir, uninitialized...",
        },
        "interface": _STR,
        "ssid": _STR_OR_NULL,
        "bssid": _STR_OR_NULL,
        "channel": _INT_OR_NULL,
        "frequency_mhz": _INT_OR_NULL,
        "band": _BAND,
        "hw_mode": _STR_OR_NULL,
        "country_code": _STR_OR_NULL,
        "num_stations": {"type": "integer"},
        "ieee80211n": {"type": "boolean"},
        "ieee80211ac": {"type": "boolean"},
        "ieee80211ax": {"type": "boolean"},
        "bss": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "interface": _STR,
                    "bssid": _STR_OR_NULL,
                    "ssid": _STR_OR_NULL,
                    "num_stations": {"type": "integer"},
                },
            },
        },
    },
}

PENDING: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "An unconfirmed change: it is rolled back at confirm_by.",
    "properties": {
        "changed": {"type": "array", "items": _STR},
        "confirm_by": {"type": "string", "format": "date-time"},
        "confirm_url": _STR,
        "seconds_left": {"type": "number"},
    },
}

CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": _STR,
        "interface": _STR_OR_NULL,
        "interfaces": {"type": "array", "items": _STR},
        "ctrl_interface": _STR,
        "values": {
            "type": "object",
            "description": "The first BSS's settings (the last line of a key wins); "
            "secrets are null unless the key is an admin key.",
            "additionalProperties": _STR_OR_NULL,
        },
        "redacted": {"type": "array", "items": _STR},
        "pending_change": PENDING,
    },
}

SERVICE: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "systemd's view of hostapd.service (null when systemctl cannot tell).",
    "properties": {
        "unit": _STR,
        "load_state": _STR,
        "active_state": _STR,
        "sub_state": _STR,
        "unit_file_state": _STR,
        "main_pid": _INT_OR_NULL,
        "active_since": _STR_OR_NULL,
        "memory_bytes": _INT_OR_NULL,
    },
}

OVERVIEW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {**STATUS, "type": ["object", "null"]},
        "status_reason": _STR_OR_NULL,
        "config": CONFIG,
        "service": SERVICE,
        "service_reason": _STR_OR_NULL,
    },
}

ACTION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"enum": ["enable", "disable", "reload", "restart"]},
        "interface": _STR,
        "changed": {"type": "boolean", "description": "false when it was already so"},
        "state": _STR_OR_NULL,
    },
}

PATCH_BODY = BODY_SCHEMA

PATCH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "changed": {"type": "array", "items": _STR},
        "applied": {
            "type": "boolean",
            "description": "whether the running hostapd took the change (if not, it is in "
            "hostapd.conf for hostapd's next start)",
        },
        "apply_error": _STR_OR_NULL,
        "confirm_by": {"type": ["string", "null"], "format": "date-time"},
        "confirm_url": _STR_OR_NULL,
    },
}

CONFIRM: dict[str, Any] = {
    "type": "object",
    "properties": {"confirmed": {"type": "boolean"}, "changed": {"type": "array", "items": _STR}},
}

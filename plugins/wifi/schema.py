"""JSON schemas of the wifi plugin's answers and its query parameter (for /openapi.json)."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Query

from .validate import CONNECT_BODY

REFRESH = Query(
    "refresh",
    bool,
    default=False,
    description="Scan now and wait for the results (bounded by RASPAPI_WIFI_SCAN_TIMEOUT).",
)

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_BOOL = {"type": "boolean"}
_BAND = {"enum": ["2.4", "5", "6", None]}

INTERFACE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "state": {
            "type": "string",
            "description": "wpa_supplicant's wpa_state, lower case: completed, disconnected, "
            "scanning, associating, 4way_handshake, inactive, interface_disabled... "
            "(unknown when it does not answer; see error)",
        },
        "connected": _BOOL,
        "ssid": _STR_OR_NULL,
        "bssid": _STR_OR_NULL,
        "network_id": _INT_OR_NULL,
        "frequency_mhz": _INT_OR_NULL,
        "band": _BAND,
        "signal_dbm": _INT_OR_NULL,
        "link_speed_mbps": _INT_OR_NULL,
        "key_mgmt": _STR_OR_NULL,
        "ip_address": _STR_OR_NULL,
        "connected_since": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when the daemon first saw this connection (its own start "
            "time when the link was up already)",
        },
        "error": {"type": "string", "description": "present when the interface did not answer"},
    },
}

OVERVIEW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ctrl_interface": _STR,
        "interfaces": {"type": "array", "items": INTERFACE},
    },
}

NETWORKS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "networks": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "A known network. Its passphrase is never shown.",
                "properties": {
                    "id": {"type": "integer"},
                    "ssid": _STR,
                    "priority": {"type": "integer"},
                    "disabled": _BOOL,
                    "current": _BOOL,
                },
            },
        },
    },
}

SCAN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "refreshed": {"type": "boolean", "description": "whether a new scan finished in time"},
        "refresh_error": _STR_OR_NULL,
        "networks": {
            "type": "array",
            "description": "strongest first",
            "items": {
                "type": "object",
                "properties": {
                    "ssid": {
                        "type": ["string", "null"],
                        "description": "UTF-8 decoded (U+FFFD for bytes that are not); "
                        "null when hidden",
                    },
                    "hidden": _BOOL,
                    "bssid": _STR,
                    "frequency_mhz": _INT_OR_NULL,
                    "band": _BAND,
                    "signal_dbm": _INT_OR_NULL,
                    "security": {
                        "enum": [
                            "open",
                            "owe",
                            "wep",
                            "wpa-psk",
                            "wpa2-psk",
                            "wpa2-wpa3",
                            "wpa3-sae",
                            "enterprise",
                        ]
                    },
                    "flags": {"type": "string", "description": "wpa_supplicant's flags"},
                    "known": {"type": "boolean", "description": "a known network has this SSID"},
                },
            },
        },
    },
}

CONNECT = CONNECT_BODY

CONNECTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {
            "enum": ["connected", "fell_back", "failed"],
            "description": "connected: joined and saved; fell_back: it did not connect, the "
            "previous network is selected again; failed: it did not connect and there was no "
            "previous network",
        },
        "interface": _STR,
        "ssid": _STR,
        "connected": _BOOL,
        "reason": {
            "type": ["string", "null"],
            "description": "wpa_supplicant's reason: WRONG_KEY, CONN_FAILED, AUTH_FAILED, "
            "NETWORK_NOT_FOUND, ASSOC_REJECT, AUTH_REJECT, DISCONNECTED or TIMEOUT",
        },
        "detail": _STR_OR_NULL,
        "network_id": _INT_OR_NULL,
        "previous_network_id": _INT_OR_NULL,
        "restored": {
            "type": ["boolean", "null"],
            "description": "after a fall-back: whether the previous network connected again "
            "within the timeout",
        },
        "saved": {"type": "boolean", "description": "SAVE_CONFIG succeeded"},
        "save_error": _STR_OR_NULL,
    },
}

ACTION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"enum": ["disconnect", "reconnect"]},
        "interface": _STR,
        "state": _STR_OR_NULL,
    },
}

FORGET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "removed": {"type": "integer"},
        "ssid": _STR,
        "was_current": _BOOL,
        "saved": _BOOL,
        "save_error": _STR_OR_NULL,
    },
}

"""The ``clients`` plugin's response schemas, query parameters and input checks."""

from __future__ import annotations

from typing import Any

from raspapi.plugin import Invalid, Query

from .service import MAC, MAX_BAN_SECONDS, TYPES

INTERFACE = Query("interface", str, description="Only clients on this interface.")
CONNECTION_TYPE = Query(
    "connection_type", str, choices=TYPES, description="Only clients connected this way."
)

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_LEGACY_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "timestamp": {"type": "integer", "description": "lease expiry (epoch); 0 without one"},
        "mac_address": _STR,
        "ip_address": _STR,
        "hostname": _STR,
        "client_id": _STR,
        "connection_type": {"enum": list(TYPES)},
    },
}
LEGACY_ALL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "active_clients_amount": {"type": "integer"},
        "active_wireless_clients_amount": {"type": "integer"},
        "active_ethernet_clients_amount": {"type": "integer"},
        "active_clients": {"type": "array", "items": _LEGACY_ITEM},
    },
}
LEGACY_INTERFACE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "active_clients_amount": {"type": "integer"},
        "active_clients": {"type": "array", "items": _LEGACY_ITEM},
    },
}
CLIENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mac": _STR,
        "ip": _STR_OR_NULL,
        "hostname": _STR_OR_NULL,
        "interface": _STR_OR_NULL,
        "connection_type": {"enum": list(TYPES)},
        "signal_dbm": _INT_OR_NULL,
        "rx_bytes": _INT_OR_NULL,
        "tx_bytes": _INT_OR_NULL,
        "rx_bitrate_kbps": _INT_OR_NULL,
        "tx_bitrate_kbps": _INT_OR_NULL,
        "connected_seconds": _INT_OR_NULL,
        "inactive_ms": _INT_OR_NULL,
        "authorized": {"type": ["boolean", "null"]},
        "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
LIST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "counts": {
            "type": "object",
            "properties": {t: {"type": "integer"} for t in TYPES},
        },
        "clients": {"type": "array", "items": CLIENT},
    },
}
BAN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mac": _STR,
        "banned_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "remaining_seconds": {"type": "integer"},
    },
}
KICK_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ban_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_BAN_SECONDS},
    },
}
KICK: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mac": _STR,
        "deauthenticated": {"type": "boolean"},
        "ban": {**BAN, "type": ["object", "null"]},
    },
}
BANS: dict[str, Any] = {
    "type": "object",
    "properties": {"bans": {"type": "array", "items": BAN}},
}
LIFTED: dict[str, Any] = {
    "type": "object",
    "properties": {"mac": _STR, "lifted": {"type": "boolean"}},
}


def mac(raw: str) -> str:
    mac = raw.lower()
    if not MAC.fullmatch(mac):
        raise Invalid("mac", "expected a MAC address like aa:bb:cc:dd:ee:ff")
    return mac


def ban_seconds(body: Any) -> int | None:
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object")
    for name in body:
        if name != "ban_seconds":
            raise Invalid(name, "unknown field; the only field is ban_seconds")
    value = body.get("ban_seconds")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("ban_seconds", "expected a whole number of seconds")
    if not 1 <= value <= MAX_BAN_SECONDS:
        raise Invalid("ban_seconds", f"must be 1 to {MAX_BAN_SECONDS} (7 days)")
    return value

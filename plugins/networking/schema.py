"""The networking plugin's response schemas."""

from __future__ import annotations

from typing import Any

#: The traffic counters of an interface (/sys/class/net/<name>/statistics).
COUNTERS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
)

_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_ADDRESS = {
    "type": "object",
    "properties": {
        "address": {"type": "string"},
        "prefix_length": {"type": "integer"},
        "scope": _NULLABLE_STRING,
    },
}
INTERFACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "ifindex": _NULLABLE_INT,
        "mac_address": _NULLABLE_STRING,
        "mtu": _NULLABLE_INT,
        "operstate": {"type": "string", "description": "The kernel's operstate: up, down..."},
        "carrier": {"type": ["boolean", "null"]},
        "up": {"type": "boolean", "description": "operstate up, or unknown with carrier"},
        "speed_mbps": {**_NULLABLE_INT, "description": "null when the driver does not say"},
        "ipv4": {"type": "array", "items": _ADDRESS},
        "ipv6": {"type": "array", "items": _ADDRESS},
        "counters": {"type": "object", "properties": {k: _NULLABLE_INT for k in COUNTERS}},
        "rates": {
            "type": "object",
            "properties": {f"{k}_per_second": _NULLABLE_NUMBER for k in COUNTERS},
        },
    },
}
_META = {
    "sampled_at": {"type": "string", "format": "date-time"},
    "rate_interval_seconds": {**_NULLABLE_NUMBER, "description": "what the rates average over"},
    "addresses_error": {**_NULLABLE_STRING, "description": "why addresses are missing"},
}
OVERVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {**_META, "interfaces": {"type": "array", "items": INTERFACE_SCHEMA}},
}
ONE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {**INTERFACE_SCHEMA["properties"], **_META},
}
LEGACY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interfaces": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "IP_address": _NULLABLE_STRING,
                    "Netmask": _NULLABLE_STRING,
                    "MAC_address": _NULLABLE_STRING,
                },
            },
        },
        "throughput": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"}
                    for k in ("RX_packets", "RX_bytes", "TX_packets", "TX_bytes")
                },
            },
        },
    },
}

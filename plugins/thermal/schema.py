"""The thermal plugin's answer schema."""

from __future__ import annotations

from typing import Any

from .service import FLAGS

_TEMP = {"type": ["number", "null"], "description": "null when the sensor does not answer"}
_FLAGS = {
    "type": "object",
    "required": list(FLAGS),
    "properties": {name: {"type": "boolean"} for name in FLAGS},
}
RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["zones", "hwmon", "throttling", "throttling_reason"],
    "properties": {
        "zones": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "zone": {"type": "string", "description": "e.g. thermal_zone0"},
                    "label": {"type": "string", "description": "the zone's type, e.g. cpu-thermal"},
                    "temperature_celsius": _TEMP,
                },
            },
        },
        "hwmon": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "chip": {"type": "string", "description": "e.g. hwmon0"},
                    "name": {"type": "string", "description": "the chip's name, e.g. cpu_thermal"},
                    "label": {"type": "string", "description": "tempN_label, else tempN"},
                    "temperature_celsius": _TEMP,
                },
            },
        },
        "throttling": {
            "type": ["object", "null"],
            "properties": {
                "source": {"enum": ["vcgencmd", "sysfs"]},
                "raw": {"type": "string", "description": "get_throttled, e.g. 0x50005"},
                "now": _FLAGS,
                "since_boot": _FLAGS,
            },
        },
        "throttling_reason": {"type": ["string", "null"]},
    },
}

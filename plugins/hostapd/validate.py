"""What ``PATCH /api/v1/hostapd/config`` accepts, checked before anything is written."""

from __future__ import annotations

import string
import unicodedata
from typing import Any

from raspapi.plugin import Invalid

from .config import HostapdConf

#: The fields a client may change, in the order they are applied.
FIELDS = ("ssid", "wpa_passphrase", "hw_mode", "channel", "country_code", "hidden")
#: The hostapd setting behind each API field (for messages about hostapd's answers).
FIELD_OF = {
    "ssid": "ssid",
    "wpa_passphrase": "wpa_passphrase",
    "wpa_psk": "wpa_passphrase",
    "hw_mode": "hw_mode",
    "channel": "channel",
    "country_code": "country_code",
    "ignore_broadcast_ssid": "hidden",
}
#: Settings the radio applies only when the interface is set up again.
RADIO = frozenset({"hw_mode", "channel", "country_code"})

_5GHZ = (
    *range(36, 65, 4),
    *range(100, 145, 4),
    *range(149, 178, 4),
)
#: Channels per hw_mode (2.4 GHz: 14 only in 802.11b, as in Japan).
CHANNELS: dict[str, tuple[int, ...]] = {
    "b": tuple(range(1, 15)),
    "g": tuple(range(1, 14)),
    "a": _5GHZ,
}
#: hostapd's default when hostapd.conf has no hw_mode.
DEFAULT_HW_MODE = "b"
#: ISO 3166-1 alpha-2 (as /usr/share/zoneinfo/iso3166.tab lists them).
_ISO_3166 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
"""
COUNTRIES = frozenset(_ISO_3166.split())

BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "ssid": {"type": "string", "description": "1 to 32 bytes (UTF-8), no control characters"},
        "wpa_passphrase": {
            "type": "string",
            "description": "8 to 63 printable ASCII characters, or a 64-hex-digit PSK",
        },
        "hw_mode": {"enum": list(CHANNELS), "description": "a: 5 GHz; g, b: 2.4 GHz"},
        "channel": {"type": "integer", "description": "a channel of the band hw_mode selects"},
        "country_code": {"type": "string", "description": "ISO 3166-1 alpha-2, e.g. GB"},
        "hidden": {"type": "boolean", "description": "hide the SSID (ignore_broadcast_ssid)"},
    },
}


class Change:
    """hostapd settings to write (in order) and to drop, and the API fields behind them."""

    __slots__ = ("deletes", "fields", "sets")

    def __init__(self, deletes: list[str] | None = None) -> None:
        self.sets: dict[str, str] = {}
        self.deletes: list[str] = deletes if deletes is not None else []
        self.fields: list[str] = []


def plan(body: Any, conf: HostapdConf) -> Change:
    """Check ``body`` against the current configuration; 422 naming the field at fault.

    Only settings whose value really changes end up in the result.
    """
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object")
    for name in body:
        if name not in FIELDS:
            raise Invalid(name, f"unknown field; the fields are {', '.join(FIELDS)}")
    if not body:
        raise Invalid("body", f"give at least one of {', '.join(FIELDS)}")
    current = conf.values()
    wanted: dict[str, str] = {}
    deletes: list[str] = []
    if "ssid" in body:
        wanted["ssid"] = _ssid(body["ssid"])
    if "wpa_passphrase" in body:
        key, value = _passphrase(body["wpa_passphrase"])
        if (current.get("wpa") or "0").strip() in ("", "0"):
            raise Invalid(
                "wpa_passphrase",
                "this access point is open (no wpa= in hostapd.conf); set up WPA there first",
            )
        wanted[key] = value
        other = "wpa_psk" if key == "wpa_passphrase" else "wpa_passphrase"
        if other in current:
            deletes.append(other)
    hw_mode = (current.get("hw_mode") or DEFAULT_HW_MODE).strip()
    if "hw_mode" in body:
        hw_mode = wanted["hw_mode"] = _choice("hw_mode", body["hw_mode"], tuple(CHANNELS))
    if "channel" in body:
        wanted["channel"] = str(_channel(body["channel"], hw_mode))
    elif "hw_mode" in body:
        _check_current_channel(current.get("channel"), hw_mode)
    if "country_code" in body:
        wanted["country_code"] = _country(body["country_code"])
    if "hidden" in body:
        if not isinstance(body["hidden"], bool):
            raise Invalid("hidden", f"expected true or false, got {_kind(body['hidden'])}")
        wanted["ignore_broadcast_ssid"] = "1" if body["hidden"] else "0"

    change = Change(deletes=deletes)
    for key, value in wanted.items():
        if current.get(key) != value:
            change.sets[key] = value
    for key in [*change.sets, *deletes]:
        name = FIELD_OF[key]
        if name not in change.fields:
            change.fields.append(name)
    return change


def _ssid(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("ssid", f"expected a string, got {_kind(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid("ssid", "is not valid Unicode text") from None
    if not 1 <= size <= 32:
        raise Invalid("ssid", f"must be 1 to 32 bytes in UTF-8, not {size}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise Invalid("ssid", "must not contain control characters (newline, NUL, tab...)")
    return value


def _passphrase(value: Any) -> tuple[str, str]:
    # The value is a secret: no message ever repeats it.
    if not isinstance(value, str):
        raise Invalid("wpa_passphrase", f"expected a string, got {_kind(value)}")
    if len(value) == 64 and all(c in string.hexdigits for c in value):
        return "wpa_psk", value.lower()
    if 8 <= len(value) <= 63 and all(" " <= c <= "~" for c in value):
        return "wpa_passphrase", value
    raise Invalid(
        "wpa_passphrase",
        "must be 8 to 63 printable ASCII characters (no control characters), or 64 hex digits",
    )


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise Invalid(name, f"must be one of {', '.join(choices)}")
    return value


def _channel(value: Any, hw_mode: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("channel", f"expected an integer, got {_kind(value)}")
    valid = CHANNELS.get(hw_mode, ())
    if value not in valid:
        raise Invalid("channel", f"{value} is not a channel of hw_mode {hw_mode} ({_span(valid)})")
    return value


def _check_current_channel(raw: str | None, hw_mode: str) -> None:
    if raw is None or not raw.strip().isdigit():
        return
    channel = int(raw)
    if channel != 0 and channel not in CHANNELS.get(hw_mode, ()):
        raise Invalid(
            "channel",
            f"the current channel {channel} is not valid with hw_mode {hw_mode}; "
            f"send a channel too ({_span(CHANNELS.get(hw_mode, ()))})",
        )


def _country(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("country_code", f"expected a string, got {_kind(value)}")
    code = value.upper()
    if code not in COUNTRIES:
        raise Invalid("country_code", f"{value[:8]!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _span(channels: tuple[int, ...]) -> str:
    if not channels:
        return "none"
    if channels == tuple(range(channels[0], channels[-1] + 1)):
        return f"{channels[0]} to {channels[-1]}"
    return ", ".join(map(str, channels))


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)

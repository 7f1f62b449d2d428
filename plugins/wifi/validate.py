"""What the wifi plugin accepts from a client, checked before wpa_supplicant is asked.

Nothing a client sends can reach wpa_supplicant's control protocol as
protocol text: an SSID is always sent hex-encoded (``SET_NETWORK 3 ssid
48656c6c6f``), a passphrase only once it is 8 to 63 printable ASCII
characters without ``"`` (then quoted) or 64 hex digits (a raw PSK), and
numbers are checked integers. One command is one datagram, so even a newline
could not start a second command; it is refused anyway.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

from raspapi.plugin import (
    Invalid,
    NotFound,
)

#: The fields ``POST /api/v1/wifi/{interface}/connect`` takes.
FIELDS = ("ssid", "passphrase", "hidden", "priority")
#: wpa_supplicant's priority is an int; keep it to a sane range.
MAX_PRIORITY = 1000
#: Linux interface names: at most 15 bytes (IFNAMSIZ - 1).
INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}")
#: wpa_supplicant's network ids are small non-negative ints.
MAX_NETWORK_ID = 99_999

CONNECT_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ssid"],
    "properties": {
        "ssid": {
            "type": "string",
            "description": "1 to 32 bytes (UTF-8), no control characters (newline, NUL, tab...)",
        },
        "passphrase": {
            "type": ["string", "null"],
            "description": "8 to 63 printable ASCII characters without a double quote, or a "
            "64-hex-digit PSK; leave it out (or null) for an open network. Never shown again.",
        },
        "hidden": {
            "type": "boolean",
            "description": "the network does not broadcast its SSID (probe for it: scan_ssid=1)",
        },
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_PRIORITY,
            "description": "wpa_supplicant's priority (higher is preferred)",
        },
    },
}


@dataclass(frozen=True)
class Join:
    """A checked connect request. ``psk`` is already in wpa_supplicant's
    syntax (``"quoted"`` or 64 hex digits); it never goes into a message."""

    ssid: bytes
    psk: str | None
    hidden: bool
    priority: int | None

    def __repr__(self) -> str:  # never show the passphrase
        return f"Join(ssid={self.ssid!r}, hidden={self.hidden}, priority={self.priority})"


def join(body: Any) -> Join:
    """Check a connect body; 422 naming the field at fault."""
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object")
    for name in body:
        if name not in FIELDS:
            raise Invalid(str(name)[:40], f"unknown field; the fields are {', '.join(FIELDS)}")
    if "ssid" not in body:
        raise Invalid("ssid", "is required")
    hidden = body.get("hidden", False)
    if not isinstance(hidden, bool):
        raise Invalid("hidden", f"expected true or false, got {_kind(hidden)}")
    priority = body.get("priority")
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= MAX_PRIORITY
    ):
        raise Invalid("priority", f"expected an integer from 0 to {MAX_PRIORITY}")
    passphrase = body.get("passphrase")
    return Join(
        ssid=ssid(body["ssid"]),
        psk=None if passphrase is None else psk(passphrase),
        hidden=hidden,
        priority=priority,
    )


def ssid(value: Any) -> bytes:
    """An SSID as its UTF-8 bytes (1 to 32 of them, no control characters)."""
    if not isinstance(value, str):
        raise Invalid("ssid", f"expected a string, got {_kind(value)}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("ssid", "is not valid Unicode text") from None
    if not 1 <= len(raw) <= 32:
        raise Invalid("ssid", f"must be 1 to 32 bytes in UTF-8, not {len(raw)}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise Invalid("ssid", "must not contain control characters (newline, NUL, tab...)")
    return raw


def psk(value: Any) -> str:
    """A passphrase in wpa_supplicant's syntax. The value is a secret: no
    message repeats it.

    wpa_supplicant reads ``psk="..."`` up to the last quote, but its
    configuration file parser treats a ``#`` after an inner quote as the start
    of a comment: a passphrase with ``"`` could be saved and then not load
    again. Such a passphrase is refused; its 64-hex-digit PSK works.
    """
    if not isinstance(value, str):
        raise Invalid("passphrase", f"expected a string, got {_kind(value)}")
    if len(value) == 64 and all(c in string.hexdigits for c in value):
        return value.lower()
    if 8 <= len(value) <= 63 and all(" " <= c <= "~" and c != '"' for c in value):
        return f'"{value}"'
    if '"' in value and 8 <= len(value) <= 63:
        raise Invalid(
            "passphrase",
            "must not contain a double quote (wpa_supplicant cannot save it safely); "
            "give the network's 64-hex-digit PSK instead",
        )
    raise Invalid(
        "passphrase",
        "must be 8 to 63 printable ASCII characters (no control characters), or 64 hex digits",
    )


def interface(name: str, known: list[str]) -> str:
    """A path's interface: one wpa_supplicant runs (404 otherwise)."""
    if not INTERFACE.fullmatch(name) or name not in known:
        shown = name[:20] if INTERFACE.fullmatch(name[:20]) else "that interface"
        raise NotFound(
            f"wpa_supplicant runs no control interface for {shown}; "
            f"known: {', '.join(known) or 'none'}",
            code="unknown_interface",
        )
    return name


def network_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_NETWORK_ID:
        raise Invalid("id", f"expected a network id from 0 to {MAX_NETWORK_ID}")
    return int(raw)


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

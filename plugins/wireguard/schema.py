"""The ``wireguard`` plugin's schemas, its query parameter and the check of a new peer's body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raspapi.plugin import BadRequest, Invalid, Query

from . import peers

FORMAT: Query[str] = Query(
    "format",
    str,
    default="json",
    description=(
        "json: the peer, its client config and an SVG QR code in one object; "
        "conf: the client config as text/plain; svg or png: the QR code alone"
    ),
    choices=("json", "conf", "svg", "png"),
)
BODY_FIELDS = frozenset(
    {
        "name",
        "allowed_ips",
        "client_allowed_ips",
        "dns",
        "endpoint",
        "persistent_keepalive_seconds",
    }
)

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STRINGS = {"type": "array", "items": _STR}
PEER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "public_key": _STR,
        "name": {**_STR_OR_NULL, "description": "From a `# Name = ...` comment in the config."},
        "endpoint": _STR_OR_NULL,
        "allowed_ips": _STRINGS,
        "latest_handshake_at": {"type": ["string", "null"], "format": "date-time"},
        "handshake_age_seconds": _INT_OR_NULL,
        "rx_bytes": {"type": "integer"},
        "tx_bytes": {"type": "integer"},
        "persistent_keepalive_seconds": _INT_OR_NULL,
        "connected": {"type": "boolean", "description": "A handshake in the last 180 s."},
        "has_preshared_key": {"type": "boolean"},
        "live": {"type": "boolean", "description": "Known to the running interface."},
        "in_config": {"type": "boolean", "description": "Listed in the config file."},
    },
}
INTERFACE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STR,
        "up": {"type": ["boolean", "null"], "description": "null when wg could not be asked."},
        "public_key": _STR_OR_NULL,
        "listen_port": _INT_OR_NULL,
        "fwmark": _INT_OR_NULL,
        "address": {**_STRINGS, "description": "The config's Address entries."},
        "config_file": _STR_OR_NULL,
        "peer_count": {"type": "integer"},
        "connected_peer_count": {"type": "integer"},
        "rx_bytes": {"type": "integer"},
        "tx_bytes": {"type": "integer"},
        "peers": {"type": "array", "items": PEER},
    },
}
LIST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "updated_at": {"type": "string", "format": "date-time"},
        "live_error": _STR_OR_NULL,
        "config_error": _STR_OR_NULL,
        "interfaces": {"type": "array", "items": INTERFACE},
    },
}
ADD_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 64, "description": "No control characters."},
        "allowed_ips": {
            **_STRINGS,
            "description": "Networks behind the peer, routed to it besides its own address.",
        },
        "client_allowed_ips": {
            **_STRINGS,
            "default": ["0.0.0.0/0", "::/0"],
            "description": "What the peer sends through the tunnel (its AllowedIPs).",
        },
        "dns": {**_STRINGS, "description": "DNS servers for the client config."},
        "endpoint": {
            "type": "string",
            "description": "host or host:port phones connect to. Default: the config's "
            "`# Endpoint =` comment, else the Host header of this request; the port "
            "defaults to the interface's listen port.",
        },
        "persistent_keepalive_seconds": {"type": "integer", "minimum": 0, "default": 25},
    },
}
assert set(ADD_BODY["properties"]) == BODY_FIELDS
ADDED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "public_key": _STR,
        "name": _STR,
        "address": _STRINGS,
        "allowed_ips": _STRINGS,
        "endpoint": _STR,
        "applied": {"type": "boolean", "description": "Applied to the running interface."},
        "client_config": {"type": "string", "description": "Shown this once: holds its keys."},
        "qr_svg": {"type": "string", "description": "The client config as an SVG QR code."},
    },
}
REMOVED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "public_key": _STR,
        "removed_from_config": {"type": "boolean"},
        "removed_from_interface": {"type": "boolean"},
    },
}
UNIT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "unit": _STR,
        "action": {"enum": ["up", "down"]},
        "active_state": _STR_OR_NULL,
    },
}
LEGACY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "client_configs": _STR,
        "client_config_names": {
            "type": "array",
            "items": {"type": "object", "properties": {"config": _STR}},
        },
        "client_config_active": _STR,
    },
}


@dataclass(frozen=True)
class NewPeer:
    """A checked ``POST /{interface}/peers`` body."""

    name: str
    #: Networks behind the peer, routed to it besides its own address.
    allowed_ips: list[peers.IPNetwork]
    #: What the peer sends through the tunnel.
    client_allowed_ips: list[peers.IPNetwork]
    dns: list[str]
    keepalive: int
    #: (host, port or None) asked for, None for the default.
    endpoint: tuple[str, int | None] | None


def new_peer(body: Any) -> NewPeer:
    """The body of ``POST /{interface}/peers`` checked, field by field (400 or 422)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="body_invalid")
    for key in body:
        if key not in BODY_FIELDS:
            raise Invalid(str(key), f"unknown field; fields are {', '.join(sorted(BODY_FIELDS))}")
    if "name" not in body:
        raise Invalid("name", "is required")
    label = peers.peer_name(body["name"])
    extra = peers.networks(body.get("allowed_ips", []), "allowed_ips")
    routes = peers.networks(
        body.get("client_allowed_ips", list(peers.DEFAULT_CLIENT_ALLOWED_IPS)),
        "client_allowed_ips",
    )
    if not routes:
        raise Invalid("client_allowed_ips", "must name at least one network")
    dns = peers.addresses(body.get("dns", []), "dns")
    keepalive = body.get("persistent_keepalive_seconds", peers.DEFAULT_KEEPALIVE)
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 0 <= keepalive <= 65535:
        raise Invalid(
            "persistent_keepalive_seconds", "must be a whole number from 0 (off) to 65535"
        )
    requested = body.get("endpoint")
    if requested is not None and not isinstance(requested, str):
        raise Invalid("endpoint", "must be a string: host or host:port")
    wanted = peers.endpoint(requested) if requested else None
    return NewPeer(label, extra, routes, dns, keepalive, wanted)

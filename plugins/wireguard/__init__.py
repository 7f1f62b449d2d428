"""WireGuard: live tunnels and peers, adding and removing peers, and RaspAP's ``/wireguard``.

Live state comes from ``wg show all dump`` (the kernel module and wireguard-go
alike), merged with the wg-quick configs in ``/etc/wireguard``. Private and
preshared keys never appear in an answer, except in the client config handed
out once when a peer is added.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.routing import Route

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from . import telemetry
from .service import BODY_FIELDS, FORMAT, WireGuard


def _service(ctx: PluginContext) -> WireGuard:
    return ctx.service(WireGuard)


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STRINGS = {"type": "array", "items": _STR}
PEER_SCHEMA: dict[str, Any] = {
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
INTERFACE_SCHEMA: dict[str, Any] = {
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
        "peers": {"type": "array", "items": PEER_SCHEMA},
    },
}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "updated_at": {"type": "string", "format": "date-time"},
        "live_error": _STR_OR_NULL,
        "config_error": _STR_OR_NULL,
        "interfaces": {"type": "array", "items": INTERFACE_SCHEMA},
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
ADDED_SCHEMA: dict[str, Any] = {
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
REMOVED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "public_key": _STR,
        "removed_from_config": {"type": "boolean"},
        "removed_from_interface": {"type": "boolean"},
    },
}
UNIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interface": _STR,
        "unit": _STR,
        "action": {"enum": ["up", "down"]},
        "active_state": _STR_OR_NULL,
    },
}
LEGACY_SCHEMA: dict[str, Any] = {
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


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[Route]:
    wg = _service(ctx)

    async def list_all(request: Any) -> Any:
        """Every WireGuard interface and its peers, live state merged with the configs."""
        return await wg.list_all(request)

    async def one(request: Any) -> Any:
        """One WireGuard interface and its peers."""
        return await wg.get_interface(request)

    return [
        ApiRoute("/", list_all, methods=["GET"], name="interfaces", response=LIST_SCHEMA),
        ApiRoute("/{interface}", one, methods=["GET"], name="interface", response=INTERFACE_SCHEMA),
        ApiRoute(
            "/{interface}/peers",
            wg.add_peer,
            methods=["POST"],
            name="add_peer",
            scope="control",
            body=ADD_BODY,
            query=[FORMAT],
            response=ADDED_SCHEMA,
            status_code=201,
            media_types=("application/json", "text/plain", "image/svg+xml", "image/png"),
        ),
        ApiRoute(
            "/{interface}/peers/{public_key:path}",
            wg.delete_peer,
            methods=["DELETE"],
            name="delete_peer",
            scope="control",
            response=REMOVED_SCHEMA,
        ),
        ApiRoute(
            "/{interface}/up",
            wg.up,
            methods=["POST"],
            name="up",
            scope="control",
            response=UNIT_SCHEMA,
        ),
        ApiRoute(
            "/{interface}/down",
            wg.down,
            methods=["POST"],
            name="down",
            scope="control",
            response=UNIT_SCHEMA,
        ),
    ]


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[Route]:
    wg = _service(ctx)
    return [
        ApiRoute("/wireguard", wg.legacy, methods=["GET"], name="wireguard", response=LEGACY_SCHEMA)
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    return await _service(ctx).status()


@hookimpl
def raspapi_startup(ctx: PluginContext) -> None:
    # Checked only while a GET /api/v1/events stream is open.
    wg = _service(ctx)
    ctx.events.watch(lambda: telemetry.watch_handshakes(wg), "wireguard.handshake")


@hookimpl
def raspapi_samples(ctx: PluginContext) -> dict[str, float] | Awaitable[dict[str, float]]:
    wg = _service(ctx)
    # Samples are of running interfaces only: with none, not even the configs
    # are read (one look at /sys and /var/run/wireguard per interval, in the
    # samples' worker thread). With one, `wg show` runs on the loop.
    if not wg.interfaces_exist():
        return {}
    return telemetry.samples(wg)


@hookimpl
async def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    return await telemetry.families(_service(ctx))

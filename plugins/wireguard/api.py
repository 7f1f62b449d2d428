"""The wireguard plugin's HTTP handlers (Starlette); the work is in ``service.py``.

Each handler takes the plugin's service and the request (bound with
``plugins._handlers.bind``): it parses the request, calls the service and
answers. Its docstring is the route's OpenAPI description.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from raspapi.plugin import read_json

from . import peers, schema
from .service import WireGuard

#: Added peers carry their keys: never kept by a cache on the way.
_NO_STORE = {"Cache-Control": "no-store"}


def _interface(request: Request) -> str:
    return peers.interface_name(request.path_params["interface"])


async def list_all(wg: WireGuard, request: Request) -> Response:
    """Every WireGuard interface and its peers, live state merged with the configs."""
    return Response(await wg.list_body(), media_type="application/json")


async def one(wg: WireGuard, request: Request) -> Response:
    """One WireGuard interface and its peers."""
    name = _interface(request)
    return Response(await wg.interface_body(name), media_type="application/json")


async def add_peer(wg: WireGuard, request: Request) -> Response:
    """Add a peer (a phone, a laptop) and get its client config and QR code, once.

    Generates the peer's key pair and a preshared key, takes the next free
    address in the interface's subnet, appends a `[Peer]` section to
    `/etc/wireguard/<interface>.conf` (every other byte kept) and applies it
    to the running interface. The private and preshared keys are in this
    answer only: they are not stored anywhere but in the config files.
    """
    name = _interface(request)
    fmt = schema.FORMAT.parse(request)
    new = schema.new_peer(await read_json(request))
    added = await wg.add_peer(name, new, request.headers.get("host"))
    text = added.client_config
    headers = {**_NO_STORE, "X-Peer-Public-Key": added.public_key}
    if fmt == "conf":
        return Response(text, status_code=201, media_type="text/plain", headers=headers)
    if fmt == "svg":
        svg = await wg.qr_code(text, "svg")
        return Response(svg, status_code=201, media_type="image/svg+xml", headers=headers)
    if fmt == "png":
        png = await wg.qr_code(text, "png")
        return Response(png, status_code=201, media_type="image/png", headers=headers)
    svg = await wg.qr_code(text, "svg")
    answer = {**added.fields, "client_config": text, "qr_svg": svg}
    return JSONResponse(answer, status_code=201, headers=headers)


async def delete_peer(wg: WireGuard, request: Request) -> JSONResponse:
    """Remove a peer from the config file and the running interface.

    The key may be standard base64 with `/` as `%2F` (or plain), or URL-safe
    base64 (`-` and `_`); the trailing `=` may be left out.
    """
    name = _interface(request)
    key = peers.public_key(request.path_params["public_key"])
    return JSONResponse(await wg.delete_peer(name, key))


async def up(wg: WireGuard, request: Request) -> JSONResponse:
    """Start the interface with `systemctl start wg-quick@<interface>`."""
    return JSONResponse(await wg.unit(_interface(request), "up"))


async def down(wg: WireGuard, request: Request) -> JSONResponse:
    """Stop the interface with `systemctl stop wg-quick@<interface>`."""
    return JSONResponse(await wg.unit(_interface(request), "down"))


async def legacy(wg: WireGuard, request: Request) -> JSONResponse:
    """RaspAP's WireGuard profiles: the file count, the names and the active one.

    Works whether `wg0.conf` is a regular file, a symlink or absent; an
    unreadable folder gives the empty answer (and the plugin's status says why).
    """
    return JSONResponse(await wg.legacy())

"""The networking plugin's handlers: thin, the service does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from .service import Networking


async def legacy(service: Networking, request: Request) -> JSONResponse:
    """Interfaces (IPv4 address, netmask, MAC) and their traffic counters.

    RaspAP's shape; lo* and docker* are left out. Counters are integers (as
    RaspAP's psutil gives them), each filled from the counter its label names.
    """
    return JSONResponse(await service.legacy())


async def overview(service: Networking, request: Request) -> JSONResponse:
    """Every interface: addresses, MAC, MTU, state, speed, counters and rates.

    Rates are per second, averaged since the previous refresh (refreshes are
    at least a cache period apart); null on the first sample and after a
    counter went back (the interface was re-created).
    """
    return JSONResponse(await service.overview())


async def one(service: Networking, request: Request) -> JSONResponse:
    """One interface: addresses, MAC, MTU, state, speed, counters and rates."""
    name: str = request.path_params["interface"]
    return JSONResponse(await service.one(name))

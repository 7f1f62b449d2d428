"""The system plugin's handlers: thin, the service does the work."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .schema import LIMIT
from .service import SystemService


async def legacy(service: SystemService, request: Request) -> JSONResponse:
    """System summary, as RaspAP's RestAPI answers it.

    Exactly RaspAP's 14 keys in RaspAP's order and types. Missing files give
    empty strings and zeros, never an error.
    """
    return JSONResponse(await service.legacy())


async def overview(service: SystemService, request: Request) -> JSONResponse:
    """Host, OS, board, uptime, load, CPU, memory, disks, users and top processes.

    CPU figures compare /proc/stat with the previous refresh (the first
    baseline is taken at startup); `interval_seconds` says over how long.
    """
    limit = LIMIT.parse(request) or 5
    return JSONResponse(await service.overview(limit))

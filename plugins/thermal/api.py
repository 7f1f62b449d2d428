"""The thermal plugin's HTTP handler (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .service import Thermal


async def thermal(service: Thermal, request: Request) -> JSONResponse:
    """Temperatures of every thermal zone and hwmon sensor, and the Pi's throttling flags.

    `throttling` is null on a machine without the Raspberry Pi firmware;
    `throttling_reason` then says why.
    """
    return JSONResponse(await service.report())

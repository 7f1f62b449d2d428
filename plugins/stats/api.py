"""The ``stats`` plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import BadRequest, Invalid, read_json

from . import schema
from .service import HISTORY_SAMPLES, Stats


async def full(service: Stats, request: Request) -> JSONResponse:
    """Full system snapshot (V6Direct RASPAPI), cached for 30 s."""
    return JSONResponse(await service.get())


async def cpu(service: Stats, request: Request) -> JSONResponse:
    """CPU metrics (V6Direct RASPAPI): use, per core, frequency, temperature, load."""
    return JSONResponse((await service.get())["cpu"])


async def memory(service: Stats, request: Request) -> JSONResponse:
    """Memory and swap (V6Direct RASPAPI), in MB of 10^6 bytes."""
    return JSONResponse((await service.get())["memory"])


async def network(service: Stats, request: Request) -> JSONResponse:
    """Per-interface traffic counters and addresses (V6Direct RASPAPI).

    `interface` filters to one; an unknown one answers 404.
    """
    interfaces = (await service.get())["interfaces"]
    wanted = schema.INTERFACE.parse(request)
    if wanted:
        interfaces = [i for i in interfaces if i["name"] == wanted]
        if not interfaces:
            return JSONResponse(
                {"detail": f"Interface '{wanted[:64]}' not found."}, status_code=404
            )
    return JSONResponse(interfaces)


async def node(service: Stats, request: Request) -> JSONResponse:
    """Node information (V6Direct RASPAPI): host name, platform, boot time, uptime."""
    return JSONResponse((await service.get())["node"])


async def recent(service: Stats, request: Request) -> JSONResponse:
    """The last samples (V6Direct RASPAPI): one per snapshot, at most 60 kept."""
    return JSONResponse(await service.history(schema.LIMIT.parse(request) or HISTORY_SAMPLES))


async def refresh(service: Stats, request: Request) -> JSONResponse:
    """Take a new snapshot now (V6Direct RASPAPI); `full` also clears the history."""
    try:
        body = await read_json(request)
    except BadRequest as exc:
        if exc.code != "body_missing":
            raise
        body = {}  # V6Direct needs a body; none means the defaults here
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object with reason and full")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > schema.MAX_REASON):
        raise Invalid("reason", f"must be a string of at most {schema.MAX_REASON} characters")
    full = schema.boolean(body.get("full", False))
    snapshot = await service.get(force=True, clear=full)
    return JSONResponse(
        {
            "success": True,
            # V6Direct's wording, spelling included: its clients may match it.
            "message": f"Cache refreshed sucessfully.{' Reason: ' + reason if reason else ''}",
            "cleared_history": full,
            "new_snapshot_timestamp": snapshot["timestamp_utc"],
        }
    )

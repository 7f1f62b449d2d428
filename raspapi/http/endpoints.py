"""The core's own routes: index, health, readiness, OpenAPI and the docs pages."""

from __future__ import annotations

import functools
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from raspapi import __version__
from raspapi.daemon.runtime import Runtime
from raspapi.http import openapi
from raspapi.http.routing import ApiRoute
from raspapi.http.timefmt import rfc3339

DESCRIPTION = (
    "A fast, plugin-based control daemon for Raspberry Pi access points, and a "
    "drop-in replacement for RaspAP's RestAPI. Send your key in the `access_token` "
    "header (or `X-API-Key`, or `Authorization: Bearer`)."
)


@functools.cache
def webui_dir() -> Path:
    """The admin page's templates and static files (``raspapi.webui``).

    Found from the package's import spec rather than ``importlib.resources``,
    which would load ``zipfile`` and its readers for a folder on disk (issue 16:
    memory). Editable and wheel installs both give a folder."""
    spec = importlib.util.find_spec("raspapi.webui")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        if Path(location).is_dir():
            return Path(location)
    raise RuntimeError(f"raspapi.webui is not a folder on disk: {locations or spec}")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def index(request: Request) -> JSONResponse:
    """Version and every endpoint this daemon serves."""
    runtime = _runtime(request)
    endpoints = [
        {
            "path": r.path,
            "methods": sorted((r.methods or {"GET"}) - {"HEAD"}),
            "plugin": r.plugin or None,
            "scope": r.scope,
            "summary": r.summary,
        }
        for r in runtime.routes
        if r.include_in_schema
    ]
    return JSONResponse(
        {"name": "raspapi", "version": __version__, "docs": "/docs", "endpoints": endpoints}
    )


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers.

    `uptime_seconds` is the host's time since boot in whole seconds (what V6Direct's
    `/health` reports and uptime monitors read), from the kernel's boot clock: no
    file is read.
    """
    return JSONResponse(
        {"status": "ok", "version": __version__, "uptime_seconds": host_uptime_seconds()}
    )


def host_uptime_seconds() -> int:
    """Seconds since the host booted (``/proc/uptime``'s first field, suspend included)."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return int(time.clock_gettime(clock))


async def ready(request: Request) -> JSONResponse:
    """Readiness, with each plugin's state (ok, degraded, unavailable, failed,
    disabled).

    Open to all, so without a key it shows states only: the reasons, details
    (VPN profile, peer counts, file paths) and sources go to callers with a key.
    """
    runtime = _runtime(request)
    statuses = await runtime.manager.statuses()
    keyed = runtime.auth.from_scope(request.scope) is not None
    plugins: dict[str, Any] = {}
    for name, status in statuses.items():
        if keyed:
            entry = {"source": runtime.manager.plugins[name].source, **status.as_dict()}
        else:
            entry = {"state": status.state}
        plugins[name] = entry
    body = {
        "status": "ready" if runtime.ready else "starting",
        "version": __version__,
        "started_at": rfc3339(runtime.started_at),
        "plugins": plugins,
    }
    return JSONResponse(body, status_code=200 if runtime.ready else 503)


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of every route."""
    runtime = _runtime(request)
    if runtime.openapi_body is None:
        document = openapi.build(runtime.routes, description=DESCRIPTION)
        runtime.openapi_body = json.dumps(document, separators=(",", ":")).encode()
    return Response(runtime.openapi_body, media_type="application/json")


async def swagger(request: Request) -> FileResponse:
    """Swagger UI (bundled; no CDN)."""
    return FileResponse(webui_dir() / "static" / "docs" / "swagger.html")


async def redoc(request: Request) -> FileResponse:
    """ReDoc (bundled; no CDN)."""
    return FileResponse(webui_dir() / "static" / "docs" / "redoc.html")


_STRING = {"type": "string"}
_PLUGIN_STATUS = {
    "type": "object",
    "properties": {
        "source": _STRING,
        "state": {"enum": ["ok", "degraded", "unavailable", "failed", "disabled"]},
        "reason": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute(
            "/",
            index,
            response={
                "type": "object",
                "properties": {
                    "name": _STRING,
                    "version": _STRING,
                    "docs": _STRING,
                    "endpoints": {"type": "array", "items": {"type": "object"}},
                },
            },
        ),
        ApiRoute(
            "/health",
            health,
            scope=None,
            response={
                "type": "object",
                "properties": {
                    "status": {"const": "ok"},
                    "version": _STRING,
                    "uptime_seconds": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The host's time since boot, in whole seconds",
                    },
                },
            },
        ),
        ApiRoute(
            "/ready",
            ready,
            scope=None,
            response={
                "type": "object",
                "properties": {
                    "status": {"enum": ["ready", "starting"]},
                    "version": _STRING,
                    "started_at": {"type": "string", "format": "date-time"},
                    "plugins": {"type": "object", "additionalProperties": _PLUGIN_STATUS},
                },
            },
        ),
        ApiRoute("/openapi.json", openapi_json, scope=None, include_in_schema=False),
        ApiRoute("/docs", swagger, scope=None, include_in_schema=False),
        ApiRoute("/redoc", redoc, scope=None, include_in_schema=False),
    ]

"""The uvicorn options raspapi runs with; kept apart from the app so the
benchmark's bare baseline can use the very same without importing raspapi's core."""

from __future__ import annotations

import importlib.util

import uvicorn
from starlette.types import ASGIApp


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """How raspapi runs under uvicorn (the benchmark's baseline uses the same)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )

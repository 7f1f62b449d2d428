"""Runs the app under uvicorn (uvloop and httptools where installed)."""

from __future__ import annotations

import importlib.util
import logging
import signal
from types import FrameType

import uvicorn

from raspapi.app import create_app
from raspapi.settings import Settings

log = logging.getLogger("raspapi")


def serve(settings: Settings) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    log.info("raspapi listening on http://%s:%d (docs at /docs)", settings.host, settings.port)
    # uvicorn re-raises the signal that stopped it once it has shut down
    # gracefully; by then the job is done, so the process exits with 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("raspapi stopped")


def _ignore(sig: int, frame: FrameType | None) -> None:
    return None

"""Runs the app under uvicorn (uvloop and httptools where installed), telling
systemd when it is ready, alive and stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

from raspapi.app import create_app
from raspapi.daemon.sdnotify import Notifier
from raspapi.daemon.uvicornopts import uvicorn_config
from raspapi.settings import Settings

log = logging.getLogger("raspapi")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier
        self._watchdog: asyncio.Task[None] | None = None
        #: Run first when stopping: ends the event streams, which would
        #: otherwise hold their connections open until the graceful timeout.
        self.before_shutdown: Callable[[], Awaitable[None]] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Sent once the sockets accept connections, not before.
            self.notifier.ready(f"listening on {self.config.host}:{self.config.port}")
            self._watchdog = asyncio.ensure_future(self.notifier.watchdog())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.stopping()
        if self.before_shutdown is not None:
            await self.before_shutdown()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await super().shutdown(sockets)


def serve(settings: Settings) -> None:
    app = create_app(settings)
    config = uvicorn_config(app, settings.host, settings.port)
    server = _Server(config, Notifier())
    server.before_shutdown = app.state.runtime.events.close
    log.info("raspapi listening on http://%s:%d (docs at /docs)", settings.host, settings.port)
    # uvicorn re-raises the signal that stopped it once it has shut down
    # gracefully; by then the job is done, so the process exits with 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise SystemExit(1)
    log.info("raspapi stopped")


def _ignore(sig: int, frame: FrameType | None) -> None:
    return None

"""Runs the app under uvicorn (uvloop and httptools where installed), telling
systemd when it is ready, alive and stopping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from types import FrameType
from typing import Any

import uvicorn

from raspapi.app import announce_start, create_app
from raspapi.daemon.sdnotify import Notifier
from raspapi.daemon.uvicornopts import uvicorn_config
from raspapi.settings import Settings

log = logging.getLogger("raspapi")

#: Seconds between listening and the start-up summary. The summary runs every
#: plugin's self-check (some start programs: ``wg pubkey``, ``systemctl``);
#: waiting a moment lets the first requests be answered first.
SUMMARY_DELAY = 1.0
#: Seconds between listening and loading the plugins (and the scoped keys) in
#: the background. The first requests often come at once (a service manager's
#: check, a dashboard that was waiting): each loads only the plugins it needs,
#: with the loop to itself; a plugin's import would hold the loop for tens of
#: ms on a Pi.
LOAD_DELAY = 0.25


class _Connections(set[Any]):
    """uvicorn's set of open connections, calling ``on_add`` when one opens."""

    def __init__(self, on_add: Callable[[], None]) -> None:
        super().__init__()
        self.on_add = on_add

    def add(self, item: Any) -> None:
        super().add(item)
        self.on_add()


class _Server(uvicorn.Server):
    """uvicorn's server without its 10-a-second tick.

    uvicorn wakes every 0.1 s to refresh the ``date`` header and to see whether
    a signal asked it to stop. Here the main loop sleeps until a signal sets
    ``should_exit``, and the ``date`` header is refreshed when a connection
    opens and once a second while any is open: an idle daemon does not wake.
    """

    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._should_exit = False
        super().__init__(config)
        self.server_state.connections = _Connections(self._connection_opened)
        self.notifier = notifier
        self._watchdog: asyncio.Task[None] | None = None
        #: Run first when stopping: ends the event streams, which would
        #: otherwise hold their connections open until the graceful timeout.
        self.before_shutdown: Callable[[], Awaitable[None]] | None = None
        #: Run once listening, in the background and :data:`SUMMARY_DELAY`
        #: later: the start-up summary line.
        self.after_startup: Callable[[], Awaitable[None]] | None = None
        #: Run :data:`LOAD_DELAY` after the sockets accept connections: starts
        #: loading the plugins and the scoped keys (``create_app(deferred=True)``).
        self.after_listen: Callable[[], None] | None = None
        self._load_timer: asyncio.TimerHandle | None = None
        self._after: asyncio.Future[None] | None = None

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        # Set from uvicorn's signal handler (in the loop's thread, between two
        # Python instructions): wake the main loop through the loop itself.
        self._should_exit = value
        if value and self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._wake.set)

    def _refresh_date(self) -> None:
        date = [(b"date", formatdate(time.time(), usegmt=True).encode())]
        headers = date if self.config.date_header else []
        self.server_state.default_headers = headers + self.config.encoded_headers

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._refresh_date()
        while not self.should_exit:
            # While a connection is open, wake at the next whole second for the
            # date header; otherwise sleep until woken.
            delay = 1.0 - time.time() % 1.0 if self.server_state.connections else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._refresh_date()

    def _connection_opened(self) -> None:
        self._refresh_date()
        if self._wake is not None:
            self._wake.set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Sent once the sockets accept connections, not before.
            self.notifier.ready(f"listening on {self.config.host}:{self.config.port}")
            if self.after_listen is not None:
                loop = asyncio.get_running_loop()
                self._load_timer = loop.call_later(LOAD_DELAY, self.after_listen)
            self._watchdog = asyncio.ensure_future(self.notifier.watchdog())
            if self.after_startup is not None:
                self._after = asyncio.ensure_future(self._run_after_startup(self.after_startup))

    @staticmethod
    async def _run_after_startup(job: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(SUMMARY_DELAY)
        await job()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.stopping()
        if self.before_shutdown is not None:
            await self.before_shutdown()
        if self._load_timer is not None:
            self._load_timer.cancel()
        for task in (self._watchdog, self._after):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().shutdown(sockets)


def serve(settings: Settings) -> None:
    app = create_app(settings, deferred=True)
    config = uvicorn_config(app, settings.host, settings.port)
    server = _Server(config, Notifier())
    server.before_shutdown = app.state.runtime.events.close
    server.after_listen = app.state.after_first_answers
    server.after_startup = functools.partial(announce_start, app.state.runtime)
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

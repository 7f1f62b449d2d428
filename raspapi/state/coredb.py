"""The core's own database (``raspapi.db`` in the state folder): keys and audit log."""

from __future__ import annotations

import asyncio
import contextlib

from raspapi.security.audit import MIGRATION as AUDIT_MIGRATION
from raspapi.security.audit import AuditLog
from raspapi.security.keystore import MIGRATION as KEYS_MIGRATION
from raspapi.security.keystore import KeyStore
from raspapi.settings import Settings
from raspapi.state.storage import Store

#: Applied in order, once each; append, never edit.
MIGRATIONS = [KEYS_MIGRATION + AUDIT_MIGRATION]


class CoreDB:
    """Opened when the daemon starts serving, flushed and closed when it stops.

    ``start`` does not wait for the keys to load: a request that needs them
    waits for them instead (the Guard, the admin page), and the first answers
    with the admin key never do (BENCHMARKS.md, "Session 8")."""

    def __init__(self, settings: Settings) -> None:
        self.store = Store(settings.state_dir / "raspapi.db", MIGRATIONS)
        self.keys = KeyStore(self.store)
        self.audit = AuditLog(self.store)
        self._flusher: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.keys.start_loading()
        self._starting = asyncio.create_task(self._start_flusher())

    async def _start_flusher(self) -> None:
        await self.keys.loaded()
        if self.keys.failure is None:
            self._flusher = asyncio.create_task(self.keys.run_flusher())

    async def stop(self) -> None:
        if self._starting is not None:
            await self._starting
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.keys.flush()
        await self.audit.close()
        await asyncio.to_thread(self.store.close)

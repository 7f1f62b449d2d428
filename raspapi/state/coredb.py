"""The core's own database (``raspapi.db`` in the state folder): keys and audit log."""

from __future__ import annotations

import asyncio

from raspapi.security.audit import MIGRATION as AUDIT_MIGRATION
from raspapi.security.audit import AuditLog
from raspapi.security.keystore import MIGRATION as KEYS_MIGRATION
from raspapi.security.keystore import KeyStore
from raspapi.settings import Settings
from raspapi.state.storage import Store

#: Applied in order, once each; append, never edit.
MIGRATIONS = [KEYS_MIGRATION + AUDIT_MIGRATION]


class CoreDB:
    """The keys and the audit log; flushed and closed when the daemon stops.

    The keys load in the background (``keys.start_loading``), not before the
    daemon serves: a request that needs them waits for them (the Guard, the
    admin page), and the admin key's reads never do (BENCHMARKS.md, "Session
    8"). The audit log opens the database on its first write."""

    def __init__(self, settings: Settings) -> None:
        self.store = Store(settings.state_dir / "raspapi.db", MIGRATIONS)
        self.keys = KeyStore(self.store)
        self.audit = AuditLog(self.store)

    async def stop(self) -> None:
        await self.keys.close()
        await self.audit.close()
        await asyncio.to_thread(self.store.close)

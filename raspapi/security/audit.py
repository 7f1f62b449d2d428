"""The audit log: who did what, when, and how it ended.

Every request that changes something (a ``control`` or ``admin`` route with a
method other than GET) and every change made on the admin page is recorded.
Recording only appends to a list; the rows are written in the database's own
thread, so a request never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.types import Scope

from raspapi.http.timefmt import rfc3339
from raspapi.security.auth import Principal
from raspapi.state.storage import Store, transaction

log = logging.getLogger("raspapi.audit")

#: Entries waiting to be written; past this (a stuck disk), new ones are dropped.
MAX_PENDING = 10_000
#: Entries kept in the database; older ones are deleted as new ones come.
KEEP = 100_000
#: Scopes whose non-GET requests are recorded.
AUDITED_SCOPES = frozenset({"control", "admin"})
_DETAIL = "raspapi.audit_detail"

MIGRATION = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    key_id TEXT,
    key_name TEXT NOT NULL,
    client TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX audit_at ON audit (at);
"""

_COLUMNS = "at, key_id, key_name, client, method, path, route, status, detail"


def note(request: Request, detail: str) -> None:
    """Say in the audit entry of this request what it did, e.g. ``"restarted hostapd"``.

    Never put a key or a secret here.
    """
    request.scope[_DETAIL] = detail[:500]


class Entry(NamedTuple):
    """One row of the ``audit`` table, its fields in ``_COLUMNS``' order."""

    at: float
    key_id: str | None
    key_name: str
    client: str | None
    method: str
    path: str
    route: str
    status: int
    detail: str | None


class AuditLog:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.dropped = 0
        self._pending: list[Entry] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._complained = False

    def record(
        self,
        *,
        caller: Principal | None,
        method: str,
        path: str,
        route: str,
        status: int,
        client: str | None = None,
        detail: str | None = None,
        at: float | None = None,
    ) -> None:
        """Queue an entry; never blocks."""
        if self._closed or len(self._pending) >= MAX_PENDING:
            self._drop(1, "the audit log is not being written")
            return
        self._pending.append(
            Entry(
                at=self.clock() if at is None else at,
                key_id=caller.key_id if caller is not None else None,
                key_name=caller.name if caller is not None else "",
                client=client,
                method=method,
                path=_printable(path),
                route=route,
                status=status,
                detail=detail,
            )
        )
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no loop: the next flush writes it
                self._task = asyncio.get_running_loop().create_task(self.flush())

    def record_event(self, plugin: str, event: str, detail: str) -> None:
        """What a plugin did on its own (no request, no key): method ``EVENT``,
        the plugin's namespace as the path, the event type as the route."""
        self.record(
            caller=None,
            method="EVENT",
            path=f"/api/v1/{plugin}",
            route=event,
            status=200,
            detail=detail[:500],
        )

    def record_request(
        self, scope: Scope, caller: Principal, route: str, status: int, at: float
    ) -> None:
        client = scope.get("client")
        self.record(
            caller=caller,
            method=scope["method"],
            path=scope.get("path", ""),
            route=route,
            status=status,
            client=client[0] if client else None,
            detail=scope.get(_DETAIL),
            at=at,
        )

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return

            def insert(conn: sqlite3.Connection) -> None:
                with transaction(conn):
                    conn.executemany(
                        f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",  # noqa: S608
                        batch,
                    )
                    conn.execute(
                        "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?", (KEEP,)
                    )

            try:
                await self.store.run(insert)
            except (sqlite3.Error, OSError, RuntimeError) as exc:
                self._drop(len(batch), str(exc))

    async def entries(
        self, *, limit: int = 50, offset: int = 0, since: float | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Entries newest first, and how many there are (since ``since``)."""
        await self.flush()
        where, args = ("WHERE at >= ?", [since]) if since is not None else ("", [])

        def query(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM audit {where}", args).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT id, {_COLUMNS} FROM audit {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
                [*args, limit, offset],
            ).fetchall()
            return rows, int(total)

        rows, total = await self.store.run(query)
        return [_entry_dict(row) for row in rows], total

    async def close(self) -> None:
        await self.flush()
        self._closed = True

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._complained:
            self._complained = True
            log.error("audit entries are being lost: %s", why)


def _entry_dict(row: Any) -> dict[str, Any]:
    entry_id, at, key_id, key_name, client, method, path, route, status, detail = row
    return {
        "id": entry_id,
        "at": rfc3339(at),
        "key_id": key_id,
        "key_name": key_name,
        "client": client,
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "detail": detail,
    }


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"%{ord(c):02X}" for c in text)[:300]

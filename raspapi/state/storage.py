"""SQLite in the state folder: WAL, one thread per database, schema migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_SIDE = ("-wal", "-shm", "-journal")


class Store:
    """One database file, used from one worker thread so the event loop never blocks.

    ``migrations`` are SQL scripts applied in order, once each (tracked with
    ``PRAGMA user_version``). WAL with ``synchronous=NORMAL``: a crash or power
    cut may lose the last transactions, never the database's consistency.
    """

    def __init__(self, path: Path, migrations: Sequence[str] = ()) -> None:
        self.path = path
        self.migrations = list(migrations)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"db-{path.stem}")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Mode 0600 before SQLite opens it: its -wal and -shm files copy the
            # database's mode when they are made, and they hold the same data.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            for path in (self.path, *(self.path.with_name(self.path.name + s) for s in _SIDE)):
                with contextlib.suppress(FileNotFoundError):
                    path.chmod(0o600)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(self.migrations[version:], start=version + 1):
                conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
            self._conn = conn
        return self._conn

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` now, in this thread (CLI, tests, other threads)."""
        with self._lock:
            return fn(self._connection())

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the database's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.call, fn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._executor.shutdown(wait=True)


def transaction(conn: sqlite3.Connection) -> _Transaction:
    """``with transaction(conn): ...``: all or nothing."""
    return _Transaction(conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")

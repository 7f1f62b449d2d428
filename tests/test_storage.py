"""The state store: migrations once, WAL, all-or-nothing transactions, mode 0600."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from raspapi.state.storage import Store, transaction

MIGRATIONS = [
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);",
    "ALTER TABLE notes ADD COLUMN created REAL;",
]


def test_migrations_apply_once_and_in_order(tmp_path: Path):
    store = Store(tmp_path / "state" / "x.db", MIGRATIONS)
    store.call(lambda c: c.execute("INSERT INTO notes (text, created) VALUES ('a', 1)"))
    store.close()
    again = Store(tmp_path / "state" / "x.db", MIGRATIONS)
    assert again.call(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == 2
    assert again.call(lambda c: c.execute("SELECT text FROM notes").fetchall()) == [("a",)]
    assert again.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert stat.S_IMODE((tmp_path / "state" / "x.db").stat().st_mode) == 0o600
    again.close()


def test_transaction_is_all_or_nothing(tmp_path: Path):
    store = Store(tmp_path / "x.db", MIGRATIONS)

    def batch(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute("INSERT INTO notes (text) VALUES ('kept?')")
            conn.execute("INSERT INTO notes (text) VALUES (NULL)")  # NOT NULL fails

    with pytest.raises(sqlite3.IntegrityError):
        store.call(batch)
    assert store.call(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()[0]) == 0
    store.close()


def test_async_calls_run_off_the_event_loop(tmp_path: Path):
    store = Store(tmp_path / "x.db", MIGRATIONS)

    def insert(i: int) -> Callable[[sqlite3.Connection], int]:
        return lambda c: c.execute("INSERT INTO notes (text) VALUES (?)", (str(i),)).lastrowid or 0

    async def main() -> list[int]:
        return await asyncio.gather(*(store.run(insert(i)) for i in range(50)))

    ids = asyncio.run(main())
    assert sorted(ids) == list(range(1, 51))
    store.close()

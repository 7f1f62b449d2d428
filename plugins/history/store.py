"""The history plugin's SQLite database, ``history.db`` (blocking: run it in the store's thread).

Timestamps are integer milliseconds since the Unix epoch. Each interval's
values and their 5-minute rollups (count, sum, min, max) are written in one
transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from raspapi.plugin import NotFound, rfc3339_ms, transaction

ROLLUP_MS = 300_000
#: Names kept at once; further new names are not sampled (logged once).
MAX_METRICS = 10_000
DAY_MS = 86_400_000

MIGRATIONS = [
    """
    CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE samples (
        metric INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (metric, ts)
    ) WITHOUT ROWID;
    CREATE TABLE rollups (
        metric INTEGER NOT NULL, ts INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
        PRIMARY KEY (metric, ts)
    ) WITHOUT ROWID;
    """
]
_UPSERT_ROLLUP = """
    INSERT INTO rollups (metric, ts, count, sum, min, max) VALUES (?, ?, 1, ?, ?, ?)
    ON CONFLICT (metric, ts) DO UPDATE SET
        count = count + 1, sum = sum + excluded.sum,
        min = min(min, excluded.min), max = max(max, excluded.max)
"""


class HistoryDB:
    """What the sampler and the routes do to ``history.db`` (blocking: run in the store's
    thread). Timestamps are integer milliseconds since the Unix epoch."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.ids: dict[str, int] = dict(conn.execute("SELECT name, id FROM metrics"))
        self.last_ts = max((self._last(i) or 0 for i in self.ids.values()), default=0)

    def _last(self, metric: int) -> int | None:
        row = self.conn.execute("SELECT max(ts) FROM samples WHERE metric = ?", (metric,))
        value = row.fetchone()[0]
        return int(value) if value is not None else None

    def write(self, ts: int, values: dict[str, float]) -> list[str]:
        """One interval's values, all or nothing; returns the names refused (over the cap)."""
        refused: list[str] = []
        new: dict[str, int] = {}  # kept only once the transaction is committed
        with transaction(self.conn):
            rows: list[tuple[int, float]] = []
            for name, value in values.items():
                metric = self.ids.get(name) or new.get(name)
                if metric is None:
                    if len(self.ids) + len(new) >= MAX_METRICS:
                        refused.append(name)
                        continue
                    cur = self.conn.execute("INSERT INTO metrics (name) VALUES (?)", (name,))
                    metric = new[name] = int(cur.lastrowid or 0)
                rows.append((metric, value))
            bucket = ts - ts % ROLLUP_MS
            self.conn.executemany(
                "INSERT INTO samples (metric, ts, value) VALUES (?, ?, ?)",
                [(m, ts, v) for m, v in rows],
            )
            self.conn.executemany(_UPSERT_ROLLUP, [(m, bucket, v, v, v) for m, v in rows])
        self.ids.update(new)
        self.last_ts = ts
        return refused

    def prune(self, now: int, retention_days: float, downsampled_days: float) -> None:
        """Deletes values and rollups past their retention, and names with nothing left."""
        raw_cut = now - int(retention_days * DAY_MS)
        rollup_cut = now - int(downsampled_days * DAY_MS) - ROLLUP_MS
        with transaction(self.conn):
            for metric in self.ids.values():
                self.conn.execute(
                    "DELETE FROM samples WHERE metric = ? AND ts < ?", (metric, raw_cut)
                )
                self.conn.execute(
                    "DELETE FROM rollups WHERE metric = ? AND ts <= ?", (metric, rollup_cut)
                )
            self.conn.execute(
                "DELETE FROM metrics WHERE NOT EXISTS "
                "(SELECT 1 FROM rollups WHERE metric = metrics.id) "
                "AND NOT EXISTS (SELECT 1 FROM samples WHERE metric = metrics.id)"
            )
        self.ids = dict(self.conn.execute("SELECT name, id FROM metrics"))

    def _first(self, metric: int) -> int | None:
        bucket = self.conn.execute("SELECT min(ts) FROM rollups WHERE metric = ?", (metric,))
        oldest = bucket.fetchone()[0]
        raw = self.conn.execute("SELECT min(ts) FROM samples WHERE metric = ?", (metric,))
        first = raw.fetchone()[0]
        # The oldest value, unless older ones survive only in rollups.
        if first is not None and (oldest is None or first - first % ROLLUP_MS <= oldest):
            return int(first)
        return int(oldest) if oldest is not None else None

    def names(self) -> list[dict[str, Any]]:
        out = []
        for name, metric in sorted(self.ids.items()):
            first = self._first(metric)
            last = self.conn.execute(
                "SELECT ts, value FROM samples WHERE metric = ? ORDER BY ts DESC LIMIT 1",
                (metric,),
            ).fetchone()
            if last is None:  # only rollups left: the latest bucket's average
                row = self.conn.execute(
                    "SELECT ts, sum / count FROM rollups WHERE metric = ? ORDER BY ts DESC LIMIT 1",
                    (metric,),
                ).fetchone()
                last = row
            out.append(
                {
                    "name": name,
                    "first_at": rfc3339_ms(first) if first is not None else None,
                    "last_at": rfc3339_ms(last[0]) if last else None,
                    "last_value": last[1] if last else None,
                }
            )
        return out

    def series(self, name: str, start: int, end: int, step: int) -> tuple[str, list[Any]]:
        """Per-step (index, min, max, sum, count) rows for [start, end), and the source.

        Steps of a rollup or more read the rollups. Shorter steps read the
        values, and the rollups where the values have expired.
        """
        metric = self.ids.get(name)
        if metric is None:
            raise NotFound(f"no history of {name[:200]!r}", code="unknown_metric")
        if step >= ROLLUP_MS:
            return "rollups", self._rollups(metric, start, end, step)
        oldest = self.conn.execute(
            "SELECT min(ts) FROM samples WHERE metric = ?", (metric,)
        ).fetchone()[0]
        cut = end if oldest is None else min(max(start, oldest - oldest % ROLLUP_MS), end)
        rows = self._rollups(metric, start, cut, step) if start < cut else []
        if cut < end:
            rows += self.conn.execute(
                "SELECT (ts - ?1) / ?2 AS i, min(value), max(value), sum(value), count(*) "
                "FROM samples WHERE metric = ?3 AND ts >= ?4 AND ts < ?5 GROUP BY i",
                (start, step, metric, cut, end),
            ).fetchall()
        source = "samples" if cut <= start else "rollups" if cut >= end else "mixed"
        return source, rows

    def _rollups(self, metric: int, start: int, end: int, step: int) -> list[Any]:
        # A bucket that began before ``start`` counts in the first step.
        rows: list[Any] = self.conn.execute(
            "SELECT max(0, (ts - ?1) / ?2) AS i, min(min), max(max), sum(sum), sum(count) "
            "FROM rollups WHERE metric = ?3 AND ts > ?1 - ?4 AND ts < ?5 GROUP BY i",
            (start, step, metric, ROLLUP_MS, end),
        ).fetchall()
        return rows

"""The sensors database: schema, writes and queries (blocking; run in a store's thread).

Layout, chosen for ingest and downsampling speed:

- ``points``: one row per point, clustered by ``(series_id, ts, id)`` (a
  WITHOUT ROWID table), so a time range of a series is one contiguous scan.
  Field values sit in 16 REAL columns ``v0..v15``; the series maps its field
  names to them (``series.fields``, a JSON list: slot i holds field i).
  ``id`` is a global point id (timeseries-api's ``/point/{id}``), indexed.
- ``rollups``: count, min, max and sum per field over 10-second and 5-minute
  grains, updated from each batch in the batch's own transaction. A query
  whose step is a multiple of a grain reads these instead of the points.
- ``series.point_count`` is kept in the same transactions, so listing series
  with their counts is one query, whatever the number of points.

Times are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from raspapi.plugin import Conflict, Invalid, NotFound, transaction

from .config import SLOTS
from .validate import Batch

#: Rollup levels: (level, grain in ms), coarsest first.
LEVELS = ((2, 300_000), (1, 10_000))
_S = range(SLOTS)
_FOREVER = 1 << 62

MIGRATIONS = [
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('next_point_id', 1);
    CREATE TABLE series (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        description TEXT NOT NULL,
        device_description TEXT NOT NULL,
        device_id TEXT NOT NULL,
        units TEXT NOT NULL,
        fields TEXT NOT NULL,
        owner_key_id TEXT,
        owner_name TEXT NOT NULL,
        retention_days REAL NOT NULL,
        created_at REAL NOT NULL,
        point_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE points (
        series_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        id INTEGER NOT NULL,
        {", ".join(f"v{i} REAL" for i in _S)},
        PRIMARY KEY (series_id, ts, id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX points_by_id ON points (id);
    CREATE TABLE rollups (
        series_id INTEGER NOT NULL,
        level INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        {", ".join(f"n{i} INTEGER, lo{i} REAL, hi{i} REAL, s{i} REAL" for i in _S)},
        PRIMARY KEY (series_id, level, bucket)
    ) WITHOUT ROWID;
    -- Deleted series whose points are still being removed (a bounded amount per run).
    CREATE TABLE purge (series_id INTEGER PRIMARY KEY);
    """  # noqa: S608
]

_SERIES_COLUMNS = (
    "id, description, device_description, device_id, units, fields, owner_key_id, "
    "owner_name, retention_days, created_at"
)


@dataclass(frozen=True, slots=True)
class Series:
    """A series' description; replaced (never changed in place) when it changes."""

    id: int
    description: str
    device_description: str
    device_id: str
    units: dict[str, str]
    fields: tuple[str, ...]
    owner_key_id: str | None
    owner_name: str
    retention_days: float
    created_at: float

    def slot(self, name: str) -> int:
        return self.fields.index(name)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One field over one step: count, min, max, sum (None when count is 0)."""

    count: int
    low: float | None
    high: float | None
    total: float | None


def _series(row: Sequence[Any]) -> Series:
    return Series(
        id=row[0],
        description=row[1],
        device_description=row[2],
        device_id=row[3],
        units=json.loads(row[4]),
        fields=tuple(json.loads(row[5])),
        owner_key_id=row[6],
        owner_name=row[7],
        retention_days=row[8],
        created_at=row[9],
    )


# -- statements ------------------------------------------------------------------------


def _merge(column: str, how: str) -> str:
    """``column`` merged with ``excluded.column``; NULL on either side means "nothing"."""
    if how == "add":
        return (
            f"{column} = CASE WHEN {column} IS NULL THEN excluded.{column} "
            f"WHEN excluded.{column} IS NULL THEN {column} "
            f"ELSE {column} + excluded.{column} END"
        )
    return f"{column} = coalesce({how}({column}, excluded.{column}), {column}, excluded.{column})"


#: Roll-up statements kept ready (a device sends the same fields every time).
SQL_CACHE_SIZE = 64


def _batch_rollup_sql(level: int, grain: int, slots: Sequence[int]) -> str:
    """Adds the batch's points (ids ?2..?3 of series ?1) to the rollups of ``level``."""
    columns = ", ".join(f"n{s}, lo{s}, hi{s}, s{s}" for s in slots)
    aggregates = ", ".join(f"count(v{s}), min(v{s}), max(v{s}), sum(v{s})" for s in slots)
    merges = ", ".join(
        f"{_merge(f'n{s}', 'add')}, {_merge(f'lo{s}', 'min')}, "
        f"{_merge(f'hi{s}', 'max')}, {_merge(f's{s}', 'add')}"
        for s in slots
    )
    return (
        f"INSERT INTO rollups (series_id, level, bucket, {columns}) "  # noqa: S608
        f"SELECT ?1, {level}, ts - ts % {grain} AS b, {aggregates} FROM points "
        f"WHERE id BETWEEN ?2 AND ?3 GROUP BY b "
        f"ON CONFLICT (series_id, level, bucket) DO UPDATE SET {merges}"
    )


_ALL_ROLLUP_COLUMNS = ", ".join(f"n{s}, lo{s}, hi{s}, s{s}" for s in _S)
_REBUILD_FROM_POINTS = (
    f"INSERT INTO rollups (series_id, level, bucket, {_ALL_ROLLUP_COLUMNS}) "  # noqa: S608
    f"SELECT ?1, 1, ts - ts % {LEVELS[1][1]} AS b, "
    + ", ".join(f"count(v{s}), min(v{s}), max(v{s}), sum(v{s})" for s in _S)
    + " FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY b"
)
_REBUILD_FROM_FINE = (
    f"INSERT INTO rollups (series_id, level, bucket, {_ALL_ROLLUP_COLUMNS}) "  # noqa: S608
    f"SELECT ?1, 2, bucket - bucket % {LEVELS[0][1]} AS b, "
    + ", ".join(f"sum(n{s}), min(lo{s}), max(hi{s}), sum(s{s})" for s in _S)
    + " FROM rollups WHERE series_id = ?1 AND level = 1 AND bucket >= ?2 AND bucket < ?3"
    " GROUP BY b"
)


def _raw_step_sql(slots: Sequence[int]) -> str:
    aggregates = ", ".join(f"count(v{s}), min(v{s}), max(v{s}), sum(v{s})" for s in slots)
    return f"SELECT {aggregates} FROM points WHERE series_id = ? AND ts >= ? AND ts < ?"  # noqa: S608


def _rollup_step_sql(slots: Sequence[int]) -> str:
    aggregates = ", ".join(f"sum(n{s}), min(lo{s}), max(hi{s}), sum(s{s})" for s in slots)
    return (
        f"SELECT {aggregates} FROM rollups "  # noqa: S608
        "WHERE series_id = ? AND level = ? AND bucket >= ? AND bucket < ?"
    )


# -- the writer ------------------------------------------------------------------------


class SensorDB:
    """Every write, in the writer store's thread. Holds the series in memory
    (``series``); readers on the event loop only ever see whole ``Series``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # A 201 tells a device it may drop its buffer: the batch must survive a
        # power cut too, so each commit reaches the disk (one fsync per batch).
        conn.execute("PRAGMA synchronous = FULL")
        rows = conn.execute(f"SELECT {_SERIES_COLUMNS} FROM series").fetchall()  # noqa: S608
        self.series: dict[int, Series] = {row[0]: _series(row) for row in rows}
        self.next_id: int = conn.execute(
            "SELECT value FROM meta WHERE key = 'next_point_id'"
        ).fetchone()[0]
        #: Roll-up statements by (level, sorted slots), least recently used first.
        #: Keyed by what a batch names, so bounded: 16 slots make 65,536 sets.
        self._sql: OrderedDict[tuple[int, tuple[int, ...]], str] = OrderedDict()

    # -- series --

    def create(self, series: Series, max_series: int) -> Series:
        if len(self.series) >= max_series:
            raise Conflict(
                f"there are already {max_series} series; delete some first",
                code="too_many_series",
            )
        with transaction(self.conn):
            cur = self.conn.execute(
                f"INSERT INTO series ({_SERIES_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                (
                    series.description,
                    series.device_description,
                    series.device_id,
                    json.dumps(series.units, ensure_ascii=False),
                    json.dumps(list(series.fields)),
                    series.owner_key_id,
                    series.owner_name,
                    series.retention_days,
                    series.created_at,
                ),
            )
        created = replace(series, id=int(cur.lastrowid or 0))
        self.series[created.id] = created
        return created

    def delete(self, series_id: int) -> None:
        """The series is gone at once; its points are removed by :meth:`prune`."""
        if series_id not in self.series:
            raise NotFound(f"series {series_id} does not exist", code="unknown_series")
        with transaction(self.conn):
            self.conn.execute("DELETE FROM series WHERE id = ?", (series_id,))
            self.conn.execute("INSERT OR IGNORE INTO purge (series_id) VALUES (?)", (series_id,))
        del self.series[series_id]

    # -- points --

    def reserve(self, count: int) -> int:
        """The first of ``count`` fresh point ids (written with the batch that uses them)."""
        first = self.next_id
        self.next_id += count
        return first

    def insert(self, series_id: int, batch: Batch) -> Series:
        """Stores a checked batch, all or nothing; new field names get free slots."""
        series = self.series.get(series_id)
        if series is None:
            raise NotFound(f"series {series_id} does not exist", code="unknown_series")
        new = [name for name in batch.names if name not in series.fields]
        if new:
            if len(series.fields) + len(new) > SLOTS:
                raise Invalid(
                    "fields",
                    f"series {series_id} has {len(series.fields)} fields "
                    f"({', '.join(series.fields)}); the batch adds {', '.join(new)}, "
                    f"and a series has at most {SLOTS}",
                    code="too_many_fields",
                )
            series = replace(series, fields=series.fields + tuple(new))
        given = tuple(series.fields.index(name) for name in batch.names)
        # Columns in slot order, whatever order the batch named its fields in: one
        # statement text per set of fields, not one per permutation (16! of them).
        order = sorted(range(len(given)), key=given.__getitem__)
        slots = tuple(given[i] for i in order)
        rows = batch.rows
        if slots != given:
            rows = [(*row[:3], *(row[3 + i] for i in order)) for row in rows]
        columns = ", ".join(f"v{s}" for s in slots)
        marks = ",".join("?" * (3 + len(slots)))
        first_id = batch.rows[0][1]
        last_id = batch.rows[-1][1]
        with transaction(self.conn):
            if new:
                self.conn.execute(
                    "UPDATE series SET fields = ? WHERE id = ?",
                    (json.dumps(list(series.fields)), series_id),
                )
            self.conn.executemany(
                f"INSERT INTO points (series_id, id, ts, {columns}) VALUES ({marks})",  # noqa: S608
                rows,
            )
            for level, grain in LEVELS:
                self.conn.execute(
                    self._rollup_sql(level, grain, slots), (series_id, first_id, last_id)
                )
            self.conn.execute(
                "UPDATE series SET point_count = point_count + ? WHERE id = ?",
                (len(batch.rows), series_id),
            )
            self.conn.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'next_point_id'",
                (last_id + 1,),
            )
        if new:
            self.series[series_id] = series
        return series

    def _rollup_sql(self, level: int, grain: int, slots: tuple[int, ...]) -> str:
        key = (level, slots)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = _batch_rollup_sql(level, grain, slots)
            if len(self._sql) > SQL_CACHE_SIZE:
                self._sql.popitem(last=False)
        else:
            self._sql.move_to_end(key)
        return sql

    def delete_point(self, point_id: int) -> tuple[int, int]:
        """Deletes one point; returns its (series_id, ts)."""
        row = self.conn.execute(
            "SELECT series_id, ts FROM points WHERE id = ?", (point_id,)
        ).fetchone()
        if row is None or row[0] not in self.series:
            raise NotFound(f"point {point_id} does not exist", code="unknown_point")
        series_id, ts = row
        with transaction(self.conn):
            self.conn.execute(
                "DELETE FROM points WHERE series_id = ? AND ts = ? AND id = ?",
                (series_id, ts, point_id),
            )
            self.conn.execute(
                "UPDATE series SET point_count = point_count - 1 WHERE id = ?", (series_id,)
            )
            self._rebuild(series_id, ts, ts + 1)
        return series_id, ts

    def _rebuild(self, series_id: int, start: int, end: int) -> None:
        """Recomputes the rollups of every grain that meets [start, end)."""
        fine = LEVELS[1][1]
        coarse = LEVELS[0][1]
        a1, b1 = start - start % fine, end + (-end) % fine
        a2, b2 = start - start % coarse, end + (-end) % coarse
        self.conn.execute(
            "DELETE FROM rollups WHERE series_id = ? AND level = 1 AND bucket >= ? AND bucket < ?",
            (series_id, a1, b1),
        )
        self.conn.execute(_REBUILD_FROM_POINTS, (series_id, a1, b1))
        self.conn.execute(
            "DELETE FROM rollups WHERE series_id = ? AND level = 2 AND bucket >= ? AND bucket < ?",
            (series_id, a2, b2),
        )
        self.conn.execute(_REBUILD_FROM_FINE, (series_id, a2, b2))

    # -- retention --

    def nothing_to_prune(self) -> bool:
        """No point stored and no deleted series left to purge: retention has no work
        until points arrive."""
        if self.conn.execute("SELECT 1 FROM purge LIMIT 1").fetchone() is not None:
            return False
        return self.conn.execute("SELECT 1 FROM points LIMIT 1").fetchone() is None

    def prune(self, now: float, budget: int) -> int:
        """Deletes points past their series' retention and those of deleted series,
        at most ``budget`` points; returns how many were deleted."""
        deleted = 0
        purged = [row[0] for row in self.conn.execute("SELECT series_id FROM purge")]
        for series_id in purged:
            if deleted >= budget:
                return deleted
            deleted += self._purge(series_id, budget - deleted)
        for series in tuple(self.series.values()):
            if deleted >= budget:
                break
            cut = int((now - series.retention_days * 86400) * 1000)
            deleted += self._expire(series.id, cut, budget - deleted)
        return deleted

    def _limit(self, series_id: int, cut: int, budget: int) -> tuple[int, int] | None:
        """The (ts, id) of the first point before ``cut`` past the ``budget``, if any."""
        row = self.conn.execute(
            "SELECT ts, id FROM points WHERE series_id = ? AND ts < ? "
            "ORDER BY ts, id LIMIT 1 OFFSET ?",
            (series_id, cut, budget),
        ).fetchone()
        return (row[0], row[1]) if row is not None else None

    def _purge(self, series_id: int, budget: int) -> int:
        stop = self._limit(series_id, _FOREVER, budget)
        with transaction(self.conn):
            if stop is None:
                cur = self.conn.execute("DELETE FROM points WHERE series_id = ?", (series_id,))
                self.conn.execute("DELETE FROM rollups WHERE series_id = ?", (series_id,))
                self.conn.execute("DELETE FROM purge WHERE series_id = ?", (series_id,))
            else:
                cur = self.conn.execute(
                    "DELETE FROM points WHERE series_id = ? AND (ts, id) < (?, ?)",
                    (series_id, *stop),
                )
        return int(cur.rowcount)

    def _expire(self, series_id: int, cut: int, budget: int) -> int:
        oldest = self.conn.execute(
            "SELECT ts FROM points WHERE series_id = ? ORDER BY ts LIMIT 1", (series_id,)
        ).fetchone()
        if oldest is None or oldest[0] >= cut:
            return 0
        stop = self._limit(series_id, cut, budget)
        with transaction(self.conn):
            if stop is None:
                cur = self.conn.execute(
                    "DELETE FROM points WHERE series_id = ? AND ts < ?", (series_id, cut)
                )
                edge = cut
            else:
                cur = self.conn.execute(
                    "DELETE FROM points WHERE series_id = ? AND (ts, id) < (?, ?)",
                    (series_id, *stop),
                )
                edge = stop[0]
            self.conn.execute(
                "UPDATE series SET point_count = point_count - ? WHERE id = ?",
                (cur.rowcount, series_id),
            )
            for level, grain in LEVELS:
                self.conn.execute(
                    "DELETE FROM rollups WHERE series_id = ? AND level = ? AND bucket < ?",
                    (series_id, level, edge - edge % grain),
                )
            self._rebuild(series_id, edge - 1, edge + 1)
        return int(cur.rowcount)


# -- queries ---------------------------------------------------------------------------


class Reader:
    """Reads, on a connection of their own (WAL: they never wait for the writer)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA query_only = ON")
        # Scans of a million points read ~70 MB; mapped, they skip a copy per page.
        # conn.execute("PRAGMA mmap_size = 268435456")

    def listing(
        self, ids: Iterable[int] | None = None
    ) -> dict[int, tuple[int, int | None, int | None]]:
        """Point count, first and last time of every series (or of ``ids``): one query."""
        sql = (
            "SELECT s.id, s.point_count, "
            "(SELECT ts FROM points WHERE series_id = s.id ORDER BY ts LIMIT 1), "
            "(SELECT ts FROM points WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) "
            "FROM series AS s"
        )
        params: tuple[Any, ...] = ()
        if ids is not None:
            wanted = list(ids)
            sql += f" WHERE s.id IN ({','.join('?' * len(wanted))})"
            params = tuple(wanted)
        return {row[0]: (row[1], row[2], row[3]) for row in self.conn.execute(sql, params)}

    def total_points(self) -> int:
        row = self.conn.execute("SELECT coalesce(sum(point_count), 0) FROM series").fetchone()
        return int(row[0])

    def raw(
        self,
        series_id: int,
        slots: Sequence[int],
        start: int,
        end: int,
        after: tuple[int, int] | None,
        limit: int,
        descending: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Rows ``(id, ts, v...)`` in [start, end), after the (ts, id) cursor."""
        columns = ", ".join(f"v{s}" for s in slots)
        order = "DESC" if descending else "ASC"
        where = "series_id = ? AND ts >= ? AND ts < ?"
        params: list[Any] = [series_id, start, end]
        if after is not None:
            where += " AND (ts, id) < (?, ?)" if descending else " AND (ts, id) > (?, ?)"
            params += after
        return self.conn.execute(
            f"SELECT id, ts{', ' if columns else ''}{columns} FROM points WHERE {where} "  # noqa: S608
            f"ORDER BY ts {order}, id {order} LIMIT ?",
            (*params, limit),
        ).fetchall()

    def point(self, point_id: int) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            f"SELECT series_id, ts, id, {', '.join(f'v{s}' for s in _S)} "  # noqa: S608
            "FROM points WHERE id = ?",
            (point_id,),
        ).fetchone()
        return row

    def steps(
        self, series_id: int, slots: Sequence[int], start: int, end: int, step: int
    ) -> tuple[str, list[list[Aggregate]]]:
        """Aggregates per step of [start, end) (``start`` a multiple of ``step``), per slot.

        Steps that are whole multiples of a rollup grain read the rollups for
        every whole grain, and the points only for the last, partial one.
        """
        count = -(-(end - start) // step)
        if not slots:  # a series without points has no fields yet
            return "points", [[] for _ in range(count)]
        plan: list[tuple[str, int, int, int]] = []  # (source, level, from, to)
        cursor = start
        source = "points"
        for level, grain in LEVELS:
            if step % grain == 0:
                whole = end - end % grain
                if whole > cursor:
                    plan.append(("rollups", level, cursor, whole))
                    if source == "points":
                        source = f"rollups_{grain // 1000}s"
                    cursor = whole
        if cursor < end:
            plan.append(("points", 0, cursor, end))
        width = len(slots)
        acc = [[0, None, None, None] * width for _ in range(count)]
        raw_sql = _raw_step_sql(slots)
        rollup_sql = _rollup_step_sql(slots)
        execute = self.conn.execute
        for kind, level, lo, hi in plan:
            first = (lo - start) // step
            for index in range(first, count):
                a = max(lo, start + index * step)
                b = min(hi, start + (index + 1) * step)
                if a >= b:
                    break
                if kind == "points":
                    row = execute(raw_sql, (series_id, a, b)).fetchone()
                else:
                    row = execute(rollup_sql, (series_id, level, a, b)).fetchone()
                _fold(acc[index], row, width)
        out = [
            [
                Aggregate(cell[4 * k] or 0, cell[4 * k + 1], cell[4 * k + 2], cell[4 * k + 3])
                for k in range(width)
            ]
            for cell in acc
        ]
        return source, out


def _fold(cell: list[Any], row: Sequence[Any], width: int) -> None:
    for k in range(width):
        n = row[4 * k]
        if not n:
            continue
        i = 4 * k
        if cell[i]:
            cell[i] += n
            cell[i + 1] = min(cell[i + 1], row[i + 1])
            cell[i + 2] = max(cell[i + 2], row[i + 2])
            cell[i + 3] += row[i + 3]
        else:
            cell[i : i + 4] = row[i : i + 4]


def now() -> float:
    return time.time()

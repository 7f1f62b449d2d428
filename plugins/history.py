"""The ``history`` plugin: every plugin's samples, kept in SQLite, as series.

A background task asks every plugin for its samples (``raspapi_samples``)
every ``RASPAPI_HISTORY_INTERVAL`` seconds and writes them, in one
transaction per interval, to ``history.db`` in the state folder: the value
itself (kept ``RASPAPI_HISTORY_RETENTION_DAYS``) and its 5-minute rollup
(count, sum, min, max; kept ``RASPAPI_HISTORY_DOWNSAMPLED_DAYS``), updated
in the same transaction. WAL with ``synchronous=FULL``: a crash or a power
cut loses at most the interval being written, never the store's consistency.

``GET /api/v1/history?metric=&since=&until=&step=`` answers an aligned
series, min/avg/max per step; ``GET /api/v1/history/metrics`` lists the
names. Steps of 5 minutes or more are read from the rollups (each 5-minute
bucket counts in the step where it starts), shorter ones from the values.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import (
    ApiRoute,
    Invalid,
    NotFound,
    PluginContext,
    Query,
    Status,
    Store,
    hookimpl,
    transaction,
)
from raspapi.plugin import parse_when as _when

#: The wall clock samples are stamped with (tests set a fake one).
clock: Callable[[], float] = time.time

ROLLUP_MS = 300_000
MAX_POINTS = 2000
DEFAULT_POINTS = 500
#: Names kept at once; further new names are not sampled (logged once).
MAX_METRICS = 10_000
#: How often values and rollups past their retention are deleted.
PRUNE_SECONDS = 600.0
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


# -- the database ------------------------------------------------------------------


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
                    "first_at": _rfc3339(first) if first is not None else None,
                    "last_at": _rfc3339(last[0]) if last else None,
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


# -- the sampler -------------------------------------------------------------------


class History:
    """One per app: the store, the sampling task, and the routes' handlers."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.store: Store = ctx.store(MIGRATIONS)
        self.db: HistoryDB | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_prune = -math.inf
        self.written = 0
        self.failures = 0
        self.last_write_seconds: float | None = None
        self._warned: set[str] = set()

    async def open(self) -> HistoryDB:
        if self.db is None:

            def opening(conn: sqlite3.Connection) -> HistoryDB:
                # Every interval's commit reaches the disk before the next one
                # starts: a power cut loses at most the interval being written.
                conn.execute("PRAGMA synchronous=FULL")
                return HistoryDB(conn)

            self.db = await self.store.run(opening)
        return self.db

    async def start(self) -> None:
        await self.open()
        await self.prune()
        self.task = asyncio.create_task(self._run(), name="history-sampler")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self) -> None:
        # The first interval ends one to two intervals after start: start-up stays
        # quick, and plugins are asked for samples once they are settled. Intervals
        # end on the loop clock's multiples of the interval, as the usage plugin's:
        # both samplers wake in the same loop turn, not twice per interval.
        interval = self.settings.history_interval
        loop = asyncio.get_running_loop()
        due = math.floor(loop.time() / interval) * interval + interval
        while True:
            due += interval
            now = loop.time()
            if due < now:  # fell behind (a suspended machine): start afresh
                due = now + interval
            await asyncio.sleep(due - now)
            await self.tick()

    async def tick(self) -> None:
        """One interval: gather every plugin's samples, write them in one transaction."""
        try:
            values = await self.ctx.hooks.samples()
            now = clock()
            db = await self.open()
            ts = int(now * 1000)
            if ts <= db.last_ts:
                self._warn("clock", "the clock went back: samples are skipped until it catches up")
                return
            started = time.perf_counter()
            refused = await self.store.run(lambda conn: db.write(ts, values))
            self.last_write_seconds = time.perf_counter() - started
            self.written += 1
            if refused:
                self._warn("cap", f"more than {MAX_METRICS} names: not sampling {refused[0]}...")
            if now - self.last_prune >= PRUNE_SECONDS:
                await self.prune()
        except Exception as exc:
            self.failures += 1
            self._warn(type(exc).__name__, f"sampling failed: {exc}")

    async def prune(self) -> None:
        db = await self.open()
        now = clock()
        settings = self.settings
        await self.store.run(
            lambda conn: db.prune(
                int(now * 1000),
                settings.history_retention_days,
                settings.history_downsampled_days,
            )
        )
        self.last_prune = now

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.logger.warning("%s", message)

    # -- routes ------------------------------------------------------------------

    async def query(self, request: Request) -> JSONResponse:
        """A metric's history: min, avg and max per step, aligned.

        `since` and `until` are RFC 3339 times, Unix seconds, or a time before
        now such as `-7d`, `-12h`, `-30m` (default: the last 24 hours up to
        now). Steps start at multiples of `step` since the Unix epoch; a step
        without values has nulls and count 0. Steps of 300 s or more are read
        from the 5-minute rollups (kept longer than the values).
        """
        now = clock()
        name = METRIC.parse(request)
        if not name:
            raise Invalid("metric", "is required; GET /api/v1/history/metrics lists them")
        raw_until, raw_since = UNTIL.parse(request), SINCE.parse(request)
        until = _when("until", raw_until, now) if raw_until else now
        since = _when("since", raw_since, now) if raw_since else until - 86400
        if since >= until:
            raise Invalid("since", "must be before until")
        step = STEP.parse(request)
        if step is None:
            step = max((until - since) / DEFAULT_POINTS, self.settings.history_interval)
            step = math.ceil(step) if step >= 1 else math.ceil(step * 10) / 10
        step_ms = max(round(step * 1000), 100)
        start = int(since * 1000) // step_ms * step_ms
        end = int(until * 1000)
        count = math.ceil((end - start) / step_ms)
        if count > MAX_POINTS:
            least = math.ceil((end - start) / MAX_POINTS / 1000)
            raise Invalid(
                "step", f"gives {count} points; at most {MAX_POINTS}: use {least} or more"
            )
        db = await self.open()
        source, rows = await self.store.run(lambda conn: db.series(name, start, end, step_ms))
        found: dict[int, tuple[float, float, float, int]] = {}
        for i, lo, hi, total, n in rows:
            if 0 <= i < count:
                if i in found:  # a step both sides of where the values expired
                    a, b, c, d = found[i]
                    lo, hi, total, n = min(lo, a), max(hi, b), total + c, n + d
                found[int(i)] = (lo, hi, total, n)
        points = []
        for i in range(count):
            at = start + i * step_ms
            point: dict[str, Any] = {"at": _rfc3339(at), "timestamp": at / 1000}
            if i in found:
                lo, hi, total, n = found[i]
                point.update(min=lo, avg=total / n, max=hi, count=n)
            else:
                point.update(min=None, avg=None, max=None, count=0)
            points.append(point)
        body = {
            "metric": name,
            "start_at": _rfc3339(start),
            "end_at": _rfc3339(end),
            "step_seconds": step_ms / 1000,
            "source": source,
            "points": points,
        }
        return JSONResponse(body)

    async def metrics(self, request: Request) -> JSONResponse:
        """Every metric with a history: its name, oldest and latest time, latest value."""
        db = await self.open()
        names = await self.store.run(lambda conn: db.names())
        return JSONResponse(
            {
                "interval_seconds": self.settings.history_interval,
                "retention_days": self.settings.history_retention_days,
                "downsampled_days": self.settings.history_downsampled_days,
                "metrics": names,
            }
        )


def _rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    spec = "seconds" if ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


METRIC = Query("metric", str, description="A name from /api/v1/history/metrics.")
SINCE = Query(
    "since", str, description="From: RFC 3339, Unix seconds, or -7d/-12h/-30m (default -24h)."
)
UNTIL = Query("until", str, description="To: RFC 3339, Unix seconds, or -1h (default now).")
STEP = Query(
    "step",
    float,
    minimum=0.1,
    maximum=366 * 86400,
    description=f"Seconds per point (default: the range in {DEFAULT_POINTS} points, "
    f"at most {MAX_POINTS} points).",
)

_NUMBER = {"type": ["number", "null"]}
SERIES: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "start_at", "end_at", "step_seconds", "source", "points"],
    "properties": {
        "metric": {"type": "string"},
        "start_at": {"type": "string", "format": "date-time", "description": "first step"},
        "end_at": {"type": "string", "format": "date-time"},
        "step_seconds": {"type": "number"},
        "source": {
            "enum": ["samples", "rollups", "mixed"],
            "description": "values (steps under 300 s), 5-minute rollups (longer steps, "
            "or where the values have expired), or both",
        },
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time", "description": "step start"},
                    "timestamp": {"type": "number", "description": "step start, Unix seconds"},
                    "min": _NUMBER,
                    "avg": _NUMBER,
                    "max": _NUMBER,
                    "count": {"type": "integer", "description": "values in the step"},
                },
            },
        },
    },
}
NAMES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interval_seconds": {"type": "number"},
        "retention_days": {"type": "number"},
        "downsampled_days": {"type": "number"},
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "first_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_value": _NUMBER,
                },
            },
        },
    },
}


def _history(ctx: PluginContext) -> History:
    history = ctx.state.get("history")
    if history is None:
        history = ctx.state["history"] = History(ctx)
    assert isinstance(history, History)
    return history


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    history = _history(ctx)
    return [
        ApiRoute(
            "/", history.query, methods=["GET"], query=[METRIC, SINCE, UNTIL, STEP], response=SERIES
        ),
        ApiRoute("/metrics", history.metrics, methods=["GET"], response=NAMES),
    ]


@hookimpl
async def raspapi_startup(ctx: PluginContext) -> None:
    await _history(ctx).start()


@hookimpl
async def raspapi_shutdown(ctx: PluginContext) -> None:
    await _history(ctx).stop()


@hookimpl
def raspapi_status(ctx: PluginContext) -> Status:
    history = _history(ctx)
    db = history.db
    return Status.ok(
        metrics=len(db.ids) if db else 0,
        interval_seconds=history.settings.history_interval,
        intervals_written=history.written,
        failed_intervals=history.failures,
    )


@hookimpl
def raspapi_metrics(ctx: PluginContext) -> list[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    history = _history(ctx)
    families: list[Any] = [
        CounterMetricFamily(
            "raspapi_history_intervals_written",
            "Sampling intervals written to the history since start",
            value=history.written,
        ),
        CounterMetricFamily(
            "raspapi_history_intervals_failed",
            "Sampling intervals that could not be written since start",
            value=history.failures,
        ),
        GaugeMetricFamily(
            "raspapi_history_metrics",
            "Names with a history",
            value=len(history.db.ids) if history.db else 0,
        ),
    ]
    if history.last_write_seconds is not None:
        families.append(
            GaugeMetricFamily(
                "raspapi_history_write_seconds",
                "How long writing the last interval took",
                value=history.last_write_seconds,
            )
        )
    return families

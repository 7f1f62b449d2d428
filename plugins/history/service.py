"""The history plugin's sampler and queries (no Starlette: the handlers are in ``api.py``).

A background task asks every plugin for its samples (``raspapi_samples``)
every ``RASPAPI_HISTORY_INTERVAL`` seconds and writes them, in one
transaction per interval, to ``history.db`` (``store.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from raspapi.plugin import Invalid, PluginContext, Store, parse_when, rfc3339_ms

from . import store
from .store import MIGRATIONS, HistoryDB

#: The wall clock samples are stamped with (tests set a fake one).
clock: Callable[[], float] = time.time

MAX_POINTS = 2000
DEFAULT_POINTS = 500
#: How often values and rollups past their retention are deleted.
PRUNE_SECONDS = 600.0


class History:
    """One per app: the store, the sampling task, and the queries the routes answer."""

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
        """One interval: gather every plugin's samples, write them in one transaction.

        The write runs in the samples' own worker-thread visit (``then``): with
        only plain ``raspapi_samples`` implementations answering, reading and
        writing an interval hands off to a thread once."""
        try:
            db = await self.open()
            await self.ctx.hooks.samples(then=lambda values: self.write(db, values))
        except Exception as exc:
            self.failures += 1
            self._warn(type(exc).__name__, f"sampling failed: {exc}")

    def write(self, db: HistoryDB, values: dict[str, float]) -> None:
        """Stamps and writes one interval, and prunes when due (blocking: a thread)."""
        now = clock()
        ts = int(now * 1000)
        if ts <= db.last_ts:
            self._warn("clock", "the clock went back: samples are skipped until it catches up")
            return
        started = time.perf_counter()
        refused = self.store.call(lambda conn: db.write(ts, values))
        self.last_write_seconds = time.perf_counter() - started
        self.written += 1
        if refused:
            cap = store.MAX_METRICS
            self._warn("cap", f"more than {cap} names: not sampling {refused[0]}...")
        if now - self.last_prune >= PRUNE_SECONDS:
            self.store.call(lambda conn: self._prune(db, now))

    async def prune(self) -> None:
        db = await self.open()
        now = clock()
        await self.store.run(lambda conn: self._prune(db, now))

    def _prune(self, db: HistoryDB, now: float) -> None:
        settings = self.settings
        db.prune(
            int(now * 1000), settings.history_retention_days, settings.history_downsampled_days
        )
        self.last_prune = now

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.logger.warning("%s", message)

    # -- queries -----------------------------------------------------------------

    def window(
        self, name: str | None, since: str | None, until: str | None
    ) -> tuple[str, float, float]:
        """What a query asks for: the metric, and the range in Unix seconds
        (``since`` and ``until`` as ``parse_when`` reads them; default: the last
        24 hours up to now). Raises Invalid naming the field at fault."""
        now = clock()
        if not name:
            raise Invalid("metric", "is required; GET /api/v1/history/metrics lists them")
        end = parse_when("until", until, now) if until else now
        start = parse_when("since", since, now) if since else end - 86400
        if start >= end:
            raise Invalid("since", "must be before until")
        return name, start, end

    async def series(self, window: tuple[str, float, float], step: float | None) -> dict[str, Any]:
        """The series :meth:`window` asks for, min/avg/max per aligned step of
        ``step`` seconds (default: the range in ``DEFAULT_POINTS`` points, at
        least the sampling interval); Invalid when that is too many points."""
        name, start_s, end_s = window
        if step is None:
            step = max((end_s - start_s) / DEFAULT_POINTS, self.settings.history_interval)
            step = math.ceil(step) if step >= 1 else math.ceil(step * 10) / 10
        step_ms = max(round(step * 1000), 100)
        start = int(start_s * 1000) // step_ms * step_ms
        end = int(end_s * 1000)
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
            point: dict[str, Any] = {"at": rfc3339_ms(at), "timestamp": at / 1000}
            if i in found:
                lo, hi, total, n = found[i]
                point.update(min=lo, avg=total / n, max=hi, count=n)
            else:
                point.update(min=None, avg=None, max=None, count=0)
            points.append(point)
        return {
            "metric": name,
            "start_at": rfc3339_ms(start),
            "end_at": rfc3339_ms(end),
            "step_seconds": step_ms / 1000,
            "source": source,
            "points": points,
        }

    async def names(self) -> dict[str, Any]:
        """Every metric with a history, and the settings it is kept with."""
        db = await self.open()
        names = await self.store.run(lambda conn: db.names())
        return {
            "interval_seconds": self.settings.history_interval,
            "retention_days": self.settings.history_retention_days,
            "downsampled_days": self.settings.history_downsampled_days,
            "metrics": names,
        }

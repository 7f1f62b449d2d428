"""The sensors service: its stores, the series in memory, the retention task, and the
queries the ``/api/v1/sensors`` and timeseries-api routes answer (no HTTP here: the
handlers are in ``api.py`` and ``compat.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from raspapi.plugin import (
    ApiError,
    Forbidden,
    Invalid,
    KeyStore,
    NotFound,
    PluginContext,
    Principal,
    Store,
    Unavailable,
    parse_int,
    rfc3339,
    rfc3339_ms,
)

from . import validate
from .config import MAX_STEPS, Config
from .store import MIGRATIONS, Aggregate, Reader, SensorDB, Series
from .validate import Batch

T = TypeVar("T")

#: Raw points per read of a CSV export.
CSV_PAGE = 5_000
#: Read connections (threads): SQLite releases the GIL while it scans.
READERS = max(1, min(4, os.cpu_count() or 1))
#: An ``until`` past any point.
FAR = 1 << 62
#: The default range of a JSON query: the last day.
DAY = 86400.0


@dataclass(frozen=True)
class Window:
    start: int
    end: int


class Sensors:
    """One per app (``ctx.service(Sensors)``); knows nothing about HTTP: it returns
    dicts and raises the public API's errors."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config = Config.load(ctx)
        self.writer: Store = ctx.store(MIGRATIONS)
        #: Read connections, each with its own thread: a long scan is split among them.
        #: Opened on the first read, not before the daemon is ready.
        self.readers: list[tuple[Store, Reader]] = []
        self._opening = asyncio.Lock()
        self.db: SensorDB | None = None
        self.task: asyncio.Task[None] | None = None
        #: Set when points are stored: the retention task, with nothing to prune,
        #: waits for it instead of waking every ``prune_interval``.
        self.stored = asyncio.Event()
        self.ingested = 0
        self.rejected = 0
        self.pruned = 0

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.db = await self.writer.run(SensorDB)
        self.task = asyncio.create_task(self._retention(), name="sensors-retention")
        self.ctx.logger.info(
            "%d series in %s; batches of at most %d points",
            len(self.db.series),
            self.writer.path,
            self.config.max_batch,
        )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        readers, self.readers = self.readers, []
        for store, _ in readers:
            store.close()

    async def _retention(self) -> None:
        """Deletes expired points, a bounded amount per run; runs again soon while more is
        due. While the store holds no point it sleeps until points are stored, then
        runs one interval later."""
        while True:
            deleted, empty = 0, False
            self.stored.clear()
            try:
                deleted, empty = await self._prune_run()
            except Exception as exc:  # logged; the next run tries again
                self.ctx.logger.warning("retention run failed: %s", exc)
            if empty:  # the next run is one interval after points are stored
                await self.stored.wait()
            busy = deleted >= self.config.prune_batch
            await asyncio.sleep(
                min(1.0, self.config.prune_interval) if busy else self.config.prune_interval
            )

    async def _prune_run(self, now: float | None = None) -> tuple[int, bool]:
        """One retention run in one visit to the writer thread: points deleted, and
        whether nothing is left that could expire."""
        db = self.database()
        moment = time.time() if now is None else now

        def run(conn: sqlite3.Connection) -> tuple[int, bool]:
            deleted = db.prune(moment, self.config.prune_batch)
            return deleted, db.nothing_to_prune()

        deleted, empty = await self.writer.run(run)
        self.pruned += deleted
        return deleted, empty

    async def prune(self, now: float | None = None) -> int:
        deleted, _ = await self._prune_run(now)
        return deleted

    # -- access ----------------------------------------------------------------------

    def database(self) -> SensorDB:
        if self.db is None:
            raise Unavailable("the sensors store is not open")
        return self.db

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self.writer.run(fn)
        except sqlite3.Error as exc:
            self.ctx.logger.error("cannot write %s: %s", self.writer.path, exc)
            raise Unavailable(f"cannot write the sensors store: {exc}") from None

    async def _open_readers(self) -> list[tuple[Store, Reader]]:
        """The read connections, opened on first use (after the writer made the schema)."""
        if self.readers:
            return self.readers
        self.database()
        async with self._opening:
            if not self.readers:
                opened: list[tuple[Store, Reader]] = []
                for _ in range(READERS):
                    store = Store(self.writer.path)
                    try:
                        opened.append((store, await store.run(Reader)))
                    except sqlite3.Error as exc:
                        for each in [store, *(done for done, _ in opened)]:
                            each.close()
                        self.ctx.logger.error("cannot read %s: %s", self.writer.path, exc)
                        raise Unavailable(f"cannot read the sensors store: {exc}") from None
                self.readers = opened
        return self.readers

    async def read(self, fn: Callable[[Reader], T], which: int = 0) -> T:
        readers = await self._open_readers()
        store, reader = readers[which % len(readers)]
        try:
            return await store.run(lambda conn: fn(reader))
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot read the sensors store: {exc}") from None

    async def steps(
        self, series: Series, slots: list[int], window: Window, step: int
    ) -> tuple[str, list[list[Aggregate]]]:
        """Aggregates per step; the steps are shared among the read connections."""
        count = -(-(window.end - window.start) // step)
        parts = max(1, min(len(await self._open_readers()), count // 8))
        size = -(-count // parts)

        def part(i: int) -> Callable[[Reader], tuple[str, list[list[Aggregate]]]]:
            lo = window.start + i * size * step
            hi = min(window.end, lo + size * step)
            return lambda r: r.steps(series.id, slots, lo, hi, step)

        answers = await asyncio.gather(*(self.read(part(i), i) for i in range(parts)))
        table = [row for _, rows in answers for row in rows]
        return answers[0][0], table

    def find(self, series_id: int) -> Series | None:
        return self.database().series.get(series_id)

    def series(self, series_id: int) -> Series:
        found = self.find(series_id)
        if found is None:
            raise NotFound(f"series {series_id} does not exist", code="unknown_series")
        return found

    @staticmethod
    def may_write(caller: Principal | None, series: Series) -> bool:
        if caller is None:
            return False
        return caller.is_admin or (
            caller.key_id is not None and caller.key_id == series.owner_key_id
        )

    def writable(self, caller: Principal | None, series_id: int) -> Series:
        series = self.series(series_id)
        if not self.may_write(caller, series):
            raise Forbidden(
                f"series {series_id} belongs to another key; only its owner or an admin "
                "key may change it",
                code="not_owner",
            )
        return series

    # -- operations shared with the timeseries-api routes ---------------------------------

    async def create(
        self, caller: Principal, body: dict[str, Any], keys: KeyStore | None = None
    ) -> Series:
        owner_id, owner_name = caller.key_id, caller.name
        wanted = body.get("owner_key_id")
        if wanted is not None:
            if not caller.is_admin:
                raise Forbidden("only an admin key may create a series for another key")
            owner_id, owner_name = _owner(keys, wanted)
        series = Series(
            id=0,
            description=validate.text(body, "description"),
            device_description=validate.text(body, "device_description"),
            device_id=validate.text(body, "device_id", validate.DEVICE_ID_MAX),
            units=validate.units(body.get("units")),
            fields=(),
            owner_key_id=owner_id,
            owner_name=owner_name,
            retention_days=validate.retention_days(
                body.get("retention_days"), self.config.retention_days
            ),
            created_at=time.time(),
        )
        db = self.database()
        created = await self.write(lambda conn: db.create(series, self.config.max_series))
        self.ctx.logger.info("series %d created by key %r", created.id, owner_name)
        return created

    async def delete(self, caller: Principal | None, series_id: int) -> None:
        self.writable(caller, series_id)
        db = self.database()
        await self.write(lambda conn: db.delete(series_id))
        self.ctx.logger.info("series %d deleted", series_id)

    async def ingest(
        self,
        caller: Principal | None,
        series_id: int,
        value: Any,
        *,
        where: str = "points",
        time_key: str = "at",
        coerce: Callable[[Any], float | None] = validate.number,
    ) -> Batch:
        """Checks every point, then stores the batch in one transaction (or nothing)."""
        self.writable(caller, series_id)
        db = self.database()
        count = len(value) if isinstance(value, list) else 0
        count = count if count <= self.config.max_batch else 0
        try:
            batch = validate.points(
                value,
                series_id=series_id,
                first_id=db.reserve(count),
                now_ms=int(time.time() * 1000),
                max_batch=self.config.max_batch,
                max_future_ms=int(self.config.max_future_seconds * 1000),
                where=where,
                time_key=time_key,
                coerce=coerce,
            )
            await self.write(lambda conn: db.insert(series_id, batch))
            self.stored.set()
        except ApiError:
            self.rejected += 1
            raise
        self.ingested += len(batch.rows)
        return batch

    async def delete_point(self, caller: Principal | None, point_id: int) -> None:
        row = await self.read(lambda r: r.point(point_id))
        if row is None or row[0] not in self.database().series:
            raise NotFound(f"point {point_id} does not exist", code="unknown_point")
        self.writable(caller, row[0])
        db = self.database()
        await self.write(lambda conn: db.delete_point(point_id))

    async def counts(
        self, ids: Sequence[int] | None = None
    ) -> dict[int, tuple[int, int | None, int | None]]:
        return await self.read(lambda r: r.listing(ids))

    # -- answers of the /api/v1/sensors routes ------------------------------------------

    def describe(
        self, series: Series, counts: tuple[int, int | None, int | None]
    ) -> dict[str, Any]:
        count, first, last = counts
        return {
            "id": series.id,
            "description": series.description,
            "device_description": series.device_description,
            "device_id": series.device_id,
            "units": series.units,
            "fields": list(series.fields),
            "owner_key_id": series.owner_key_id,
            "owner": series.owner_name,
            "retention_days": series.retention_days,
            "created_at": rfc3339(series.created_at),
            "point_count": count,
            "first_at": rfc3339_ms(first) if first is not None else None,
            "last_at": rfc3339_ms(last) if last is not None else None,
        }

    async def listing(self) -> dict[str, Any]:
        """Every series, with its point count and first and last point time."""
        everything = tuple(self.database().series.values())
        counts = await self.counts()
        items = [
            self.describe(s, counts.get(s.id, (0, None, None)))
            for s in sorted(everything, key=lambda s: s.id)
        ]
        return {"series": items, "max_batch": self.config.max_batch}

    async def one(self, series_id: int) -> dict[str, Any]:
        series = self.series(series_id)
        counts = await self.counts([series.id])
        return self.describe(series, counts.get(series.id, (0, None, None)))

    @staticmethod
    def pushed(series_id: int, batch: Batch) -> dict[str, Any]:
        return {
            "series_id": series_id,
            "accepted": len(batch.rows),
            "first_id": batch.rows[0][1],
            "first_at": rfc3339_ms(batch.first_ms),
            "last_at": rfc3339_ms(batch.last_ms),
        }

    async def stepped(
        self, series: Series, names: list[str], slots: list[int], window: Window, step_ms: int
    ) -> dict[str, Any]:
        """Min, avg and max of each field per step."""
        source, table = await self.steps(series, slots, window, step_ms)
        return {
            "series_id": series.id,
            "start_at": rfc3339_ms(window.start),
            "end_at": rfc3339_ms(window.end),
            "step_seconds": step_ms / 1000,
            "source": source,
            "fields": names,
            "units": {n: series.units[n] for n in names if n in series.units},
            "steps": [
                {
                    "at": rfc3339_ms(window.start + i * step_ms),
                    "fields": {n: _summary(a) for n, a in zip(names, row, strict=True)},
                }
                for i, row in enumerate(table)
            ],
        }

    async def page(
        self,
        series: Series,
        names: list[str],
        slots: list[int],
        span: tuple[int, int],
        *,
        limit: int,
        descending: bool,
        cursor: str | None,
    ) -> dict[str, Any]:
        """One page of points in ``span`` (ms, end excluded), with the next page's cursor."""
        start, end = span
        after = _cursor(cursor)
        rows = await self.read(
            lambda r: r.raw(series.id, slots, start, end, after, limit + 1, descending)
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "series_id": series.id,
            "fields": names,
            "units": {n: series.units[n] for n in names if n in series.units},
            "points": [
                {
                    "id": row[0],
                    "at": rfc3339_ms(row[1]),
                    "fields": {n: v for n, v in zip(names, row[2:], strict=True) if v is not None},
                }
                for row in rows
            ],
            "next_cursor": f"{rows[-1][1]}:{rows[-1][0]}" if more else None,
        }

    async def csv_steps(
        self, series: Series, names: list[str], slots: list[int], window: Window, step_ms: int
    ) -> str:
        """Min, avg and max of each field per step as CSV."""
        _, table = await self.steps(series, slots, window, step_ms)
        lines = [
            ",".join(["at", *(f"{n}_{k}" for n in names for k in ("count", "min", "avg", "max"))])
        ]
        for i, row in enumerate(table):
            cells = [rfc3339_ms(window.start + i * step_ms)]
            for a in row:
                cells += [
                    str(a.count),
                    _num(a.low),
                    _num(_avg(a)),
                    _num(a.high),
                ]
            lines.append(",".join(cells))
        return "\r\n".join(lines) + "\r\n"

    def csv_points(
        self, series: Series, names: list[str], slots: list[int], span: tuple[int, int]
    ) -> AsyncIterator[bytes]:
        """The points in ``span`` as CSV, read a page at a time while it is sent."""
        start, end = span

        def page(after: tuple[int, int] | None) -> Callable[[Reader], list[tuple[Any, ...]]]:
            return lambda r: r.raw(series.id, slots, start, end, after, CSV_PAGE)

        async def body() -> AsyncIterator[bytes]:
            yield (",".join(["at", *names]) + "\r\n").encode()
            after: tuple[int, int] | None = None
            while True:  # bounded: each page moves the cursor past the points read
                rows = await self.read(page(after))
                if not rows:
                    return
                yield "".join(
                    rfc3339_ms(row[1]) + "," + ",".join(_num(v) for v in row[2:]) + "\r\n"
                    for row in rows
                ).encode()
                if len(rows) < CSV_PAGE:
                    return
                after = (rows[-1][1], rows[-1][0])

        return body()

    # -- reads of the timeseries-api routes ----------------------------------------------

    async def newest(self, series: Series, limit: int) -> list[tuple[Any, ...]]:
        """The newest ``limit`` points of a series, oldest first: (id, ts, v0, v1, ...)."""
        slots = list(range(len(series.fields)))
        rows = await self.read(lambda r: r.raw(series.id, slots, 0, FAR, None, limit, True))
        rows.reverse()
        return rows

    async def point(self, point_id: int) -> tuple[Any, ...] | None:
        """(series_id, ts, id, v0, v1, ...) of a point, or None."""
        return await self.read(lambda r: r.point(point_id))

    async def total_points(self) -> int:
        return await self.read(lambda r: r.total_points())


def fields(series: Series, wanted: str | None) -> tuple[list[str], list[int]]:
    """The field names a query asks for (comma-separated; None: every field) and their
    slots."""
    if not wanted:
        names = list(series.fields)
    else:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        for name in names:
            if name not in series.fields:
                known = ", ".join(series.fields) or "none yet"
                raise Invalid(
                    "fields", f"series {series.id} has no field {name[:64]!r} (it has: {known})"
                )
    return names, [series.fields.index(n) for n in names]


def window(
    since: str | None, until: str | None, step: float | None, steps: int | None, now: float
) -> tuple[Window, int] | None:
    """The window and step (ms) of a downsampled query; None without ``step``/``steps``."""
    if step is None and steps is None:
        return None
    if step is not None and steps is not None:
        raise Invalid("steps", "give step or steps, not both")
    end_s = validate.query_time("until", until, now) if until else now
    start_s = validate.query_time("since", since, now) if since else end_s - DAY
    if start_s >= end_s:
        raise Invalid("since", "must be before until")
    if step is not None:
        step_ms = max(1, round(step * 1000))
    else:
        assert steps is not None
        step_ms = _nice(end_s - start_s, steps)
    start = int(start_s * 1000) // step_ms * step_ms
    end = int(end_s * 1000)
    count = -(-(end - start) // step_ms)
    if count > MAX_STEPS:
        least = math.ceil((end - start) / MAX_STEPS / 1000)
        raise Invalid("step", f"gives {count} steps; at most {MAX_STEPS}: use {least} or more")
    return Window(start, end), step_ms


def span(since: str | None, until: str | None, now: float, start: int) -> tuple[int, int]:
    """The range (ms, end excluded) of a query of points; ``start`` without ``since``."""
    first = int(validate.query_time("since", since, now) * 1000) if since else start
    end = int(validate.query_time("until", until, now) * 1000) if until else FAR
    return first, end


def _owner(keys: KeyStore | None, key_id: Any) -> tuple[str, str]:
    if not isinstance(key_id, str) or keys is None:
        raise Invalid("owner_key_id", "must be the id of a scoped key")
    record = keys.get(key_id)
    if record is None or record.state(time.time()) != "active":
        raise Invalid("owner_key_id", f"no active key has the id {key_id[:64]!r}")
    if "ingest" not in record.principal.scopes:
        raise Invalid("owner_key_id", f"key {key_id!r} lacks the 'ingest' scope")
    return record.id, record.name


def _cursor(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    ts, sep, point_id = text.partition(":")
    at, after = parse_int(ts, low=0), parse_int(point_id, low=0)
    if not sep or at is None or after is None or "-" in text:
        raise Invalid("cursor", "must be a next_cursor from a previous answer")
    return at, after


def _summary(a: Aggregate) -> dict[str, Any]:
    return {
        "count": a.count,
        "min": a.low,
        "avg": _avg(a),
        "max": a.high,
    }


def _nice(seconds: float, steps: int) -> int:
    """A step (ms) of about ``seconds / steps``, rounded up to what rollups can serve."""
    raw = seconds * 1000 / steps
    for floor, grain in ((3_000_000, 300_000), (100_000, 10_000), (1_000, 1_000)):
        if raw >= floor:
            return math.ceil(raw / grain) * grain
    return max(1, math.ceil(raw))


def _avg(a: Aggregate) -> float | None:
    return a.total / a.count if a.count and a.total is not None else None


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)

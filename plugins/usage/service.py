"""The usage plugin's work: turning station counters into bytes per device, and quotas.

No Starlette here: the routes (``api.py``) call into :class:`Usage`.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import math
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from raspapi.plugin import (
    Conflict,
    Invalid,
    NotFound,
    PluginContext,
    Store,
    rfc3339,
)

from .store import MIGRATIONS, Block, Counter, Delta, Quota, UsageDB

LEASES = "/var/lib/misc/dnsmasq.leases"
MAX_LEASES_BYTES = 8 << 20
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._-]{1,63}")
#: The bucket the bytes of devices past the daily device cap go to.
OTHER = "other"
DEFAULT = "default"
ACTIONS = ("block", "notify")
#: Stations read per interval at most (hostapd itself allows at most 2007).
MAX_STATIONS = 4096
#: A counter above this is not a byte count (2^53: exact in JSON and floats).
MAX_COUNTER = 1 << 53
#: Quotas: at most this many bytes (1 PB), and at most this many quotas.
MAX_QUOTA_BYTES = 10**15
MAX_QUOTAS = 1024
PRUNE_SECONDS = 600.0
HOUR = 3600

#: Options (RASPAPI_USAGE_*): name -> (default, minimum, maximum).
OPTIONS: dict[str, tuple[float, float, float]] = {
    "RASPAPI_USAGE_HOURLY_DAYS": (14, 1, 400),
    "RASPAPI_USAGE_DAILY_DAYS": (400, 1, 3660),
    "RASPAPI_USAGE_MAX_DEVICES": (1000, 1, 100_000),
    "RASPAPI_USAGE_METRICS_DAYS": (7, 1, 400),
    "RASPAPI_USAGE_METRICS_DEVICES": (100, 1, 10_000),
}


@dataclass(frozen=True)
class Options:
    hourly_days: int = 14
    daily_days: int = 400
    max_devices: int = 1000
    metrics_days: int = 7
    metrics_devices: int = 100

    @classmethod
    def read(cls, ctx: PluginContext) -> Options:
        values: list[int] = []
        for name, (default, low, high) in OPTIONS.items():
            raw = (ctx.settings.option(name) or "").strip()
            if not raw:
                values.append(int(default))
                continue
            try:
                number = int(raw)
            except ValueError:
                number = -1
            if not low <= number <= high:
                raise ValueError(f"{name}={raw!r} is not a whole number from {low:g} to {high:g}")
            values.append(number)
        return cls(*values)


@dataclass(frozen=True)
class Period:
    """A quota's current period: its key, first local day, and when it ends."""

    key: str
    first_day: str
    until: float


#: The wall clock and the time zone days are counted in (None: the machine's
#: local time), as a new service takes them (tests set fake ones).
clock: Callable[[], float] = time.time
timezone: tzinfo | None = None


def parse_mac(raw: str) -> str:
    mac = raw.lower()
    if len(raw) != 17 or not MAC.fullmatch(mac):
        raise Invalid("mac", "expected a MAC address such as aa:bb:cc:dd:ee:ff", code="bad_mac")
    return mac


def parse_leases(text: str) -> dict[str, str]:
    """dnsmasq's host names by MAC (``*`` and odd names are left out)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        mac = fields[1].lower()
        if MAC.fullmatch(mac) and _HOSTNAME.fullmatch(fields[3]):
            out[mac] = fields[3]
    return out


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    number = int(value)
    return number if 0 <= number < MAX_COUNTER else None


class Usage:
    """One per app: the sampler task, the store, quotas and their enforcement."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.clock: Callable[[], float] = clock
        self.tz: tzinfo | None = timezone
        self.options = Options()
        self.store: Store = ctx.store(MIGRATIONS)
        self.db: UsageDB | None = None
        self.counters: dict[str, Counter] = {}
        self.last_sample: float | None = None
        self.quotas: dict[str, Quota] = {}
        self.blocks: dict[str, Block] = {}
        self.today = ""
        self.today_macs: set[str] = set()
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.last_prune = -math.inf
        self.written = 0
        self.failures = 0
        self.overflowed = 0
        self._warned: set[str] = set()

    # -- calendar ----------------------------------------------------------------

    def day_of(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.tz).date()

    def day_start(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp()

    def period(self, quota: Quota, now: float) -> Period:
        today = self.day_of(now)
        if quota.daily_bytes is not None:
            return Period(f"day {today}", today.isoformat(), self.day_start(today + timedelta(1)))
        reset = quota.resets_on_day or 1

        def on(year: int, month: int) -> date:
            return date(year, month, min(reset, calendar.monthrange(year, month)[1]))

        start = on(today.year, today.month)
        if start > today:
            year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
            start = on(year, month)
        year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
        end = on(year, month)
        return Period(f"month from {start}", start.isoformat(), self.day_start(end))

    # -- life cycle --------------------------------------------------------------

    async def open(self) -> UsageDB:
        if self.db is None:

            def opening(conn: sqlite3.Connection) -> UsageDB:
                # Each interval's commit is on disk before the next one starts:
                # a crash or power cut loses at most the interval being written.
                conn.execute("PRAGMA synchronous=FULL")
                return UsageDB(conn)

            db = await self.store.run(opening)
            self.counters = await self.store.run(lambda _: db.counters())
            self.last_sample = await self.store.run(lambda _: db.meta("last_sample"))
            self.quotas = await self.store.run(lambda _: db.quotas())
            self.blocks = await self.store.run(lambda _: db.blocks())
            self.db = db
        return self.db

    async def start(self) -> None:
        self.options = Options.read(self.ctx)
        await self.open()
        # hostapd forgets its deny list when it restarts: deny again what is
        # still blocked (best effort; hostapd may not be up yet).
        for block in list(self.blocks.values()):
            if block.action == "block" and block.until > self.clock():
                with contextlib.suppress(Exception):
                    await self.ctx.hooks.station_action("deny", block.mac)
        self.task = asyncio.create_task(self._run(), name="usage-sampler")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self) -> None:
        interval = self.ctx.settings.history_interval
        loop = asyncio.get_running_loop()
        # On the loop clock's multiples of the interval, as the history sampler:
        # both wake in the same loop turn.
        due = math.floor(loop.time() / interval) * interval + interval
        while True:
            due += interval
            now = loop.time()
            if due < now:
                due = now + interval
            await asyncio.sleep(due - now)
            await self.tick()

    # -- one interval ------------------------------------------------------------

    async def tick(self) -> None:
        """Read the stations, write their bytes in one transaction, enforce quotas."""
        try:
            async with self.lock:
                await self._tick()
        except Exception as exc:
            self.failures += 1
            self._warn(type(exc).__name__, f"sampling failed: {exc}")

    async def _tick(self) -> None:
        db = await self.open()
        stations = await self.ctx.hooks.stations()
        now = self.clock()
        if self.last_sample is not None and now <= self.last_sample:
            self._warn("clock", "the clock went back: usage is not sampled until it catches up")
            return
        # The rest of the interval is one visit to the store's thread, or none at
        # all when no station is there and nothing is due (an idle access point).
        counters: dict[str, Counter] = {}
        gone: list[str] = []
        if stations or self.last_sample is None or self.day_of(now).isoformat() != self.today:
            counters, gone = await self.store.run(
                lambda _: self._account_and_write(db, stations, now)
            )
        self.counters.update(counters)
        for mac in gone:
            self.counters.pop(mac, None)
        self.last_sample = now
        self.written += 1
        await self._enforce(now)
        if now - self.last_prune >= PRUNE_SECONDS:
            await self.prune(now)

    def _account_and_write(
        self, db: UsageDB, stations: list[dict[str, Any]], now: float
    ) -> tuple[dict[str, Counter], list[str]]:
        """One interval's bytes, written (blocking: the store's thread). Host names
        are read only when there are stations; an interval with no station now or
        before writes nothing once a sample time is stored (``last_sample``, which
        only says whether this is the first look of all)."""
        day = self.day_of(now).isoformat()
        if day != self.today:
            self.today = day
            self.today_macs = db.macs_on(day)
        names = self._hostnames() if stations else {}
        deltas, counters, gone = self.account(stations, names, now)
        if deltas or counters or gone or self.last_sample is None:
            hour = int(now) // HOUR * HOUR
            db.write(now, hour, day, deltas, counters, gone)
        return counters, gone

    def account(
        self, stations: list[dict[str, Any]], names: dict[str, str], now: float
    ) -> tuple[list[Delta], dict[str, Counter], list[str]]:
        """Deltas since the last sample, the new counters, and the MACs that left.

        A counter that went down, or a connected time that went down, is a new
        association: its delta is the counter itself. A station seen for the
        first time counts from zero, except on the very first sample of all
        (what a station sent before raspapi ever looked has no time).
        """
        deltas: list[Delta] = []
        counters: dict[str, Counter] = {}
        other_rx = other_tx = 0
        for station in stations[:MAX_STATIONS]:
            mac = str(station.get("mac", "")).lower()
            rx, tx = _count(station.get("rx_bytes")), _count(station.get("tx_bytes"))
            if not MAC.fullmatch(mac) or mac in counters or rx is None or tx is None:
                continue
            connected = _count(station.get("connected_seconds"))
            counters[mac] = Counter(rx, tx, connected, now)
            prev = self.counters.get(mac)
            if prev is None:
                if self.last_sample is None:
                    continue  # the first look of all: a baseline
                d_rx, d_tx = rx, tx
            elif (
                rx < prev.rx
                or tx < prev.tx
                or (
                    connected is not None
                    and prev.connected is not None
                    and connected < prev.connected
                )
            ):
                d_rx, d_tx = rx, tx  # reconnected
            else:
                d_rx, d_tx = rx - prev.rx, tx - prev.tx
            if not (d_rx or d_tx):
                continue
            if mac not in self.today_macs:
                if len(self.today_macs) >= self.options.max_devices:
                    self.overflowed += 1
                    self._warn(
                        "cap",
                        f"more than {self.options.max_devices} devices today: the bytes "
                        f"of further new MACs are counted as {OTHER!r}",
                    )
                    other_rx += d_rx
                    other_tx += d_tx
                    continue
                self.today_macs.add(mac)
            deltas.append(Delta(mac, names.get(mac), d_rx, d_tx))
        if other_rx or other_tx:
            deltas.append(Delta(OTHER, None, other_rx, other_tx))
        # An empty sweep may be hostapd away: only a station missing from a
        # non-empty one has left (its next association counts from zero).
        gone = [m for m in self.counters if m not in counters] if counters else []
        return deltas, counters, gone

    def _hostnames(self) -> dict[str, str]:
        return parse_leases(self.ctx.read_text(LEASES, limit=MAX_LEASES_BYTES) or "")

    async def prune(self, now: float) -> None:
        db = await self.open()
        hour_cut = int(now - self.options.hourly_days * 86400) // HOUR * HOUR
        day_cut = (self.day_of(now) - timedelta(self.options.daily_days)).isoformat()
        device_cut = now - 86400
        await self.store.run(lambda _: db.prune(hour_cut, day_cut, device_cut))
        self.counters = {m: c for m, c in self.counters.items() if c.seen >= device_cut}
        self.last_prune = now

    # -- quotas ------------------------------------------------------------------

    def quota_of(self, mac: str) -> Quota | None:
        return self.quotas.get(mac) or (self.quotas.get(DEFAULT) if mac != OTHER else None)

    async def _enforce(self, now: float) -> None:
        db = await self.open()
        used_by_day: dict[str, dict[str, int]] = {}

        async def used(first_day: str) -> dict[str, int]:
            if first_day not in used_by_day:
                used_by_day[first_day] = await self.store.run(lambda _: db.used_since(first_day))
            return used_by_day[first_day]

        wanted: dict[str, tuple[Quota, Period, int]] = {}
        default = self.quotas.get(DEFAULT)
        if default is not None:
            period = self.period(default, now)
            for mac, n in (await used(period.first_day)).items():
                if mac != OTHER and mac not in self.quotas:
                    wanted[mac] = (default, period, n)
        for target, quota in self.quotas.items():
            if target != DEFAULT:
                period = self.period(quota, now)
                wanted[target] = (quota, period, (await used(period.first_day)).get(target, 0))
        for mac, block in list(self.blocks.items()):
            entry = wanted.get(mac)
            over = entry is not None and entry[2] > entry[0].limit
            if block.until <= now or entry is None or not over or entry[1].key != block.period:
                await self._lift(block, now)
        for mac, (quota, period, n) in wanted.items():
            if n > quota.limit and mac not in self.blocks:
                await self._exceeded(mac, quota, period, n, now)

    async def _exceeded(
        self, mac: str, quota: Quota, period: Period, used: int, now: float
    ) -> None:
        db = await self.open()
        block = Block(mac, period.key, quota.action, used, quota.limit, now, period.until)
        await self.store.run(lambda _: db.put_block(block))
        self.blocks[mac] = block
        failure = None
        if quota.action == "block":
            failure = await self._act("deny", mac) or await self._act("deauthenticate", mac)
        data = {
            "mac": mac,
            "used_bytes": used,
            "limit_bytes": quota.limit,
            "period": period.key,
            "action": quota.action,
            "until_at": rfc3339(period.until),
            "quota": "device" if quota.target == mac else "default",
        }
        self.ctx.events.publish("usage.quota_exceeded", data)
        what = "blocked" if quota.action == "block" else "noted"
        detail = (
            f"{mac} used {used} of {quota.limit} bytes ({period.key}): {what} "
            f"until {rfc3339(period.until)}" + (f"; could not block: {failure}" if failure else "")
        )
        self.ctx.audit("usage.quota_exceeded", detail)
        self.ctx.logger.warning("quota exceeded: %s", detail)

    async def _lift(self, block: Block, now: float) -> None:
        if block.action == "block":
            failure = await self._act("allow", block.mac)
            if failure is not None:
                self._warn(f"lift {block.mac}", f"cannot allow {block.mac} again yet: {failure}")
                return  # tried again next interval
            self.ctx.logger.info("usage block of %s lifted (%s ended)", block.mac, block.period)
        db = await self.open()
        await self.store.run(lambda _: db.delete_block(block.mac))
        self.blocks.pop(block.mac, None)
        self._warned.discard(f"lift {block.mac}")

    async def _act(self, action: str, mac: str) -> str | None:
        """None when done; else why not."""
        try:
            outcome = await self.ctx.hooks.station_action(action, mac)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        if not outcome:
            return "no plugin runs an access point"
        if all(reason is not None for reason in outcome.values()):
            return "; ".join(f"{name}: {reason}" for name, reason in outcome.items())
        return None

    async def set_quota(self, quota: Quota) -> None:
        async with self.lock:
            if quota.target not in self.quotas and len(self.quotas) >= MAX_QUOTAS:
                raise Conflict(
                    f"{MAX_QUOTAS} quotas are set already; delete one first",
                    code="too_many_quotas",
                )
            db = await self.open()
            await self.store.run(lambda _: db.put_quota(quota))
            self.quotas[quota.target] = quota
            await self._enforce(self.clock())

    async def delete_quota(self, target: str) -> None:
        async with self.lock:
            db = await self.open()
            if not await self.store.run(lambda _: db.delete_quota(target)):
                raise NotFound(f"no quota for {target}", code="no_quota")
            self.quotas.pop(target, None)
            await self._enforce(self.clock())

    def quota_view(self, quota: Quota, now: float) -> dict[str, Any]:
        period = self.period(quota, now)
        return {
            "target": quota.target,
            "daily_bytes": quota.daily_bytes,
            "monthly_bytes": quota.monthly_bytes,
            "resets_on_day": quota.resets_on_day,
            "action": quota.action,
            "period": period.key,
            "resets_at": rfc3339(period.until),
            "updated_at": rfc3339(quota.updated_at),
        }

    async def quota_states(self, now: float) -> list[dict[str, Any]]:
        """Every device with a quota this period: used, limit, state."""
        db = await self.open()
        out: list[dict[str, Any]] = []
        cache: dict[str, dict[str, int]] = {}
        macs = set(self.today_macs) | {m for m in self.quotas if m != DEFAULT} | set(self.blocks)
        for mac in sorted(macs - {OTHER}):
            quota = self.quota_of(mac)
            if quota is None:
                continue
            period = self.period(quota, now)
            first = period.first_day
            if first not in cache:
                cache[first] = await self.store.run(partial(_used_since, db, first))
            used = cache[period.first_day].get(mac, 0)
            block = self.blocks.get(mac)
            out.append(
                {
                    "mac": mac,
                    "quota": "device" if quota.target == mac else "default",
                    "used_bytes": used,
                    "limit_bytes": quota.limit,
                    "period": period.key,
                    "resets_at": rfc3339(period.until),
                    "state": (
                        ("blocked" if block.action == "block" else "exceeded") if block else "ok"
                    ),
                }
            )
        return out

    # -- reading -----------------------------------------------------------------

    async def report(
        self,
        since: float,
        until: float,
        step: str,
        top: int,
        mac: str | None = None,
        *,
        with_steps: bool = True,
    ) -> list[dict[str, Any]]:
        """Per device (the ``top`` by total, largest first): totals and per-step rows."""
        db = await self.open()
        if step == "hour":
            table = "hourly"
            start: Any = int(since) // HOUR * HOUR
            end: Any = int(until)
        else:
            table = "daily"
            start = self.day_of(since).isoformat()
            end = (self.day_of(until) + timedelta(1)).isoformat()
        ranked = await self.store.run(lambda _: db.ranked(table, start, end, top, mac))
        macs = [r[0] for r in ranked]
        rows = await self.store.run(
            lambda _: db.totals(table, start, end, macs if with_steps else [])
        )
        names = await self.store.run(lambda _: db.hostnames(macs))
        steps: dict[str, list[dict[str, Any]]] = {m: [] for m in macs}
        for device, bucket, hostname, rx, tx in rows:
            at = bucket if step == "hour" else self.day_start(date.fromisoformat(bucket))
            steps[device].append({"start_at": rfc3339(at), **_bytes(rx, tx)})
            if hostname and not names.get(device):
                names[device] = hostname
        return [
            {
                "mac": device,
                "hostname": names.get(device),
                **_bytes(rx, tx),
                "steps": steps[device],
            }
            for device, rx, tx in ranked
        ]

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned and len(self._warned) < 1000:
            self._warned.add(key)
            self.ctx.logger.warning("%s", message)


def _bytes(rx: int, tx: int) -> dict[str, int]:
    """rx and tx as the access point counts them, and named from the device's side."""
    return {
        "rx_bytes": rx,
        "tx_bytes": tx,
        "total_bytes": rx + tx,
        "uploaded_bytes": rx,
        "downloaded_bytes": tx,
    }


def _used_since(db: UsageDB, first_day: str, _conn: sqlite3.Connection) -> dict[str, int]:
    return db.used_since(first_day)

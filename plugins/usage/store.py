"""``usage.db``: per-device bytes in hourly and daily buckets, quotas and blocks.

Blocking code: every method runs in the store's own thread (``Store.run``).
Times are Unix seconds; an hour is keyed by its first second (UTC), a day by
its local date (``"2030-01-31"``), so a day's total is what that calendar day
on the access point saw, whatever its time zone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from raspapi.plugin import (
    transaction,
)

MIGRATIONS = [
    """
    CREATE TABLE devices (
        mac TEXT PRIMARY KEY, hostname TEXT,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL,
        rx_total INTEGER NOT NULL DEFAULT 0, tx_total INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE hourly (
        mac TEXT NOT NULL, hour INTEGER NOT NULL, hostname TEXT,
        rx INTEGER NOT NULL, tx INTEGER NOT NULL,
        PRIMARY KEY (mac, hour)
    ) WITHOUT ROWID;
    CREATE INDEX hourly_hour ON hourly (hour);
    CREATE TABLE daily (
        mac TEXT NOT NULL, day TEXT NOT NULL, hostname TEXT,
        rx INTEGER NOT NULL, tx INTEGER NOT NULL,
        PRIMARY KEY (mac, day)
    ) WITHOUT ROWID;
    CREATE INDEX daily_day ON daily (day);
    CREATE TABLE counters (
        mac TEXT PRIMARY KEY, rx INTEGER NOT NULL, tx INTEGER NOT NULL,
        connected INTEGER, seen REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE quotas (
        target TEXT PRIMARY KEY, daily_bytes INTEGER, monthly_bytes INTEGER,
        resets_on_day INTEGER, action TEXT NOT NULL, updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE blocks (
        mac TEXT PRIMARY KEY, period TEXT NOT NULL, action TEXT NOT NULL,
        used_bytes INTEGER NOT NULL, limit_bytes INTEGER NOT NULL,
        exceeded_at REAL NOT NULL, until REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
    """
]

_ADD_HOUR = """
    INSERT INTO hourly (mac, hour, hostname, rx, tx) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (mac, hour) DO UPDATE SET
        rx = rx + excluded.rx, tx = tx + excluded.tx,
        hostname = coalesce(excluded.hostname, hostname)
"""
_ADD_DAY = """
    INSERT INTO daily (mac, day, hostname, rx, tx) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (mac, day) DO UPDATE SET
        rx = rx + excluded.rx, tx = tx + excluded.tx,
        hostname = coalesce(excluded.hostname, hostname)
"""
_ADD_DEVICE = """
    INSERT INTO devices (mac, hostname, first_seen, last_seen, rx_total, tx_total)
    VALUES (?1, ?2, ?3, ?3, ?4, ?5)
    ON CONFLICT (mac) DO UPDATE SET
        rx_total = rx_total + excluded.rx_total, tx_total = tx_total + excluded.tx_total,
        last_seen = excluded.last_seen, hostname = coalesce(excluded.hostname, hostname)
"""


@dataclass(frozen=True, slots=True)
class Counter:
    """A station's counters as last sampled."""

    rx: int
    tx: int
    connected: int | None
    seen: float


@dataclass(frozen=True, slots=True)
class Delta:
    mac: str
    hostname: str | None
    rx: int
    tx: int


@dataclass(frozen=True, slots=True)
class Quota:
    target: str  # a MAC, or "default"
    daily_bytes: int | None
    monthly_bytes: int | None
    resets_on_day: int | None
    action: str
    updated_at: float

    @property
    def limit(self) -> int:
        return self.daily_bytes if self.daily_bytes is not None else self.monthly_bytes or 0


@dataclass(frozen=True, slots=True)
class Block:
    mac: str
    period: str
    action: str
    used_bytes: int
    limit_bytes: int
    exceeded_at: float
    until: float


class UsageDB:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- loading ---------------------------------------------------------------

    def counters(self) -> dict[str, Counter]:
        rows = self.conn.execute("SELECT mac, rx, tx, connected, seen FROM counters")
        return {r[0]: Counter(int(r[1]), int(r[2]), r[3], float(r[4])) for r in rows}

    def meta(self, key: str) -> float | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else None

    def quotas(self) -> dict[str, Quota]:
        rows = self.conn.execute(
            "SELECT target, daily_bytes, monthly_bytes, resets_on_day, action, updated_at "
            "FROM quotas"
        )
        return {r[0]: Quota(*r) for r in rows}

    def blocks(self) -> dict[str, Block]:
        rows = self.conn.execute(
            "SELECT mac, period, action, used_bytes, limit_bytes, exceeded_at, until FROM blocks"
        )
        return {r[0]: Block(*r) for r in rows}

    def macs_on(self, day: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT mac FROM daily WHERE day = ?", (day,))}

    # -- one interval ------------------------------------------------------------

    def write(
        self,
        now: float,
        hour: int,
        day: str,
        deltas: list[Delta],
        counters: dict[str, Counter],
        gone: list[str],
    ) -> None:
        """One sampler interval, all or nothing: the bytes, and the counters they
        were computed from (so a restart goes on from exactly there)."""
        with transaction(self.conn):
            for d in deltas:
                if d.rx or d.tx:
                    self.conn.execute(_ADD_HOUR, (d.mac, hour, d.hostname, d.rx, d.tx))
                    self.conn.execute(_ADD_DAY, (d.mac, day, d.hostname, d.rx, d.tx))
                self.conn.execute(_ADD_DEVICE, (d.mac, d.hostname, now, d.rx, d.tx))
            self.conn.executemany(
                "INSERT OR REPLACE INTO counters (mac, rx, tx, connected, seen) "
                "VALUES (?, ?, ?, ?, ?)",
                [(m, c.rx, c.tx, c.connected, c.seen) for m, c in counters.items()],
            )
            self.conn.executemany("DELETE FROM counters WHERE mac = ?", [(m,) for m in gone])
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sample', ?)", (now,)
            )

    def prune(self, hour_cut: int, day_cut: str, device_cut: float) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM hourly WHERE hour < ?", (hour_cut,))
            self.conn.execute("DELETE FROM daily WHERE day < ?", (day_cut,))
            self.conn.execute("DELETE FROM counters WHERE seen < ?", (device_cut,))
            self.conn.execute(
                "DELETE FROM devices WHERE last_seen < ? "
                "AND NOT EXISTS (SELECT 1 FROM daily WHERE daily.mac = devices.mac) "
                "AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocks.mac = devices.mac)",
                (device_cut,),
            )

    # -- quotas and blocks -------------------------------------------------------

    def put_quota(self, quota: Quota) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO quotas "
                "(target, daily_bytes, monthly_bytes, resets_on_day, action, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    quota.target,
                    quota.daily_bytes,
                    quota.monthly_bytes,
                    quota.resets_on_day,
                    quota.action,
                    quota.updated_at,
                ),
            )

    def delete_quota(self, target: str) -> bool:
        with transaction(self.conn):
            cur = self.conn.execute("DELETE FROM quotas WHERE target = ?", (target,))
        return cur.rowcount > 0

    def put_block(self, block: Block) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO blocks "
                "(mac, period, action, used_bytes, limit_bytes, exceeded_at, until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    block.mac,
                    block.period,
                    block.action,
                    block.used_bytes,
                    block.limit_bytes,
                    block.exceeded_at,
                    block.until,
                ),
            )

    def delete_block(self, mac: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM blocks WHERE mac = ?", (mac,))

    def used_since(self, day: str, macs: list[str] | None = None) -> dict[str, int]:
        """rx + tx per MAC from ``day`` (included) on."""
        rows = self.conn.execute(
            "SELECT mac, sum(rx + tx) FROM daily WHERE day >= ? GROUP BY mac", (day,)
        )
        out = {r[0]: int(r[1]) for r in rows}
        return out if macs is None else {m: out.get(m, 0) for m in macs}

    # -- reading -----------------------------------------------------------------

    def ranked(
        self, table: str, start: Any, end: Any, top: int, mac: str | None = None
    ) -> list[tuple[str, int, int]]:
        """(mac, rx, tx) of ``hourly`` or ``daily`` in [start, end), largest total first."""
        column = _column(table)
        where = f"{column} >= ? AND {column} < ?"
        args: list[Any] = [start, end]
        if mac is not None:
            where += " AND mac = ?"
            args.append(mac)
        rows = self.conn.execute(
            f"SELECT mac, sum(rx), sum(tx) FROM {table} WHERE {where} "  # noqa: S608 - names are ours
            "GROUP BY mac ORDER BY sum(rx) + sum(tx) DESC, mac LIMIT ?",
            [*args, top],
        ).fetchall()
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    def totals(
        self, table: str, start: Any, end: Any, macs: list[str]
    ) -> list[tuple[str, Any, str | None, int, int]]:
        """(mac, bucket, hostname, rx, tx) rows of ``macs`` in [start, end)."""
        column = _column(table)
        out: list[tuple[str, Any, str | None, int, int]] = []
        for mac in macs:
            rows = self.conn.execute(
                f"SELECT mac, {column}, hostname, rx, tx FROM {table} "  # noqa: S608 - names are ours
                f"WHERE mac = ? AND {column} >= ? AND {column} < ? ORDER BY {column}",
                (mac, start, end),
            )
            out.extend((r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows)
        return out

    def hostnames(self, macs: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for mac in macs:
            row = self.conn.execute("SELECT hostname FROM devices WHERE mac = ?", (mac,)).fetchone()
            out[mac] = row[0] if row else None
        return out

    def lifetime(self, since: float, cap: int) -> list[tuple[str, str | None, int, int]]:
        """(mac, hostname, rx_total, tx_total) of devices seen since ``since``, the
        ``cap`` largest; the rest folded into one ``other`` row."""
        rows = self.conn.execute(
            "SELECT mac, hostname, rx_total, tx_total FROM devices WHERE last_seen >= ? "
            "ORDER BY rx_total + tx_total DESC, mac",
            (since,),
        ).fetchall()
        kept: dict[str, tuple[str | None, int, int]] = {}
        rest_rx = rest_tx = 0
        for mac, hostname, rx, tx in rows:
            if len(kept) < cap and mac != "other":
                kept[mac] = (hostname, int(rx), int(tx))
            else:  # past the cap, and the devices past the daily cap
                rest_rx, rest_tx = rest_rx + int(rx), rest_tx + int(tx)
        out = [(mac, h, rx, tx) for mac, (h, rx, tx) in kept.items()]
        if rest_rx or rest_tx or len(rows) > len(kept):
            out.append(("other", None, rest_rx, rest_tx))
        return out


def _column(table: str) -> str:
    if table not in ("hourly", "daily"):
        raise ValueError(f"no table {table!r}")
    return "hour" if table == "hourly" else "day"

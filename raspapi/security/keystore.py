"""Scoped API keys: stored hashed, looked up in memory, last use written in batches.

A key is 32 characters of ``[0-9a-z]`` from a CSPRNG (about 165 bits), so a
plain SHA-256 of it is enough to store: nobody can search that space, and
unlike a slow password hash it costs a microsecond on every request. Only the
hash reaches the database; the key itself is handed out once, at creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from raspapi.http.errors import Conflict, NotFound, Unavailable
from raspapi.http.routing import SCOPES
from raspapi.http.timefmt import rfc3339
from raspapi.security.adminkey import generate_key
from raspapi.security.auth import Principal
from raspapi.state.storage import Store, transaction

log = logging.getLogger("raspapi.keys")

#: Keys that can be active at once (a bound, not a plan).
MAX_ACTIVE_KEYS = 1000
#: Revoked and expired keys kept in memory (the newest; older ones stay in
#: the database only): creating and revoking in a loop cannot grow memory.
MAX_INACTIVE_KEPT = 1000
#: Seconds between writes of ``last_used_at`` (and once more at shutdown).
FLUSH_INTERVAL = 60.0

MIGRATION = """
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    expires_at REAL,
    revoked_at REAL
);
"""

#: :attr:`KeyStore.failure` until the keys are loaded.
NOT_LOADED = "not loaded yet"

_COLUMNS = "id, name, key_sha256, scopes, created_at, last_used_at, expires_at, revoked_at"


def digest(key: str) -> str:
    """The stored form of a key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).hexdigest()


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes in :data:`SCOPES` order, each once."""
    wanted = set(scopes)
    return tuple(s for s in SCOPES if s in wanted)


class KeyRecord:
    """One scoped key as stored (never the key itself: its SHA-256)."""

    __slots__ = (
        "created_at",
        "expires_at",
        "id",
        "key_sha256",
        "last_used_at",
        "name",
        "principal",
        "revoked_at",
        "scopes",
    )

    def __init__(
        self,
        id: str,
        name: str,
        key_sha256: str,
        scopes: tuple[str, ...],
        created_at: float,
        last_used_at: float | None = None,
        expires_at: float | None = None,
        revoked_at: float | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.key_sha256 = key_sha256
        self.scopes = scopes
        self.created_at = created_at
        self.last_used_at = last_used_at
        self.expires_at = expires_at
        self.revoked_at = revoked_at
        # ``admin`` carries every scope, as the .env admin key does.
        effective = frozenset(SCOPES) if "admin" in scopes else frozenset(scopes)
        self.principal = Principal(name, effective, id)

    def __repr__(self) -> str:
        return f"KeyRecord(id={self.id!r}, name={self.name!r}, scopes={self.scopes!r})"

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "state": self.state(now),
            "created_at": rfc3339(self.created_at),
            "last_used_at": rfc3339(self.last_used_at),
            "expires_at": rfc3339(self.expires_at),
            "revoked_at": rfc3339(self.revoked_at),
        }


class KeyStore:
    """The scoped keys, all held in memory; SQLite is written on change.

    ``lookup`` is what the authenticator calls on every request: one hash and
    one dict look-up, no IO. ``last_used_at`` changes in memory and is written
    every :data:`FLUSH_INTERVAL` seconds and at shutdown.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = FLUSH_INTERVAL,
        max_active: int = MAX_ACTIVE_KEYS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.max_active = max_active
        #: Why the store cannot be used (None once loaded).
        self.failure: str | None = NOT_LOADED
        self._records: dict[str, KeyRecord] = {}
        self._live: dict[str, KeyRecord] = {}  # by key_sha256; never revoked ones
        self._by_digest: dict[str, KeyRecord] = {}  # every key, revoked ones too
        self._dirty: set[str] = set()
        #: Set when a key is used with nothing waiting to be written: wakes the
        #: flusher, which otherwise sleeps (an idle daemon has no timer for it).
        self._used: asyncio.Event | None = None
        #: Names of keys being created (checked and claimed before the write is
        #: awaited, so concurrent creates cannot both pass the checks).
        self._creating: set[str] = set()
        #: Called with ("created" or "revoked", record) after a change (live events).
        self.on_change: Callable[[str, KeyRecord], None] | None = None
        #: :meth:`start_loading`'s load, and the flusher it starts.
        self._loading: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    # -- every request ------------------------------------------------------------

    def lookup(self, key: str) -> Principal | None:
        if not self._live or len(key) > 256:
            return None
        record = self._live.get(digest(key))
        if record is None:
            return None
        now = self.clock()
        if record.expires_at is not None and record.expires_at <= now:
            return None
        record.last_used_at = now
        if not self._dirty and self._used is not None:
            self._used.set()
        self._dirty.add(record.id)
        return record.principal

    def describe(self, key: str) -> tuple[str, str] | None:
        """A refused key's name and state (``revoked``, ``expired``), for the log
        line that says why; None for a key never issued here."""
        if not self._by_digest or len(key) > 256:
            return None
        record = self._by_digest.get(digest(key))
        return None if record is None else (record.name, record.state(self.clock()))

    def by_digest(self, key_sha256: str) -> KeyRecord | None:
        """The active key with this hash, or None (revoked, expired or unknown)."""
        record = self._live.get(key_sha256)
        if record is None or record.state(self.clock()) != "active":
            return None
        return record

    # -- reading and changing ----------------------------------------------------

    def start_loading(self) -> None:
        """Load the keys in the background, then write their last use from time
        to time (:meth:`run_flusher`); once, whoever asks first. ``raspapi
        serve`` asks once its first answers are out; :meth:`loaded` asks when
        something needs the keys sooner."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        await self.load()
        if self.failure is None:
            self._flusher = asyncio.create_task(self.run_flusher())

    @property
    def loading(self) -> bool:
        """Whether the keys are still to load (neither loaded nor failed to)."""
        return self.failure is NOT_LOADED

    async def loaded(self) -> None:
        """Once the keys are loaded, or failed to: loads them if nothing has yet."""
        if self.loading:
            self.start_loading()
            assert self._loading is not None
            await asyncio.shield(self._loading)

    async def close(self) -> None:
        """Stop writing last use, and write what is left (the daemon's stop)."""
        if self._loading is not None:
            await self._loading
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def load(self) -> None:
        try:
            rows = await self.store.run(
                lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM api_keys").fetchall()  # noqa: S608
            )
        except (sqlite3.Error, OSError) as exc:
            self.failure = f"cannot open {self.store.path}: {exc}"
            log.error("scoped keys are unavailable: %s", self.failure)
            return
        for row in rows:
            self._add(_record(row))
        self._trim()
        self.failure = None
        active = sum(1 for r in self._records.values() if r.state(self.clock()) == "active")
        log.info("scoped keys: %d active in %s", active, self.store.path)

    def records(self) -> list[KeyRecord]:
        """Every key, newest first (revoked and expired ones too)."""
        return sorted(self._records.values(), key=lambda r: (r.created_at, r.id), reverse=True)

    def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def create(
        self, name: str, scopes: Sequence[str], expires_at: float | None = None
    ) -> tuple[KeyRecord, str]:
        """A new key: its record, and the key itself (the only time it is known)."""
        await self.loaded()
        self.require()
        now = self.clock()
        active = [r for r in self._records.values() if r.state(now) == "active"]
        if name in self._creating or any(r.name == name for r in active):
            raise Conflict(f"an active key is already named {name!r}", code="name_taken")
        if len(active) + len(self._creating) >= self.max_active:
            raise Conflict(
                f"at most {self.max_active} keys can be active; revoke some first",
                code="too_many_keys",
            )
        key = generate_key()
        record = KeyRecord(
            id=secrets.token_hex(6),
            name=name,
            key_sha256=digest(key),
            scopes=normalize_scopes(scopes),
            created_at=now,
            expires_at=expires_at,
        )
        row = (
            record.id,
            record.name,
            record.key_sha256,
            " ".join(record.scopes),
            record.created_at,
            None,
            record.expires_at,
            None,
        )

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row)  # noqa: S608

        self._creating.add(name)
        try:
            await self._write(insert)
        finally:
            self._creating.discard(name)
        self._add(record)
        self._trim()
        log.info("created key %r (%s) with scopes %s", name, record.id, ",".join(record.scopes))
        self._changed("created", record)
        return record, key

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key; it stops working before this returns. Revoking twice is fine."""
        await self.loaded()
        self.require()
        record = self._records.get(key_id)
        if record is None:
            raise NotFound(f"no key with id {key_id!r}")
        if record.revoked_at is not None:
            return record
        # Out of the live map first: no request authenticates with it from now on.
        self._live.pop(record.key_sha256, None)
        now = self.clock()
        try:
            await self._write(
                lambda conn: conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id)
                )
            )
        except BaseException:
            self._live[record.key_sha256] = record
            raise
        record.revoked_at = now
        self._dirty.discard(key_id)
        self._trim()
        log.info("revoked key %r (%s)", record.name, key_id)
        self._changed("revoked", record)
        return record

    # -- last use -----------------------------------------------------------------

    async def flush(self) -> None:
        """Write the ``last_used_at`` of keys used since the last flush."""
        if not self._dirty or self.failure is not None:
            return
        ids, self._dirty = self._dirty, set()
        batch = [(self._records[i].last_used_at, i) for i in ids if i in self._records]

        def update(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", batch)

        try:
            await self.store.run(update)
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            self._dirty |= ids
            log.warning("cannot record when keys were last used: %s", exc)

    async def run_flusher(self) -> None:
        """Until cancelled: once a key is used, flush ``flush_interval`` seconds
        later; while no key is used, sleep without a timer."""
        self._used = asyncio.Event()
        while True:
            if not self._dirty:
                self._used.clear()
                await self._used.wait()
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    # -- helpers ------------------------------------------------------------------

    def _add(self, record: KeyRecord) -> None:
        self._records[record.id] = record
        self._by_digest[record.key_sha256] = record
        if record.revoked_at is None:
            self._live[record.key_sha256] = record

    def _trim(self) -> None:
        """Forget the oldest revoked and expired keys past :data:`MAX_INACTIVE_KEPT`."""
        now = self.clock()
        inactive = [r for r in self._records.values() if r.state(now) != "active"]
        if len(inactive) <= MAX_INACTIVE_KEPT:
            return
        inactive.sort(key=lambda r: (r.revoked_at or r.expires_at or r.created_at, r.id))
        for record in inactive[: len(inactive) - MAX_INACTIVE_KEPT]:
            del self._records[record.id]
            self._live.pop(record.key_sha256, None)
            self._dirty.discard(record.id)

    def _changed(self, kind: str, record: KeyRecord) -> None:
        if self.on_change is not None:
            try:
                self.on_change(kind, record)
            except Exception as exc:  # a listener never undoes a change made
                log.warning("key %s listener raised: %s", kind, exc)

    def require(self) -> None:
        if self.failure is not None:
            raise Unavailable(f"scoped keys are unavailable: {self.failure}")

    async def _write(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run a key change, on disk before it returns: the database is WAL with
        ``synchronous=NORMAL``, where a power cut can undo the last commits, so
        a key change commits with ``FULL`` (the WAL is fsynced) before its 2xx."""

        def durable(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA synchronous=FULL")
            try:
                fn(conn)
            finally:
                conn.execute("PRAGMA synchronous=NORMAL")

        try:
            await self.store.run(durable)
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot write %s: %s", self.store.path, exc)
            raise Unavailable(f"cannot write the key store: {exc}") from None


def _record(row: Sequence[Any]) -> KeyRecord:
    key_id, name, key_sha256, scopes, created, last_used, expires, revoked = row
    return KeyRecord(
        id=key_id,
        name=name,
        key_sha256=key_sha256,
        scopes=normalize_scopes(str(scopes).split()),
        created_at=created,
        last_used_at=last_used,
        expires_at=expires,
        revoked_at=revoked,
    )

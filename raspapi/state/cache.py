"""A small TTL cache where concurrent requests share one refresh."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple, TypeVar, overload

T = TypeVar("T")


class _Entry(NamedTuple):
    loaded: float
    expires: float
    value: Any
    error: BaseException | None


class Cache:
    """Values by key for ``ttl`` seconds.

    ``get`` runs the loader once however many requests ask at the same time: the
    first starts a refresh task and every caller awaits it. A synchronous loader
    runs in a thread, so file reads never block the event loop. A loader's error
    is kept for the same ``ttl``, so a missing device costs nothing under load.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1024,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self.loads = 0

    @overload
    async def get(
        self,
        key: Hashable,
        loader: Callable[[], Awaitable[T]],
        ttl: float | None = None,
        *,
        stale: float = 0.0,
    ) -> T: ...

    @overload
    async def get(
        self,
        key: Hashable,
        loader: Callable[[], T],
        ttl: float | None = None,
        *,
        stale: float = 0.0,
    ) -> T: ...

    async def get(
        self,
        key: Hashable,
        loader: Callable[[], Any],
        ttl: float | None = None,
        *,
        stale: float = 0.0,
    ) -> Any:
        """The value for ``key``, loading it when it has expired.

        With ``stale`` (seconds), an expired value loaded less than ``stale``
        seconds ago is returned at once while a refresh runs in the background:
        a poll never waits for a slow sweep (200 stations, ``wg show``) once
        there is a value; an older one (a stuck refresh) is waited for.
        """
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None and entry.expires > now:
            if entry.error is not None:
                # Raised afresh each time: re-raising one exception object
                # would grow its traceback by a few frames per request.
                raise entry.error.with_traceback(None)
            return entry.value
        period = self.ttl if ttl is None else ttl
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, loader, period))
            task.add_done_callback(_consume)
            self._inflight[key] = task
        if stale and entry is not None and entry.error is None and now < entry.loaded + stale:
            return entry.value
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, loader: Callable[[], Any], ttl: float) -> Any:
        self.loads += 1
        try:
            if inspect.iscoroutinefunction(loader):
                value = await loader()
            else:
                value = await asyncio.to_thread(loader)
                if inspect.isawaitable(value):
                    value = await value
        except Exception as exc:
            now = self.clock()
            self._store(key, _Entry(now, now + ttl, None, exc))
            raise
        else:
            now = self.clock()
            self._store(key, _Entry(now, now + ttl, value, None))
            return value
        finally:
            self._inflight.pop(key, None)

    def _store(self, key: Hashable, entry: _Entry) -> None:
        self._entries[key] = entry
        if len(self._entries) > self.max_entries:
            # Keys may come from requests (an interface name, a page): drop
            # what has expired, then the oldest, so memory stays bounded.
            now = self.clock()
            for old in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[old]
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    async def close(self) -> None:
        """Cancel the refreshes still running (at shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def invalidate(self, key: Hashable | None = None) -> None:
        """Forget one key (or all), e.g. after a control action changed it."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)


def _consume(task: asyncio.Task[Any]) -> None:
    # Every waiter may have gone (clients hung up); don't warn about the error.
    if not task.cancelled():
        task.exception()

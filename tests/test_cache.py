"""The TTL cache: one refresh however many ask at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from raspapi.state.cache import Cache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_requests_share_one_refresh():
    async def main() -> None:
        cache = Cache(ttl=1.0)
        calls = 0

        async def load() -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return 42

        results: list[int] = await asyncio.gather(*(cache.get("k", load) for _ in range(100)))
        assert results == [42] * 100
        assert calls == 1

    asyncio.run(main())


def test_sync_loaders_run_in_a_thread():
    async def main() -> None:
        cache = Cache()
        loop_thread = threading.get_ident()
        seen: list[int] = []

        def load() -> str:
            seen.append(threading.get_ident())
            return "x"

        assert await cache.get("k", load) == "x"
        assert seen and seen[0] != loop_thread

    asyncio.run(main())


def test_values_expire_after_ttl():
    async def main() -> None:
        clock = Clock()
        cache = Cache(ttl=1.0, clock=clock)
        values = iter(range(10))

        async def load() -> int:
            return next(values)

        assert await cache.get("k", load) == 0
        clock.now += 0.9
        assert await cache.get("k", load) == 0
        clock.now += 0.2
        assert await cache.get("k", load) == 1
        cache.invalidate("k")
        assert await cache.get("k", load) == 2

    asyncio.run(main())


def test_errors_are_cached_for_the_ttl_too():
    async def main() -> None:
        clock = Clock()
        cache = Cache(ttl=1.0, clock=clock)
        calls = 0

        async def load() -> int:
            nonlocal calls
            calls += 1
            raise FileNotFoundError("gone")

        for _ in range(3):
            with pytest.raises(FileNotFoundError):
                await cache.get("k", load)
        assert calls == 1
        clock.now += 2
        with pytest.raises(FileNotFoundError):
            await cache.get("k", load)
        assert calls == 2

    asyncio.run(main())


def test_a_cancelled_caller_does_not_cancel_the_refresh():
    async def main() -> None:
        cache = Cache()
        release = asyncio.Event()

        async def load() -> str:
            await release.wait()
            return "done"

        first: asyncio.Future[str] = asyncio.ensure_future(cache.get("k", load))
        second: asyncio.Future[str] = asyncio.ensure_future(cache.get("k", load))
        await asyncio.sleep(0)
        first.cancel()
        release.set()
        assert await second == "done"

    asyncio.run(main())


def test_memory_stays_bounded_whatever_the_keys():
    async def main() -> None:
        clock = Clock()
        cache = Cache(ttl=1.0, clock=clock, max_entries=10)

        async def load() -> int:
            return 1

        for i in range(100):
            await cache.get(f"key-{i}", load)
            clock.now += 0.01
        assert len(cache._entries) == 10
        assert "key-99" in cache._entries and "key-0" not in cache._entries

    asyncio.run(main())


def test_a_cached_error_does_not_grow_with_each_raise():
    async def main() -> None:
        cache = Cache(ttl=60)

        async def load() -> int:
            raise FileNotFoundError("gone")

        depths = []
        for _ in range(20):
            try:
                await cache.get("k", load)
            except FileNotFoundError as exc:
                depth, tb = 0, exc.__traceback__
                while tb is not None:
                    depth, tb = depth + 1, tb.tb_next
                depths.append(depth)
        assert depths[-1] == depths[1], depths

    asyncio.run(main())


def test_stale_values_are_served_while_one_refresh_runs():
    async def main() -> None:
        clock = Clock()
        cache = Cache(ttl=1.0, clock=clock)
        release = asyncio.Event()
        calls = 0

        async def load() -> int:
            nonlocal calls
            calls += 1
            if calls > 1:
                await release.wait()
            return calls

        assert await cache.get("k", load, stale=2.0) == 1
        clock.now += 1.5  # expired, but less than one more period ago
        assert await cache.get("k", load, stale=2.0) == 1  # answered at once
        assert await cache.get("k", load, stale=2.0) == 1
        release.set()
        await asyncio.sleep(0.01)
        assert await cache.get("k", load, stale=2.0) == 2
        assert calls == 2
        clock.now += 5  # far too old: waited for
        release.clear()
        waiting = asyncio.ensure_future(cache.get("k", load, stale=2.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        release.set()
        assert await waiting == 3

    asyncio.run(main())


def test_close_cancels_refreshes_still_running():
    async def main() -> None:
        cache = Cache()
        started = asyncio.Event()

        async def load() -> int:
            started.set()
            await asyncio.sleep(60)
            return 1

        waiting = asyncio.ensure_future(cache.get("k", load))
        await started.wait()
        await cache.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not cache._inflight

    asyncio.run(main())

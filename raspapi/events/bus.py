"""The event bus behind ``GET /api/v1/events``.

Anyone in the daemon publishes (``bus.publish("station.joined", {...})``;
plugins through ``ctx.events``); every subscriber (an open event stream) gets
each event through its own bounded queue. A subscriber whose queue is full is
not keeping up: it is dropped, never buffered without limit.

Changes that nobody announces (a station that joined, a plugin that became
unavailable) are found by *watches*: functions the bus calls every
``interval`` seconds, and once before each new subscriber's snapshot, while
at least one stream is open. With no stream open nothing runs at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from raspapi.http.timefmt import rfc3339

log = logging.getLogger("raspapi.events")

#: Events waiting for one subscriber; one more and it is dropped.
QUEUE_SIZE = 256
#: Event streams open at once; one more is refused (503).
MAX_SUBSCRIBERS = 32
#: Distinct retained event types (the latest of each is in every snapshot).
MAX_RETAINED = 64
#: A watch that takes longer than this is abandoned for that round.
WATCH_TIMEOUT = 10.0
#: Event type names: lower case, dots between words (``station.joined``).
TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")

Watch = Callable[[], Awaitable[None] | None]


class TooManySubscribers(Exception):
    pass


class Event(NamedTuple):
    id: int
    type: str
    data: dict[str, Any]
    at: float
    #: The Server-Sent Events frame, encoded once for every subscriber.
    frame: bytes

    def payload(self) -> dict[str, Any]:
        """The event's data with its time, as the stream's ``data:`` line carries it."""
        return {**self.data, "at": rfc3339(self.at)}


def sse_frame(event_type: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    # JSON never holds a raw newline, so the data is one ``data:`` line.
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {event_type}", "data: " + json.dumps(data, separators=(",", ":"))]
    return ("\n".join(lines) + "\n\n").encode()


class Subscription:
    """One event stream's queue. ``dropped`` once it fell behind, ``closed`` at
    shutdown or when the client went away."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.dropped = False
        self.closed = False
        #: Set once dropped or closed: the stream stops, even mid-write.
        self.gone = asyncio.Event()

    def offer(self, event: Event) -> bool:
        """Queue an event; False (and the subscription is dropped) when it is full."""
        if self.dropped or self.closed:
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self._empty()
            self.gone.set()
            return False
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.gone.set()
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)  # wakes a reader waiting in next()

    async def next(self, timeout: float) -> Event | None:
        """The next event; None after ``timeout`` seconds without one, or once closed."""
        if self.closed or self.dropped:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def pending(self, limit: int) -> list[Event]:
        """Events already queued (at most ``limit``), without waiting."""
        out: list[Event] = []
        while len(out) < limit and not self.queue.empty():
            item = self.queue.get_nowait()
            if item is None:
                break
            out.append(item)
        return out

    def _empty(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class EventBus:
    """Publish from the event loop or from any thread; subscribe from the loop."""

    def __init__(
        self,
        *,
        interval: float = 5.0,
        queue_size: int = QUEUE_SIZE,
        max_subscribers: int = MAX_SUBSCRIBERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = interval
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.clock = clock
        #: The latest event of each type published with ``retain=True``.
        self.latest: dict[str, Event] = {}
        #: Subscribers dropped for falling behind, since start.
        self.dropped = 0
        self._ids = itertools.count(1)
        self._subscribers: set[Subscription] = set()
        #: Subscriptions on their way in (waiting on their first tick).
        self._claimed = 0
        self._watches: list[tuple[str, Watch]] = []
        self._failing: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._tick_lock: asyncio.Lock | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    # -- publishing ---------------------------------------------------------------

    def publish(self, type: str, data: dict[str, Any], *, retain: bool = False) -> None:
        """Send an event to every open stream. ``type`` is dotted lower case
        (``station.joined``); ``data`` a JSON-ready dict (never a key or secret);
        ``retain`` keeps it for the snapshot new streams start with."""
        if not TYPE_NAME.fullmatch(type) or len(type) > 64:
            raise ValueError(f"event type {type!r} is not dotted lower case (e.g. station.joined)")
        if type in ("snapshot", "dropped"):
            raise ValueError(f"event type {type!r} is reserved")
        at = self.clock()
        event_id = next(self._ids)
        frame = sse_frame(type, {**data, "at": rfc3339(at)}, event_id)
        event = Event(event_id, type, dict(data), at, frame)
        if retain and (type in self.latest or len(self.latest) < MAX_RETAINED):
            self.latest[type] = event
        loop = self._loop
        if loop is None or not self._subscribers:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        for sub in list(self._subscribers):
            if not sub.offer(event) and sub.dropped:
                self._subscribers.discard(sub)
                self.dropped += 1
                log.warning("dropped an event stream that fell %d events behind", self.queue_size)

    # -- subscribing --------------------------------------------------------------

    async def subscribe(self) -> Subscription:
        """A new subscription, after one round of watches (so the state a
        snapshot shows is fresh). Raises TooManySubscribers."""
        if self._closed:
            raise TooManySubscribers("the daemon is stopping")
        # Checked and claimed before the await: requests that arrive while an
        # earlier one waits on tick() count against the cap too.
        if len(self._subscribers) + self._claimed >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} event streams are open already")
        self._claimed += 1
        try:
            self._loop = asyncio.get_running_loop()
            await self.tick()
        finally:
            self._claimed -= 1
        sub = Subscription(self.queue_size)
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="raspapi-event-watches")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._subscribers.discard(sub)

    async def close(self) -> None:
        """End every stream (the daemon is stopping) and stop the watches."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- watches ------------------------------------------------------------------

    def watch(self, fn: Watch, name: str | None = None) -> None:
        """Call ``fn`` (plain or async, no arguments) every ``interval`` seconds
        while any stream is open; it compares what it sees with what it saw
        last time and publishes the differences."""
        self._watches.append((name or str(getattr(fn, "__qualname__", fn)), fn))

    async def tick(self) -> None:
        """One round of every watch (one round at a time)."""
        if self._tick_lock is None:
            self._tick_lock = asyncio.Lock()
        async with self._tick_lock:
            for name, fn in list(self._watches):
                try:
                    result = fn()
                    if inspect.isawaitable(result):
                        async with asyncio.timeout(WATCH_TIMEOUT):
                            await result
                except Exception as exc:
                    if name not in self._failing:
                        self._failing.add(name)
                        log.error("event watch %s raised: %s", name, exc, exc_info=exc)
                else:
                    self._failing.discard(name)

    async def _run(self) -> None:
        while self._subscribers and not self._closed:
            await asyncio.sleep(self.interval)
            if self._subscribers:
                await self.tick()

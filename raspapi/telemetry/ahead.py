"""Scrape-ahead: collect the families shortly before a steady scraper comes back.

The plugins serve their last families for two cache periods (2 s by default)
while they refresh. Prometheus scrapes every 15 s, so without help every
scrape finds every family expired and waits for every refresh (a sweep of 200
stations, ``wg show``...). :class:`ScrapeAhead` learns each scraper's cadence
(one endpoint and format: the interval between its scrapes, once two
consecutive intervals agree within 10 %, between 1 s and 10 min, and longer
than three cache periods and a collection) and, ``lead``
seconds before the next scrape is due, runs a collection in the background:
the plugins refresh their caches and the exporter renders the families (into
its render caches, and the whole text for that scrape), so the scrape that
follows waits for nothing.

``lead`` is the longest of the last three collections plus a margin, at most
one cache period: the families a collection refreshed are at most ``lead`` old
when the scrape arrives on time, still within the plugins' cache period (not
served stale, which would start another refresh behind the scrape). The text
rendered ahead is served only to that scrape, and only within one cache period
of its collection: a scrape on cadence gets values at most one cache period
and a lead old (2 s by default). Any other scrape (the first ones, one off the
cadence, a late one) collects as before: values at most two cache periods old,
the plugins' own bound (their last refresh, served while the next one runs).

Cost when nobody scrapes: nothing (no timer until two steady intervals). One
ahead collection per expected scrape: a scraper that stops costs one more
collection, then no timer until its cadence is learned again. At most one
timer, whatever the number of scrapers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("raspapi.metrics")

#: A scraper: where it scrapes (``"http"``: /metrics, ``"listener"``:
#: RASPAPI_METRICS_ADDRESS) and the content type it is answered in.
Key = tuple[str, str]
#: The collection run ahead, given the scrapers (key, Accept header) it is for.
Run = Callable[[list[tuple[Key, str]]], Awaitable[None]]

#: A cadence is learned between these intervals (seconds) ...
MIN_INTERVAL = 1.0
MAX_INTERVAL = 600.0
#: ... when two consecutive intervals differ by at most this share.
AGREEMENT = 0.10
#: Added to the collection time in ``lead`` (at most a quarter of the cache period).
MARGIN = 0.25
#: Scrapers remembered at once (a key per endpoint and format: a handful).
MAX_SCRAPERS = 8


@dataclass(slots=True)
class _Scraper:
    accept: str
    times: deque[float] = field(default_factory=lambda: deque(maxlen=3))
    #: When the next scrape is expected (steady cadence, no collection run for it yet).
    due: float | None = None


class ScrapeAhead:
    """Learns the scrapers' cadence and runs ``run`` ``lead`` seconds before each
    expected scrape (see the module's docstring)."""

    def __init__(self, run: Run, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        #: The plugins' cache period (``RASPAPI_CACHE_TTL``).
        self.ttl = ttl
        self.clock = clock
        self.min_interval = MIN_INTERVAL
        self.max_interval = MAX_INTERVAL
        self._scrapers: dict[Key, _Scraper] = {}
        self._durations: deque[float] = deque(maxlen=3)
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._closed = False
        #: Collections run ahead (for tests and benchmarks).
        self.runs = 0

    @property
    def lead(self) -> float:
        """How long before an expected scrape its collection starts."""
        margin = min(MARGIN, self.ttl / 4)
        return min(max(self._durations, default=0.0) + margin, self.ttl)

    @property
    def armed(self) -> bool:
        """Whether a collection is scheduled."""
        return self._timer is not None

    def collected(self, seconds: float) -> None:
        """A collection took ``seconds`` (scrape or ahead: ``lead`` follows them)."""
        self._durations.append(seconds)

    def cadence(self, key: Key) -> float | None:
        """The steady interval learned for ``key``, if any."""
        scraper = self._scrapers.get(key)
        return None if scraper is None else self._steady(scraper.times)

    def scraped(self, key: Key, accept: str) -> None:
        """A scrape of ``key`` (asked with ``accept``) arrived now."""
        now = self.clock()
        scraper = self._scrapers.get(key)
        if scraper is None:
            if len(self._scrapers) >= MAX_SCRAPERS:
                oldest = min(self._scrapers, key=lambda k: self._scrapers[k].times[-1])
                del self._scrapers[oldest]
            scraper = self._scrapers[key] = _Scraper(accept)
        scraper.accept = accept
        scraper.times.append(now)
        interval = self._steady(scraper.times)
        scraper.due = None if interval is None else now + interval
        self._arm()

    def _steady(self, times: deque[float]) -> float | None:
        """The interval when the last two agree, within the bounds, else None.

        A shorter cadence than three cache periods and a collection needs no help
        (and would get none): the plugins' refresh made for one scrape (done at
        most a collection after it) would still be in its stale window (two cache
        periods) when the next one's collection starts (a lead, at most a cache
        period, before it), so that collection would get values served stale, not
        refreshed. Each such scrape finds the last refresh and starts the next."""
        if len(times) < 3:
            return None
        first, second = times[1] - times[0], times[2] - times[1]
        low = max(self.min_interval, 3 * self.ttl + max(self._durations, default=0.0))
        if not low <= second <= self.max_interval or not low <= first <= self.max_interval:
            return None
        if abs(second - first) > AGREEMENT * first:
            return None
        return second

    def _arm(self) -> None:
        """(Re)schedule the one timer for the earliest expected scrape, or none."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed or self.ttl <= 0:
            return
        starts = [s.due for s in self._scrapers.values() if s.due is not None]
        if not starts:
            return
        delay = max(0.0, min(starts) - self.lead - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now, lead = self.clock(), self.lead
        # Every scraper due within the lead (a small slack for the timer's own).
        ready = [
            (key, s)
            for key, s in self._scrapers.items()
            if s.due is not None and s.due - lead <= now + 0.05
        ]
        for _, scraper in ready:
            scraper.due = None  # one collection per expected scrape
        if ready and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._ahead([(k, s.accept) for k, s in ready]))
        self._arm()

    async def _ahead(self, scrapers: list[tuple[Key, str]]) -> None:
        self.runs += 1
        try:
            await self._run(scrapers)
        except Exception as exc:  # logged once until a collection works again
            if not self._failing:
                log.warning("collecting the metrics ahead of a scrape failed: %r", exc)
            self._failing = True
        else:
            self._failing = False

    async def close(self) -> None:
        """Cancels the timer and a collection running ahead (at shutdown)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

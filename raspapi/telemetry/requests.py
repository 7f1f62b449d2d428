"""Request metrics: count, errors and latency quantiles per route template.

Kept per route *template* (``/api/v1/networking/{interface}``), never per raw
path: every path no route matches is counted in one ``unmatched`` entry, so
a scanner cannot grow the table. Latencies go into a fixed histogram (ten
buckets per decade from 0.1 ms to 100 s; quantiles are read from it within
about 12%), kept since start and in a ring of 10-second slots for the last
five minutes. Recording is a few dict and list operations per request.

``GET /api/v1/metrics/requests`` serves it; the Prometheus exporter reads
:meth:`RequestMetrics.snapshot` and :meth:`RequestMetrics.histogram`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raspapi.http.routing import ApiRoute
from raspapi.http.timefmt import rfc3339

#: Upper bounds (seconds) of the latency buckets: 1, 1.25, 1.5, 2, 2.5, 3, 4,
#: 5, 6, 8 per decade, 0.1 ms to 100 s; one more bucket holds the rest.
_DECADE = (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
BOUNDS: tuple[float, ...] = (
    *(round(m * 10.0**e, 12) for e in range(-4, 2) for m in _DECADE),
    100.0,
)
#: The bounds a Prometheus histogram is exported with (a subset of BOUNDS).
EXPORT_BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SLOT_SECONDS = 10
SLOTS = 30  # 30 slots of 10 s: the last five minutes
WINDOW_SECONDS = SLOT_SECONDS * SLOTS
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NBUCKETS = len(BOUNDS) + 1


class Window(NamedTuple):
    """Figures over one period: since start, or the last five minutes."""

    requests: int
    #: Answers 400 to 499, and 500 and above.
    client_errors: int
    server_errors: int
    #: Sum of the latencies, seconds (a Prometheus summary's ``_sum``).
    seconds_sum: float
    #: Latency quantiles in seconds; None without requests.
    p50_seconds: float | None
    p95_seconds: float | None
    p99_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "mean_ms": ms(self.seconds_sum / self.requests) if self.requests else None,
            "p50_ms": ms(self.p50_seconds),
            "p95_ms": ms(self.p95_seconds),
            "p99_ms": ms(self.p99_seconds),
        }


class RouteStats(NamedTuple):
    """One route template and method (``route == "unmatched"``, ``method == "*"``
    for every request no route matched)."""

    method: str
    route: str
    total: Window
    last_5_minutes: Window


class _Counts:
    __slots__ = ("client_errors", "hist", "requests", "seconds", "server_errors")

    def __init__(self) -> None:
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0
        self.seconds = 0.0
        self.hist = [0] * _NBUCKETS

    def add(self, status: int, seconds: float, bucket: int) -> None:
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.seconds += seconds
        self.hist[bucket] += 1

    def merge(self, other: _Counts) -> None:
        self.requests += other.requests
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.seconds += other.seconds
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]

    def window(self) -> Window:
        return Window(
            self.requests,
            self.client_errors,
            self.server_errors,
            self.seconds,
            quantile(self.hist, 0.50),
            quantile(self.hist, 0.95),
            quantile(self.hist, 0.99),
        )


class _Slot(_Counts):
    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch


class _Series:
    __slots__ = ("method", "route", "slots", "total")

    def __init__(self, method: str, route: str) -> None:
        self.method = method
        self.route = route
        self.total = _Counts()
        self.slots: list[_Slot | None] = [None] * SLOTS


def quantile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a histogram over :data:`BOUNDS`, interpolated
    linearly inside its bucket; None when it is empty."""
    count = sum(hist)
    if not count:
        return None
    rank = q * count
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            if i >= len(BOUNDS):
                return BOUNDS[-1]
            low = BOUNDS[i - 1] if i else 0.0
            return low + (BOUNDS[i] - low) * max(rank - seen, 0.0) / n
        seen += n
    return BOUNDS[-1]  # pragma: no cover - rank <= count


class RequestMetrics:
    """The table; one per app (``runtime.requests``).

    Not thread-safe: recorded and read on the event loop.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started_at = time.time()
        self._series: dict[tuple[int, str], _Series] = {}
        self._unmatched = _Series("*", UNMATCHED)

    # -- recording ------------------------------------------------------------------

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        if route is None:
            series = self._unmatched
        else:
            method = scope["method"]
            if method not in _METHODS:
                method = "OTHER"
            key = (id(route), method)
            found = self._series.get(key)
            if found is None:
                found = self._series[key] = _Series(method, _template(route))
            series = found
        self.add(series, status, seconds)

    def add(self, series: _Series, status: int, seconds: float) -> None:
        bucket = bisect.bisect_left(BOUNDS, seconds)
        series.total.add(status, seconds, bucket)
        epoch = int(self.clock() // SLOT_SECONDS)
        index = epoch % SLOTS
        slot = series.slots[index]
        if slot is None or slot.epoch != epoch:
            slot = series.slots[index] = _Slot(epoch)
        slot.add(status, seconds, bucket)

    # -- reading --------------------------------------------------------------------

    def snapshot(self) -> list[RouteStats]:
        """Every route template seen, sorted by route then method, with its
        figures since start and over the last five minutes."""
        current = int(self.clock() // SLOT_SECONDS)
        out = []
        for series in self._all():
            recent = _Counts()
            for slot in series.slots:
                if slot is not None and current - SLOTS < slot.epoch <= current:
                    recent.merge(slot)
            out.append(
                RouteStats(series.method, series.route, series.total.window(), recent.window())
            )
        return out

    def histogram(
        self, bounds: Sequence[float] = EXPORT_BOUNDS
    ) -> list[tuple[str, str, list[tuple[float, int]], float, int]]:
        """Per route since start, for a Prometheus histogram: ``(method, route,
        [(le, cumulative count), ...], sum of seconds, count)``; ``le`` runs
        over ``bounds`` (each one of :data:`BOUNDS`), then ``math.inf``."""
        indexes = []
        for bound in bounds:
            i = bisect.bisect_left(BOUNDS, bound)
            if i >= len(BOUNDS) or not math.isclose(BOUNDS[i], bound):
                raise ValueError(f"{bound} is not one of the histogram's bounds")
            indexes.append(i)
        out = []
        for series in self._all():
            hist = series.total.hist
            cumulative, running, taken = [], 0, 0
            for bound, i in zip(bounds, indexes, strict=True):
                running += sum(hist[taken : i + 1])
                taken = i + 1
                cumulative.append((float(bound), running))
            cumulative.append((math.inf, series.total.requests))
            out.append(
                (
                    series.method,
                    series.route,
                    cumulative,
                    series.total.seconds,
                    series.total.requests,
                )
            )
        return out

    def _all(self) -> list[_Series]:
        found = sorted(self._series.values(), key=lambda s: (s.route, s.method))
        if self._unmatched.total.requests:
            found.append(self._unmatched)
        return found


def _template(route: Any) -> str:
    path = str(getattr(route, "path", "") or "/")
    return path.rstrip("/") + "/{path:path}" if isinstance(route, Mount) else path


class RequestMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): times each request to its response's
    start and records it under the route Starlette matched."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        answered = False
        metrics = self.metrics

        async def timed_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                metrics.record(scope, message["status"], time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except BaseException:
            if not answered:
                metrics.record(scope, 500, time.perf_counter() - start)
            raise


# -- the route ----------------------------------------------------------------------


async def requests(request: Request) -> JSONResponse:
    """Requests, errors and latency (p50, p95, p99) per route template.

    Counted since start and over the last five minutes (`last_5_minutes`).

    Routes are templates (`/api/v1/networking/{interface}`); every request
    no route matched is counted once under `unmatched`. Latency is from the
    request's arrival to its response's start, read from a histogram (within
    about 12%). `client_errors` are 4xx answers, `server_errors` 5xx.
    """
    # The app's runtime holds this module's table (so no import of it here).
    metrics: RequestMetrics = request.app.state.runtime.requests
    return JSONResponse(
        {
            "started_at": rfc3339(metrics.started_at),
            "window_seconds": WINDOW_SECONDS,
            "routes": [
                {
                    "method": s.method,
                    "route": s.route,
                    "total": s.total.as_dict(),
                    "last_5_minutes": s.last_5_minutes.as_dict(),
                }
                for s in metrics.snapshot()
            ],
        }
    )


_MS = {"type": ["number", "null"], "description": "milliseconds; null without requests"}
WINDOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "requests",
        "client_errors",
        "server_errors",
        "mean_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ],
    "properties": {
        "requests": {"type": "integer"},
        "client_errors": {"type": "integer", "description": "answers 400 to 499"},
        "server_errors": {"type": "integer", "description": "answers 500 and above"},
        "mean_ms": _MS,
        "p50_ms": _MS,
        "p95_ms": _MS,
        "p99_ms": _MS,
    },
}
RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["started_at", "window_seconds", "routes"],
    "properties": {
        "started_at": {"type": "string", "format": "date-time"},
        "window_seconds": {"type": "integer", "description": "the recent window: 300"},
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["method", "route", "total", "last_5_minutes"],
                "properties": {
                    "method": {"type": "string", "description": "`*` for `unmatched`"},
                    "route": {"type": "string", "description": "a route template, or `unmatched`"},
                    "total": WINDOW_SCHEMA,
                    "last_5_minutes": WINDOW_SCHEMA,
                },
            },
        },
    },
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("/api/v1/metrics/requests", requests, methods=["GET"], response=RESPONSE)]

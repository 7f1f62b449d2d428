"""Rate limits per caller and route group, and harder ones on failed authentication.

A caller is a key (the admin key, or a scoped key by id) from one client
address, or an address alone on routes that need no key. Each route belongs
to the group named by the scope it needs (``read``, ``control``, ``admin``,
``ingest``), or ``open`` when it needs none. ``auth`` counts failed
authentications per address: past the limit, that address gets 429 on every
route that needs a key, the right key included, until the window passes.

Each counter is a fixed window in memory: it starts at a caller's first
request, lives the group's ``seconds`` and lets ``requests`` through.
At most :data:`MAX_COUNTERS` counters are kept at once; past that, callers
already counted keep their own counters, and new ones are counted per key
alone, or together when without one, so memory stays bounded whatever the
number of client addresses. Failed authentications from new addresses then
share one counter too, which refuses only further failures (429 instead of
403): a right key is never turned away because of others' wrong ones.
Expired counters are swept on the event loop, every :data:`SWEEP_SECONDS`.

The counters are a dict of windows (:class:`Window`), not the ``limits``
library: of its memory storage this used a counter and an expiry per key,
not its strategies, and it cost more than it gave on a Pi. Its import (with
``packaging``, which it imports to check its optional storages' versions)
was a tenth of ``raspapi serve``'s start before the first answer under arm64
emulation, a lock was made per key, and its expiry thread, started anew
every 10 ms under load, had to be replaced (BENCHMARKS.md, "Session 8").
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import time
from collections.abc import Iterable
from typing import NamedTuple

from starlette.responses import JSONResponse
from starlette.types import Scope

from raspapi.http.errors import StartupError
from raspapi.security.auth import Principal

GROUPS = ("read", "control", "admin", "ingest", "open", "auth")
ENV_NAME = "RASPAPI_RATE_LIMITS"
#: Counters held at once (one per caller and group, for one window).
MAX_COUNTERS = 2048
#: Seconds between sweeps of expired counters.
SWEEP_SECONDS = 5.0
_UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_LIMIT = re.compile(r"(\d{1,9})\s*/\s*(\d{1,6})?\s*([a-z]+)")


class RateLimit(NamedTuple):
    """``requests`` per ``seconds`` for one group."""

    group: str
    requests: int
    seconds: int

    def __str__(self) -> str:
        for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % size == 0:
                n = self.seconds // size
                return f"{self.requests}/{name}" if n == 1 else f"{self.requests}/{n} {name}s"
        if self.seconds == 1:
            return f"{self.requests}/second"
        return f"{self.requests}/{self.seconds} seconds"


#: Far above a dashboard polling every second (60 a minute per route).
DEFAULT_RATE_LIMITS: tuple[RateLimit, ...] = (
    RateLimit("read", 1200, 60),
    RateLimit("control", 60, 60),
    RateLimit("admin", 120, 60),
    RateLimit("ingest", 600, 60),
    RateLimit("open", 600, 60),
    RateLimit("auth", 10, 60),
)


def parse_rate_limits(value: str, name: str = ENV_NAME) -> tuple[RateLimit, ...]:
    """``"read=600/minute;control=off"``: the defaults with these changes.
    ``off`` alone turns every limit off. Raises StartupError naming ``name``."""
    text = value.strip().lower()
    if text in ("off", "none"):
        return ()
    limits = {limit.group: limit for limit in DEFAULT_RATE_LIMITS}
    seen: set[str] = set()
    for entry in filter(None, (e.strip() for e in re.split(r"[;,]", text))):
        group, sep, spec = (part.strip() for part in entry.partition("="))
        if not sep:
            raise StartupError(f"{name}: {entry!r} is not GROUP=LIMIT (e.g. read=600/minute)")
        if group not in GROUPS:
            raise StartupError(f"{name}: unknown group {group!r}; groups are {', '.join(GROUPS)}")
        if group in seen:
            raise StartupError(f"{name}: group {group!r} is given twice")
        seen.add(group)
        if spec == "off":
            limits.pop(group, None)
            continue
        match = _LIMIT.fullmatch(spec)
        if not match or match.group(3) not in _UNITS:
            raise StartupError(
                f"{name}: {group}={spec!r} is not COUNT/UNIT (e.g. 600/minute, 20/second, "
                "100/10s, 5000/hour) or off"
            )
        count, multiple = int(match.group(1)), int(match.group(2) or 1)
        seconds = multiple * _UNITS[match.group(3)]
        if count < 1 or not 1 <= seconds <= 86400:
            raise StartupError(
                f"{name}: {group}={spec!r} needs a count of at least 1 and a window "
                "from 1 second to 1 day"
            )
        limits[group] = RateLimit(group, count, seconds)
    return tuple(limits[g] for g in GROUPS if g in limits)


def _refusal(detail: str, wait: int) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "code": "rate_limited"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


@functools.lru_cache(maxsize=1024)
def client_address(host: str) -> str:
    """The address a caller is counted under: IPv4 as is, IPv6 by /64 (one
    device can have many addresses in its prefix)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host[:64]
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((address, 64), strict=False)
    return f"{network.network_address}/64"


class Window:
    """One counter: requests counted so far, and when (monotonic) its window ends."""

    __slots__ = ("count", "ends")

    def __init__(self, ends: float) -> None:
        self.count = 0
        self.ends = ends


class RateLimiter:
    """The counters. Each is a fixed window: it starts at a caller's first
    request and lives ``seconds``; ``requests`` requests pass in it."""

    def __init__(self, limits: Iterable[RateLimit], *, max_counters: int = MAX_COUNTERS) -> None:
        self.limits = {limit.group: limit for limit in limits}
        self.max_counters = max_counters
        #: The counters by caller and group (``read/admin@192.0.2.7``).
        self.windows: dict[str, Window] = {}
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self._auth = self.limits.get("auth")
        #: When (monotonic) the latest failed authentication was: until one
        #: window later, callers' addresses are checked before their keys.
        self._last_failure = -math.inf
        #: Requests refused since start, by group.
        self.refused: dict[str, int] = {}

    def _counter(self, group: str, scope: Scope, caller: Principal | None = None) -> str:
        """The caller's counter for ``group``; a shared one once the table is full,
        unless the caller already has its own."""
        client = scope.get("client")
        address = client_address(str(client[0])) if client else "-"
        who = "" if caller is None else f"{caller.key_id or caller.name}@"
        key = f"{group}/{who}{address}"
        if len(self.windows) < self.max_counters or key in self.windows:
            return key
        return f"{group}/{who}*"

    def check(self, group: str, scope: Scope, caller: Principal | None) -> JSONResponse | None:
        """Count one request; a 429 answer when the caller is over the group's limit."""
        limit = self.limits.get(group)
        if limit is None:
            return None
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        key = self._counter(group, scope, caller)
        if self._hit(key, limit.seconds) <= limit.requests:
            return None
        self.refused[group] = self.refused.get(group, 0) + 1
        wait = self._wait(key)
        return _refusal(
            f"rate limit exceeded: {limit} for {group} requests; retry in {wait} s", wait
        )

    def before_auth(self, scope: Scope) -> JSONResponse | None:
        """A 429 answer when the caller's address failed authentication too often."""
        limit = self._auth
        if limit is None or time.monotonic() - self._last_failure > limit.seconds:
            return None
        key = self._counter("auth", scope)
        if key.endswith("/*") or self._count(key) < limit.requests:
            # The shared counter of addresses that came once the table was full
            # refuses only their failures (see auth_failed), never a right key.
            return None
        self.refused["auth"] = self.refused.get("auth", 0) + 1
        wait = self._wait(key)
        return _refusal(
            f"too many failed authentication attempts from this address; retry in {wait} s",
            wait,
        )

    def auth_failed(self, scope: Scope) -> JSONResponse | None:
        """Count a failed authentication against the caller's address; a 429
        answer (instead of the 401/403) when it is now over the limit."""
        limit = self._auth
        if limit is None:
            return None
        self._last_failure = time.monotonic()
        key = self._counter("auth", scope)
        if self._hit(key, limit.seconds) <= limit.requests:
            return None
        self.refused["auth"] = self.refused.get("auth", 0) + 1
        wait = self._wait(key)
        return _refusal(
            f"too many failed authentication attempts from this address; retry in {wait} s",
            wait,
        )

    def _hit(self, key: str, seconds: int) -> int:
        """Count one request on ``key``'s counter (a new window if none is
        running); the count so far in this window."""
        now = time.monotonic()
        window = self.windows.get(key)
        if window is None or window.ends <= now:
            window = self.windows[key] = Window(now + seconds)
        window.count += 1
        return window.count

    def _count(self, key: str) -> int:
        window = self.windows.get(key)
        return 0 if window is None or window.ends <= time.monotonic() else window.count

    def sweep(self) -> None:
        """Forget counters whose window has passed."""
        now = time.monotonic()
        self._next_sweep = now + SWEEP_SECONDS
        for key in [k for k, window in self.windows.items() if window.ends <= now]:
            del self.windows[key]

    def _wait(self, key: str) -> int:
        return max(1, math.ceil(self.windows[key].ends - time.monotonic()))

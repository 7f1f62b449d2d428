"""Rate limits per caller and route group, and harder ones on failed authentication.

A caller is a key (the admin key, or a scoped key by id) from one client
address, or an address alone on routes that need no key. Each route belongs
to the group named by the scope it needs (``read``, ``control``, ``admin``,
``ingest``), or ``open`` when it needs none. ``auth`` counts failed
authentications per address: past the limit, that address gets 429 on every
route that needs a key, the right key included, until the window passes.

Counting is the ``limits`` library's fixed window in memory. At most
:data:`MAX_COUNTERS` counters are kept at once (each lives one window); past
that, callers already counted keep their own counters, and new ones are
counted per key alone, or together when without one, so memory stays bounded
whatever the number of client addresses. Failed authentications from new
addresses then share one counter too, which refuses only further failures
(429 instead of 403): a right key is never turned away because of others'
wrong ones.

``limits``' memory storage removes expired counters from a timer thread it
starts anew every 10 ms under load; each start waits for the GIL, which cost
a quarter of a request's time here. The limiter sweeps them itself instead,
on the event loop, every :data:`SWEEP_SECONDS`.

Only ``limits``' memory storage is imported (see :func:`_memory_storage`):
the package's own ``__init__`` imports its asyncio storages, their
``deprecated`` decorators and ``wrapt``, a third of the daemon's import time
on a Pi for code it never runs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import ipaddress
import math
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import Scope

from raspapi.http.errors import StartupError
from raspapi.security.auth import Principal

if TYPE_CHECKING:
    from limits.storage import MemoryStorage

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


@dataclass(frozen=True)
class RateLimit:
    """``count`` requests per ``seconds`` for one group."""

    group: str
    count: int
    seconds: int

    def __str__(self) -> str:
        for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % size == 0:
                n = self.seconds // size
                return f"{self.count}/{name}" if n == 1 else f"{self.count}/{n} {name}s"
        return (
            f"{self.count}/second" if self.seconds == 1 else f"{self.count}/{self.seconds} seconds"
        )


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


def _memory_storage() -> type[MemoryStorage]:
    """``limits.storage.MemoryStorage``, importing only the modules it is made of.

    ``import limits.storage.memory`` would first run ``limits/__init__.py``
    (which imports ``limits.aio``: every asyncio storage, ``deprecated`` and
    ``wrapt``) and ``limits/storage/__init__.py`` (the Redis, Memcached and
    MongoDB storages). Here both packages stand as bare module objects while
    ``limits.storage.memory`` and what it imports (``limits.storage.base``,
    ``limits.util``, ``limits.typing``...) load, and are taken out of
    ``sys.modules`` again: a later ``import limits`` anywhere runs the real
    ``__init__`` files, which then find the same submodules (the same
    ``MemoryStorage``) already loaded. tests/test_startup.py checks both.
    """
    loaded = sys.modules.get("limits.storage.memory")
    if loaded is None and "limits" not in sys.modules:
        shells: list[str] = []
        try:
            for name in ("limits", "limits.storage"):
                spec = importlib.util.find_spec(name)
                if spec is None:  # pragma: no cover - limits is a dependency
                    raise ModuleNotFoundError(name)
                sys.modules[name] = importlib.util.module_from_spec(spec)
                shells.append(name)
            setattr(sys.modules["limits"], "storage", sys.modules["limits.storage"])  # noqa: B010
            loaded = importlib.import_module("limits.storage.memory")
        finally:
            for name in shells:
                del sys.modules[name]
    if loaded is None:
        loaded = importlib.import_module("limits.storage.memory")
    storage: type[MemoryStorage] = loaded.MemoryStorage
    return storage


class _NoTimer:
    """Stands in for MemoryStorage's expiry thread (see the module's docstring)."""

    def is_alive(self) -> bool:
        return True

    def cancel(self) -> None:
        return None


class RateLimiter:
    """The counters. Each is ``limits``' fixed window: it starts at a caller's
    first request and lives ``seconds``; ``count`` requests pass in it."""

    def __init__(self, limits: Iterable[RateLimit], *, max_counters: int = MAX_COUNTERS) -> None:
        self.limits = {limit.group: limit for limit in limits}
        self.max_counters = max_counters
        self.storage = _memory_storage()()
        started = self.storage.timer
        started.cancel()
        started.join()
        self.storage.timer = _NoTimer()  # type: ignore[assignment]
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
        if len(self.storage.storage) < self.max_counters or key in self.storage.storage:
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
        if self.storage.incr(key, limit.seconds) <= limit.count:
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
        if key.endswith("/*") or self.storage.get(key) < limit.count:
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
        if self.storage.incr(key, limit.seconds) <= limit.count:
            return None
        self.refused["auth"] = self.refused.get("auth", 0) + 1
        wait = self._wait(key)
        return _refusal(
            f"too many failed authentication attempts from this address; retry in {wait} s",
            wait,
        )

    def sweep(self) -> None:
        """Forget counters whose window has passed."""
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        now = time.time()
        for key, expires in list(self.storage.expirations.items()):
            if expires <= now:
                self.storage.clear(key)

    def _wait(self, key: str) -> int:
        return max(1, math.ceil(self.storage.get_expiry(key) - time.time()))

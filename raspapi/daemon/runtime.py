"""The running daemon's parts, shared by the core routes, CLI and tests."""

from __future__ import annotations

import time
from typing import Any

from raspapi.events.bus import EventBus
from raspapi.events.stream import CoreWatch
from raspapi.http.ratelimit import RateLimiter
from raspapi.http.routing import ApiRoute
from raspapi.manager import PluginManager
from raspapi.security.adminkey import AdminKey
from raspapi.security.audit import AuditLog
from raspapi.security.auth import Authenticator
from raspapi.security.keystore import KeyStore
from raspapi.settings import Settings
from raspapi.telemetry.requests import RequestMetrics


class Counters:
    """Requests answered since start, and how many were errors (cheap: three ints)."""

    __slots__ = ("client_errors", "requests", "server_errors")

    def __init__(self) -> None:
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0

    def count(self, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1


class Runtime:
    """The daemon's parts (``app.state.runtime``). Plain classes, not
    dataclasses: a dataclass compiles its methods at every start, a few ms
    each on a Pi before the first answer (BENCHMARKS.md, "Session 8")."""

    def __init__(
        self, settings: Settings, admin_key: AdminKey, auth: Authenticator, manager: PluginManager
    ) -> None:
        self.settings = settings
        self.admin_key = admin_key
        self.auth = auth
        self.manager = manager
        self.routes: list[ApiRoute] = []
        self.ready = False
        self.started_at = time.time()
        self.openapi_body: bytes | None = None
        #: Scoped keys and the audit log (``raspapi.db`` in the state folder).
        self.keys: KeyStore | None = None
        self.audit: AuditLog | None = None
        self.counters = Counters()
        #: The admin page's state (sessions, templates), made on its first use.
        self.admin_site: Any = None
        #: Count, errors and latency per route template: ``requests.snapshot()``.
        self.requests = RequestMetrics()
        #: Rate limits, checked by the Guard (None: no limits at all).
        self.limiter: RateLimiter | None = None
        #: Plugin states and stations as event streams last saw them.
        self.core_watch: CoreWatch | None = None

    @property
    def events(self) -> EventBus:
        """The event bus (``GET /api/v1/events``); plugins reach it as ``ctx.events``."""
        return self.manager.events

"""The running daemon's parts, shared by the core routes, CLI and tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass
class Counters:
    """Requests answered since start, and how many were errors (cheap: three ints)."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0

    def count(self, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1


@dataclass
class Runtime:
    settings: Settings
    admin_key: AdminKey
    auth: Authenticator
    manager: PluginManager
    routes: list[ApiRoute] = field(default_factory=list)
    ready: bool = False
    started_at: float = field(default_factory=time.time)
    openapi_body: bytes | None = None
    #: Scoped keys and the audit log (``raspapi.db`` in the state folder).
    keys: KeyStore | None = None
    audit: AuditLog | None = None
    counters: Counters = field(default_factory=Counters)
    #: The admin page's state (sessions, templates), made on its first use.
    admin_site: Any = None
    #: Count, errors and latency per route template: ``requests.snapshot()``.
    requests: RequestMetrics = field(default_factory=RequestMetrics)
    #: Rate limits, checked by the Guard (None: no limits at all).
    limiter: RateLimiter | None = None
    #: Plugin states and stations as event streams last saw them.
    core_watch: CoreWatch | None = None

    @property
    def events(self) -> EventBus:
        """The event bus (``GET /api/v1/events``); plugins reach it as ``ctx.events``."""
        return self.manager.events

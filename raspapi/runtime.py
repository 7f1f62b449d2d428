"""The running daemon's parts, shared by the core routes, CLI and tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from raspapi.auth import Authenticator
from raspapi.keys import AdminKey
from raspapi.manager import PluginManager
from raspapi.routing import ApiRoute
from raspapi.settings import Settings


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

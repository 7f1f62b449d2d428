"""The uvicorn options raspapi runs with; kept apart from the app so the
benchmark's bare baseline can use the very same without importing raspapi's core."""

from __future__ import annotations

import importlib.util
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from raspapi.daemon.httpguard import MAX_HEAD_BYTES

#: Connections and requests in flight at once; past it, uvicorn answers 503.
#: Well under the unit's LimitNOFILE=4096, which also covers files, sockets
#: to hostapd and the databases.
LIMIT_CONCURRENCY = 1000
#: Seconds an idle keep-alive connection stays open.
TIMEOUT_KEEP_ALIVE = 5


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """How raspapi runs under uvicorn (the benchmark's baseline uses the same)."""
    http: Any = "h11"
    if importlib.util.find_spec("httptools"):
        # httptools bounds neither a request head's size nor its headers' count
        # nor the time it takes to arrive: the guard does (431 and 408).
        from raspapi.daemon.httpguard import GuardedHttpToolsProtocol

        http = GuardedHttpToolsProtocol
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=http,
        limit_concurrency=LIMIT_CONCURRENCY,
        timeout_keep_alive=TIMEOUT_KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )

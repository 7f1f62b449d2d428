"""A Starlette router that finds routes without path parameters by dictionary.

Starlette tries each route's regex in turn; with every plugin loaded that is
dozens of matches per request, a large share of a cached answer's cost. Paths
without parameters (``/system``, ``/api/v1/thermal``) are looked up directly;
everything else (parameters, mounts, 405s, slash redirects) goes the usual way.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Message, Receive, Scope, Send


class IndexedRouter(Router):
    _index: dict[str, list[Route]] | None = None
    _indexed: list[BaseRoute] | None = None
    _size = 0

    def _static(self) -> dict[str, list[Route]]:
        # Rebuilt if the route list was replaced or grew (tests may add routes).
        stale = self._indexed is not self.routes or self._size != len(self.routes)
        if self._index is None or stale:
            index: dict[str, list[Route]] = {}
            for route in self.routes:
                if isinstance(route, Route) and not route.param_convertors:
                    index.setdefault(route.path, []).append(route)
            self._index, self._indexed, self._size = index, self.routes, len(self.routes)
        return self._index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only where the path is the route path (no root_path, as uvicorn runs us).
        if scope["type"] == "http" and not scope.get("root_path"):
            candidates = self._static().get(scope["path"])
            if candidates:
                for route in candidates:
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.setdefault("router", self)
                        scope["route"] = route
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
        await super().app(scope, receive, _relative_redirects(scope, send))


def _relative_redirects(scope: Scope, send: Send) -> Send:
    """Starlette's trailing-slash redirect names the client's ``Host`` in an
    absolute ``Location``; answer with the path (and query) alone."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
            headers = []
            for name, value in message.get("headers", []):
                if name.lower() == b"location":
                    target = urlsplit(value.decode("latin-1"))
                    if target.scheme in ("http", "https"):
                        # One leading slash: "//host/..." would name another host.
                        relative = "/" + target.path.lstrip("/")
                        if target.query:
                            relative += "?" + target.query
                        value = relative.encode("latin-1")
                headers.append((name, value))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped

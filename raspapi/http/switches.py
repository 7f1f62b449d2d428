"""Route switches: routes turned off in configuration answer 503.

``RASPAPI_DISABLE_ROUTES="GET /dns/logs, /api/v1/services*"``: comma-separated
entries, each an optional method and a route template as ``GET /`` and
``/openapi.json`` list it (``/api/v1/networking/{interface}``); a trailing
``*`` matches every template starting with what comes before it. Without a
method, every method of the route is off; ``GET`` also turns off ``HEAD``.
Matching happens once, when the app is built: a request pays one set look-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from starlette.responses import JSONResponse

from raspapi.http.errors import StartupError
from raspapi.http.routing import ApiRoute

ENV_NAME = "RASPAPI_DISABLE_ROUTES"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Seconds a client is asked to wait: the route stays off until the
#: configuration changes, which is not soon.
RETRY_AFTER = 3600


class RouteSwitch(NamedTuple):
    """One entry: ``method`` None for every method; ``prefix`` for a trailing ``*``."""

    method: str | None
    path: str
    prefix: bool = False

    def matches(self, template: str) -> bool:
        return template.startswith(self.path) if self.prefix else template == self.path

    def __str__(self) -> str:
        text = self.path + ("*" if self.prefix else "")
        return f"{self.method} {text}" if self.method else text


def parse_disabled_routes(value: str, name: str = ENV_NAME) -> tuple[RouteSwitch, ...]:
    """Parse the variable; raises StartupError naming ``name``."""
    out: list[RouteSwitch] = []
    for entry in filter(None, (e.strip() for e in value.split(","))):
        parts = entry.split()
        if len(parts) == 1:
            method, path = None, parts[0]
        elif len(parts) == 2:
            method, path = parts[0].upper(), parts[1]
            if method not in METHODS:
                raise StartupError(
                    f"{name}: {entry!r}: {parts[0]!r} is not one of {', '.join(METHODS)}"
                )
        else:
            raise StartupError(f"{name}: {entry!r} is not [METHOD] PATH (e.g. GET /dns/logs)")
        prefix = path.endswith("*")
        path = path.rstrip("*") if prefix else path
        if not path.startswith("/") or "*" in path:
            raise StartupError(
                f"{name}: {entry!r}: the path must start with / and may end with one * only"
            )
        out.append(RouteSwitch(method, path, prefix))
    return tuple(out)


def disabled_methods(route: ApiRoute, switches: Iterable[RouteSwitch]) -> frozenset[str]:
    """The methods of ``route`` that ``switches`` turn off."""
    methods = set(route.methods or {"GET"})
    off: set[str] = set()
    for switch in switches:
        if switch.matches(route.path):
            off |= methods if switch.method is None else methods & {switch.method}
    if "GET" in off and "HEAD" in methods:
        off.add("HEAD")
    return frozenset(off)


def unmatched(routes: Iterable[ApiRoute], switches: Iterable[RouteSwitch]) -> list[RouteSwitch]:
    """Entries that turn off nothing (a typo, or a plugin not loaded)."""
    routes = list(routes)
    return [s for s in switches if not any(disabled_methods(r, [s]) for r in routes)]


def refusal(method: str, route: ApiRoute) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"{method} {route.path} is turned off on this server ({ENV_NAME})",
            "code": "route_disabled",
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER)},
    )

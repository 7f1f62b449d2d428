"""Wraps each route: checks the key and scope, and the owning plugin's health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from raspapi.routing import ApiRoute

if TYPE_CHECKING:
    from raspapi.runtime import Runtime

#: RaspAP's exact answer to a missing, empty or wrong key.
LEGACY_FORBIDDEN = JSONResponse({"detail": "403: Unauthorized"}, status_code=403)
UNAUTHORIZED = JSONResponse(
    {"detail": "missing or invalid API key", "code": "unauthorized"},
    status_code=401,
    headers={"WWW-Authenticate": 'Bearer realm="raspapi"'},
)


class Guard:
    def __init__(self, app: ASGIApp, route: ApiRoute, runtime: Runtime) -> None:
        self.app = app
        self.route = route
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route
        scope["raspapi.route"] = route
        if route.scope is not None:
            caller = self.runtime.auth.from_scope(scope)
            if caller is None:
                response = LEGACY_FORBIDDEN if route.legacy else UNAUTHORIZED
                await response(scope, receive, send)
                return
            if route.scope not in caller.scopes:
                await JSONResponse(
                    {
                        "detail": f"this key lacks the {route.scope!r} scope",
                        "code": "missing_scope",
                    },
                    status_code=403,
                )(scope, receive, send)
                return
            scope["raspapi.principal"] = caller
        if route.plugin:
            manager = self.runtime.manager
            plugin = manager.plugins[route.plugin]
            reason = plugin.failure
            if reason is None and not route.legacy:
                status = await manager.status(route.plugin)
                if status.state != "ok":
                    reason = status.reason or status.state
            if reason is not None:
                state = "failed" if plugin.failure else "unavailable"
                await JSONResponse(
                    {"detail": f"plugin {route.plugin!r} is {state}: {reason}", "code": state},
                    status_code=503,
                    headers={"Retry-After": "10"},
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)

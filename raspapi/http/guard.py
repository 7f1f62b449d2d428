"""Wraps each route: checks the key and scope, rate limits, route switches and
the owning plugin's health; records changes (``control`` and ``admin`` routes,
except GET) in the audit log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raspapi.daemon.logs import refuse
from raspapi.http.routing import ApiRoute
from raspapi.http.switches import disabled_methods
from raspapi.http.switches import refusal as route_disabled
from raspapi.security import refusals
from raspapi.security.audit import AUDITED_SCOPES
from raspapi.security.auth import ADMIN, Principal

if TYPE_CHECKING:
    from raspapi.daemon.runtime import Runtime

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
        #: Methods of this route turned off by RASPAPI_DISABLE_ROUTES.
        self.disabled = disabled_methods(route, runtime.settings.disable_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route
        scope["raspapi.route"] = route
        caller: Principal | None = None
        limiter = self.runtime.limiter
        if route.scope is not None:
            if limiter is not None and (refused := limiter.before_auth(scope)) is not None:
                refuse(scope, refusals.AUTH_THROTTLED)
                await refused(scope, receive, send)
                return
            caller = self.runtime.auth.from_scope(scope)
            keys = self.runtime.keys
            if (caller is not ADMIN or route.scope != "read") and keys is not None and keys.loading:
                # The scoped keys load in the background at start (CoreDB): a
                # request that may need them waits; the admin key reading does not.
                await keys.loaded()
                caller = caller or self.runtime.auth.from_scope(scope)
            if caller is None:
                refused = limiter.auth_failed(scope) if limiter is not None else None
                if refused is not None:
                    refuse(scope, refusals.AUTH_THROTTLED)
                else:
                    refuse(
                        scope,
                        refusals.unauthenticated(
                            scope, self.runtime.keys, self.runtime.admin_key.current() is not None
                        ),
                    )
                response = refused or (LEGACY_FORBIDDEN if route.legacy else UNAUTHORIZED)
                await response(scope, receive, send)
                return
        if (
            limiter is not None
            and (refused := limiter.check(route.scope or "open", scope, caller)) is not None
        ):
            group = route.scope or "open"
            refuse(scope, refusals.rate_limited(group, limiter.limits.get(group)))
            await refused(scope, receive, send)
            return
        if self.disabled and scope["method"] in self.disabled:
            await route_disabled(scope["method"], route)(scope, receive, send)
            return
        audit = self.runtime.audit
        if (
            audit is None
            or caller is None
            or route.scope not in AUDITED_SCOPES
            or scope["method"] in ("GET", "HEAD")
        ):
            await self._serve(scope, receive, send, caller)
            return
        # A change: record who, what and the outcome once the answer is sent.
        at = time.time()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, send_status, caller)
        finally:
            audit.record_request(scope, caller, route.path, status, at)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, caller: Principal | None
    ) -> None:
        route = self.route
        if caller is not None:
            if route.scope not in caller.scopes:
                refuse(scope, refusals.missing_scope(caller.name, route.scope))
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
            if reason is None and not route.legacy and not route.when_unavailable:
                status = await manager.status(route.plugin)
                if status.state not in ("ok", "degraded"):
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

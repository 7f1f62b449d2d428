"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raspapi import adminapi, endpoints, live, metrics, requestmetrics, switches
from raspapi.admin import routes as admin_routes
from raspapi.auth import Authenticator
from raspapi.coredb import CoreDB
from raspapi.errors import ApiError
from raspapi.guard import Guard
from raspapi.keys import KEY_NAME, AdminKey
from raspapi.logs import AccessLogMiddleware
from raspapi.manager import PluginManager
from raspapi.ratelimit import RateLimiter
from raspapi.router import IndexedRouter
from raspapi.routing import ApiRoute
from raspapi.runner import CommandRunner
from raspapi.runtime import Counters, Runtime
from raspapi.settings import Settings

log = logging.getLogger("raspapi")


def create_app(settings: Settings) -> Starlette:
    """Build the daemon: load plugins, collect and guard their routes."""
    manager = PluginManager(settings, CommandRunner(settings.root))
    manager.load()
    admin_key = AdminKey(settings.env_file, settings.api_key_override)
    runtime = Runtime(settings, admin_key, Authenticator(admin_key), manager)
    coredb = CoreDB(settings)
    runtime.keys, runtime.audit = coredb.keys, coredb.audit
    runtime.auth.lookups.append(coredb.keys.lookup)
    runtime.limiter = RateLimiter(settings.rate_limits) if settings.rate_limits else None
    live.setup(runtime)

    exporter = metrics.Exporter(runtime)
    api_routes = (
        endpoints.routes()
        + requestmetrics.routes()
        + live.routes()
        + metrics.routes(exporter)
        + adminapi.routes()
        + manager.collect_routes()
        + _failed_plugin_routes(manager)
    )
    runtime.routes = api_routes
    for switch in switches.unmatched(api_routes, settings.disable_routes):
        log.warning("%s: %r matches no route", switches.ENV_NAME, str(switch))
    routes: list[BaseRoute] = []
    for route in api_routes:
        route.app = Guard(route.app, route, runtime)
        routes.append(route)
    routes.extend(admin_routes())
    routes.append(
        Mount("/static", StaticFiles(directory=endpoints.webui_dir() / "static"), name="static")
    )

    middleware = [
        Middleware(requestmetrics.RequestMetricsMiddleware, metrics=runtime.requests),
        Middleware(ErrorMiddleware, counters=runtime.counters),
    ]
    if settings.access_log:
        middleware.insert(0, Middleware(AccessLogMiddleware))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        announce_key(admin_key, settings)
        await coredb.start()
        await manager.startup()
        exporter.start_listener()
        runtime.ready = True
        try:
            yield
        finally:
            runtime.ready = False
            await runtime.events.close()
            await exporter.stop_listener()
            await manager.shutdown()
            await coredb.stop()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, ApiError: _api_error},
        lifespan=lifespan,
    )
    app.router = IndexedRouter(routes, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.exporter = exporter
    return app


def announce_key(admin_key: AdminKey, settings: Settings) -> None:
    """Make sure a key exists and say where it is (never what it is)."""
    if admin_key.override:
        log.info("API key: from the %s environment variable", KEY_NAME)
        return
    try:
        created = admin_key.ensure()
    except OSError as exc:
        log.error(
            "no API key, and cannot write one to %s: %s; every route that needs a key "
            "answers 403 until one is set",
            admin_key.env_file,
            exc.strerror or exc,
        )
        return
    if created:
        log.warning(
            "generated a new API key: %s=... in %s (mode 0600)", KEY_NAME, admin_key.env_file
        )
    else:
        log.info("API key: %s in %s", KEY_NAME, admin_key.env_file)
    wildcard = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - a comparison, not a bind
    host = "127.0.0.1" if wildcard else settings.host
    log.info(
        "try: curl -H \"access_token: $(sed -n 's/^%s=//p' %s)\" http://%s:%d/system",
        KEY_NAME,
        admin_key.env_file,
        host,
        settings.port,
    )


def _failed_plugin_routes(manager: PluginManager) -> list[ApiRoute]:
    """A plugin that failed before giving routes still answers 503 under its namespace."""
    out: list[ApiRoute] = []
    for name, plugin in manager.plugins.items():
        if plugin.failure is not None and not plugin.routes:
            for path in ("/", "/{rest:path}"):
                route = ApiRoute(
                    path,
                    _never,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    include_in_schema=False,
                )
                out.append(
                    route.relocated(
                        f"/api/v1/{name}" + ("" if path == "/" else path), name, legacy=False
                    )
                )
    return out


async def _never(request: Request) -> Response:  # pragma: no cover - the guard answers
    raise ApiError("plugin failed")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body: dict[str, str] = {"detail": exc.detail}
    # RaspAP's clients see RaspAP's exact bodies; our API adds a code.
    if _is_api(request):
        body["code"] = {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


class ErrorMiddleware:
    """Whatever a handler raises, the client gets a JSON 500 and no traceback.

    It also counts the requests answered, and the errors among them.
    """

    def __init__(self, app: ASGIApp, counters: Counters | None = None) -> None:
        self.app = app
        self.counters = counters or Counters()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client hung up mid-body: nobody to answer, and not our fault.
            status = 499
            log.debug("client left during %s %s", scope["method"], scope["path"])
        except Exception as exc:
            status = 500
            route = scope.get("raspapi.route")
            owner = f"plugin {route.plugin!r}" if route is not None and route.plugin else "core"
            log.error("%s raised on %s %s", owner, scope["method"], scope["path"], exc_info=exc)
            if not started:
                response = JSONResponse(
                    {"detail": "Internal Server Error", "code": "internal_error"},
                    status_code=500,
                )
                await response(scope, receive, send)
        finally:
            self.counters.count(status)

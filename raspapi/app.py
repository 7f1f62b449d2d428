"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import ModuleType

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raspapi import __version__
from raspapi.admin import api as adminapi
from raspapi.daemon.logs import (
    ERROR_BODY_MAX,
    LOGGED,
    RequestLog,
    Summary,
    note_command_failure,
)
from raspapi.daemon.runtime import Counters, Runtime
from raspapi.events import stream as live
from raspapi.host.runner import CommandRunner
from raspapi.http import endpoints, switches
from raspapi.http.errors import ApiError
from raspapi.http.guard import Guard
from raspapi.http.ratelimit import RateLimiter
from raspapi.http.routing import ApiRoute, IndexedRouter
from raspapi.manager import Plugin, PluginManager
from raspapi.security.adminkey import KEY_NAME, AdminKey
from raspapi.security.auth import Authenticator
from raspapi.settings import Settings
from raspapi.state import manifest
from raspapi.state.coredb import CoreDB
from raspapi.telemetry import prometheus as metrics
from raspapi.telemetry import requests as requestmetrics

log = logging.getLogger("raspapi")


def create_app(
    settings: Settings,
    *,
    plugins: Sequence[ModuleType] | None = None,
    deferred: bool = False,
) -> Starlette:
    """Build the daemon: load plugins, collect and guard their routes.

    ``plugins``: these modules instead of discovering plugins (raspapi.testing).
    ``deferred`` (``raspapi serve``): import no plugin here. They load once the
    server listens (``app.state.after_first_answers``) or at the first request,
    whichever comes first; until all have, a request first loads the plugins
    it may need (``LoadingGate``), and ``/ready`` answers once all have. The
    scoped keys load with them, or when a request needs them sooner."""
    manager = PluginManager(settings, CommandRunner(settings.root), plugins)
    coredb = CoreDB(settings)
    manager.audit_log = coredb.audit
    if deferred:
        manager.defer(manifest.read(settings.state_dir / manifest.FILE_NAME))
    else:
        manager.load()
    admin_key = AdminKey(settings.env_file, settings.api_key_override)
    runtime = Runtime(settings, admin_key, Authenticator(admin_key), manager)
    runtime.keys, runtime.audit = coredb.keys, coredb.audit
    runtime.auth.lookups.append(coredb.keys.lookup)
    runtime.limiter = RateLimiter(settings.rate_limits) if settings.rate_limits else None
    live.setup(runtime)

    exporter = metrics.Exporter(runtime)
    core_routes = _guarded(
        endpoints.routes()
        + requestmetrics.routes()
        + live.routes()
        + metrics.routes(exporter)
        + adminapi.routes(),
        runtime,
    )
    # The admin page and the static files are built on their first request:
    # most daemons never serve either, and their modules cost memory (issue 16).
    site: list[BaseRoute] = [
        Route("/admin{rest:path}", OnFirstUse(_admin_app), name="admin"),
        Mount("/static", OnFirstUse(_static_files), name="static"),
    ]

    def route_table() -> list[BaseRoute]:
        """The router's routes: the core's, the plugins' loaded so far, a 503
        namespace for each failed one, then the admin page's."""
        api_routes = core_routes + manager.routes() + failed.routes()
        runtime.routes = api_routes
        return [*api_routes, *site]

    failed = _FailedPlugins(manager, runtime)
    for plugin_route in manager.collect_routes():
        plugin_route.app = Guard(plugin_route.app, plugin_route, runtime)
    routes = route_table()
    if not deferred:
        _check_switches(runtime)

    # Refusals, failures and changes are logged even with the access log off;
    # RASPAPI_ACCESS_LOG=false only drops the ordinary line per request.
    log_summary = Summary()
    request_log = RequestLog(access=settings.access_log, summary=log_summary)
    middleware = [
        Middleware(requestmetrics.RequestMetricsMiddleware, metrics=runtime.requests),
        Middleware(
            ErrorMiddleware,
            counters=runtime.counters,
            request_log=request_log,
            on_plugin_error=manager.handler_failed,
        ),
    ]

    loader: list[asyncio.Task[None]] = []

    def start_loading() -> None:
        """Load the plugins in the background (deferred; at most once)."""
        if not loader and manager.loading:
            loader.append(asyncio.ensure_future(manager.load_rest()))

    def after_first_answers() -> None:
        """What the first answers do not need, in the background: the plugins
        not loaded yet, and the scoped keys (deferred: the server calls it
        once it has listened a moment)."""
        start_loading()
        coredb.keys.start_loading()

    if deferred:
        middleware.append(Middleware(LoadingGate, manager=manager, start=start_loading))

        def loaded(plugin: Plugin) -> None:
            for plugin_route in plugin.routes:
                plugin_route.app = Guard(plugin_route.app, plugin_route, runtime)
            app.router.routes = route_table()

        async def all_loaded() -> None:
            _check_switches(runtime)
            runtime.ready = True
            entries = manager.manifest()
            if entries != manager.known:
                path = settings.state_dir / manifest.FILE_NAME
                try:
                    await asyncio.to_thread(manifest.write, path, entries)
                except OSError as exc:
                    log.warning("cannot write %s: %s", path, exc.strerror or exc)

        manager.on_load, manager.on_loaded = loaded, all_loaded

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        announce_key(admin_key, settings)
        if not deferred:  # else after_first_answers loads both
            coredb.keys.start_loading()
            await manager.startup()
        exporter.start_listener()
        runtime.ready = not deferred
        if not manager.loading:
            await manager.ensure_all()  # deferred, with nothing to load: done
        try:
            yield
        finally:
            runtime.ready = False
            log_summary.close()
            for task in loader:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
    app.state.log_summary = log_summary
    app.state.after_first_answers = after_first_answers
    return app


def _guarded(routes: list[ApiRoute], runtime: Runtime) -> list[ApiRoute]:
    for route in routes:
        route.app = Guard(route.app, route, runtime)
    return routes


def _check_switches(runtime: Runtime) -> None:
    for switch in switches.unmatched(runtime.routes, runtime.settings.disable_routes):
        log.warning("%s: %r matches no route", switches.ENV_NAME, str(switch))


class LoadingGate:
    """While plugins load (``create_app(deferred=True)``), a request first loads
    the plugins it may need (``PluginManager.needed_for``), then all of them if
    no loaded route answers its path after all. The first request also starts
    the background loading, for servers that do not (``app.state.after_first_answers``).
    Once every plugin has loaded, it costs a request one attribute look-up."""

    def __init__(self, app: ASGIApp, manager: PluginManager, start: Callable[[], None]) -> None:
        self.app = app
        self.manager = manager
        self.start = start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if not manager.loading or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.start()
        with manager.request():
            needed = manager.needed_for(scope["path"])
            if needed:
                await manager.ensure(needed)
                if manager.loading and not manager.routable(scope):
                    await manager.ensure_all()
            await self.app(scope, receive, send)


async def announce_start(runtime: Runtime) -> None:
    """One line saying what runs: version, address, key file, plugins by state.

    The server runs it once it listens (the plugins' self-checks are not
    waited for before serving); their results are cached, so the first /ready
    gets them for free."""
    settings = runtime.settings
    statuses = await runtime.manager.statuses()
    by_state: dict[str, list[str]] = {}
    for name, status in sorted(statuses.items()):
        by_state.setdefault(status.state, []).append(name)
    plugins = ", ".join(
        f"{len(names)} {state}" + ("" if state == "ok" else f" ({', '.join(names)})")
        for state, names in sorted(by_state.items(), key=lambda kv: (kv[0] != "ok", kv[0]))
    )
    if runtime.admin_key.override:
        key = f"key from the {KEY_NAME} environment variable"
    else:
        try:
            mode = stat.S_IMODE((await asyncio.to_thread(os.stat, settings.env_file)).st_mode)
        except OSError as exc:
            key = f"key file {settings.env_file} ({exc.strerror or exc})"
        else:
            key = f"key file {settings.env_file} (mode {mode:04o})"
            if mode & 0o077:
                log.warning(
                    "%s is readable by others (mode %04o): run chmod 600 %s",
                    settings.env_file,
                    mode,
                    settings.env_file,
                )
    log.info(
        "raspapi %s on %s:%d; %s; plugins: %s",
        __version__,
        settings.host,
        settings.port,
        key,
        plugins or "none",
    )


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


class OnFirstUse:
    """An ASGI app made by ``build`` on its first request, then kept.

    For parts of the daemon few requests need: their modules are imported
    then, not at start (the admin page, the static files)."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self.build = build
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            self.app = self.build()
        await self.app(scope, receive, send)


def _admin_app() -> ASGIApp:
    """The admin page's routes (``/admin``, ``/admin/...``; full paths, so the
    catch-all route in front of it hands the request on unchanged)."""
    from raspapi.admin.page import routes

    router = Router(routes=routes())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Request metrics name the admin route that matches, or count the
        # request as unmatched, as before: never the catch-all in front.
        scope.pop("route", None)
        keys = scope["app"].state.runtime.keys
        if keys is not None:
            await keys.loaded()  # sign-in with a scoped key, the keys page
        await router(scope, receive, send)

    return app


def _static_files() -> ASGIApp:
    from starlette.staticfiles import StaticFiles

    return StaticFiles(directory=endpoints.webui_dir() / "static")


class _FailedPlugins:
    """A plugin that failed before giving routes still answers 503 under its
    namespace: its two routes, built and guarded once."""

    def __init__(self, manager: PluginManager, runtime: Runtime) -> None:
        self.manager = manager
        self.runtime = runtime
        self._built: dict[str, list[ApiRoute]] = {}

    def routes(self) -> list[ApiRoute]:
        out: list[ApiRoute] = []
        for name, plugin in self.manager.plugins.items():
            if plugin.failure is not None and not plugin.routes:
                if name not in self._built:
                    self._built[name] = _guarded(self._namespace(name), self.runtime)
                out.extend(self._built[name])
        return out

    @staticmethod
    def _namespace(name: str) -> list[ApiRoute]:
        out: list[ApiRoute] = []
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
    if exc.status_code >= 400:
        note_command_failure(request.scope, exc)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


class ErrorMiddleware:
    """Whatever a handler raises, the client gets a JSON 500 and no traceback.

    It also counts the requests answered, and the errors among them, and hands
    each finished request to the request log (with an error answer's first
    bytes, for the reason it gave).
    """

    def __init__(
        self,
        app: ASGIApp,
        counters: Counters | None = None,
        request_log: RequestLog | None = None,
        on_plugin_error: Callable[[str, str, BaseException], None] | None = None,
    ) -> None:
        self.app = app
        self.counters = counters or Counters()
        self.request_log = request_log
        #: Told which plugin's handler raised (it then shows degraded in /ready).
        self.on_plugin_error = on_plugin_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = time.perf_counter()
        started = False
        status = 500
        body: list[bytes] | None = None
        size = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal started, status, body, size
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if status >= 400 and self.request_log is not None:
                    body = []
            elif body is not None and size < ERROR_BODY_MAX:
                chunk = message.get("body", b"")[: ERROR_BODY_MAX - size]
                body.append(chunk)
                size += len(chunk)
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
            scope[LOGGED] = True
            if route is not None and route.plugin and self.on_plugin_error is not None:
                self.on_plugin_error(route.plugin, f"{scope['method']} {route.path}", exc)
            if not started:
                response = JSONResponse(
                    {"detail": "Internal Server Error", "code": "internal_error"},
                    status_code=500,
                )
                await response(scope, receive, send)
        finally:
            self.counters.count(status)
            if self.request_log is not None:
                self.request_log(scope, status, (time.perf_counter() - begun) * 1000, body)

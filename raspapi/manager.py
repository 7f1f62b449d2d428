"""Finds, loads and calls plugins; keeps each one's status.

One broken plugin never takes the daemon down: a plugin that raises while
loading, building routes, starting or self-checking is marked ``failed`` with
the reason, logged once, and everything else keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import math
import os
import pkgutil
import re
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import pluggy
from starlette.routing import Match, Route, compile_path

from raspapi import __version__, hookspecs
from raspapi.context import PluginContext, Status
from raspapi.events.bus import EventBus
from raspapi.host.runner import CommandRunner
from raspapi.http.errors import StartupError
from raspapi.http.routing import ApiRoute
from raspapi.http.timefmt import rfc3339
from raspapi.settings import Settings
from raspapi.state import manifest
from raspapi.state.cache import Cache

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from raspapi.admin.panels import Panel
    from raspapi.security.audit import AuditLog

log = logging.getLogger("raspapi.plugins")

BUILTIN_PACKAGE = "raspapi.plugins"
ENTRY_POINT_GROUP = "raspapi"
HOOK_TIMEOUT = 30.0
#: The longest one plugin may take to give its samples or metrics.
COLLECT_TIMEOUT = 5.0
#: What a sample's name may hold (see raspapi_samples).
SAMPLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+/=-]{0,199}")
T = TypeVar("T")
#: How long (seconds) a plugin shows ``degraded`` after a handler raised.
DEGRADED_SECONDS = 300.0
#: The hooks giving routes, RaspAP's (at the root) first.
_ROUTE_HOOKS = (("raspapi_legacy_routes", True), ("raspapi_routes", False))
#: Paths answered without waiting for any plugin while plugins load (liveness).
LOADING_FREE_PATHS = frozenset({"/health"})
#: Seconds the background loading waits for the requests in flight to end.
LOADER_PATIENCE = 1.0
#: The plugins whose start-up hook the current task runs in (or was made by).
_STARTING: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "raspapi_starting", default=frozenset()
)


class Plugin:
    """A plugin found, loaded or not, and what the daemon knows of it."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.module: object | None = None
        self.ctx: PluginContext | None = None
        #: Set for good when loading, building routes or starting failed.
        self.failure: str | None = None
        self.disabled = False
        #: Loaded but its start-up hook still running (deferred loading): hooks
        #: other than ``raspapi_startup`` leave it out until it has started.
        self.starting = False
        self.routes: list[ApiRoute] = []
        self.last_status: Status | None = None
        #: Uncaught exceptions in the plugin's request handlers: how many, the
        #: last one (exception type, method and route template: no message, as
        #: /ready is open to anyone) and when (epoch seconds).
        self.handler_errors = 0
        self.last_error: str | None = None
        self.last_error_at = 0.0

    @property
    def loaded(self) -> bool:
        return (
            self.module is not None
            and self.failure is None
            and not self.disabled
            and not self.starting
        )


class Collection(NamedTuple):
    """How one plugin's last samples or metrics collection went."""

    plugin: str
    hook: str  # "samples" or "metrics"
    seconds: float
    ok: bool


class _Candidate(NamedTuple):
    name: str
    source: str
    load: Callable[[], object]
    #: What the plugin's files are now (see raspapi.state.manifest), asked only
    #: when loading is deferred; None: never known (an installed package).
    sign: Callable[[], str | None] | None = None


_NO_HOOKS = "no hooks found (is @hookimpl missing?)"


def _known_hooks() -> set[str]:
    return {name for name in dir(hookspecs) if name.startswith("raspapi_")}


def _unknown_hooks(module: object, callers: list[str]) -> list[str]:
    """Hook-like names of ``module`` (marked or not) that no hookspec has."""
    names = callers + [a for a in dir(module) if a.startswith("raspapi_")]
    return sorted(set(names) - _known_hooks())


def _unknown_hook_failure(bad: list[str]) -> str:
    return (
        f"implements unknown hook {bad[0]!r} (a misspelt name?); "
        f"known hooks: {', '.join(sorted(_known_hooks()))}"
    )


#: What a module attribute must be to be worth pluggy's full look-up.
_ROUTINES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    classmethod,
    staticmethod,
)


class _Pluggy(pluggy.PluginManager):
    """pluggy's manager, quicker to register a module.

    ``register`` asks ``parse_hookimpl_opts`` about every name in the plugin's
    namespace, and pluggy looks each up with ``inspect.getattr_static``; for a
    plugin module most names are imported classes, modules and constants,
    which can never be hooks, and the rest mostly plain functions, whose
    marker is an attribute. Both are answered from the module's ``__dict__``
    (about 750 names over the built-in plugins, a few ms on x86 and tens on a
    Pi); anything else that may be a routine gets pluggy's own answer.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        if isinstance(plugin, ModuleType):
            value = plugin.__dict__.get(name)
            if type(value) is types.FunctionType:
                # What pluggy answers for a plain function: its marker's options.
                opts = getattr(value, self.project_name + "_impl", None)
                return opts if isinstance(opts, dict) else None
            if not isinstance(value, _ROUTINES):
                return None
        return super().parse_hookimpl_opts(plugin, name)


class PluginManager:
    def __init__(
        self,
        settings: Settings,
        runner: CommandRunner,
        modules: Sequence[ModuleType] | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        #: When given (raspapi.testing), these modules are the only plugins.
        self.modules = None if modules is None else list(modules)
        self.pm = _Pluggy("raspapi")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, Plugin] = {}
        self._status_cache = Cache(ttl=max(settings.cache_ttl, 2.0))
        self._fields_cache = Cache(ttl=settings.cache_ttl)
        self._logged: set[tuple[str, str]] = set()
        #: The event bus every plugin's ``ctx.events`` is (GET /api/v1/events).
        self.events = EventBus(interval=settings.events_interval)
        #: The last samples and metrics collection of each plugin, by (hook, plugin).
        self.collections: dict[tuple[str, str], Collection] = {}
        #: Pluggy's per-plugin hook callers, by (hook, plugin).
        self._callers: dict[tuple[str, str], Any] = {}
        #: Whether each hook implementation is a coroutine function.
        self._coroutine_functions: dict[Callable[..., Any], bool] = {}
        #: Each hook's plain implementations, in the order of discovery.
        self._impl_order: dict[str, list[tuple[Plugin, str]]] = {}
        #: Every plugin found, in the order found; those to load (not disabled).
        self._order: dict[str, int] = {}
        self._candidates: dict[str, _Candidate] = {}
        #: (method, path) of every route built, and its plugin.
        self._taken: dict[tuple[str, str], str] = {}
        #: Given to each plugin's context (the core database's audit log).
        self.audit_log: AuditLog | None = None
        # Deferred loading (``defer``): the plugins still to load, in order; the
        # manifest's valid entries; set once each loaded plugin has started;
        # what the app does as each plugin loads, and once all have started.
        self._pending: dict[str, None] = {}
        self.known: dict[str, manifest.Entry] = {}
        #: Each plugin's signature at ``defer`` (None when it cannot have one).
        self._signatures: dict[str, str | None] = {}
        self._started: dict[str, asyncio.Event] = {}
        #: Every plugin loaded and started (always, without ``defer``).
        self._done = True
        #: Requests in flight while plugins load, and whether there are none.
        self.in_flight = 0
        self._quiet = asyncio.Event()
        self.on_load: Callable[[Plugin], None] | None = None
        self.on_loaded: Callable[[], Awaitable[None]] | None = None

    # -- loading ---------------------------------------------------------------

    def discover(self) -> None:
        """Find every plugin, importing none: names, sources, disabled ones.

        Two plugins with one name are a start-up error."""
        for cand in self._discover():
            if cand.name in self.plugins:
                raise StartupError(
                    f"two plugins are named {cand.name!r}: {self.plugins[cand.name].source} "
                    f"and {cand.source}; rename one (or uninstall it)"
                )
            plugin = Plugin(cand.name, cand.source)
            self.plugins[cand.name] = plugin
            self._order[cand.name] = len(self._order)
            if cand.name in self.settings.disable:
                plugin.disabled = True
            else:
                self._candidates[cand.name] = cand
        for name in sorted(self.settings.disable - self.plugins.keys()):
            log.warning("RASPAPI_DISABLE names %r, but no plugin has that name", name)

    def load(self) -> None:
        """Import and register every plugin not disabled."""
        self.discover()
        for name in self._candidates:
            self._import(self.plugins[name])

    def _import(self, plugin: Plugin) -> None:
        """Import and register one plugin: ``failed`` if that raises, or if it has
        no hooks or a misspelt one (then unregistered, so ``check_pending`` passes:
        under systemd a start-up error is a restart loop)."""
        cand = self._candidates[plugin.name]
        try:
            module = cand.load()
            self.pm.register(module, name=cand.name)
        except Exception as exc:
            self._fail(plugin, f"cannot load: {_describe(exc)}", exc)
            return
        callers = [c.name for c in self.pm.get_hookcallers(module) or []]
        bad = _unknown_hooks(module, callers)
        if bad or not callers:
            # Routes silently missing would look like a healthy plugin.
            plugin.failure = _unknown_hook_failure(bad) if bad else _NO_HOOKS
            log.error("plugin %r (%s) failed: %s", plugin.name, plugin.source, plugin.failure)
            self.pm.unregister(module)
            return
        self.pm.check_pending()
        plugin.module = module
        plugin.ctx = PluginContext(
            name=cand.name,
            settings=self.settings,
            runner=self.runner,
            cache=Cache(ttl=self.settings.cache_ttl),
            logger=logging.getLogger(f"raspapi.plugin.{cand.name}"),
            hooks=self,
            events=self.events,
            audit_log=self.audit_log,
        )
        self._forget_order()

    def _discover(self) -> Iterator[_Candidate]:
        if self.modules is not None:
            for module in self.modules:
                name = module.__name__.rpartition(".")[2]
                yield _Candidate(name, f"module {module.__name__}", _given(module))
            return
        package = importlib.import_module(BUILTIN_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                yield _Candidate(
                    info.name,
                    "builtin",
                    _importer(f"{BUILTIN_PACKAGE}.{info.name}"),
                    functools.partial(_builtin_signature, info),
                )
        if self.settings.entry_points and may_declare_entry_points(ENTRY_POINT_GROUP):
            from importlib import metadata

            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                # No signature: a package's code can change under one version
                # (an editable install), so it is loaded before any need.
                dist = ep.dist.name if ep.dist is not None else "?"
                yield _Candidate(ep.name, f"package {dist}", ep.load)
        folder = self.settings.plugins_dir
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                if not path.name.startswith((".", "_")):
                    yield _Candidate(
                        path.stem,
                        f"file {path}",
                        _file_loader(path),
                        functools.partial(manifest.signature, "file", path),
                    )

    # -- loading on demand -------------------------------------------------------
    #
    # With ``defer``, nothing is imported at start: the daemon listens first. A
    # request, or a hook gathered for one, loads the plugins it may need
    # (``ensure``); ``load_rest`` loads the others in the background. What a
    # plugin needs comes from the manifest of its last load; a plugin the
    # manifest does not know (first start, changed files, an installed
    # package) is loaded before anything that may need it.

    def defer(self, known: Mapping[str, manifest.Entry]) -> None:
        """Discover the plugins and leave them to load on demand. ``known``: the
        manifest; entries whose plugin's files changed since are dropped."""
        self.discover()
        self._pending = dict.fromkeys(self._candidates)
        self._done = False
        self._signatures = {
            name: cand.sign() for name, cand in self._candidates.items() if cand.sign is not None
        }
        self.known = {
            name: entry
            for name, entry in known.items()
            if entry.signature == self._signatures.get(name)
        }

    @property
    def loading(self) -> bool:
        """Whether some plugin is still to load or start (deferred loading only;
        asked by every request, so an attribute)."""
        return not self._done

    def _unready(self) -> list[str]:
        """The plugins not loaded, or loaded and still starting, in order found."""
        starting = [n for n, started in self._started.items() if not started.is_set()]
        if not starting:
            return list(self._pending)
        return sorted([*self._pending, *starting], key=self._order.__getitem__)

    async def ensure(self, names: Iterable[str]) -> None:
        """Load and start each of ``names`` not loaded yet, in the order found,
        and wait for those still starting; then call ``on_loaded`` once every
        plugin has started.

        Inside a plugin's start-up (and the tasks it makes), that plugin is not
        waited for: its start-up may gather a hook it implements itself."""
        if self._done:
            return
        inside = _STARTING.get()
        for name in sorted(set(names) & self._candidates.keys(), key=self._order.__getitem__):
            if name in self._pending:
                await self._load_deferred(self.plugins[name])
            elif name in self._started and name not in inside:
                await self._started[name].wait()
        if not self._done and not self._unready():
            self._done = True
            if self.on_loaded is not None:
                on_loaded, self.on_loaded = self.on_loaded, None
                await on_loaded()

    async def ensure_all(self) -> None:
        await self.ensure(self._unready())

    async def load_rest(self) -> None:
        """Load every plugin not loaded yet, one at a time, each once no request
        is in flight (or :data:`LOADER_PATIENCE` seconds passed): a request
        loads what it needs itself, and a plugin's import holds the loop."""
        for name in list(self._pending):
            if self.in_flight:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOADER_PATIENCE):
                        await self._quiet.wait()
            await self.ensure([name])
            await asyncio.sleep(0)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Counts a request in flight while plugins load (``load_rest`` waits)."""
        self.in_flight += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._quiet.set()

    async def _load_deferred(self, plugin: Plugin) -> None:
        name = plugin.name
        del self._pending[name]
        started = self._started[name] = asyncio.Event()
        begun = time.perf_counter()
        try:
            self._import(plugin)
            if plugin.loaded:
                self._build_routes(plugin)
            if self.on_load is not None:
                self.on_load(plugin)
            if plugin.loaded and self._implements(plugin, "raspapi_startup"):
                plugin.starting = True
                token = _STARTING.set(_STARTING.get() | {name})
                try:
                    await self.acall(plugin, "raspapi_startup")
                except Exception as exc:
                    self._fail(plugin, f"failed to start: {_describe(exc)}", exc)
                finally:
                    _STARTING.reset(token)
                    plugin.starting = False
                    self._forget_order()
        finally:
            started.set()
        log.debug("plugin %r loaded in %.0f ms", name, (time.perf_counter() - begun) * 1000)

    def needed_for(self, path: str) -> set[str]:
        """The plugins not loaded yet that a request for ``path`` may need: the
        unknown ones, and the known ones with a route there; all of them when
        no known plugin has one (a core route, or one the manifest missed)."""
        if self._done or path in LOADING_FREE_PATHS:
            return set()
        unready = self._unready()
        owners = self._owners(path)
        if not owners:
            return set(unready)
        return {n for n in unready if n in owners or n not in self.known}

    def _owners(self, path: str) -> set[str]:
        owners: set[str] = set()
        for name, entry in self.known.items():
            for _, template in entry.routes:
                if template == path or (
                    "{" in template
                    and path.startswith(template.partition("{")[0])
                    and _template_regex(template).match(path)
                ):
                    owners.add(name)
                    break
        return owners

    def routable(self, scope: Mapping[str, Any]) -> bool:
        """Whether a loaded plugin route or a core one may answer ``scope``
        (after ``needed_for``'s plugins loaded: if not, the manifest was wrong)."""
        path = scope["path"]
        for plugin in self.plugins.values():
            for route in plugin.routes:
                if route.path == path or route.matches(dict(scope))[0] is not Match.NONE:
                    return True
        return False

    async def _need(self, hook: str) -> None:
        """Before gathering ``hook``: load the plugins that may implement it."""
        if not self._done:
            unready = self._unready()
            await self.ensure(
                n for n in unready if n not in self.known or hook in self.known[n].hooks
            )

    def manifest(self) -> dict[str, manifest.Entry]:
        """Each loaded plugin's entry, as the next start will read it."""
        out: dict[str, manifest.Entry] = {}
        for name, plugin in self.plugins.items():
            signature = self._signatures.get(name)
            if signature is None or plugin.module is None or plugin.failure is not None:
                continue
            hooks = frozenset(c.name for c in self.pm.get_hookcallers(plugin.module) or [])
            routes = tuple((frozenset(r.methods or {"GET"}), r.path) for r in plugin.routes)
            out[name] = manifest.Entry(signature, hooks, routes)
        return out

    # -- calling hooks ---------------------------------------------------------

    def _impls(self, hook: str) -> Iterator[tuple[Plugin, str]]:
        """The loaded plugins implementing ``hook``, in the order pluggy lists
        them when every plugin registers in the order found (whatever order
        they loaded in: see ``defer``)."""
        impls = self._impl_order.get(hook)
        if impls is None:
            found = []
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if _wraps(impl):
                    continue  # a wrapper runs around the others' calls, not as one
                plugin = self.plugins.get(impl.plugin_name)
                if plugin is not None:
                    found.append((self._rank(impl), plugin))
            impls = self._impl_order[hook] = [(p, hook) for _, p in sorted(found)]
        for plugin, name in impls:
            if plugin.loaded:
                yield plugin, name

    def _rank(self, impl: pluggy.HookImpl) -> tuple[int, int]:
        # pluggy puts a new trylast implementation first, a new tryfirst one
        # last, and any other one after the others but before the tryfirst ones.
        order = self._order.get(impl.plugin_name, len(self._order))
        if impl.trylast:
            return (0, -order)
        return (2, order) if impl.tryfirst else (1, order)

    def _implements(self, plugin: Plugin, hook: str) -> bool:
        return any(p is plugin for p, _ in self._impls(hook))

    def _forget_order(self) -> None:
        """A plugin loaded, failed or started: hook lists and callers change."""
        self._impl_order.clear()
        self._callers.clear()

    def _caller(self, plugin: Plugin, hook: str) -> Any:
        """Pluggy's caller of ``hook`` restricted to ``plugin``: each plugin is
        called on its own (one raising or slow never stops another), and the call
        still goes through pluggy, so add_hookcall_monitoring applies and every
        plugin's wrappers of the hook wrap it (only the others' plain
        implementations are left out)."""
        key = (hook, plugin.name)
        caller = self._callers.get(key)
        if caller is None:
            plain = {
                impl.plugin
                for impl in getattr(self.pm.hook, hook).get_hookimpls()
                if not _wraps(impl)
            }
            others = [
                p.module
                for p in self.plugins.values()
                if p is not plugin and p.module is not None and p.module in plain
            ]
            caller = self._callers[key] = self.pm.subset_hook_caller(hook, others)
        return caller

    def call(self, plugin: Plugin, hook: str, **args: Any) -> Any:
        results = self._caller(plugin, hook)(ctx=plugin.ctx, **args)
        # pluggy leaves out None results: an empty list is "returned None".
        return results[0] if results else None

    async def acall(self, plugin: Plugin, hook: str, **args: Any) -> Any:
        result = self.call(plugin, hook, **args)
        if inspect.isawaitable(result):
            async with asyncio.timeout(HOOK_TIMEOUT):
                result = await result
        return result

    def collect_routes(self) -> list[ApiRoute]:
        """Every plugin's routes, relocated under its namespace (or the root)."""
        out: list[ApiRoute] = []
        for hook, legacy in _ROUTE_HOOKS:
            for plugin, _ in list(self._impls(hook)):
                out.extend(self._add_routes(plugin, hook, legacy) or [])
        return out

    def _build_routes(self, plugin: Plugin) -> None:
        """One plugin's routes (deferred loading), its RaspAP ones first."""
        for hook, legacy in _ROUTE_HOOKS:
            if self._implements(plugin, hook) and self._add_routes(plugin, hook, legacy) is None:
                return

    def _add_routes(self, plugin: Plugin, hook: str, legacy: bool) -> list[ApiRoute] | None:
        """Builds and keeps the routes ``plugin`` gives through ``hook``; None
        (and the plugin ``failed``) when that raised."""
        try:
            routes = self._plugin_routes(plugin, hook, legacy, self._taken)
        except Exception as exc:
            self._fail(plugin, f"cannot build routes: {_describe(exc)}", exc)
            return None
        plugin.routes.extend(routes)
        return routes

    def routes(self) -> list[ApiRoute]:
        """The routes of every plugin loaded so far, as ``collect_routes``
        orders them: the RaspAP ones first, each kind in the order found."""
        plugins = sorted(self.plugins.values(), key=lambda p: self._order[p.name])
        legacy = [r for p in plugins for r in p.routes if r.legacy]
        return legacy + [r for p in plugins for r in p.routes if not r.legacy]

    def _plugin_routes(
        self, plugin: Plugin, hook: str, legacy: bool, taken: dict[tuple[str, str], str]
    ) -> list[ApiRoute]:
        result = self.call(plugin, hook) or []
        prefix = "" if legacy else f"/api/v1/{plugin.name}"
        routes: list[ApiRoute] = []
        for route in result:
            if not isinstance(route, Route):
                raise TypeError(f"expected starlette Route objects, got {type(route).__name__}")
            api = ApiRoute.from_route(route)
            path = api.path if legacy else _namespaced(prefix, api.path)
            for method in sorted(api.methods or {"GET"}):
                owner = taken.get((method, path))
                if owner is not None:
                    raise ValueError(f"{method} {path} is already served by plugin {owner!r}")
            routes.append(api.relocated(path, plugin.name, legacy=legacy))
        for route in routes:
            for method in route.methods or {"GET"}:
                taken[(method, route.path)] = plugin.name
        return routes

    async def startup(self) -> None:
        for plugin, hook in list(self._impls("raspapi_startup")):
            try:
                await self.acall(plugin, hook)
            except Exception as exc:
                self._fail(plugin, f"failed to start: {_describe(exc)}", exc)

    async def shutdown(self) -> None:
        for plugin, hook in reversed(list(self._impls("raspapi_shutdown"))):
            try:
                await self.acall(plugin, hook)
            except Exception as exc:
                log.warning("plugin %r raised while stopping: %s", plugin.name, _describe(exc))
        for plugin in self.plugins.values():
            if plugin.ctx is not None:
                await plugin.ctx.cache.close()
                plugin.ctx.close()

    async def status(self, name: str) -> Status:
        """The plugin's current status (its self-check is cached briefly)."""
        plugin = self.plugins[name]
        await self.ensure([name])
        if plugin.disabled:
            return Status("disabled", "disabled by RASPAPI_DISABLE")
        if plugin.failure is not None:
            return Status.failed(plugin.failure)
        status: Status = await self._status_cache.get(name, lambda: self._check(plugin))
        if (
            status.state == "ok"
            and plugin.last_error is not None
            and time.time() - plugin.last_error_at < DEGRADED_SECONDS
        ):
            return Status(
                "degraded",
                f"a request handler raised: {plugin.last_error}",
                {
                    **status.details,
                    "handler_errors": plugin.handler_errors,
                    "last_error_at": rfc3339(plugin.last_error_at),
                },
            )
        return status

    def handler_failed(self, name: str, where: str, exc: BaseException) -> None:
        """A request handler of plugin ``name`` raised ``exc`` (the app answered
        500): the plugin shows ``degraded`` for a while in /ready."""
        plugin = self.plugins.get(name)
        if plugin is None:
            return
        plugin.handler_errors += 1
        plugin.last_error = f"{type(exc).__name__} on {where}"[:300]
        plugin.last_error_at = time.time()

    async def _check(self, plugin: Plugin) -> Status:
        status = Status.ok()
        for owner, hook in self._impls("raspapi_status"):
            if owner is not plugin:
                continue
            try:
                result = await self.acall(owner, hook)
            except Exception as exc:
                status = Status.failed(f"self-check raised {_describe(exc)}")
            else:
                if result is not None and not isinstance(result, Status):
                    status = Status.failed(f"self-check returned {type(result).__name__}")
                elif result is not None:
                    status = result
        if plugin.last_status is None or plugin.last_status.state != status.state:
            # Absent at start (no hostapd, no VPN configured) is how a machine
            # is, not a problem: INFO. Losing it later, or failing, is a WARNING.
            level = (
                logging.INFO
                if status.state == "ok"
                or (plugin.last_status is None and status.state == "unavailable")
                else logging.WARNING
            )
            if plugin.last_status is not None or status.state != "ok":
                log.log(
                    level,
                    "plugin %r is %s%s",
                    plugin.name,
                    status.state,
                    f": {status.reason}" if status.reason else "",
                )
        plugin.last_status = status
        return status

    async def statuses(self) -> dict[str, Status]:
        await self.ensure_all()
        names = list(self.plugins)
        results = await asyncio.gather(*(self.status(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def system_fields(self) -> dict[str, Any]:
        """Every plugin's contribution to RaspAP's ``/system`` (cached briefly:
        dashboards poll /system every second)."""
        fields: dict[str, Any] = await self._fields_cache.get("system", self._system_fields)
        return dict(fields)

    async def _system_fields(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, result in await self._gather("raspapi_system_fields"):
            if isinstance(result, dict):
                merged.update(result)
        return merged

    async def stations(self) -> list[dict[str, Any]]:
        """Every plugin's Wi-Fi stations (a plugin that raises contributes none)."""
        out: list[dict[str, Any]] = []
        for _, result in await self._gather("raspapi_stations"):
            if isinstance(result, list):
                out.extend(item for item in result if isinstance(item, dict))
        return out

    async def station_action(self, action: str, mac: str) -> dict[str, str | None]:
        """Asks every plugin running access points to act on a station. Maps each
        plugin that took part to None (done) or the reason it could not."""
        outcome: dict[str, str | None] = {}
        await self._need("raspapi_station_action")
        for plugin, hook in list(self._impls("raspapi_station_action")):
            try:
                result = await self.acall(plugin, hook, action=action, mac=mac)
            except Exception as exc:
                outcome[plugin.name] = str(exc) or type(exc).__name__
                continue
            if result is not None:
                outcome[plugin.name] = None if result else "refused"
        return outcome

    async def admin_panels(self) -> dict[str, list[Panel]]:
        """Every plugin's admin-page panels, by plugin (one that raises adds none)."""
        from raspapi.admin.panels import Panel

        out: dict[str, list[Panel]] = {}
        for plugin, result in await self._gather("raspapi_admin_panels"):
            try:
                panels = [result] if isinstance(result, Panel) else list(result or [])
                for panel in panels:
                    if not isinstance(panel, Panel):
                        raise TypeError(f"expected Panel objects, got {type(panel).__name__}")
            except Exception as exc:
                self._log_once(plugin, "admin_panels", exc)
                continue
            if panels:
                out[plugin.name] = panels
        return out

    async def samples(
        self, then: Callable[[dict[str, float]], object] | None = None
    ) -> dict[str, float]:
        """Every plugin's samples for the history, merged (one that raises or is
        slow adds none; a name only once, the first plugin's).

        The plain (non-async) implementations are called one after the other in
        one worker-thread visit; the async ones run on the loop meanwhile (see
        ``raspapi_samples``). ``then(merged)``, a plain function, runs in that
        same thread visit when nothing was left for the loop, else in a visit of
        its own once everything is in: the history sampler writes its
        transaction there, so an idle interval costs the loop one hand-off.
        ``then`` raising is raised here.
        """
        return (await self._samples(then))[0]

    async def _samples(
        self, then: Callable[[dict[str, float]], object] | None = None
    ) -> tuple[dict[str, float], list[tuple[Plugin, dict[str, float]]]]:
        """The merged samples, and each plugin's (in pluggy's call order)."""
        hook = "raspapi_samples"
        await self._need(hook)
        impls = [plugin for plugin, _ in self._impls(hook)]
        coroutines = self._coroutine_plugins(hook)
        plain = [p for p in impls if p.name not in coroutines]
        batch = _Batch(self, plain, then if len(plain) == len(impls) else None)
        # The async implementations start first and run while the thread works.
        tasks = {
            p.name: asyncio.ensure_future(self._collect_one(p, hook, "samples", _check_samples))
            for p in impls
            if p.name in coroutines
        }
        if plain:
            await batch.run()
        for name, (awaitable, started) in batch.awaiting.items():
            tasks[name] = asyncio.ensure_future(
                self._finish_sample(self.plugins[name], awaitable, started)
            )
        results = batch.results
        for name, task in tasks.items():
            value = await task
            if value is not None:
                results[name] = value
        merged = batch.merged
        if merged is None:
            merged = self._merge_samples(impls, results)
            if then is not None:
                await asyncio.get_running_loop().run_in_executor(None, then, merged)
        return merged, [(p, results[p.name]) for p in impls if p.name in results]

    def _coroutine_plugins(self, hook: str) -> set[str]:
        """The plugins whose implementation of ``hook`` is a coroutine function
        (asked every interval: inspect's answer is kept per function)."""
        out: set[str] = set()
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if _wraps(impl):
                continue
            known = self._coroutine_functions.get(impl.function)
            if known is None:
                known = inspect.iscoroutinefunction(impl.function)
                self._coroutine_functions[impl.function] = known
            if known:
                out.add(impl.plugin_name)
        return out

    async def _finish_sample(
        self, plugin: Plugin, awaitable: Awaitable[Any], started: float
    ) -> dict[str, float] | None:
        """What a plain implementation left for the loop (it returned an awaitable)."""
        value: dict[str, float] | None = None
        try:
            async with asyncio.timeout(COLLECT_TIMEOUT):
                result = await awaitable
            value = None if result is None else _check_samples(result)
        except Exception as exc:
            self._log_once(plugin, "samples", exc)
            ok = False
        else:
            ok = True
        seconds = time.perf_counter() - started
        self.collections[("samples", plugin.name)] = Collection(plugin.name, "samples", seconds, ok)
        return value

    def _merge_samples(
        self, impls: list[Plugin], results: dict[str, dict[str, float]]
    ) -> dict[str, float]:
        merged: dict[str, float] = {}
        for plugin in impls:
            for name, value in results.get(plugin.name, {}).items():
                if name in merged:
                    self._log_once(plugin, "samples", ValueError(f"{name} is already sampled"))
                else:
                    merged[name] = value
        return merged

    async def metrics(self) -> list[Metric]:
        """Every plugin's Prometheus metric families; a name only once (the first plugin's)."""
        from prometheus_client.metrics_core import Metric

        def check(result: Any) -> list[Metric]:
            families = list(result)
            for family in families:
                if not isinstance(family, Metric):
                    raise TypeError(f"expected prometheus_client metrics, got {type(family)}")
            return families

        seen: set[str] = set()
        out: list[Metric] = []
        for plugin, families in await self._collect("raspapi_metrics", "metrics", check):
            for family in families:
                if family.name in seen:
                    self._log_once(plugin, "metrics", ValueError(f"{family.name} is taken"))
                    continue
                seen.add(family.name)
                out.append(family)
        return out

    async def gather(self, hook: str, **args: Any) -> dict[str, Any]:
        """What each plugin implementing ``hook`` returned, by plugin name (for
        ``ctx.hooks.gather``: a new gathering hook needs only its spec). A plugin
        that raises is logged once and left out, as is one returning None.
        ``raspapi_samples`` is called as :meth:`samples` calls it (and its
        results checked the same way)."""
        if not hook.startswith("raspapi_") or not hasattr(hookspecs, hook):
            raise ValueError(f"{hook!r} is not a hook in raspapi.hookspecs")
        if hook == "raspapi_samples":  # plain ones read files: never on the loop
            return {plugin.name: values for plugin, values in (await self._samples())[1]}
        return {plugin.name: result for plugin, result in await self._gather(hook, **args)}

    async def _gather(self, hook: str, **args: Any) -> list[tuple[Plugin, Any]]:
        """Calls ``hook`` of each plugin in turn (isolated: one that raises is
        logged once and adds nothing); the results that are not None."""
        out: list[tuple[Plugin, Any]] = []
        await self._need(hook)
        for plugin, _ in list(self._impls(hook)):
            try:
                result = await self.acall(plugin, hook, **args)
            except Exception as exc:
                self._log_once(plugin, hook.removeprefix("raspapi_"), exc)
                continue
            if result is not None:
                out.append((plugin, result))
        return out

    async def _collect(
        self, hook: str, where: str, check: Callable[[Any], T]
    ) -> list[tuple[Plugin, T]]:
        """Calls ``hook`` of every plugin at once, timing each; ``check`` vets a result."""
        await self._need(hook)
        impls = list(self._impls(hook))
        results = await asyncio.gather(
            *(self._collect_one(plugin, hook, where, check) for plugin, _ in impls)
        )
        return [
            (plugin, value)
            for (plugin, _), value in zip(impls, results, strict=True)
            if value is not None
        ]

    async def _collect_one(
        self, plugin: Plugin, hook: str, where: str, check: Callable[[Any], T]
    ) -> T | None:
        """One plugin's ``hook`` on the loop, isolated and timed into ``collections``."""
        started = time.perf_counter()
        value: T | None = None
        try:
            async with asyncio.timeout(COLLECT_TIMEOUT):
                result = await self.acall(plugin, hook)
            value = None if result is None else check(result)
        except Exception as exc:
            self._log_once(plugin, where, exc)
            ok = False
        else:
            ok = True
        seconds = time.perf_counter() - started
        self.collections[(where, plugin.name)] = Collection(plugin.name, where, seconds, ok)
        return value

    # -- failures --------------------------------------------------------------

    def _fail(self, plugin: Plugin, reason: str, exc: BaseException) -> None:
        plugin.failure = reason
        self._forget_order()
        log.error("plugin %r failed: %s", plugin.name, reason, exc_info=exc)

    def _log_once(self, plugin: Plugin, where: str, exc: BaseException) -> None:
        key = (plugin.name, f"{where}:{type(exc).__name__}")
        if key not in self._logged:
            self._logged.add(key)
            log.error(
                "plugin %r raised in %s: %s", plugin.name, where, _describe(exc), exc_info=exc
            )


def _namespaced(prefix: str, path: str) -> str:
    """A plugin route's path under its namespace: ``"/"`` is the namespace itself,
    and ``"/.csv"`` a sibling of it (``/api/v1/usage.csv``): Starlette paths
    start with ``/``, and a first segment starting with a dot is never a
    resource name."""
    if path == "/":
        return prefix
    if path.startswith("/."):
        return prefix + path[1:]
    return prefix + path


@functools.lru_cache(maxsize=256)
def _template_regex(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


def _builtin_signature(info: pkgutil.ModuleInfo) -> str | None:
    folder = getattr(info.module_finder, "path", None)
    if not isinstance(folder, str):
        return None
    location = Path(folder) / (info.name if info.ispkg else f"{info.name}.py")
    return manifest.signature(__version__, location)


def _wraps(impl: pluggy.HookImpl) -> bool:
    """A new-style (``wrapper=True``) or old-style (``hookwrapper=True``) wrapper."""
    return bool(impl.wrapper or impl.hookwrapper)


def may_declare_entry_points(group: str, path: Sequence[str] | None = None) -> bool:
    """Whether an installed distribution may declare entry points in ``group``.

    ``importlib.metadata`` (with ``email``, ``zipfile`` and ``csv``, a tenth of
    a second under emulation) is imported only when the answer is yes: here
    each distribution's ``entry_points.txt`` on ``path`` (``sys.path``) is
    looked at for the ``[group]`` section. Anything this does not read as
    ``importlib.metadata`` would (a zip or egg on the path, an import hook that
    finds distributions) answers yes, and the full look-up decides.
    """
    if any(
        hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder
        for finder in sys.meta_path
    ):
        return True
    section = f"[{group}]"
    for entry in sys.path if path is None else path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True  # a zip file on the path
        except OSError:
            continue
        if folder.endswith(".egg"):
            return True
        for name in names:
            if name.endswith(".egg"):
                return True
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as file:
                    if section.encode() in file.read():
                        return True
            except OSError:
                continue
    return False


class _Batch:
    """One worker-thread visit calling the plain ``raspapi_samples`` implementations.

    Each is isolated (one that raises is logged once and adds nothing) and timed
    into the manager's ``collections``. One returning an awaitable leaves it in
    ``awaiting`` for the loop. ``then(merged)`` runs at the end of the same visit.
    The visit gets ``COLLECT_TIMEOUT`` seconds for the plugins (not for ``then``):
    past it, the plugins not done add nothing and are logged as timed out, and
    what the thread still does is dropped.
    """

    def __init__(
        self,
        manager: PluginManager,
        plain: list[Plugin],
        then: Callable[[dict[str, float]], object] | None,
    ) -> None:
        self.manager = manager
        self.plain = plain
        self.then = then
        # Pluggy's callers are made here, on the loop; the thread only calls them.
        self.callers = {p.name: manager._caller(p, "raspapi_samples") for p in plain}
        self.results: dict[str, dict[str, float]] = {}
        self.awaiting: dict[str, tuple[Awaitable[Any], float]] = {}
        self.done: set[str] = set()
        self.merged: dict[str, float] | None = None
        self.lock = threading.Lock()
        #: "plugins" while they are called, "then" once ``then`` runs, "closed" when
        #: the loop stopped waiting (timed out).
        self.stage = "plugins"
        self.expired = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._visit)
        timer = loop.call_later(COLLECT_TIMEOUT, self._expire, future)
        try:
            await future
        except asyncio.CancelledError:
            with self.lock:
                if self.stage == "plugins":
                    self.stage = "closed"  # the thread stops after its current call
            if not self.expired:
                raise  # the sampler itself is being cancelled (shutdown)
            self._report_late()
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[None]) -> None:
        with self.lock:
            if self.stage != "plugins":
                return  # done, or in ``then``: the caller's own work is waited for
            self.stage = "closed"
            self.expired = True
        future.cancel()

    def _report_late(self) -> None:
        for plugin in self.plain:
            if plugin.name not in self.done:
                self.manager._log_once(plugin, "samples", TimeoutError("no samples in time"))
                self.manager.collections[("samples", plugin.name)] = Collection(
                    plugin.name, "samples", COLLECT_TIMEOUT, False
                )

    def _visit(self) -> None:
        manager = self.manager
        for plugin in self.plain:
            started = time.perf_counter()
            value: dict[str, float] | None = None
            left: Awaitable[Any] | None = None
            try:
                found = self.callers[plugin.name](ctx=plugin.ctx)
                result = found[0] if found else None
                if inspect.isawaitable(result):
                    left = result
                else:
                    value = None if result is None else _check_samples(result)
            except Exception as exc:
                manager._log_once(plugin, "samples", exc)
                ok = False
            else:
                ok = True
            with self.lock:
                if self.stage == "closed":
                    _discard(left)
                    return
                self.done.add(plugin.name)
                if left is not None:
                    self.awaiting[plugin.name] = (left, started)
                    continue
                seconds = time.perf_counter() - started
                manager.collections[("samples", plugin.name)] = Collection(
                    plugin.name, "samples", seconds, ok
                )
                if value is not None:
                    self.results[plugin.name] = value
        with self.lock:
            if self.then is None or self.awaiting or self.stage == "closed":
                return
            self.stage = "then"
            self.merged = manager._merge_samples(self.plain, self.results)
        self.then(self.merged)


def _discard(awaitable: object) -> None:
    """Closes a coroutine that will never be awaited (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if inspect.iscoroutine(awaitable) and close is not None:
        close()


def _given(module: ModuleType) -> Callable[[], object]:
    return lambda: module


def _check_samples(result: Any) -> dict[str, float]:
    """A plugin's samples: names as documented, finite numbers; anything else dropped."""
    if not isinstance(result, dict):
        raise TypeError(f"expected a dict of samples, got {type(result).__name__}")
    return {
        name: float(value)
        for name, value in result.items()
        if isinstance(name, str)
        and SAMPLE_NAME.fullmatch(name)
        and isinstance(value, int | float)
        and math.isfinite(value)
    }


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _importer(module_name: str) -> Callable[[], object]:
    return lambda: importlib.import_module(module_name)


def _file_loader(path: Path) -> Callable[[], object]:
    def load() -> ModuleType:
        # A private module name: drop-in files never shadow real modules.
        module_name = f"_raspapi_dropin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    return load

"""Finds, loads and calls plugins; keeps each one's status.

One broken plugin never takes the daemon down: a plugin that raises while
loading, building routes, starting or self-checking is marked ``failed`` with
the reason, logged once, and everything else keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from starlette.routing import Route

from raspapi import hookspecs
from raspapi.cache import Cache
from raspapi.context import PluginContext
from raspapi.errors import StartupError
from raspapi.routing import ApiRoute
from raspapi.runner import CommandRunner
from raspapi.settings import Settings
from raspapi.status import Status

log = logging.getLogger("raspapi.plugins")

BUILTIN_PACKAGE = "raspapi.plugins"
ENTRY_POINT_GROUP = "raspapi"
HOOK_TIMEOUT = 30.0


@dataclass
class Plugin:
    name: str
    source: str
    module: object | None = None
    ctx: PluginContext | None = None
    #: Set for good when loading, building routes or starting failed.
    failure: str | None = None
    disabled: bool = False
    routes: list[ApiRoute] = field(default_factory=list)
    last_status: Status | None = None

    @property
    def loaded(self) -> bool:
        return self.module is not None and self.failure is None and not self.disabled


@dataclass(frozen=True)
class _Candidate:
    name: str
    source: str
    load: Callable[[], object]


class PluginManager:
    def __init__(self, settings: Settings, runner: CommandRunner) -> None:
        self.settings = settings
        self.runner = runner
        self.pm = pluggy.PluginManager("raspapi")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, Plugin] = {}
        self._status_cache = Cache(ttl=max(settings.cache_ttl, 2.0))
        self._logged: set[tuple[str, str]] = set()

    # -- loading ---------------------------------------------------------------

    def load(self) -> None:
        """Import and register every plugin not disabled; then check hook names."""
        for cand in self._discover():
            if cand.name in self.plugins:
                raise StartupError(
                    f"two plugins are named {cand.name!r}: {self.plugins[cand.name].source} "
                    f"and {cand.source}; rename one (or uninstall it)"
                )
            plugin = Plugin(cand.name, cand.source)
            self.plugins[cand.name] = plugin
            if cand.name in self.settings.disable:
                plugin.disabled = True
                continue
            try:
                module = cand.load()
                self.pm.register(module, name=cand.name)
            except Exception as exc:
                self._fail(plugin, f"cannot load: {_describe(exc)}", exc)
                continue
            plugin.module = module
            plugin.ctx = PluginContext(
                name=cand.name,
                settings=self.settings,
                runner=self.runner,
                cache=Cache(ttl=self.settings.cache_ttl),
                logger=logging.getLogger(f"raspapi.plugin.{cand.name}"),
                hooks=self,
            )
        for name in sorted(self.settings.disable - self.plugins.keys()):
            log.warning("RASPAPI_DISABLE names %r, but no plugin has that name", name)
        self._check_hook_names()

    def _discover(self) -> Iterator[_Candidate]:
        package = importlib.import_module(BUILTIN_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                yield _Candidate(info.name, "builtin", _importer(f"{BUILTIN_PACKAGE}.{info.name}"))
        if self.settings.entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else "?"
                yield _Candidate(ep.name, f"package {dist}", ep.load)
        folder = self.settings.plugins_dir
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                if not path.name.startswith((".", "_")):
                    yield _Candidate(path.stem, f"file {path}", _file_loader(path))

    def _check_hook_names(self) -> None:
        known = {name for name in dir(hookspecs) if name.startswith("raspapi_")}
        for name, plugin in self.plugins.items():
            if not plugin.loaded:
                continue
            for caller in self.pm.get_hookcallers(plugin.module) or []:
                if caller.name not in known:
                    raise StartupError(
                        f"plugin {name!r} ({plugin.source}) implements unknown hook "
                        f"{caller.name!r}; known hooks: {', '.join(sorted(known))}"
                    )
            for attr in dir(plugin.module):
                if attr.startswith("raspapi_") and attr not in known:
                    raise StartupError(
                        f"plugin {name!r} ({plugin.source}) defines {attr!r}, which is not a "
                        f"hook; known hooks: {', '.join(sorted(known))}"
                    )
        self.pm.check_pending()

    # -- calling hooks ---------------------------------------------------------

    def _impls(self, hook: str) -> Iterator[tuple[Plugin, pluggy.HookImpl]]:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            plugin = self.plugins.get(impl.plugin_name)
            if plugin is not None and plugin.loaded:
                yield plugin, impl

    def call(self, plugin: Plugin, impl: pluggy.HookImpl) -> Any:
        kwargs = {"ctx": plugin.ctx}
        return impl.function(*[kwargs[name] for name in impl.argnames])

    async def acall(self, plugin: Plugin, impl: pluggy.HookImpl) -> Any:
        result = self.call(plugin, impl)
        if inspect.isawaitable(result):
            async with asyncio.timeout(HOOK_TIMEOUT):
                result = await result
        return result

    def collect_routes(self) -> list[ApiRoute]:
        """Every plugin's routes, relocated under its namespace (or the root)."""
        taken: dict[tuple[str, str], str] = {}
        out: list[ApiRoute] = []
        for hook, legacy in (("raspapi_legacy_routes", True), ("raspapi_routes", False)):
            for plugin, impl in self._impls(hook):
                try:
                    routes = self._plugin_routes(plugin, impl, legacy, taken)
                except Exception as exc:
                    self._fail(plugin, f"cannot build routes: {_describe(exc)}", exc)
                    continue
                plugin.routes.extend(routes)
                out.extend(routes)
        return out

    def _plugin_routes(
        self, plugin: Plugin, impl: pluggy.HookImpl, legacy: bool, taken: dict[tuple[str, str], str]
    ) -> list[ApiRoute]:
        result = self.call(plugin, impl) or []
        prefix = "" if legacy else f"/api/v1/{plugin.name}"
        routes: list[ApiRoute] = []
        for route in result:
            if not isinstance(route, Route):
                raise TypeError(f"expected starlette Route objects, got {type(route).__name__}")
            api = ApiRoute.from_route(route)
            path = api.path if legacy else prefix + ("" if api.path == "/" else api.path)
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
        for plugin, impl in list(self._impls("raspapi_startup")):
            try:
                await self.acall(plugin, impl)
            except Exception as exc:
                self._fail(plugin, f"failed to start: {_describe(exc)}", exc)

    async def shutdown(self) -> None:
        for plugin, impl in reversed(list(self._impls("raspapi_shutdown"))):
            try:
                await self.acall(plugin, impl)
            except Exception as exc:
                log.warning("plugin %r raised while stopping: %s", plugin.name, _describe(exc))
        for plugin in self.plugins.values():
            if plugin.ctx is not None:
                plugin.ctx.close()

    async def status(self, name: str) -> Status:
        """The plugin's current status (its self-check is cached briefly)."""
        plugin = self.plugins[name]
        if plugin.disabled:
            return Status("disabled", "disabled by RASPAPI_DISABLE")
        if plugin.failure is not None:
            return Status.failed(plugin.failure)
        status: Status = await self._status_cache.get(name, lambda: self._check(plugin))
        return status

    async def _check(self, plugin: Plugin) -> Status:
        status = Status.ok()
        for owner, impl in self._impls("raspapi_status"):
            if owner is not plugin:
                continue
            try:
                result = await self.acall(owner, impl)
            except Exception as exc:
                status = Status.failed(f"self-check raised {_describe(exc)}")
            else:
                if result is not None and not isinstance(result, Status):
                    status = Status.failed(f"self-check returned {type(result).__name__}")
                elif result is not None:
                    status = result
        if plugin.last_status is None or plugin.last_status.state != status.state:
            level = logging.INFO if status.state == "ok" else logging.WARNING
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
        names = list(self.plugins)
        results = await asyncio.gather(*(self.status(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def system_fields(self) -> dict[str, Any]:
        """Every plugin's contribution to RaspAP's ``/system``."""
        merged: dict[str, Any] = {}
        for plugin, impl in self._impls("raspapi_system_fields"):
            try:
                result = await self.acall(plugin, impl)
            except Exception as exc:
                self._log_once(plugin, "system_fields", exc)
                continue
            if isinstance(result, dict):
                merged.update(result)
        return merged

    # -- failures --------------------------------------------------------------

    def _fail(self, plugin: Plugin, reason: str, exc: BaseException) -> None:
        plugin.failure = reason
        log.error("plugin %r failed: %s", plugin.name, reason, exc_info=exc)

    def _log_once(self, plugin: Plugin, where: str, exc: BaseException) -> None:
        key = (plugin.name, f"{where}:{type(exc).__name__}")
        if key not in self._logged:
            self._logged.add(key)
            log.error(
                "plugin %r raised in %s: %s", plugin.name, where, _describe(exc), exc_info=exc
            )


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

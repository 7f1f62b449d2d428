"""Deferred plugin loading (``create_app(deferred=True)``, what ``raspapi serve``
runs): the daemon listens before importing plugins, a request loads the ones it
may need, and answers are the same as with every plugin loaded up front."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.host.runner import CommandRunner
from raspapi.manager import PluginManager
from raspapi.settings import Settings
from raspapi.state import manifest
from tests.conftest import AUTH, MakeClient, http_scope
from tests.test_cli import env_for, free_port, get, stop
from tests.test_plugins import HEALTHY, dropin

#: GET paths whose answers do not change from one call to the next on the
#: fixture machine (no clock, no counters), one or more per built-in plugin.
STABLE_PATHS = (
    "/system",
    "/ap",
    "/clients/wlan0",
    "/dhcp",
    "/dns/domains",
    "/dns/hostnames",
    "/ddns",
    "/firewall",
    "/networking",
    "/openvpn",
    "/wireguard",
    "/api/v1/thermal",
    "/api/v1/wireguard",
    "/api/v1/dhcp/leases",
    "/api/v1/nope",
    "/nope",
)


def _manager(settings: Settings) -> PluginManager:
    return PluginManager(settings, CommandRunner(settings.root))


def _learn(settings: Settings) -> dict[str, manifest.Entry]:
    """The manifest a full load of the built-in plugins writes."""
    with TestClient(create_app(settings, deferred=True), headers=AUTH) as client:
        assert client.get("/ready").status_code == 200
    entries = manifest.read(settings.state_dir / manifest.FILE_NAME)
    assert entries, "the first full load wrote no manifest"
    return entries


def _loaded(manager: PluginManager) -> set[str]:
    return {name for name, plugin in manager.plugins.items() if plugin.module is not None}


def _volatile(body: Any) -> Any:
    """``body`` without the values that change between calls (times)."""
    if isinstance(body, dict):
        return {k: _volatile(v) for k, v in body.items() if k not in ("systime", "uptime")}
    if isinstance(body, list):
        return [_volatile(v) for v in body]
    return body


# -- the manifest ----------------------------------------------------------------


def test_the_manifest_round_trips_and_ignores_what_is_not_it(tmp_path: Path):
    path = tmp_path / "plugins.json"
    entry = manifest.Entry(
        "sig", frozenset({"raspapi_routes"}), ((frozenset({"GET", "HEAD"}), "/x"),)
    )
    manifest.write(path, {"p": entry})
    assert manifest.read(path) == {"p": entry}
    assert os.stat(path).st_mode & 0o777 == 0o644
    for text in ("", "not json", "[]", '{"format": 99, "plugins": {}}', '{"format": 1}'):
        path.write_text(text)
        assert manifest.read(path) == {}, text
    path.write_bytes(b" " * (manifest.MAX_BYTES + 1))
    assert manifest.read(path) == {}
    assert manifest.read(tmp_path / "missing.json") == {}


def test_a_signature_changes_with_any_file_of_the_plugin(tmp_path: Path):
    package = tmp_path / "demo"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (package / "sub" / "mod.py").write_text("y = 2\n")
    (package / "notes.txt").write_text("not code")
    first = manifest.signature("1.0", package)
    assert first is not None and first == manifest.signature("1.0", package)
    assert manifest.signature("1.1", package) != first
    (package / "notes.txt").write_text("still not code")
    assert manifest.signature("1.0", package) == first
    (package / "sub" / "mod.py").write_text("y = 22\n")
    second = manifest.signature("1.0", package)
    assert second != first
    (package / "sub" / "new.py").write_text("")
    assert manifest.signature("1.0", package) != second
    single = tmp_path / "single.py"
    single.write_text("z = 3\n")
    before = manifest.signature("file", single)
    os.utime(single, ns=(0, 0))
    assert manifest.signature("file", single) != before
    assert manifest.signature("file", tmp_path / "gone.py") is None


# -- which plugins a request needs -----------------------------------------------


def test_nothing_is_imported_until_a_request_or_the_server_asks(settings: Settings):
    manager = _manager(settings)
    manager.defer({})
    assert manager.loading
    assert _loaded(manager) == set()
    assert manager.needed_for("/health") == set()
    # Without a manifest every plugin is unknown: a request needs them all.
    assert manager.needed_for("/system") == set(manager._pending)


def test_with_a_manifest_a_request_needs_only_its_plugin_and_hook_owners(settings: Settings):
    known = _learn(settings)
    manager = _manager(settings)
    manager.defer(known)
    assert manager.known.keys() == known.keys()
    assert manager.needed_for("/system") == {"system"}
    assert manager.needed_for("/api/v1/wireguard/wg0/peers/abc") == {"wireguard"}
    assert manager.needed_for("/api/v1/keys") == set(manager._pending)  # a core route

    async def system_fields() -> dict[str, Any]:
        await manager.ensure(["system"])
        return await manager.system_fields()

    fields = asyncio.run(system_fields())
    # /system's fields come from the plugins implementing that hook, loaded for it.
    owners = {n for n, e in known.items() if "raspapi_system_fields" in e.hooks}
    assert owners == {"hostapd", "thermal"}
    assert _loaded(manager) == {"system"} | owners
    assert "hostapdStatus" in fields and "systemTemperature" in fields


def test_a_plugin_whose_files_changed_is_loaded_for_every_need(settings: Settings):
    known = _learn(settings)
    stale = {**known, "dhcp": known["dhcp"]._replace(signature="an older dhcp")}
    manager = _manager(settings)
    manager.defer(stale)
    assert "dhcp" not in manager.known
    assert manager.needed_for("/system") == {"system", "dhcp"}


def test_a_wrong_manifest_changes_only_the_order_of_loading(settings: Settings):
    known = _learn(settings)
    # /system claimed by thermal, and /thermal-only hooks claimed by nobody.
    wrong = {
        name: entry._replace(
            routes=((frozenset({"GET"}), "/system"),) if name == "thermal" else (),
            hooks=frozenset(),
        )
        for name, entry in known.items()
    }
    eager = TestClient(create_app(settings), headers=AUTH)
    settings.state_dir.joinpath(manifest.FILE_NAME).write_bytes(b"")
    manifest.write(settings.state_dir / manifest.FILE_NAME, wrong)
    with eager, TestClient(create_app(settings, deferred=True), headers=AUTH) as deferred:
        got = deferred.get("/system")
        assert got.status_code == 200
        assert list(got.json()) == list(eager.get("/system").json())
        assert _volatile(got.json()) == _volatile(eager.get("/system").json())


# -- answers ---------------------------------------------------------------------


@pytest.mark.parametrize("with_manifest", [False, True], ids=["first-start", "manifest"])
def test_deferred_answers_are_the_eager_answers(settings: Settings, with_manifest: bool):
    if with_manifest:
        _learn(settings)
    eager = TestClient(create_app(settings), headers=AUTH, raise_server_exceptions=False)
    deferred = TestClient(
        create_app(settings, deferred=True), headers=AUTH, raise_server_exceptions=False
    )
    with eager, deferred:
        for path in STABLE_PATHS:
            want, got = eager.get(path), deferred.get(path)
            assert got.status_code == want.status_code, path
            if want.headers["content-type"].startswith("application/json"):
                assert list(got.json()) == list(want.json()), path  # key order too
                assert _volatile(got.json()) == _volatile(want.json()), path
        ready = deferred.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["plugins"] == eager.get("/ready").json()["plugins"]
        app_routes = [getattr(r, "path", "") for r in deferred.app.router.routes]  # type: ignore[attr-defined]
        eager_routes = [getattr(r, "path", "") for r in eager.app.router.routes]  # type: ignore[attr-defined]
        assert app_routes == eager_routes
        assert deferred.get("/openapi.json").json() == eager.get("/openapi.json").json()


def test_hooks_are_called_in_the_order_found_whatever_the_order_loaded(settings: Settings):
    eager = _manager(settings)
    eager.load()
    deferred = _manager(settings)
    deferred.defer({})

    async def load_backwards() -> None:
        for name in reversed(list(deferred._pending)):
            await deferred.ensure([name])

    asyncio.run(load_backwards())
    for hook in ("raspapi_system_fields", "raspapi_samples", "raspapi_metrics", "raspapi_status"):
        want = [p.name for p, _ in eager._impls(hook)]
        assert [p.name for p, _ in deferred._impls(hook)] == want, hook
        assert len(want) > 1, hook


async def _asgi_get(app: Any, path: str) -> int:
    """One GET straight into the ASGI app; its status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(http_scope("GET", path), receive, send)
    return int(sent[0]["status"])


SLOW_START = HEALTHY + textwrap.dedent(
    """
    import asyncio

    @hookimpl
    async def raspapi_startup(ctx):
        await asyncio.sleep(30)
    """
)


def test_health_answers_while_a_plugin_is_still_starting(settings: Settings):
    dropin(settings, "slowstart", SLOW_START)
    app = create_app(settings, deferred=True)
    manager = app.state.runtime.manager

    async def run() -> tuple[int, bool, bool]:
        loading = asyncio.ensure_future(manager.ensure_all())
        for _ in range(500):  # until slowstart is in its 30 s start-up (5 s at most)
            if manager.plugins["slowstart"].starting:
                break
            await asyncio.sleep(0.01)
        try:
            health = await asyncio.wait_for(_asgi_get(app, "/health"), 5)
            return health, manager.loading, app.state.runtime.ready
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)

    health, loading, ready = asyncio.run(run())
    assert health == 200
    assert loading and not ready


EARLY = HEALTHY + textwrap.dedent(
    """
    SEEN = {}

    @hookimpl
    async def raspapi_startup(ctx):
        SEEN.update(await ctx.hooks.system_fields())

    @hookimpl
    def raspapi_system_fields(ctx):
        return {"early": sorted(SEEN)}
    """
)


def test_a_plugin_starting_up_may_gather_a_hook_it_and_plugins_not_loaded_implement(
    settings: Settings,
):
    dropin(settings, "early", EARLY)
    known = _learn(settings)
    assert "raspapi_system_fields" in known["early"].hooks
    manager = _manager(settings)
    manager.defer(known)

    async def run() -> None:
        # Its start-up needs hostapd's and thermal's fields, and its own.
        await asyncio.wait_for(manager.ensure(["early"]), 10)

    asyncio.run(run())
    module = manager.plugins["early"].module
    assert "systemTemperature" in module.SEEN  # type: ignore[attr-defined]
    assert manager.plugins["early"].failure is None
    assert _loaded(manager) == {"early", "hostapd", "thermal"}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_broken_plugin_fails_alone_when_loaded_on_demand(
    settings: Settings, make_client: MakeClient, loop: str
):
    dropin(settings, "broken", "raise RuntimeError('no')\n")
    dropin(settings, "greeter", HEALTHY)
    client = make_client(loop=loop, deferred=True)
    assert client.get("/api/v1/greeter", headers=AUTH).json() == {"hello": "world"}
    broken = client.get("/api/v1/broken/anything", headers=AUTH)
    assert broken.status_code == 503
    assert broken.json()["code"] == "failed"
    ready = client.get("/ready", headers=AUTH).json()
    assert ready["plugins"]["broken"]["state"] == "failed"
    assert ready["plugins"]["greeter"]["state"] == "ok"
    # The broken plugin has no entry: it stays unknown, and is tried again at the next start.
    assert "broken" not in manifest.read(settings.state_dir / manifest.FILE_NAME)


def test_with_every_plugin_disabled_the_daemon_is_ready_at_once(settings: Settings):
    names = {p.name for p in Path(__file__).parents[1].joinpath("plugins").iterdir()}
    disable = frozenset(n.removesuffix(".py") for n in names if not n.startswith("_"))
    app = create_app(settings.with_(disable=disable), deferred=True)
    with TestClient(app) as client:
        assert client.get("/ready").json()["status"] == "ready"


# -- the real daemon --------------------------------------------------------------


@pytest.fixture
def daemon_env(settings: Settings) -> Iterator[dict[str, str]]:
    yield env_for(settings, RASPAPI_LOG_LEVEL="debug", RASPAPI_ACCESS_LOG="off")


def _serve_once(settings: Settings, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "raspapi", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status, body = 0, b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = get(port, "/system", AUTH)
                break
            except OSError:
                time.sleep(0.02)
        ready = 0
        while time.monotonic() < deadline and ready != 200:
            ready = get(port, "/ready")[0]
            time.sleep(0.05)
        assert ready == 200, "never ready"
    finally:
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    return status, json.loads(body), stderr


@pytest.mark.integration
def test_the_daemon_learns_its_plugins_at_the_first_start_and_uses_it_after(
    settings: Settings, daemon_env: dict[str, str]
):
    status, first, log = _serve_once(settings, daemon_env)
    assert status == 200
    entries = manifest.read(settings.state_dir / manifest.FILE_NAME)
    assert {"system", "hostapd", "thermal", "wireguard"} <= entries.keys()
    assert entries["system"].routes and "raspapi_routes" in entries["system"].hooks
    assert log.count("loaded in") == len(entries), log
    written = os.stat(settings.state_dir / manifest.FILE_NAME).st_mtime_ns

    status, second, log = _serve_once(settings, daemon_env)
    assert status == 200
    assert list(second) == list(first)  # RaspAP's keys, in RaspAP's order
    assert _volatile(second) == _volatile(first)
    # Each plugin loaded once; the manifest was right, so it was not rewritten.
    assert log.count("loaded in") == len(entries), log
    assert os.stat(settings.state_dir / manifest.FILE_NAME).st_mtime_ns == written
    assert "Traceback" not in log

"""Every hook is documented and tested; each test_hook_<name> exercises one hook."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

from raspapi import hookspecs
from raspapi.settings import Settings
from tests.conftest import AUTH, KEY, MakeClient

PROJECT = Path(__file__).parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("raspapi_"))


def dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


def test_there_are_hooks():
    assert "raspapi_routes" in HOOKS and len(HOOKS) >= 6


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook: str):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 40, f"{hook} needs a docstring saying when it is called"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_readme(hook: str):
    readme = (PROJECT / "README.md").read_text()
    assert re.search(rf"`{hook}\(", readme), f"README.md must document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str):
    sources = "\n".join(p.read_text() for p in (PROJECT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in sources, f"write a test named test_hook_{hook}"


def test_hook_raspapi_routes(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "lamp",
        """
        from starlette.responses import JSONResponse
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute, Query

        BRIGHTNESS = Query("brightness", int, default=50, minimum=0, maximum=100)

        async def switch(request):
            "Switch the lamp on."
            return JSONResponse({"on": True, "brightness": BRIGHTNESS.parse(request)})

        @hookimpl
        def raspapi_routes(ctx):
            return [ApiRoute("/on", switch, methods=["POST"], scope="control",
                             query=[BRIGHTNESS], response={"type": "object"})]
        """,
    )
    client = make_client()
    assert client.post("/api/v1/lamp/on?brightness=80", headers=AUTH).json() == {
        "on": True,
        "brightness": 80,
    }
    bad = client.post("/api/v1/lamp/on?brightness=101", headers=AUTH)
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": "brightness: must be at most 100",
        "code": "invalid",
        "field": "brightness",
    }
    assert client.post("/api/v1/lamp/on").status_code == 401
    assert client.get("/api/v1/lamp/on", headers=AUTH).status_code == 405
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/lamp/on"]["post"]
    assert operation["summary"] == "Switch the lamp on."
    assert operation["tags"] == ["lamp"]
    assert operation["parameters"][0]["name"] == "brightness"


def test_hook_raspapi_legacy_routes(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "oldschool",
        """
        from starlette.responses import JSONResponse
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute

        async def legacy(request):
            return JSONResponse({"answer": 42})

        @hookimpl
        def raspapi_legacy_routes(ctx):
            return [ApiRoute("/oldschool", legacy)]
        """,
    )
    client = make_client()
    assert client.get("/oldschool", headers=AUTH).json() == {"answer": 42}
    denied = client.get("/oldschool")
    assert denied.status_code == 403
    assert denied.content == b'{"detail":"403: Unauthorized"}'


def test_hook_raspapi_startup(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "starter",
        """
        from raspapi import hookimpl

        @hookimpl
        async def raspapi_startup(ctx):
            ctx.settings.state_dir.mkdir(parents=True, exist_ok=True)
            (ctx.settings.state_dir / "started").write_text(ctx.name)
        """,
    )
    make_client()
    assert (settings.state_dir / "started").read_text() == "starter"


def test_hook_raspapi_shutdown(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "stopper",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_shutdown(ctx):
            ctx.settings.state_dir.mkdir(parents=True, exist_ok=True)
            (ctx.settings.state_dir / "stopped").write_text("bye")
        """,
    )
    from starlette.testclient import TestClient

    from raspapi.app import create_app

    with TestClient(create_app(settings)):
        assert not (settings.state_dir / "stopped").exists()
    assert (settings.state_dir / "stopped").read_text() == "bye"


def test_hook_raspapi_status(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "gauge",
        """
        from raspapi import hookimpl
        from raspapi.context import Status

        @hookimpl
        async def raspapi_status(ctx):
            return Status.ok(sensors=3)
        """,
    )
    plugins = make_client().get("/ready", headers=AUTH).json()["plugins"]
    assert plugins["gauge"] == {
        "source": f"file {settings.plugins_dir / 'gauge.py'}",
        "state": "ok",
        "reason": None,
        "details": {"sensors": 3},
    }


def test_hook_raspapi_system_fields(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "probe",
        """
        from raspapi import hookimpl

        @hookimpl
        async def raspapi_system_fields(ctx):
            return {"systemTemperature": "61.237", "hostapdStatus": True, "bogus": 1}
        """,
    )
    client = make_client(disable=frozenset({"thermal", "hostapd"}))
    body = client.get("/system", headers={"access_token": KEY}).json()
    assert body["systemTemperature"] == 61.24
    assert body["hostapdStatus"] == 1
    assert "bogus" not in body
    assert len(body) == 14


def test_the_hooks_protocol_follows_the_hookspecs():
    """ctx.hooks cannot go stale: each of its methods is a hook's merge, named after it."""
    from raspapi.context import Hooks
    from raspapi.manager import PluginManager

    methods = {
        name for name, value in vars(Hooks).items() if callable(value) and not name.startswith("_")
    }
    assert "gather" in methods
    for name in methods - {"gather"}:
        assert hasattr(hookspecs, f"raspapi_{name}"), f"Hooks.{name} has no hook raspapi_{name}"
        assert inspect.iscoroutinefunction(getattr(PluginManager, name))
    assert inspect.iscoroutinefunction(PluginManager.gather)


def test_ctx_hooks_gather_calls_any_hook(tmp_path: Path):
    from raspapi.testing import make_app
    from tests.test_testing import module_from

    source = """
    from raspapi.plugin import Panel, hookimpl

    @hookimpl
    async def raspapi_admin_panels(ctx):
        if ctx.name == "broken":
            raise RuntimeError("no panel")
        return Panel(ctx.name)

    @hookimpl
    def raspapi_startup(ctx):
        ctx.state["hooks"] = ctx.hooks
    """
    modules = []
    for name in ("one", "two", "broken"):
        module = module_from(tmp_path, name, source)
        module.__name__ = name
        modules.append(module)
    with make_app(plugins=modules, root=tmp_path) as client:
        manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
        hooks = manager.plugins["one"].ctx.state["hooks"]
        found = client.portal.call(hooks.gather, "raspapi_admin_panels")  # type: ignore[union-attr]
        assert {name: panel.title for name, panel in found.items()} == {"one": "one", "two": "two"}
        with pytest.raises(ValueError, match="not a hook"):
            client.portal.call(hooks.gather, "raspapi_nothing")  # type: ignore[union-attr]


def test_a_plugins_wrapper_wraps_every_plugins_call(tmp_path: Path):
    """A ``wrapper=True`` implementation (a tracing or caching plugin) runs around
    each other plugin's call, and is not called as a contribution itself."""
    from raspapi.testing import make_app
    from tests.test_testing import module_from

    panel = """
    from raspapi.plugin import Panel, hookimpl

    @hookimpl
    async def raspapi_admin_panels(ctx):
        return Panel(ctx.name)

    @hookimpl
    def raspapi_startup(ctx):
        ctx.state["hooks"] = ctx.hooks
    """
    spy = """
    from raspapi.plugin import hookimpl

    SEEN = []

    @hookimpl(wrapper=True)
    def raspapi_admin_panels(ctx):
        SEEN.append(ctx.name)
        return (yield)
    """
    modules = []
    for name, source in (("one", panel), ("two", panel), ("spy", spy)):
        module = module_from(tmp_path, name, source)
        module.__name__ = name
        modules.append(module)
    with make_app(plugins=modules, root=tmp_path) as client:
        manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
        hooks = manager.plugins["one"].ctx.state["hooks"]
        found = client.portal.call(hooks.gather, "raspapi_admin_panels")  # type: ignore[union-attr]
    assert sorted(found) == ["one", "two"]
    assert sorted(modules[2].SEEN) == ["one", "two"]

"""raspapi.testing.make_app: the harness plugin authors test with."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from raspapi.testing import make_app

README = Path(__file__).parents[1] / "README.md"


def module_from(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"_raspapi_test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_example(tmp_path: Path) -> ModuleType:
    match = re.search(r"<!-- example-plugin -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match
    module = module_from(tmp_path, "uptime", match.group(1))
    module.__name__ = "uptime"  # the plugin's name, as a drop-in file's stem
    return module


def test_make_app_serves_only_the_given_plugin(tmp_path: Path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "uptime").write_text("12.50 40.00\n")
    with make_app(plugins=[readme_example(tmp_path)], root=root) as client:
        assert client.get("/api/v1/uptime").json() == {"uptime_seconds": 12.5}
        ready = client.get("/ready").json()
        assert list(ready["plugins"]) == ["uptime"]  # no built-in plugin loaded
        assert ready["plugins"]["uptime"]["state"] == "ok"
        assert client.get("/api/v1/uptime", headers={"access_token": ""}).status_code == 401


def test_the_readme_example_answers_503_when_the_file_is_absent(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    with make_app(plugins=[readme_example(tmp_path)], root=root) as client:
        response = client.get("/api/v1/uptime")
        assert response.status_code == 503
        assert response.json()["detail"] == "/proc/uptime is absent"


def test_make_app_passes_options_and_runs_startup(tmp_path: Path):
    module = module_from(
        tmp_path,
        "limits",
        """
        from starlette.responses import JSONResponse
        from raspapi.plugin import ApiRoute, hookimpl

        @hookimpl
        async def raspapi_startup(ctx):
            ctx.state["limit"] = ctx.option("limit", int, 5, min=1, max=10)

        @hookimpl
        def raspapi_routes(ctx):
            async def show(request):
                return JSONResponse({"limit": ctx.state["limit"]})
            return [ApiRoute("/", show)]
        """,
    )
    module.__name__ = "limits"
    with make_app(plugins=[module], root=tmp_path, env={"RASPAPI_LIMITS_LIMIT": "7"}) as client:
        assert client.get("/api/v1/limits").json() == {"limit": 7}
    with make_app(plugins=[module], root=tmp_path, env={"RASPAPI_LIMITS_LIMIT": "70"}) as client:
        state = client.get("/ready").json()["plugins"]["limits"]
        assert state["state"] == "failed"
        assert "RASPAPI_LIMITS_LIMIT='70' is not a whole number from 1 to 10" in state["reason"]


@pytest.mark.parametrize("name", ["thermal"])
def test_make_app_loads_a_built_in_plugin(name: str):
    module = sys.modules.get(f"raspapi.plugins.{name}") or importlib.import_module(
        f"raspapi.plugins.{name}"
    )
    root = Path(__file__).parent / "fixtures" / "root"
    with make_app(plugins=[module], root=root) as client:
        assert client.get("/ready").json()["plugins"][name]["state"] == "ok"
        assert client.get(f"/api/v1/{name}").status_code == 200


def test_hooks_go_through_pluggy_so_monitoring_sees_them(tmp_path: Path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "uptime").write_text("1 1\n")
    module = module_from(
        tmp_path,
        "watched",
        """
        from raspapi.plugin import Status, hookimpl

        @hookimpl
        async def raspapi_startup(ctx):
            ctx.state["started"] = True

        @hookimpl
        def raspapi_status(ctx):
            return Status.ok(started=ctx.state.get("started", False))
        """,
    )
    module.__name__ = "watched"
    seen: list[tuple[str, str]] = []
    client = make_app(plugins=[module, readme_example(tmp_path)], root=root)
    pm = client.app.state.runtime.manager.pm  # type: ignore[attr-defined]

    def before(hook_name, hook_impls, kwargs):
        seen.extend((hook_name, impl.plugin_name) for impl in hook_impls)

    undo = pm.add_hookcall_monitoring(before, lambda *args: None)
    try:
        with client:
            state = client.get("/ready").json()["plugins"]["watched"]
    finally:
        undo()
    assert state == {
        "source": f"module {module.__name__}",
        "state": "ok",
        "reason": None,
        "details": {"started": True},
    }
    assert ("raspapi_startup", "watched") in seen
    assert ("raspapi_status", "watched") in seen
    # Each plugin is called on its own: never a call carrying another's hooks.
    assert all(plugin == "watched" for hook, plugin in seen if hook == "raspapi_status")

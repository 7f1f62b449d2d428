"""Plugin loading and isolation: one broken plugin never takes the daemon down."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.http.errors import StartupError
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient

HEALTHY = """
from starlette.responses import JSONResponse
from raspapi import hookimpl
from raspapi.http.routing import ApiRoute

async def hello(request):
    return JSONResponse({"hello": "world"})

@hookimpl
def raspapi_routes(ctx):
    return [ApiRoute("/", hello)]
"""


@pytest.fixture(params=["eager", "deferred"])
def make_client(make_client: MakeClient, request: pytest.FixtureRequest) -> MakeClient:
    """Each test once with every plugin loaded up front (``create_app``), once as
    ``raspapi serve`` loads them (on demand): isolation holds in both."""
    deferred = request.param == "deferred"
    return lambda loop="asyncio", **changes: make_client(loop, deferred=deferred, **changes)


def dropin(settings: Settings, name: str, source: str) -> Path:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    path = settings.plugins_dir / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def plugin_state(client: TestClient, name: str) -> dict[str, object]:
    body = client.get("/ready", headers=AUTH).json()
    state: dict[str, object] = body["plugins"][name]
    return state


def test_dropin_plugin_serves_under_its_namespace(settings: Settings, make_client: MakeClient):
    dropin(settings, "greeter", HEALTHY)
    client = make_client()
    assert client.get("/api/v1/greeter", headers=AUTH).json() == {"hello": "world"}
    state = plugin_state(client, "greeter")
    assert state["state"] == "ok"
    assert str(state["source"]).startswith("file ")


def test_a_route_path_starting_with_a_dot_is_the_namespaces_sibling(
    settings: Settings, make_client: MakeClient
):
    dropin(
        settings,
        "greeter",
        HEALTHY.replace(
            '[ApiRoute("/", hello)]', '[ApiRoute("/", hello), ApiRoute("/.txt", hello)]'
        ),
    )
    client = make_client()
    assert client.get("/api/v1/greeter.txt", headers=AUTH).json() == {"hello": "world"}
    assert client.get("/api/v1/greeter/.txt", headers=AUTH).status_code == 404
    assert "/api/v1/greeter.txt" in client.get("/openapi.json").json()["paths"]


def test_plugin_raising_at_import_is_failed_and_the_rest_serves(
    settings: Settings, make_client: MakeClient
):
    dropin(settings, "greeter", HEALTHY)
    dropin(settings, "broken", "raise RuntimeError('no coffee')\n")
    client = make_client()
    state = plugin_state(client, "broken")
    assert state["state"] == "failed"
    assert "no coffee" in str(state["reason"])
    response = client.get("/api/v1/broken/anything", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "failed"
    assert "no coffee" in response.json()["detail"]
    assert client.get("/api/v1/greeter", headers=AUTH).status_code == 200


def test_plugin_raising_at_startup_answers_503(settings: Settings, make_client: MakeClient):
    dropin(settings, "greeter", HEALTHY)
    dropin(
        settings,
        "fragile",
        HEALTHY.replace("hello", "fragile_hello")
        + "\n@hookimpl\nasync def raspapi_startup(ctx):\n    raise OSError('socket gone')\n",
    )
    client = make_client()
    response = client.get("/api/v1/fragile", headers=AUTH)
    assert response.status_code == 503
    assert "socket gone" in response.json()["detail"]
    assert plugin_state(client, "fragile")["state"] == "failed"
    assert client.get("/api/v1/greeter", headers=AUTH).status_code == 200


def test_plugin_raising_in_a_request_gets_json_500_and_the_rest_serves(
    settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    dropin(settings, "greeter", HEALTHY)
    dropin(
        settings,
        "buggy",
        """
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute

        async def boom(request):
            return {}["missing"]

        @hookimpl
        def raspapi_routes(ctx):
            return [ApiRoute("/", boom)]
        """,
    )
    client = make_client()
    response = client.get("/api/v1/buggy", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "code": "internal_error"}
    assert "Traceback" not in response.text
    assert "plugin 'buggy' raised" in caplog.text
    assert client.get("/api/v1/greeter", headers=AUTH).status_code == 200
    # It counts toward the plugin's status: degraded, with the last error named
    # by type and route only (/ready is open to anyone), and it keeps serving.
    state = plugin_state(client, "buggy")
    assert state["state"] == "degraded"
    assert state["reason"] == "a request handler raised: KeyError on GET /api/v1/buggy"
    assert state["details"]["handler_errors"] == 1  # type: ignore[index]
    assert client.get("/api/v1/buggy", headers=AUTH).status_code == 500
    assert plugin_state(client, "buggy")["details"]["handler_errors"] == 2  # type: ignore[index]
    assert plugin_state(client, "greeter")["state"] == "ok"


def test_plugin_raising_in_its_self_check_is_failed(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "selfish",
        HEALTHY + "\n@hookimpl\ndef raspapi_status(ctx):\n    raise ValueError('bad sensor')\n",
    )
    client = make_client()
    state = plugin_state(client, "selfish")
    assert state["state"] == "failed"
    assert "bad sensor" in str(state["reason"])
    assert client.get("/api/v1/selfish", headers=AUTH).status_code == 503


def test_plugin_without_any_hookimpl_is_failed(settings: Settings, make_client: MakeClient):
    dropin(settings, "greeter", HEALTHY)
    # The marker forgotten: the function is never registered as a hook.
    dropin(settings, "forgetful", HEALTHY.replace("@hookimpl\n", ""))
    client = make_client()
    state = plugin_state(client, "forgetful")
    assert state["state"] == "failed"
    assert "no hooks found" in str(state["reason"])
    response = client.get("/api/v1/forgetful", headers=AUTH)
    assert response.status_code == 503
    assert "no hooks found" in response.json()["detail"]
    assert plugin_state(client, "greeter")["state"] == "ok"


def test_disabled_plugin_is_not_even_imported(settings: Settings, make_client: MakeClient):
    dropin(settings, "broken", "raise RuntimeError('must not run')\n")
    client = make_client(disable=frozenset({"broken"}))
    assert plugin_state(client, "broken") == {
        "source": f"file {settings.plugins_dir / 'broken.py'}",
        "state": "disabled",
        "reason": "disabled by RASPAPI_DISABLE",
    }
    assert client.get("/api/v1/broken", headers=AUTH).status_code == 404


def test_misspelt_hook_marks_the_plugin_failed_and_the_rest_serves(
    settings: Settings, make_client: MakeClient
):
    # Under systemd a start-up error is a restart loop: the daemon must keep serving.
    dropin(settings, "greeter", HEALTHY)
    dropin(
        settings,
        "typo",
        HEALTHY.replace("hello", "typo_hello").replace("raspapi_routes", "raspapi_rotues"),
    )
    dropin(settings, "unmarked", "def raspapi_startpu(ctx):\n    pass\n")
    client = make_client()
    state = plugin_state(client, "typo")
    assert state["state"] == "failed"
    assert "unknown hook 'raspapi_rotues'" in str(state["reason"])
    assert "raspapi_routes" in str(state["reason"])  # the known hooks are listed
    assert "unknown hook 'raspapi_startpu'" in str(plugin_state(client, "unmarked")["reason"])
    response = client.get("/api/v1/typo", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "failed"
    assert client.get("/api/v1/greeter", headers=AUTH).json() == {"hello": "world"}
    assert plugin_state(client, "greeter")["state"] == "ok"


def installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """An installed package, as pip leaves it: a module and a dist-info with an
    entry point in the "raspapi" group."""
    site = tmp_path / "site"
    module = f"raspapi_{name}"
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(HEALTHY))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[raspapi]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_entry_point_plugins_are_loaded(
    tmp_path: Path, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    installed_package(tmp_path, monkeypatch, "hello")
    client = make_client(entry_points=True)
    assert client.get("/api/v1/hello", headers=AUTH).json() == {"hello": "world"}
    assert plugin_state(client, "hello")["source"] == "package raspapi_hello"


def test_duplicate_plugin_names_fail_at_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    installed_package(tmp_path, monkeypatch, "greeter")
    dropin(settings, "greeter", HEALTHY)
    with pytest.raises(StartupError, match=r"two plugins are named 'greeter': package raspapi_gr"):
        create_app(settings.with_(entry_points=True))


def test_unavailable_plugin_answers_503_on_api_but_legacy_keeps_working(
    settings: Settings, make_client: MakeClient
):
    dropin(
        settings,
        "radio",
        """
        from starlette.responses import JSONResponse
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute
        from raspapi.context import Status

        async def live(request):
            return JSONResponse({"live": True})

        async def legacy(request):
            return JSONResponse({"ssid": ""})

        @hookimpl
        def raspapi_routes(ctx):
            return [ApiRoute("/", live)]

        @hookimpl
        def raspapi_legacy_routes(ctx):
            return [ApiRoute("/radio", legacy)]

        @hookimpl
        def raspapi_status(ctx):
            return Status.unavailable("no control socket at /var/run/hostapd/wlan0")
        """,
    )
    client = make_client()
    response = client.get("/api/v1/radio", headers=AUTH)
    assert response.status_code == 503
    assert response.json() == {
        "detail": "plugin 'radio' is unavailable: no control socket at /var/run/hostapd/wlan0",
        "code": "unavailable",
    }
    assert client.get("/radio", headers=AUTH).json() == {"ssid": ""}
    assert plugin_state(client, "radio")["state"] == "unavailable"


def test_route_clash_fails_the_later_plugin_only(settings: Settings, make_client: MakeClient):
    clash = """
        from starlette.responses import JSONResponse
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute

        async def mine(request):
            return JSONResponse({"owner": __name__})

        @hookimpl
        def raspapi_legacy_routes(ctx):
            return [ApiRoute("/shared-path", mine)]
        """
    dropin(settings, "aaa", clash)
    dropin(settings, "bbb", clash)
    client = make_client()
    assert client.get("/shared-path", headers=AUTH).json() == {"owner": "_raspapi_dropin_aaa"}
    state = plugin_state(client, "bbb")
    assert state["state"] == "failed"
    assert "already served by plugin 'aaa'" in str(state["reason"])


def test_fixed_paths_win_over_parameters_whatever_the_order(
    settings: Settings, make_client: MakeClient
):
    dropin(
        settings,
        "shelf",
        """
        from starlette.responses import JSONResponse
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute

        async def item(request):
            return JSONResponse({"item": request.path_params["name"]})

        async def latest(request):
            return JSONResponse({"latest": True})

        @hookimpl
        def raspapi_routes(ctx):
            return [ApiRoute("/{name}", item), ApiRoute("/latest", latest)]
        """,
    )
    client = make_client()
    assert client.get("/api/v1/shelf/latest", headers=AUTH).json() == {"latest": True}
    assert client.get("/api/v1/shelf/book", headers=AUTH).json() == {"item": "book"}
    assert client.post("/api/v1/shelf/latest", headers=AUTH).status_code == 405
    assert (
        client.get("/api/v1/shelf/latest/", headers=AUTH, follow_redirects=False).status_code == 307
    )

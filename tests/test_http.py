"""RaspAP's generic HTTP behaviour, JSON errors, OpenAPI and the bundled docs."""

from __future__ import annotations

import re
from unittest.mock import ANY

from starlette.testclient import TestClient

from raspapi import __version__
from raspapi.http.endpoints import webui_dir
from tests.conftest import AUTH


def test_unknown_path_is_raspaps_404(client: TestClient):
    response = client.get("/no/such/thing", headers=AUTH)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"detail":"Not Found"}'


def test_unknown_api_path_adds_a_code(client: TestClient):
    response = client.get("/api/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "not_found"}


def test_wrong_method_is_raspaps_405(client: TestClient):
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.content == b'{"detail":"Method Not Allowed"}'
    assert "GET" in response.headers["allow"]


def test_trailing_slash_redirects_307(client: TestClient):
    response = client.get("/health/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/health")


def test_health_needs_no_key(client: TestClient):
    body = client.get("/health").json()
    assert body == {"status": "ok", "version": __version__, "uptime_seconds": ANY}


def test_health_uptime_is_the_hosts(client: TestClient):
    """V6Direct's field: the host's seconds since boot, as /proc/uptime counts them."""
    with open("/proc/uptime") as fh:
        before = float(fh.read().split()[0])
    uptime = client.get("/health").json()["uptime_seconds"]
    with open("/proc/uptime") as fh:
        after = float(fh.read().split()[0])
    assert isinstance(uptime, int)
    assert int(before) <= uptime <= int(after) + 1


def test_ready_lists_every_plugin(client: TestClient):
    body = client.get("/ready", headers=AUTH).json()
    assert body["status"] == "ready"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["started_at"])
    app_plugins = client.app.state.runtime.manager.plugins  # type: ignore[attr-defined]
    assert set(body["plugins"]) == set(app_plugins)
    for state in body["plugins"].values():
        assert state["state"] in ("ok", "unavailable", "failed", "disabled")


def test_index_lists_version_and_endpoints(client: TestClient):
    body = client.get("/", headers=AUTH).json()
    assert body["version"] == __version__
    paths = {e["path"] for e in body["endpoints"]}
    assert {"/", "/health", "/ready"} <= paths
    assert client.get("/").status_code == 401


def test_openapi_document(client: TestClient):
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "access_token",
    }
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for route in runtime.routes:
        if not route.include_in_schema:
            continue
        path = re.sub(r"{([^}:]+)(?::[^}]+)?}", r"{\1}", route.path)
        assert path in document["paths"], path
        for method in route.methods - {"HEAD"}:
            operation = document["paths"][path][method.lower()]
            assert operation["summary"]
            if route.scope is None:
                assert "security" not in operation
            else:
                assert {"APIKeyHeader": []} in operation["security"]
            if not route.legacy and route.plugin and method == "GET":
                content = operation["responses"]["200"]["content"]
                # JSON, or the type the route really sends (text/csv, text/event-stream).
                schema = content.get("application/json", content[route.media_types[0]])["schema"]
                assert schema, f"{route.path} documents its response schema"
            # Docstrings are dedented (inspect.cleandoc) whether the handler is a
            # function or a method: no description line keeps the source's indent.
            for line in operation.get("description", "").splitlines():
                assert not line.startswith("    "), (route.path, line)


def test_docs_are_served_from_bundled_assets(client: TestClient):
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "http://" not in html and "https://" not in html, "no CDN"
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert "<script>" not in html, "no inline scripts (CSP)"
    assert (webui_dir() / "static" / "vendor" / "swagger-ui" / "LICENSE").is_file()


def test_errors_never_carry_a_traceback(client: TestClient):
    response = client.get("/api/v1/%00%ff/..", headers=AUTH)
    assert response.status_code in (404, 307)
    assert "Traceback" not in response.text


def _compiled_paths(client: TestClient) -> set[str]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return {route.path for route in runtime.routes if "path_regex" in vars(route)}


def test_route_regexes_are_compiled_on_first_use_not_at_start(client: TestClient):
    # About 200 routes, each compiled twice at start, cost a tenth of a second
    # of start-up on a Pi core; the router finds parameterless paths by name.
    assert _compiled_paths(client) == set()
    assert client.get("/system", headers=AUTH).status_code == 200
    assert client.get("/api/v1/thermal", headers=AUTH).status_code == 200
    assert _compiled_paths(client) == {"/system", "/api/v1/thermal"}


def test_routes_with_parameters_and_wrong_methods_still_route(client: TestClient):
    # Matched through the route's regex and its convertors: the handler answers
    # (404 for an interface that does not exist, 422 for a name that cannot be one).
    assert client.get("/api/v1/wireguard/wg9", headers=AUTH).status_code == 404
    assert client.get("/api/v1/wireguard/bad-name!", headers=AUTH).status_code == 422
    assert client.delete("/system", headers=AUTH).status_code == 405
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    route = next(r for r in runtime.routes if r.path == "/api/v1/wireguard/{interface}")
    assert route.param_convertors.keys() == {"interface"}
    assert route.path_regex.match("/api/v1/wireguard/wg0")
    assert route.url_path_for(route.name, interface="wg0") == "/api/v1/wireguard/wg0"

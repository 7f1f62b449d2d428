"""RASPAPI_DISABLE_ROUTES: routes turned off answer 503 with Retry-After and a reason."""

from __future__ import annotations

import logging

import pytest

from raspapi.http.errors import StartupError
from raspapi.http.switches import RouteSwitch, parse_disabled_routes
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient


def assert_off(response, what: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "3600"
    body = response.json()
    assert body["code"] == "route_disabled"
    assert what in body["detail"] and "RASPAPI_DISABLE_ROUTES" in body["detail"]


def test_routes_turned_off_answer_503(make_client: MakeClient):
    client = make_client(disable_routes=parse_disabled_routes("GET /system, /api/v1/thermal*"))
    assert_off(client.get("/system", headers=AUTH), "GET /system")
    assert_off(client.get("/api/v1/thermal", headers=AUTH), "GET /api/v1/thermal")
    assert client.head("/system", headers=AUTH).status_code == 503  # GET takes HEAD along
    # Everything else answers as usual.
    assert client.get("/api/v1/system", headers=AUTH).status_code == 200
    assert client.get("/ready", headers=AUTH).status_code == 200


def test_a_prefix_takes_every_template_under_it(make_client: MakeClient):
    client = make_client(disable_routes=parse_disabled_routes("/api/v1/networking/*"))
    assert_off(client.get("/api/v1/networking/eth0", headers=AUTH), "/{interface}")
    assert client.get("/api/v1/networking", headers=AUTH).status_code == 200  # not under "/"


def test_one_method_only(make_client: MakeClient):
    client = make_client(disable_routes=parse_disabled_routes("post /api/v1/keys"))
    response = client.post("/api/v1/keys", headers=AUTH, json={"name": "x", "scopes": ["read"]})
    assert_off(response, "POST /api/v1/keys")
    assert client.get("/api/v1/keys", headers=AUTH).status_code == 200


def test_the_key_is_checked_first(make_client: MakeClient):
    client = make_client(disable_routes=parse_disabled_routes("/system"))
    assert client.get("/system").status_code == 403  # RaspAP's answer to no key
    assert client.get("/api/v1/thermal").status_code == 401


def test_an_entry_matching_nothing_is_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING):
        make_client(disable_routes=parse_disabled_routes("/api/v1/thremal, /system"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("'/api/v1/thremal' matches no route" in m for m in messages)
    assert not any("'/system' matches" in m for m in messages)


def test_syntax():
    assert parse_disabled_routes(" GET /dns/logs , /api/v1/services* ,") == (
        RouteSwitch("GET", "/dns/logs"),
        RouteSwitch(None, "/api/v1/services", prefix=True),
    )
    assert parse_disabled_routes("") == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FETCH /system", "'FETCH' is not one of GET, POST, PUT, PATCH, DELETE"),
        ("GET /a /b", "is not [METHOD] PATH"),
        ("system", "must start with /"),
        ("/a*/b", "may end with one * only"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, value: str, message: str):
    with pytest.raises(StartupError) as err:
        Settings.from_env(
            {"RASPAPI_DISABLE_ROUTES": value, "RASPAPI_ENV_FILE": str(tmp_path / "e")}
        )
    assert "RASPAPI_DISABLE_ROUTES" in str(err.value) and message in str(err.value)


def test_from_the_environment(tmp_path):
    settings = Settings.from_env(
        {"RASPAPI_DISABLE_ROUTES": "GET /dns/logs", "RASPAPI_ENV_FILE": str(tmp_path / "e")}
    )
    assert settings.disable_routes == (RouteSwitch("GET", "/dns/logs"),)

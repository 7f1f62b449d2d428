"""The key guards every route but /health, /ready and the docs; in every header form."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.http.routing import ApiRoute
from raspapi.settings import Settings
from tests.conftest import FIXTURE_ROOT, KEY

OPEN = {"/health", "/ready", "/openapi.json", "/docs", "/redoc"}
#: timeseries-api writes (sensors plugin): the token comes in the JSON body and
#: is checked by the handler, so the guard lets them through.
BODY_TOKEN = {"/series/new", "/series/x", "/point/new", "/point/x"}
WRONG = "0123456789abcdefghijklmnopqrstuw"
HEADER_FORMS = {
    "access_token": {"access_token": KEY},
    "access_token in other case": {"Access_Token": KEY},
    "X-API-Key": {"X-API-Key": KEY},
    "Authorization: Bearer": {"Authorization": f"Bearer {KEY}"},
}


def all_routes() -> list[tuple[str, str, ApiRoute]]:
    """(method, concrete path, route) for every route of an app with every plugin."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as tmp:
        settings = Settings(
            env_file=Path(tmp) / ".env",
            root=FIXTURE_ROOT,
            state_dir=Path(tmp) / "state",
            plugins_dir=Path(tmp) / "none",
            access_log=False,
            entry_points=False,
        )
        routes = create_app(settings).state.runtime.routes
    out = []
    for route in routes:
        path = re.sub(r"{[^}]+}", "x", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, path, route))
    return out


ROUTES = all_routes()
GUARDED = [(m, p, r) for m, p, r in ROUTES if r.scope is not None]


def ids(item: tuple[str, str, ApiRoute]) -> str:
    return f"{item[0]} {item[1]}"


def test_table_covers_the_routes():
    assert {p for _, p, r in ROUTES if r.scope is None} == OPEN | BODY_TOKEN
    assert len(GUARDED) >= 1


@pytest.mark.parametrize("item", GUARDED, ids=ids)
def test_no_key_is_refused(client: TestClient, item: tuple[str, str, ApiRoute]):
    method, path, route = item
    response = client.request(method, path)
    if route.legacy:
        assert response.status_code == 403
        assert response.content == b'{"detail":"403: Unauthorized"}'
    else:
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("item", GUARDED, ids=ids)
def test_wrong_or_empty_key_is_refused(client: TestClient, item: tuple[str, str, ApiRoute]):
    method, path, route = item
    for headers in (
        {"access_token": WRONG},
        {"access_token": ""},
        {"X-API-Key": WRONG},
        {"Authorization": f"Bearer {WRONG}"},
        {"Authorization": f"Basic {KEY}"},
    ):
        response = client.request(method, path, headers=headers)
        assert response.status_code == (403 if route.legacy else 401), headers
        if route.legacy:
            assert response.content == b'{"detail":"403: Unauthorized"}'


@pytest.mark.parametrize("form", sorted(HEADER_FORMS))
@pytest.mark.parametrize("item", GUARDED, ids=ids)
def test_right_key_passes_in_every_header_form(
    client: TestClient, item: tuple[str, str, ApiRoute], form: str
):
    method, path, _ = item
    # Streamed, and closed unread: GET /api/v1/events never ends by itself.
    with client.stream(method, path, headers=HEADER_FORMS[form]) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            response.read()
        assert response.status_code not in (401, 403), response.text
        assert response.status_code != 500, response.text
        content_type = response.headers["content-type"]
        assert content_type.startswith(("application/json", "text/", "image/"))


@pytest.mark.parametrize("path", sorted(OPEN))
def test_open_routes_need_no_key(client: TestClient, path: str):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "item", [i for i in ROUTES if i[1] in BODY_TOKEN and i[0] != "GET"], ids=ids
)
def test_body_token_routes_refuse_without_a_token(
    client: TestClient, item: tuple[str, str, ApiRoute]
):
    method, path, _ = item
    for body in ({}, {"token": WRONG}, {"token": ""}):
        response = client.request(method, path, json=body)
        assert response.status_code in (401, 403), (body, response.text)

"""Every guarded route against a key of each scope: a table made from the routing table.

A key passes iff it carries the route's scope (``admin`` carries them all);
otherwise 403 with a JSON body naming the missing scope.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.http.routing import SCOPES, ApiRoute
from raspapi.settings import Settings
from tests.conftest import FIXTURE_ROOT, KEY
from tests.test_auth import GUARDED, ROUTES, ids

#: The keys tried on every route: the scopes each carries.
KINDS: dict[str, tuple[str, ...]] = {
    "read": ("read",),
    "control": ("control",),
    "ingest": ("ingest",),
    "admin": ("admin",),
    "read+control": ("read", "control"),
    "all but admin": ("read", "control", "ingest"),
}


@dataclass
class Scoped:
    client: TestClient
    keys: dict[str, str]


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoped]:
    """One app with every plugin, and one stored key per kind (plus the .env admin key)."""
    tmp = tmp_path_factory.mktemp("scopes")
    shutil.copytree(FIXTURE_ROOT, tmp / "root", symlinks=True)
    env_file = tmp / "api" / ".env"
    env_file.parent.mkdir()
    env_file.write_text(f"RASPAP_API_KEY={KEY}\n")
    settings = Settings(
        env_file=env_file,
        root=tmp / "root",
        state_dir=tmp / "state",
        plugins_dir=tmp / "plugins.d",
        access_log=False,
        entry_points=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        keys = {"env admin": KEY}
        for kind, scopes in KINDS.items():
            response = client.post(
                "/api/v1/keys",
                json={"name": f"{kind} key", "scopes": list(scopes)},
                headers={"access_token": KEY},
            )
            assert response.status_code == 201, response.text
            keys[kind] = response.json()["key"]
        yield Scoped(client, keys)


def test_every_guarded_route_declares_a_known_scope():
    assert GUARDED
    for method, path, route in GUARDED:
        assert route.scope in SCOPES, f"{method} {path}"


#: RaspAP's RestAPI routes (raspap-compat.md); other root routes may be other APIs'.
RASPAP_PATHS = {
    "/system", "/ap", "/clients", "/clients/{wireless_interface}", "/dhcp", "/dns/domains",
    "/dns/hostnames", "/dns/upstream", "/dns/logs", "/ddns", "/firewall", "/networking",
    "/openvpn", "/wireguard",
}  # fmt: skip
#: RaspAP routes that hand out credentials: admin keys only.
RASPAP_SECRETS = {"/openvpn/{config}"}


def test_raspap_routes_need_read_except_those_serving_secrets():
    served = {re.sub(r"{[^}]+}", "{}", r.path): r for _, _, r in ROUTES if r.legacy}
    for path in RASPAP_PATHS | RASPAP_SECRETS:
        route = served.get(re.sub(r"{[^}]+}", "{}", path))
        if route is None:
            continue  # its plugin is not built in
        expected = "admin" if path in RASPAP_SECRETS else "read"
        assert route.scope == expected, path
    assert served["/system"].scope == "read"


def allowed(route: ApiRoute, kind: str) -> bool:
    if kind == "env admin":
        return True
    scopes = KINDS[kind]
    return "admin" in scopes or route.scope in scopes


@pytest.mark.parametrize("kind", ["env admin", *KINDS])
@pytest.mark.parametrize("item", GUARDED, ids=ids)
def test_scope_table(scoped: Scoped, item: tuple[str, str, ApiRoute], kind: str):
    method, path, route = item
    headers = {"access_token": scoped.keys[kind]}
    # Streamed: an event stream (GET /api/v1/events) never ends; it is closed unread.
    with scoped.client.stream(method, path, headers=headers) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        status = response.status_code
        if allowed(route, kind):
            assert status != 401, response.text
            assert status < 500 or status == 503, response.text
            if status == 403:
                # A handler may refuse for its own reasons, never for the scope.
                assert response.json().get("code") != "missing_scope", response.text
        else:
            assert status == 403, response.text
            assert response.json() == {
                "detail": f"this key lacks the {route.scope!r} scope",
                "code": "missing_scope",
            }


def test_the_table_covers_every_scope_and_kind():
    needed = {r.scope for _, _, r in GUARDED}
    assert {"read", "control", "admin"} <= needed
    # Each kind is refused somewhere, except the admin ones.
    for kind in KINDS:
        refused = [p for _, p, r in GUARDED if not allowed(r, kind)]
        assert bool(refused) == ("admin" not in KINDS[kind]), kind

"""Scoped keys (/api/v1/keys): created once, stored hashed, revoked at once; and the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.daemon.runtime import Runtime
from raspapi.security.keystore import KeyStore
from raspapi.settings import Settings
from tests.conftest import AUTH, KEY, MakeClient


def create(client: TestClient, name: str = "grafana", **body: Any) -> dict[str, Any]:
    body.setdefault("scopes", ["read"])
    response = client.post("/api/v1/keys", json={"name": name, **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def runtime_of(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def db_bytes(settings: Settings) -> bytes:
    """Every byte SQLite has written: the database and its write-ahead log."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = settings.state_dir / f"raspapi.db{suffix}"
        if path.exists():
            out += path.read_bytes()
    return out


def dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


LAMP = """
    from starlette.responses import JSONResponse
    from raspapi import hookimpl
    from raspapi.security.audit import note
    from raspapi.http.routing import ApiRoute

    async def on(request):
        "Switch the lamp on."
        note(request, "switched the lamp on")
        return JSONResponse({"on": True})

    async def explode(request):
        "Break."
        raise RuntimeError("boom")

    async def state(request):
        "Lamp state."
        return JSONResponse({"on": False})

    @hookimpl
    def raspapi_routes(ctx):
        return [
            ApiRoute("/on", on, methods=["POST"], scope="control", response={"type": "object"}),
            ApiRoute("/explode", explode, methods=["POST"], scope="control"),
            ApiRoute("/", state, response={"type": "object"}),
        ]
"""


# -- creating and using --------------------------------------------------------


def test_a_created_key_is_shown_once_and_works_for_its_scope(client: TestClient):
    response = client.post(
        "/api/v1/keys", json={"name": "grafana", "scopes": ["read"]}, headers=AUTH
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert re.fullmatch(r"[0-9a-z]{32}", body["key"])
    assert body["name"] == "grafana" and body["scopes"] == ["read"]
    assert body["state"] == "active"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert body["expires_at"] is None and body["revoked_at"] is None
    assert body["last_used_at"] is None
    key = body["key"]

    for headers in ({"access_token": key}, {"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        assert client.get("/system", headers=headers).status_code == 200
        assert client.get("/api/v1/system", headers=headers).status_code == 200
    denied = client.get("/api/v1/keys", headers={"access_token": key})
    assert denied.status_code == 403
    assert denied.json() == {"detail": "this key lacks the 'admin' scope", "code": "missing_scope"}

    listed = client.get("/api/v1/keys", headers=AUTH).json()["keys"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0] and key not in str(listed)
    assert listed[0]["last_used_at"] is not None


def test_keys_are_stored_hashed_never_in_clear(settings: Settings, make_client: MakeClient):
    client = make_client()
    key = create(client, "sensor-kitchen", scopes=["ingest"])["key"]
    admin = create(client, "automation", scopes=["admin"])["key"]
    assert client.get("/api/v1/keys", headers={"access_token": admin}).status_code == 200
    raw = db_bytes(settings)
    # The right file, with the rows in it...
    assert b"sensor-kitchen" in raw
    assert hashlib.sha256(key.encode()).hexdigest().encode() in raw
    # ...and never a key in clear.
    assert key.encode() not in raw and admin.encode() not in raw
    assert KEY.encode() not in raw
    for name in ("raspapi.db", "raspapi.db-wal", "raspapi.db-shm"):
        assert oct((settings.state_dir / name).stat().st_mode & 0o777) == "0o600", name


def test_an_admin_scoped_key_has_every_scope(client: TestClient):
    key = create(client, "ops", scopes=["admin"])["key"]
    headers = {"access_token": key}
    assert client.get("/system", headers=headers).status_code == 200
    made = client.post("/api/v1/keys", json={"name": "x", "scopes": ["read"]}, headers=headers)
    assert made.status_code == 201
    assert client.get("/api/v1/audit", headers=headers).status_code == 200


def test_a_key_with_several_scopes(settings: Settings, make_client: MakeClient):
    dropin(settings, "lamp", LAMP)
    client = make_client()
    both = create(client, "automation", scopes=["control", "read"])
    assert both["scopes"] == ["read", "control"]  # in the documented order
    headers = {"access_token": both["key"]}
    assert client.post("/api/v1/lamp/on", headers=headers).json() == {"on": True}
    assert client.get("/api/v1/lamp", headers=headers).json() == {"on": False}
    control_only = {"access_token": create(client, "button", scopes=["control"])["key"]}
    assert client.post("/api/v1/lamp/on", headers=control_only).status_code == 200
    assert client.get("/api/v1/lamp", headers=control_only).status_code == 403


BAD_BODIES = [
    ({"scopes": ["read"]}, "name"),
    ({"name": "", "scopes": ["read"]}, "name"),
    ({"name": "   ", "scopes": ["read"]}, "name"),
    ({"name": "x" * 65, "scopes": ["read"]}, "name"),
    ({"name": "bell\x07", "scopes": ["read"]}, "name"),
    ({"name": 12, "scopes": ["read"]}, "name"),
    ({"name": "Admin", "scopes": ["read"]}, "name"),
    ({"name": "k"}, "scopes"),
    ({"name": "k", "scopes": []}, "scopes"),
    ({"name": "k", "scopes": "read"}, "scopes"),
    ({"name": "k", "scopes": ["read", "root"]}, "scopes"),
    ({"name": "k", "scopes": ["read"], "expires_in_days": 0}, "expires_in_days"),
    ({"name": "k", "scopes": ["read"], "expires_in_days": 3651}, "expires_in_days"),
    ({"name": "k", "scopes": ["read"], "expires_in_days": True}, "expires_in_days"),
    ({"name": "k", "scopes": ["read"], "expires_in_days": "7"}, "expires_in_days"),
    ({"name": "k", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "k", "scopes": ["read"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ({"name": "k", "scopes": ["read"], "expires_at": "next tuesday"}, "expires_at"),
    ({"name": "k", "scopes": ["read"], "expires_at": 4102444800}, "expires_at"),
    (
        {"name": "k", "scopes": ["read"], "expires_in_days": 1, "expires_at": "2099-01-01T00:00Z"},
        "expires_at",
    ),
    ({"name": "k", "scopes": ["read"], "key": "0" * 32}, "key"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=lambda v: repr(v)[:40])
def test_bad_input_is_a_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str):
    response = client.post("/api/v1/keys", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["code"] == "invalid"
    assert client.get("/api/v1/keys", headers=AUTH).json() == {"keys": []}


def test_malformed_bodies(client: TestClient):
    assert client.post("/api/v1/keys", headers=AUTH).status_code == 400
    assert client.post("/api/v1/keys", content=b"{", headers=AUTH).status_code == 400
    not_object = client.post("/api/v1/keys", json=["read"], headers=AUTH)
    assert not_object.status_code == 422 and not_object.json()["field"] == "body"


def test_an_active_name_is_unique(client: TestClient):
    first = create(client, "grafana")
    clash = client.post("/api/v1/keys", json={"name": "grafana", "scopes": ["read"]}, headers=AUTH)
    assert clash.status_code == 409 and clash.json()["code"] == "name_taken"
    client.delete(f"/api/v1/keys/{first['id']}", headers=AUTH)
    create(client, "grafana")  # free again once revoked


def test_expiry_in_days_or_at_a_time(client: TestClient):
    now = time.time()
    in_days = create(client, "a", expires_in_days=30)
    expires = in_days["expires_at"]
    from raspapi.http.timefmt import parse_rfc3339

    assert abs(parse_rfc3339(expires) - (now + 30 * 86400)) < 5
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=100)
    local = later.astimezone(timezone(timedelta(hours=2))).isoformat()
    at = create(client, "b", expires_at=local)
    assert at["expires_at"] == later.isoformat().replace("+00:00", "Z")


# -- revoked and expired keys stop at once ---------------------------------------


def test_a_revoked_key_stops_working_at_once(client: TestClient):
    made = create(client, "dashboard")
    headers = {"access_token": made["key"]}
    assert client.get("/system", headers=headers).status_code == 200
    revoked = client.delete(f"/api/v1/keys/{made['id']}", headers=AUTH)
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
    legacy = client.get("/system", headers=headers)
    assert legacy.status_code == 403 and legacy.content == b'{"detail":"403: Unauthorized"}'
    assert client.get("/api/v1/system", headers=headers).status_code == 401
    again = client.delete(f"/api/v1/keys/{made['id']}", headers=AUTH)
    assert again.status_code == 200 and again.json() == revoked.json()
    missing = client.delete("/api/v1/keys/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_an_expired_key_stops_working_at_once(client: TestClient):
    made = create(client, "temporary", expires_in_days=1)
    headers = {"access_token": made["key"]}
    assert client.get("/api/v1/system", headers=headers).status_code == 200
    keys = runtime_of(client).keys
    assert keys is not None
    keys.clock = lambda: time.time() + 2 * 86400
    assert client.get("/api/v1/system", headers=headers).status_code == 401
    assert client.get("/system", headers=headers).status_code == 403
    listed = client.get("/api/v1/keys", headers=AUTH).json()["keys"]
    assert listed[0]["state"] == "expired"


def test_keys_survive_a_restart(settings: Settings):
    with TestClient(create_app(settings)) as client:
        made = create(client, "persistent", scopes=["read", "ingest"])
        revoked = create(client, "gone")
        client.delete(f"/api/v1/keys/{revoked['id']}", headers=AUTH)
    with TestClient(create_app(settings)) as client:
        assert client.get("/system", headers={"access_token": made["key"]}).status_code == 200
        assert client.get("/system", headers={"access_token": revoked["key"]}).status_code == 403
        states = {
            k["name"]: k["state"] for k in client.get("/api/v1/keys", headers=AUTH).json()["keys"]
        }
        assert states == {"persistent": "active", "gone": "revoked"}


def hold_key_loads(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Key stores load only once the event is set (10 s at most)."""
    held = threading.Event()
    load = KeyStore.load

    async def slow_load(self: KeyStore) -> None:
        await asyncio.to_thread(held.wait, 10)
        await load(self)

    monkeypatch.setattr(KeyStore, "load", slow_load)
    return held


def test_the_daemon_serves_before_the_keys_load_and_what_needs_them_waits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """The key database opens in the background at start (issue 16): the
    admin key's reads answer meanwhile; a scoped key, and the key routes,
    wait for it instead of being refused."""
    with TestClient(create_app(settings)) as client:
        made = create(client, "dashboard")
    held = hold_key_loads(monkeypatch)
    with TestClient(create_app(settings)) as client:
        assert runtime_of(client).keys.loading  # type: ignore[union-attr]
        assert client.get("/system", headers=AUTH).status_code == 200
        assert runtime_of(client).keys.loading  # type: ignore[union-attr]
        timer = threading.Timer(0.3, held.set)
        timer.start()
        try:
            began = time.monotonic()
            scoped = client.get("/system", headers={"access_token": made["key"]})
            waited = time.monotonic() - began
        finally:
            timer.cancel()
        assert scoped.status_code == 200 and waited >= 0.2
        assert not runtime_of(client).keys.loading  # type: ignore[union-attr]
        assert [k["name"] for k in client.get("/api/v1/keys", headers=AUTH).json()["keys"]] == [
            "dashboard"
        ]
        wrong = client.get("/system", headers={"access_token": "x" * 32})
        assert wrong.status_code == 403


def test_deferred_the_keys_load_after_the_first_answers_or_when_needed(settings: Settings):
    """``raspapi serve``: the key database is not touched before the first
    answers; the server's ``after_first_answers`` loads it, or the first
    request that needs it does."""
    with TestClient(create_app(settings)) as client:
        made = create(client, "dashboard")
    for trigger in ("request", "server"):
        app = create_app(settings, deferred=True)
        with TestClient(app) as client:
            keys = runtime_of(client).keys
            assert keys is not None
            assert client.get("/system", headers=AUTH).status_code == 200
            assert keys.loading and keys._loading is None  # not even started
            if trigger == "server":
                assert client.portal is not None  # the app's event loop, in its thread
                client.portal.call(app.state.after_first_answers)
                deadline = time.monotonic() + 10
                while keys.loading and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert not keys.loading
            scoped = client.get("/system", headers={"access_token": made["key"]})
            assert scoped.status_code == 200
            assert not keys.loading


def test_the_key_routes_wait_for_the_keys_to_load(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    with TestClient(create_app(settings)) as client:
        create(client, "first")
    held = hold_key_loads(monkeypatch)
    with TestClient(create_app(settings)) as client:
        timer = threading.Timer(0.3, held.set)
        timer.start()
        try:
            listed = client.get("/api/v1/keys", headers=AUTH)
        finally:
            timer.cancel()
        assert listed.status_code == 200
        assert [k["name"] for k in listed.json()["keys"]] == ["first"]
        # And a name taken before the restart is still taken.
        again = client.post(
            "/api/v1/keys", json={"name": "first", "scopes": ["read"]}, headers=AUTH
        )
        assert again.status_code == 409


def test_last_use_is_written_in_batches_not_per_request(settings: Settings):
    def stored_last_use() -> float | None:
        with sqlite3.connect(settings.state_dir / "raspapi.db") as conn:
            value: float | None = conn.execute("SELECT last_used_at FROM api_keys").fetchone()[0]
        return value

    with TestClient(create_app(settings)) as client:
        made = create(client, "poller")
        for _ in range(20):
            assert client.get("/system", headers={"access_token": made["key"]}).status_code == 200
        # Shown at once (from memory), but not written on every request.
        listed = client.get("/api/v1/keys", headers=AUTH).json()["keys"][0]
        assert listed["last_used_at"] is not None
        assert stored_last_use() is None
    written = stored_last_use()
    assert written is not None and abs(written - time.time()) < 60  # flushed at shutdown


def test_without_a_usable_state_folder_the_admin_key_still_works(
    settings: Settings, make_client: MakeClient
):
    settings.state_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.state_dir.write_text("not a folder")
    client = make_client()
    assert client.get("/system", headers=AUTH).status_code == 200
    response = client.post("/api/v1/keys", json={"name": "k", "scopes": ["read"]}, headers=AUTH)
    assert response.status_code == 503 and response.json()["code"] == "unavailable"
    assert client.get("/api/v1/keys", headers=AUTH).status_code == 503
    assert client.get("/api/v1/audit", headers=AUTH).status_code == 503


# -- the audit log -------------------------------------------------------------------


def audit(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/audit{query}", headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_control_actions_and_key_changes_are_audited(settings: Settings, make_client: MakeClient):
    dropin(settings, "lamp", LAMP)
    client = make_client()
    made = create(client, "automation", scopes=["read", "control"])
    reader = create(client, "dashboard")
    headers = {"access_token": made["key"]}
    assert client.post("/api/v1/lamp/on", headers=headers).status_code == 200
    assert (
        client.post("/api/v1/lamp/on", headers={"access_token": reader["key"]}).status_code == 403
    )
    assert client.post("/api/v1/lamp/on").status_code == 401  # nobody: not recorded
    assert client.post("/api/v1/lamp/explode", headers=headers).status_code == 500
    client.get("/api/v1/lamp", headers=headers)  # reads are not recorded
    client.delete(f"/api/v1/keys/{reader['id']}", headers=AUTH)

    log = audit(client)
    entries = log["entries"]
    assert log["total"] == len(entries) == 6
    summary = [
        (e["key_name"], e["method"], e["path"], e["status"], e["detail"]) for e in reversed(entries)
    ]
    assert summary == [
        (
            "admin",
            "POST",
            "/api/v1/keys",
            201,
            f"created key 'automation' ({made['id']}) with scopes read,control",
        ),
        (
            "admin",
            "POST",
            "/api/v1/keys",
            201,
            f"created key 'dashboard' ({reader['id']}) with scopes read",
        ),
        ("automation", "POST", "/api/v1/lamp/on", 200, "switched the lamp on"),
        ("dashboard", "POST", "/api/v1/lamp/on", 403, None),
        ("automation", "POST", "/api/v1/lamp/explode", 500, None),
        (
            "admin",
            "DELETE",
            f"/api/v1/keys/{reader['id']}",
            200,
            f"revoked key 'dashboard' ({reader['id']})",
        ),
    ]
    newest = entries[0]
    assert newest["route"] == "/api/v1/keys/{id}" and newest["key_id"] is None
    assert entries[3]["key_id"] == made["id"]
    assert newest["client"] == "testclient"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", newest["at"])
    text = str(entries)
    assert made["key"] not in text and reader["key"] not in text and KEY not in text


def test_audit_pages_and_filters(client: TestClient):
    for n in range(5):
        create(client, f"k{n}")
    page = audit(client, "?limit=2&offset=1")
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [e["detail"].split("'")[1] for e in page["entries"]] == ["k3", "k2"]
    assert audit(client, "?since=2099-01-01T00:00:00Z") == {
        "entries": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    assert audit(client, "?since=2000-01-01T00:00:00%2B01:00")["total"] == 5
    for bad, field in (
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("since=yesterday", "since"),
    ):
        response = client.get(f"/api/v1/audit?{bad}", headers=AUTH)
        assert response.status_code == 422 and response.json()["field"] == field


def test_audit_log_needs_admin(client: TestClient):
    reader = create(client, "reader", scopes=["read", "control", "ingest"])
    response = client.get("/api/v1/audit", headers={"access_token": reader["key"]})
    assert response.status_code == 403 and response.json()["code"] == "missing_scope"
    assert client.get("/api/v1/audit").status_code == 401


def test_keys_and_audit_are_in_the_openapi_document(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/api/v1/keys"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "name",
        "scopes",
    ]
    assert "key" in post["responses"]["201"]["content"]["application/json"]["schema"]["properties"]
    assert "delete" in paths["/api/v1/keys/{id}"]
    assert {p["name"] for p in paths["/api/v1/audit"]["get"]["parameters"]} == {
        "limit",
        "offset",
        "since",
    }

"""Hostile input and load (issue 13): whatever reaches the daemon from the hotspot
gets a 4xx, never a 500, and nothing keyed by it grows without bound. Each test
runs the real app on asyncio and on uvloop (what the installed service runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.http.routing import INT_MAX, parse_int
from tests.conftest import AUTH, MakeClient, http_scope

API = "/api/v1/sensors"


def make_key(client: TestClient, name: str, scopes: list[str]) -> str:
    response = client.post("/api/v1/keys", json={"name": name, "scopes": scopes}, headers=AUTH)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.fixture
def app(make_client: MakeClient, loop_name: str) -> TestClient:
    return make_client(loop=loop_name, rate_limits=())


def _series(client: TestClient, token: str) -> int:
    response = client.put(
        "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
    )
    assert response.status_code == 201, response.text
    return int(response.json())


def test_parse_int_takes_ascii_digits_in_range_only():
    assert parse_int("42") == 42
    assert parse_int("-7") == -7
    assert parse_int(42) == 42
    assert parse_int(str(INT_MAX)) == INT_MAX
    for bad in ("²", "١٢", "1_000", " 5", "5 ", "+5", "", "-", "0x10", "1e3", True, 1.0, None):
        assert parse_int(bad) is None, bad
    assert parse_int("99999999999999999999") is None
    assert parse_int(10**400) is None
    assert parse_int("5", low=6) is None
    assert parse_int("70000", high=65535) is None


def test_digits_that_are_not_ascii_and_huge_integers_are_4xx(app: TestClient):
    token = make_key(app, "esp", ["ingest"])
    series = _series(app, token)
    for path in (
        f"{API}/series/%C2%B2",
        "/series/%C2%B2",
        "/point/%C2%B2",
        f"{API}/series/{series}/points?cursor=%C2%B2:1",
        f"{API}/series/{series}/points?cursor=1:99999999999999999999",
        "/api/v1/audit?offset=99999999999999999999",
        "/api/v1/audit?offset=%C2%B2",
        "/api/v1/audit?limit=%D9%A1",
    ):
        response = app.get(path, headers=AUTH)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
    point = app.put("/point/new", json={"token": token, "series_id": "²", "fields": {"t": 1}})
    assert point.status_code == 400, point.text
    huge = app.put(
        "/point/new",
        content=b'{"token": "%s", "series_id": %d, "fields": {"t": 1}, "timestamp": 1%s}'
        % (token.encode(), series, b"0" * 400),
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 400, huge.text
    batch = app.post(
        f"{API}/series/{series}/points",
        content=b'{"points": [{"at": 1%s, "fields": {"t": 1}}]}' % (b"0" * 400),
        headers={"access_token": token, "content-type": "application/json"},
    )
    assert batch.status_code == 422, batch.text
    # The one that parses is still served.
    assert app.get(f"/point/{10**18}", headers=AUTH).status_code == 404


def test_admin_form_expiry_takes_ascii_digits_only(make_client: MakeClient, loop_name: str):
    from tests.test_admin import sign_in  # the admin page's own sign-in helper

    client = make_client(loop=loop_name, rate_limits=())
    csrf = sign_in(client)
    response = client.post(
        "/admin/keys",
        data={"csrf": csrf, "name": "k", "scope_read": "on", "expires_in_days": "²"},
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path", ["/series/new", "/point/new", "/api/v1/keys"])
def test_nested_json_is_a_400_not_a_500(app: TestClient, path: str):
    body = b"[" * 100_000 + b"]" * 100_000
    response = app.put(path, content=body[:60_000], headers={**AUTH})
    assert response.status_code in (400, 405, 413), response.text
    deep = b"[" * 5000 + b"]" * 5000
    method = "POST" if path.startswith("/api") else "PUT"
    response = app.request(method, path, content=deep, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "body_invalid"


def test_bad_utf8_and_bad_content_length_are_4xx(app: TestClient):
    response = app.post("/api/v1/keys", content=b'{"name": "\xff"}', headers=AUTH)
    assert response.status_code == 400, response.text


def test_a_client_that_leaves_mid_body_is_no_server_error(make_client: MakeClient, loop_name):
    from raspapi.http.routing import ClientGone

    client = make_client(loop=loop_name, rate_limits=())
    app: Any = client.app
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"name": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(
        "POST",
        "/api/v1/keys",
        headers=[(b"access_token", AUTH["access_token"].encode()), (b"host", b"t")],
        client=("127.0.0.1", 5000),
        state={},
        app=app,
    )
    from tests.conftest import run_on

    before = app.state.runtime.counters.server_errors
    run_on(loop_name, app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert starts and starts[0]["status"] == ClientGone.status_code
    body = json.loads(
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    )
    assert body["code"] == "client_disconnected"
    assert app.state.runtime.counters.server_errors == before


def test_shuffled_field_orders_share_one_statement_per_field_set(app: TestClient):
    """Item 1: one ingest key sending its 16 fields in random orders used to add
    a cached statement per order (16! of them); now one per set, and the cache has a
    bound even over many sets. The values still land in the right columns."""
    import random

    from raspapi.plugins.sensors.store import SQL_CACHE_SIZE

    token = make_key(app, "esp", ["ingest"])
    series = _series(app, token)
    headers = {"access_token": token}
    names = [f"f{i}" for i in range(16)]
    rng = random.Random(13)
    for n in range(40):
        rng.shuffle(names)
        point = {"fields": {name: float(int(name[1:]) * 1000 + n) for name in names}}
        response = app.post(
            f"{API}/series/{series}/points", json={"points": [point]}, headers=headers
        )
        assert response.status_code == 201, response.text
    db = app.app.state.runtime.manager.plugins["sensors"].ctx.state["__service__"].database()  # type: ignore[attr-defined]
    assert len(db._sql) <= 2  # one per roll-up level: every batch named the same set
    rows = app.get(f"{API}/series/{series}/points?limit=100", headers=AUTH).json()
    points = rows["points"]
    assert len(points) == 40
    for index, point in enumerate(points):
        for name, value in point["fields"].items():
            assert value == int(name[1:]) * 1000 + index, (name, value, index)
    # Many different sets: the cache stays within its bound.
    for _ in range(SQL_CACHE_SIZE):
        subset = rng.sample(names, rng.randint(1, 15))
        point = {"fields": {name: 1.0 for name in subset}}
        response = app.post(
            f"{API}/series/{series}/points", json={"points": [point]}, headers=headers
        )
        assert response.status_code == 201, response.text
    assert len(db._sql) <= SQL_CACHE_SIZE


def test_random_wireguard_names_grow_nothing_and_run_no_wg(
    make_client: MakeClient, loop_name: str, root, tmp_path
):
    """Item 8: the lock table keyed by a name from the URL is empty once requests
    end, and an unknown name is refused from the cached snapshot, without a `wg show`
    of its own."""
    import secrets

    from tests.wg_fixture import install_fake_wg

    fake = install_fake_wg(root, tmp_path / "fake")
    fake.set_dump("")
    client = make_client(loop=loop_name, rate_limits=(), cache_ttl=60)
    service = client.app.state.runtime.manager.plugins["wireguard"].ctx.state["__service__"]  # type: ignore[attr-defined]
    assert client.get("/api/v1/wireguard", headers=AUTH).status_code in (200, 503)
    before = fake.calls().count("show all dump")
    for _ in range(50):
        name = "x" + secrets.token_hex(5)
        added = client.post(f"/api/v1/wireguard/{name}/peers", json={"name": "p"}, headers=AUTH)
        assert added.status_code == 404, added.text
        gone = client.delete(
            f"/api/v1/wireguard/{name}/peers/iXBzZZfHC8QvdGqHUwFUVoVgs7ubsT3UOCU%2FvXoPiHY%3D",
            headers=AUTH,
        )
        assert gone.status_code == 404, gone.text
    assert fake.calls().count("show all dump") == before
    assert service._locks == {}


def test_the_event_stream_cap_holds_under_a_burst(loop_name: str):
    """Item 5: 200 streams asked for at once, while the first round of watches
    awaits: exactly the cap get one. The slot is claimed before the await."""
    import asyncio

    from raspapi.events.bus import EventBus, TooManySubscribers
    from tests.conftest import run_on

    async def burst() -> tuple[int, int, int]:
        bus = EventBus(max_subscribers=32)

        async def slow_watch() -> None:
            await asyncio.sleep(0.05)

        bus.watch(slow_watch, "slow")
        results = await asyncio.gather(
            *(bus.subscribe() for _ in range(200)), return_exceptions=True
        )
        opened = sum(1 for r in results if not isinstance(r, BaseException))
        refused = sum(1 for r in results if isinstance(r, TooManySubscribers))
        open_now = bus.subscribers
        await bus.close()
        return opened, refused, open_now

    opened, refused, open_now = run_on(loop_name, burst())
    assert (opened, refused, open_now) == (32, 168, 32)


def test_a_full_rate_limit_table_starves_no_known_caller(make_client: MakeClient, loop_name: str):
    """Item 6: once 2,100 addresses filled the table, a caller already counted
    keeps its own counter, and keys (the admin key from 127.0.0.1 too) are
    never refused because unauthenticated callers failed from elsewhere."""
    from raspapi.http.ratelimit import RateLimit

    client = make_client(
        loop=loop_name,
        rate_limits=(
            RateLimit("read", 1000, 60),
            RateLimit("open", 5, 60),
            RateLimit("auth", 3, 60),
        ),
    )
    limiter = client.app.state.runtime.limiter  # type: ignore[attr-defined]
    limiter.max_counters = 64
    # A known caller first.
    assert client.get("/api/v1/system", headers=AUTH).status_code in (200, 503)

    def scope(host: str) -> dict[str, Any]:
        return {"client": (host, 1), "type": "http", "headers": []}

    for i in range(2100):
        host = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
        limiter.check("open", scope(host), None)
        limiter.auth_failed(scope(host))
    # The table plus the shared counters (one per group, and per key and group).
    assert len(limiter.windows) <= 64 + 2 * 6
    # The overflow bucket is refused for open routes and for failures ...
    assert limiter.check("open", scope("10.200.0.1"), None) is not None
    assert limiter.auth_failed(scope("10.200.0.2")) is not None
    # ... but the right key passes, from a counted address and from a new one.
    for _ in range(3):
        response = client.get("/api/v1/system", headers=AUTH)
        assert response.status_code != 429, response.text
    assert limiter.before_auth(scope("10.200.0.3")) is None


def test_body_tokens_count_as_failed_authentication(make_client: MakeClient, loop_name: str):
    """Item 7: wrong tokens in timeseries-api bodies meet the failed-auth throttle,
    and past it even the right token waits, as on every other route."""
    from raspapi.http.ratelimit import RateLimit

    client = make_client(loop=loop_name, rate_limits=(RateLimit("auth", 5, 60),))
    token = make_key(client, "esp", ["ingest"])
    codes = [
        client.put(
            "/series/new", json={"token": "wrong" * 6, "device_id": "d", "device_desc": "e"}
        ).status_code
        for _ in range(8)
    ]
    assert codes[:5] == [403] * 5 and set(codes[5:]) == {429}, codes
    right = client.put("/series/new", json={"token": token, "device_id": "d", "device_desc": "e"})
    assert right.status_code == 429 and right.headers["retry-after"], right.text
    assert client.get("/api/v1/system", headers=AUTH).status_code == 429


def test_twenty_concurrent_creates_of_one_name_make_one_key(app: TestClient):
    """Item 8: the name check and the active-key limit are claimed before the
    write is awaited."""
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> int:
        body = {"name": "dup", "scopes": ["read"]}
        return app.post("/api/v1/keys", json=body, headers=AUTH).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(create, range(20)))
    assert codes == [201] + [409] * 19, codes
    names = [k["name"] for k in app.get("/api/v1/keys", headers=AUTH).json()["keys"]]
    assert names.count("dup") == 1


def test_key_changes_commit_with_synchronous_full(app: TestClient):
    """Item 9: a key's creation and revocation reach the disk (the WAL is fsynced)
    before the 2xx; the database otherwise runs synchronous=NORMAL."""
    keys = app.app.state.runtime.keys  # type: ignore[attr-defined]
    statements: list[str] = []
    keys.store.call(lambda conn: conn.set_trace_callback(statements.append))
    try:
        made = app.post("/api/v1/keys", json={"name": "k", "scopes": ["read"]}, headers=AUTH)
        assert made.status_code == 201
        revoked = app.delete(f"/api/v1/keys/{made.json()['id']}", headers=AUTH)
        assert revoked.status_code == 200
    finally:
        keys.store.call(lambda conn: conn.set_trace_callback(None))
    writes = [
        i
        for i, s in enumerate(statements)
        if s.startswith(("INSERT INTO api_keys", "UPDATE api_keys SET revoked_at"))
    ]
    assert len(writes) == 2, statements
    for i in writes:
        assert statements[i - 1] == "PRAGMA synchronous=FULL", statements
        assert statements[i + 1] == "PRAGMA synchronous=NORMAL", statements


def test_revoked_keys_in_memory_are_bounded(app: TestClient, monkeypatch):
    from raspapi.security import keystore

    monkeypatch.setattr(keystore, "MAX_INACTIVE_KEPT", 5)
    for i in range(12):
        made = app.post("/api/v1/keys", json={"name": f"k{i}", "scopes": ["read"]}, headers=AUTH)
        assert app.delete(f"/api/v1/keys/{made.json()['id']}", headers=AUTH).status_code == 200
    listed = app.get("/api/v1/keys", headers=AUTH).json()["keys"]
    assert [k["name"] for k in listed] == [f"k{i}" for i in range(11, 6, -1)]


def test_admin_sign_in_throttle_counts_an_ipv6_slash_64(make_client: MakeClient, loop_name: str):
    """Item 9: failures from one /64 count together, whatever address in it."""
    from tests.test_admin import csrf_of

    client = make_client(loop=loop_name, rate_limits=())
    transport: Any = client._transport
    for i in range(5):
        transport.client = (f"2001:db8:1:2::{i + 1:x}", 40000)
        form = client.get("/admin/login")
        response = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": "x" * 32})
        assert response.status_code == 401, response.text
    transport.client = ("2001:db8:1:2:abcd::99", 40000)
    form = client.get("/admin/login")
    blocked = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": "x" * 32})
    assert blocked.status_code == 429
    transport.client = ("2001:db8:1:3::1", 40000)
    form = client.get("/admin/login")
    other = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": "x" * 32})
    assert other.status_code == 401


# -- the server's own limits (item 2 and the slow clients of item 9) -----------------


async def _serve_and(settings, action):
    """Runs the real app under the daemon's uvicorn options on a loopback port,
    then ``action(port)``; stops the server."""
    import asyncio

    import uvicorn

    from raspapi.app import create_app
    from raspapi.daemon.uvicornopts import uvicorn_config

    config = uvicorn_config(create_app(settings), "127.0.0.1", 0)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        return await asyncio.wait_for(action(port), 30)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _exchange(port: int, *chunks: bytes, pause: float = 0.0) -> bytes:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), 20)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def test_a_huge_or_crowded_or_slow_request_head_is_refused(settings, loop_name, monkeypatch):
    from raspapi.daemon.httpguard import MAX_HEAD_BYTES, MAX_HEADERS, GuardedHttpToolsProtocol
    from tests.conftest import run_on

    monkeypatch.setattr(GuardedHttpToolsProtocol, "head_timeout", 1.0)

    async def attacks(port: int) -> dict[str, bytes]:
        import asyncio

        out: dict[str, bytes] = {}
        out["ok"] = await _exchange(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
        big = head + b"a" * (MAX_HEAD_BYTES + 1024) + b"\r\n\r\n"
        out["big"] = await _exchange(port, big)
        # 8 MB of one header: the connection ends long before it is all sent.
        out["huge"] = await _exchange(port, head, *[b"a" * 65536] * 128)
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
        out["many"] = await _exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        started = asyncio.get_running_loop().time()
        out["slow"] = await _exchange(
            port, b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", pause=0.5
        )
        out["idle"] = await _exchange(port)
        out["elapsed"] = str(asyncio.get_running_loop().time() - started).encode()
        # Still serving afterwards.
        out["after"] = await _exchange(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        return out

    out = run_on(loop_name, _serve_and(settings, attacks))
    assert out["ok"].startswith(b"HTTP/1.1 200"), out["ok"][:100]
    assert out["big"].startswith(b"HTTP/1.1 431"), out["big"][:100]
    assert out["huge"] == b"" or out["huge"].startswith(b"HTTP/1.1 431")
    assert out["many"].startswith(b"HTTP/1.1 431"), out["many"][:100]
    assert out["slow"].startswith(b"HTTP/1.1 408"), out["slow"][:100]
    assert out["idle"].startswith(b"HTTP/1.1 408"), out["idle"][:100]
    assert float(out["elapsed"]) < 10
    assert out["after"].startswith(b"HTTP/1.1 200"), out["after"][:100]


def test_a_head_within_the_bounds_is_served(settings, loop_name):
    from raspapi.daemon.httpguard import MAX_HEADERS
    from tests.conftest import run_on

    async def fine(port: int) -> bytes:
        headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_HEADERS - 2))
        return await _exchange(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"
        )

    assert run_on(loop_name, _serve_and(settings, fine)).startswith(b"HTTP/1.1 200")


# -- smaller items (9) -------------------------------------------------------------


def test_ready_without_a_key_shows_states_only(app: TestClient):
    open_body = app.get("/ready").json()
    keyed = app.get("/ready", headers=AUTH).json()
    assert set(open_body["plugins"]) == set(keyed["plugins"])
    for name, entry in open_body["plugins"].items():
        assert entry == {"state": keyed["plugins"][name]["state"]}, name
    assert any("details" in e or e.get("reason") for e in keyed["plugins"].values())
    # A wrong key is no key.
    wrong = app.get("/ready", headers={"access_token": "x" * 32}).json()
    assert wrong["plugins"] == open_body["plugins"]


def test_a_slash_redirect_names_no_host(app: TestClient):
    redirected = 0
    for path in ("/api/v1/keys/", "/system/", "/api/v1/sensors/series/?a=1"):
        response = app.get(path, headers={**AUTH, "Host": "evil.example"}, follow_redirects=False)
        if response.status_code in (307, 308):
            location = response.headers["location"]
            assert location.startswith("/") and not location.startswith("//"), location
            assert "evil" not in location
            redirected += 1
    assert redirected >= 2
    response = app.get("//evil.example/", headers=AUTH, follow_redirects=False)
    assert "evil" not in response.headers.get("location", "/").lstrip("/").split("/")[0]


def test_restapi_refuses_to_stop_itself_remotely(make_client: MakeClient, loop_name: str, root):
    client = make_client(loop=loop_name, rate_limits=())
    response = client.post("/api/v1/services/restapi/stop", headers=AUTH)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "self_stop_refused"
    log = root / "fake-systemctl.log"
    assert not log.exists() or "stop" not in log.read_text()


def test_the_unit_bounds_memory_and_tasks():
    from pathlib import Path

    unit = (Path(__file__).parent.parent / "systemd" / "restapi.service").read_text()
    lines = [line.strip() for line in unit.splitlines()]
    assert "MemoryMax=256M" in lines
    assert "TasksMax=128" in lines


def test_openapi_declares_the_statuses_and_types_routes_send(app: TestClient):
    """Item 9: what hostile requests get is in the document, status and content type."""
    doc = app.get("/openapi.json").json()
    token = make_key(app, "esp", ["ingest"])
    series = _series(app, token)
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/keys", "/api/v1/keys", {"content": b"[" * 5000}),
        ("POST", "/api/v1/keys", "/api/v1/keys", {"content": b"{" + b" " * 70000 + b"}"}),
        ("POST", "/api/v1/keys", "/api/v1/keys", {"json": {"name": "esp", "scopes": ["read"]}}),
        ("POST", "/api/v1/services/{name}/stop", "/api/v1/services/restapi/stop", {}),
        ("GET", "/api/v1/sensors/series/{id}", "/api/v1/sensors/series/%C2%B2", {}),
        ("GET", "/api/v1/audit", "/api/v1/audit?offset=99999999999999999999", {}),
        (
            "GET",
            "/api/v1/sensors/series/{id}/points.csv",
            f"/api/v1/sensors/series/{series}/points.csv",
            {},
        ),
        (
            "POST",
            "/api/v1/wireguard/{interface}/peers",
            "/api/v1/wireguard/nope0/peers",
            {"json": {"name": "p"}},
        ),
    ]
    for method, template, path, extra in cases:
        response = app.request(method, path, headers=AUTH, **extra)
        operation = doc["paths"][template][method.lower()]
        assert str(response.status_code) in operation["responses"], (path, response.status_code)
        content = operation["responses"][str(response.status_code)].get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        assert media in content, (path, media, list(content))
    events = doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in events


def test_the_admin_cookie_is_secure_behind_a_local_tls_proxy(make_client: MakeClient, loop_name):
    from tests.test_admin import csrf_of

    client = make_client(loop=loop_name, rate_limits=())
    transport: Any = client._transport
    proxied = {"X-Forwarded-Proto": "https"}
    transport.client = ("127.0.0.1", 40000)
    form = client.get("/admin/login", headers=proxied)
    assert "secure" in form.headers["set-cookie"].lower()
    # From elsewhere the header is not believed.
    transport.client = ("192.168.50.20", 40000)
    form = client.get("/admin/login", headers=proxied)
    assert "secure" not in form.headers["set-cookie"].lower()
    assert csrf_of(form.text)

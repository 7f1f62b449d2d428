"""timeseries-api's routes, as its clients (ESP8266/ESP32 sketches, its test script) call them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, KEY, MakeClient


def make_key(client: TestClient, name: str, scopes: list[str]) -> str:
    response = client.post("/api/v1/keys", json={"name": name, "scopes": scopes}, headers=AUTH)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.fixture
def app(make_client: MakeClient) -> tuple[TestClient, str, dict[str, str]]:
    """The app, a device's token (ingest) and a dashboard's key header (read)."""
    client = make_client(rate_limits=())
    token = make_key(client, "esp32-kitchen", ["ingest"])
    reader = {"access_token": make_key(client, "dashboard", ["read"])}
    return client, token, reader


def test_timeseries_api_own_test_sequence(app: tuple[TestClient, str, dict[str, str]]):
    """timeseries-api's tests/test_api.py, step by step. The one change: its GET requests
    carry a read key in a header (timeseries-api's reads needed none)."""
    client, token, read = app
    timeseries_api_test_sequence(client, token, read)


def test_public_read_runs_timeseries_api_test_unchanged(make_client: MakeClient):
    """With RASPAPI_SENSORS_PUBLIC_READ=true, the exact requests of timeseries-api's
    tests/test_api.py: reads without any key, writes with an ingest key as the token."""
    client = make_client(rate_limits=(), options={"RASPAPI_SENSORS_PUBLIC_READ": "true"})
    token = make_key(client, "timeseries-api-test", ["ingest"])
    timeseries_api_test_sequence(client, token, {})


def test_public_read_is_off_by_default_and_opens_nothing_else(make_client: MakeClient):
    closed = make_client(rate_limits=())
    for path in ("/series", "/series/1", "/point/1"):
        assert closed.get(path).status_code in (401, 403), path
    client = make_client(rate_limits=(), options={"RASPAPI_SENSORS_PUBLIC_READ": "yes"})
    token = make_key(client, "esp32", ["ingest"])
    series = client.put(
        "/series/new", json={"token": token, "device_id": "a", "device_desc": "b"}
    ).json()
    point = client.put(
        "/point/new", json={"token": token, "series_id": series, "fields": {"t": 1}}
    ).json()
    assert client.get("/series").status_code == 200
    assert client.get(f"/series/{series}").json()[0]["fields"] == {"t": 1}
    assert client.get(f"/point/{point}").status_code == 200
    # Unknown ids stay 404 and odd ones never 500, without a key too.
    assert client.get("/point/99999999999999999999").status_code == 404
    assert client.get("/series/abc").status_code == 404
    # Every other route still needs its key.
    for method, path in (
        ("GET", "/points/count"),
        ("GET", "/api/v1/sensors/series"),
        ("GET", f"/api/v1/sensors/series/{series}/points"),
        ("GET", "/system"),
        ("GET", "/metrics"),
    ):
        assert client.request(method, path).status_code in (401, 403), path
    for method, path in (
        ("PUT", "/point/new"),
        ("DELETE", f"/point/{point}"),
        ("DELETE", f"/series/{series}"),
    ):
        answer = client.request(method, path, json={"series_id": series, "fields": {"t": 2}})
        assert answer.status_code == 403, (method, path)
    assert client.get(f"/series/{series}").json()[0]["fields"] == {"t": 1}


def test_public_read_setting_must_be_a_boolean(make_client: MakeClient):
    client = make_client(options={"RASPAPI_SENSORS_PUBLIC_READ": "maybe"})
    state = client.get("/ready", headers=AUTH).json()["plugins"]["sensors"]
    assert state["state"] == "failed"
    assert "RASPAPI_SENSORS_PUBLIC_READ" in state["reason"]
    assert client.get("/series").status_code != 200


def timeseries_api_test_sequence(client: TestClient, token: str, read: dict[str, str]) -> None:
    """Every request timeseries-api's tests/test_api.py makes, in its order, with its
    checks; ``read`` is the header its GET requests carry here."""
    auth = {"token": token}
    new_series = {
        "desc": "A test series",
        "device_desc": "Test script",
        "device_id": "12:AB:CD:XY:ZU:57",
        "timestamp": datetime.now().isoformat(),  # sent by the script, ignored (as there)
        "token": token,
    }
    new_points: list[dict[str, Any]] = [
        {"fields": {"temp_C": 1}},
        {"fields": {"temp_C": 2}},
        {"fields": {"temp_C": 3}},
    ]

    r = client.put("/series/new", json=new_series)
    assert r.status_code == 201
    series_id = r.json()
    assert type(series_id) is int

    r = client.get("/series", headers=read)
    assert r.status_code == 200
    series_list = r.json()
    assert str(series_id) in series_list

    new_points_id = []
    for point in new_points:
        point["series_id"] = series_id
        point.update(auth)
        r = client.put("/point/new", json=point)
        assert r.status_code == 201
        new_points_id.append(r.json())

    r = client.get(f"/series/{series_id}", headers=read)
    assert r.status_code == 200
    assert len(r.json()) == len(new_points)

    r = client.get(f"/point/{new_points_id[0]}", headers=read)
    assert r.status_code == 200

    r = client.request("DELETE", f"/point/{new_points_id[0]}", json=auth)
    assert r.status_code == 204

    r = client.get(f"/point/{new_points_id[0]}", headers=read)
    assert r.status_code == 404

    r = client.get(f"/series/{series_id}", headers=read)
    assert r.status_code == 200
    assert len(r.json()) == len(new_points) - 1

    r = client.request("DELETE", f"/series/{series_id}", json=auth)
    assert r.status_code == 204

    r = client.get("/series", headers=read)
    assert r.status_code == 200
    assert str(series_id) not in r.json()

    r = client.get(f"/series/{series_id}", headers=read)
    assert r.status_code == 404


def test_shapes(app: tuple[TestClient, str, dict[str, str]]):
    client, token, read = app
    series_id = client.put(
        "/series/new",
        json={"token": token, "device_id": "a4:cf:12", "device_desc": "ESP32 + DS18B20"},
    ).json()
    ids = [
        client.put(
            "/point/new", json={"token": token, "series_id": series_id, "fields": {"temp_C": t}}
        ).json()
        for t in (13, 13.5)
    ]
    listing = client.get("/series", headers=read).json()
    entry = listing[str(series_id)]
    assert list(entry) == ["id", "device_id", "device_desc", "desc", "timestamp", "user", "count"]
    assert entry["id"] == series_id
    assert entry["device_id"] == "a4:cf:12" and entry["device_desc"] == "ESP32 + DS18B20"
    assert entry["desc"] is None
    assert entry["user"] == "esp32-kitchen"
    assert entry["count"] == 2
    assert datetime.fromisoformat(entry["timestamp"]).utcoffset() is not None
    assert "token" not in entry
    points = client.get(f"/series/{series_id}", headers=read)
    assert points.headers["x-total-count"] == "2"
    first, second = points.json()
    assert list(first) == ["id", "series_id", "fields", "timestamp"]
    assert [first["id"], second["id"]] == ids
    assert first["series_id"] == series_id
    assert first["fields"] == {"temp_C": 13} and second["fields"] == {"temp_C": 13.5}
    assert first["timestamp"] <= second["timestamp"]
    one = client.get(f"/point/{ids[1]}", headers=read).json()
    assert one == second
    assert client.get("/points/count", headers=read).json() == 2
    # The same series through the v1 API.
    v1 = client.get(f"/api/v1/sensors/series/{series_id}", headers=read).json()
    assert v1["device_id"] == "a4:cf:12" and v1["point_count"] == 2 and v1["fields"] == ["temp_C"]


def test_points_may_carry_their_own_time(app: tuple[TestClient, str, dict[str, str]]):
    client, token, read = app
    series_id = client.put(
        "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
    ).json()
    at = "2024-05-04T12:34:56.789+02:00"
    point_id = client.put(
        "/point/new",
        json={"token": token, "series_id": str(series_id), "fields": {"t": 1}, "timestamp": at},
    ).json()
    stored = client.get(f"/point/{point_id}", headers=read).json()
    assert stored["timestamp"] == "2024-05-04T10:34:56.789000+00:00"
    epoch = client.put(
        "/point/new",
        json={"token": token, "series_id": series_id, "fields": {"t": 2}, "timestamp": 1714826096},
    ).json()
    stored = client.get(f"/point/{epoch}", headers=read).json()
    assert stored["timestamp"] == "2024-05-04T12:34:56.000000+00:00"
    naive = client.put(
        "/point/new",
        json={"token": token, "series_id": series_id, "fields": {"t": 3}, "timestamp": at[:-6]},
    )
    assert naive.status_code == 400
    assert naive.json()["field"] == "timestamp"
    assert "zone" in naive.json()["message"]


def test_values_as_sketches_send_them(app: tuple[TestClient, str, dict[str, str]]):
    """Numeric strings and booleans (Arduino String concatenation) are numbers here."""
    client, token, read = app
    series_id = client.put(
        "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
    ).json()
    point_id = client.put(
        "/point/new",
        json={
            "token": token,
            "series_id": series_id,
            "fields": {"temp": "23.4", "door_open": True, "rssi": -67},
        },
    ).json()
    fields = client.get(f"/point/{point_id}", headers=read).json()["fields"]
    assert fields == {"temp": 23.4, "door_open": 1.0, "rssi": -67.0}


BAD_WRITES: list[tuple[str, str, str, Any, int, str]] = [
    # (name, method, path, body, status, what the message says)
    ("no body", "PUT", "/series/new", None, 400, "JSON body is required"),
    ("not JSON", "PUT", "/series/new", b"device_id=1", 400, "not valid JSON"),
    ("a list", "PUT", "/series/new", [1], 400, "JSON object"),
    (
        "no token",
        "PUT",
        "/series/new",
        {"device_id": "d", "device_desc": "e"},
        403,
        "token is required",
    ),
    (
        "wrong token",
        "PUT",
        "/series/new",
        {"token": "x" * 32, "device_id": "d", "device_desc": "e"},
        403,
        "not a valid key",
    ),
    (
        "token a number",
        "PUT",
        "/series/new",
        {"token": 5, "device_id": "d", "device_desc": "e"},
        403,
        "not a valid key",
    ),
    (
        "no device_id",
        "PUT",
        "/series/new",
        {"token": "{token}", "device_desc": "e"},
        400,
        "device_id",
    ),
    (
        "device_id a list",
        "PUT",
        "/series/new",
        {"token": "{token}", "device_id": [], "device_desc": "e"},
        400,
        "device_id",
    ),
    (
        "desc too long",
        "PUT",
        "/series/new",
        {"token": "{token}", "device_id": "d", "device_desc": "e", "desc": "x" * 500},
        400,
        "desc: ",
    ),
    (
        "device_desc a number",
        "PUT",
        "/series/new",
        {"token": "{token}", "device_id": "d", "device_desc": 5},
        400,
        "device_desc: ",
    ),
    (
        "point, no series_id",
        "PUT",
        "/point/new",
        {"token": "{token}", "fields": {"t": 1}},
        400,
        "series_id",
    ),
    (
        "point, series_id text",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": "one", "fields": {"t": 1}},
        400,
        "series_id",
    ),
    (
        "point, series_id huge",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": 10**30, "fields": {"t": 1}},
        400,
        "series_id",
    ),
    (
        "point, unknown series",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": 999, "fields": {"t": 1}},
        404,
        "Series 999 not found",
    ),
    (
        "point, no fields",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": "{series}"},
        400,
        "fields",
    ),
    (
        "point, fields text",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": "{series}", "fields": "t=1"},
        400,
        "fields",
    ),
    (
        "point, value text",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": "{series}", "fields": {"t": "warm"}},
        400,
        "fields.t",
    ),
    (
        "point, value huge",
        "PUT",
        "/point/new",
        {"token": "{token}", "series_id": "{series}", "fields": {"t": "1e999"}},
        400,
        "fields.t",
    ),
    (
        "point, far future",
        "PUT",
        "/point/new",
        {
            "token": "{token}",
            "series_id": "{series}",
            "fields": {"t": 1},
            "timestamp": "2999-01-01T00:00:00Z",
        },
        400,
        "future",
    ),
    ("delete series, no token", "DELETE", "/series/{series}", None, 403, "token is required"),
    (
        "delete series, unknown",
        "DELETE",
        "/series/999",
        {"token": "{token}"},
        404,
        "Series 999 doesn't exist",
    ),
    (
        "delete series, not a number",
        "DELETE",
        "/series/abc",
        {"token": "{token}"},
        404,
        "doesn't exist",
    ),
    (
        "delete point, unknown",
        "DELETE",
        "/point/12345",
        {"token": "{token}"},
        404,
        "Point 12345 doesn't exist",
    ),
    (
        "delete point, huge id",
        "DELETE",
        "/point/99999999999999999999999",
        {"token": "{token}"},
        404,
        "doesn't exist",
    ),
]


@pytest.mark.parametrize(
    "method,path,body,status,message", [b[1:] for b in BAD_WRITES], ids=[b[0] for b in BAD_WRITES]
)
def test_bad_writes_are_4xx_with_a_message(
    app: tuple[TestClient, str, dict[str, str]],
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
):
    client, token, read = app
    series = client.put(
        "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
    ).json()

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if value == "{token}":
            return token
        if value == "{series}":
            return series
        return value

    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = fill(body)
    response = client.request(method, path.replace("{series}", str(series)), **kwargs)
    assert response.status_code == status, response.text
    answer = response.json()
    assert message in answer["message"], answer
    assert answer["detail"] == answer["message"] and answer["code"]
    assert token not in response.text
    # Nothing was stored or deleted.
    assert client.get("/points/count", headers=read).json() == 0
    assert list(client.get("/series", headers=read).json()) == [str(series)]


def test_a_token_changes_only_its_own_series(app: tuple[TestClient, str, dict[str, str]]):
    client, token, read = app
    other = make_key(client, "esp32-garden", ["ingest"])
    reader_token = read["access_token"]
    series = client.put(
        "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
    ).json()
    point = client.put(
        "/point/new", json={"token": token, "series_id": series, "fields": {"t": 1}}
    ).json()
    for method, path, body in (
        ("PUT", "/point/new", {"token": other, "series_id": series, "fields": {"t": 2}}),
        ("DELETE", f"/point/{point}", {"token": other}),
        ("DELETE", f"/series/{series}", {"token": other}),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 403, response.text
    refused = client.put(
        "/point/new", json={"token": other, "series_id": series, "fields": {"t": 2}}
    )
    assert refused.json()["message"] == "Permission denied"
    # A read key is no ingest key.
    response = client.request("DELETE", f"/series/{series}", json={"token": reader_token})
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
    assert client.get("/points/count", headers=read).json() == 1
    # The admin key may; a key header works as well as the body.
    assert client.request("DELETE", f"/point/{point}", headers=AUTH).status_code == 204
    assert client.request("DELETE", f"/series/{series}", json={"token": KEY}).status_code == 204


def test_reads_need_a_read_key(app: tuple[TestClient, str, dict[str, str]]):
    client, token, _ = app
    for path in ("/series", "/series/1", "/point/1", "/points/count"):
        assert client.get(path).status_code == 403
        assert client.get(path).json() == {"detail": "403: Unauthorized"}
        ingest_only = client.get(path, headers={"access_token": token})
        assert ingest_only.status_code == 403


def test_no_jsonp(app: tuple[TestClient, str, dict[str, str]]):
    client, token, read = app
    client.put("/series/new", json={"token": token, "device_id": "d", "device_desc": "e"})
    for path in (
        "/series?callback=alert(document.domain)",
        "/series/1?callback=x",
        "/point/1?jsonp=x",
    ):
        response = client.get(path, headers=read)
        assert response.headers["content-type"] == "application/json"
        assert not response.text.startswith(("alert", "x", "/**/"))
        assert "alert" not in response.text


def test_unknown_reads_are_404(app: tuple[TestClient, str, dict[str, str]]):
    client, _, read = app
    for path, message in (
        ("/series/7", "Series 7 doesn't exist"),
        ("/series/new", "doesn't exist"),
        ("/series/-1", "doesn't exist"),
        ("/point/7", "Point 7 doesn't exist"),
        ("/point/99999999999999999999999", "doesn't exist"),
    ):
        response = client.get(path, headers=read)
        assert response.status_code == 404, path
        assert message in response.json()["message"]


def test_compat_writes_are_rate_limited_per_address(make_client: MakeClient):
    """They need no key header, so they count in the core's ``open`` group."""
    from raspapi.http.ratelimit import RateLimit

    client = make_client(rate_limits=(RateLimit("open", 3, 60),))
    token = make_key(client, "esp", ["ingest"])
    answers = [
        client.put(
            "/series/new", json={"token": token, "device_id": "d", "device_desc": "e"}
        ).status_code
        for _ in range(4)
    ]
    assert answers == [201, 201, 201, 429]

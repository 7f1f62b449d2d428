"""The sensors plugin's own API: series, batches, queries, CSV, ownership, retention."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings
from tests.conftest import AUTH, KEY, MakeClient

API = "/api/v1/sensors"
HOUR = 3600.0


@dataclass
class Keys:
    """Keys of an app: a device (ingest), a second device, a dashboard (read), admin."""

    client: TestClient
    device: dict[str, str]
    device_id: str
    other: dict[str, str]
    reader: dict[str, str]
    admin: dict[str, str]


def make_key(client: TestClient, name: str, scopes: list[str]) -> tuple[str, str]:
    response = client.post("/api/v1/keys", json={"name": name, "scopes": scopes}, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"], body["id"]


@pytest.fixture
def keys(make_client: MakeClient) -> Keys:
    # The ingest limit (600 batches a minute per key) is the core's; not what is tested here.
    client = make_client(rate_limits=())
    device, device_id = make_key(client, "device", ["ingest"])
    other, _ = make_key(client, "other device", ["ingest"])
    reader, _ = make_key(client, "dashboard", ["read"])
    return Keys(
        client,
        {"access_token": device},
        device_id,
        {"access_token": other},
        {"access_token": reader},
        AUTH,
    )


def sensors(client: TestClient) -> Any:
    """The plugin's service object in the running app."""
    from raspapi.plugins.sensors.service import Sensors

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime.manager.plugins["sensors"].ctx.service(Sensors)


def create(k: Keys, **body: Any) -> dict[str, Any]:
    response = k.client.post(f"{API}/series", json=body, headers=k.device)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def push(k: Keys, series: int, points: list[dict[str, Any]], headers: dict[str, str] | None = None):
    return k.client.post(
        f"{API}/series/{series}/points", json={"points": points}, headers=headers or k.device
    )


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


# -- series ---------------------------------------------------------------------------


def test_create_list_get_delete(keys: Keys):
    created = create(
        keys,
        description="Greenhouse",
        device_description="ESP32 + BME280",
        device_id="a4:cf:12:9b:33:01",
        units={"temperature": "°C", "humidity": "%"},
        retention_days=30,
    )
    assert created["description"] == "Greenhouse"
    assert created["owner"] == "device" and created["owner_key_id"] == keys.device_id
    assert created["point_count"] == 0 and created["first_at"] is None
    assert created["fields"] == [] and created["retention_days"] == 30
    series = created["id"]
    now = time.time()
    points: list[dict[str, Any]] = [
        {"at": now - 60, "fields": {"temperature": 21.5, "humidity": 40}},
        {"at": iso(now - 30), "fields": {"temperature": 22.0}},
        {"fields": {"humidity": 41.5}},
    ]
    response = push(keys, series, points)
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 3
    listing = keys.client.get(f"{API}/series", headers=keys.reader).json()
    (item,) = [s for s in listing["series"] if s["id"] == series]
    assert item["point_count"] == 3
    assert item["fields"] == ["temperature", "humidity"]
    assert datetime.fromisoformat(item["first_at"]).timestamp() == pytest.approx(
        now - 60, abs=0.001
    )
    assert datetime.fromisoformat(item["last_at"]).timestamp() == pytest.approx(now, abs=5)
    one = keys.client.get(f"{API}/series/{series}", headers=keys.reader).json()
    assert one == item
    response = keys.client.delete(f"{API}/series/{series}", headers=keys.device)
    assert response.status_code == 200 and response.json() == {"id": series, "deleted": True}
    assert keys.client.get(f"{API}/series/{series}", headers=keys.reader).status_code == 404
    assert keys.client.get(f"{API}/series/{series}/points", headers=keys.reader).status_code == 404
    assert push(keys, series, points).status_code == 404


def test_read_connections_are_opened_on_the_first_read_not_at_start(keys: Keys):
    svc = sensors(keys.client)
    assert svc.readers == []
    assert svc.db is not None  # the writer (and the schema) is ready at start
    series = create(keys)["id"]
    assert push(keys, series, [{"fields": {"v": 1}}]).status_code == 201
    body = keys.client.get(f"{API}/series/{series}/points", headers=keys.reader).json()
    assert len(svc.readers) >= 1
    assert body["series_id"] == series


def test_listing_is_one_query_whatever_the_number_of_series(keys: Keys):
    for i in range(12):
        series = create(keys, description=f"s{i}")["id"]
        assert push(keys, series, [{"fields": {"v": i}}]).status_code == 201
    statements: list[str] = []
    keys.client.portal.call(sensors(keys.client)._open_readers)  # type: ignore[union-attr]
    for _, reader in sensors(keys.client).readers:
        reader.conn.set_trace_callback(statements.append)
    try:
        listing = keys.client.get(f"{API}/series", headers=keys.reader).json()["series"]
    finally:
        for _, reader in sensors(keys.client).readers:
            reader.conn.set_trace_callback(None)
    assert len(listing) == 12 and all(s["point_count"] == 1 for s in listing)
    assert len(statements) == 1, statements


def test_admin_creates_a_series_for_a_device_key(keys: Keys):
    response = keys.client.post(
        f"{API}/series", json={"owner_key_id": keys.device_id}, headers=keys.admin
    )
    assert response.status_code == 201, response.text
    series = response.json()["id"]
    assert response.json()["owner"] == "device"
    assert push(keys, series, [{"fields": {"v": 1}}]).status_code == 201
    refused = keys.client.post(
        f"{API}/series", json={"owner_key_id": keys.device_id}, headers=keys.other
    )
    assert refused.status_code == 403
    unknown = keys.client.post(f"{API}/series", json={"owner_key_id": "nope"}, headers=AUTH)
    assert unknown.status_code == 422 and unknown.json()["field"] == "owner_key_id"


def test_ownership(keys: Keys):
    series = create(keys)["id"]
    point = [{"fields": {"v": 1}}]
    # Another device's key: refused, by ownership.
    for response in (
        push(keys, series, point, keys.other),
        keys.client.delete(f"{API}/series/{series}", headers=keys.other),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "not_owner"
    # A read key: refused, by scope; it may read.
    assert push(keys, series, point, keys.reader).json()["code"] == "missing_scope"
    assert keys.client.get(f"{API}/series/{series}/points", headers=keys.reader).status_code == 200
    # An ingest-only key may not read.
    read = keys.client.get(f"{API}/series/{series}/points", headers=keys.device)
    assert read.status_code == 403 and read.json()["code"] == "missing_scope"
    # The admin key may do anything.
    assert push(keys, series, point, keys.admin).status_code == 201
    assert keys.client.get(f"{API}/series/{series}", headers=AUTH).json()["point_count"] == 1
    assert keys.client.delete(f"{API}/series/{series}", headers=AUTH).status_code == 200


def test_a_series_created_by_the_admin_key_is_the_admins(keys: Keys):
    response = keys.client.post(f"{API}/series", json={}, headers=AUTH)
    series = response.json()["id"]
    assert response.json()["owner_key_id"] is None
    assert push(keys, series, [{"fields": {"v": 1}}]).json()["code"] == "not_owner"


# -- bad input ------------------------------------------------------------------------

NOW = time.time()
BAD_BATCHES: list[tuple[str, Any, int, str]] = [
    ("not an object", [1, 2], 422, "points"),
    ("no points key", {"values": []}, 422, "points"),
    ("unknown key", {"points": [{"fields": {"v": 1}}], "extra": 1}, 422, "extra"),
    ("points not a list", {"points": {"fields": {"v": 1}}}, 422, "points"),
    ("empty", {"points": []}, 422, "points"),
    ("point not an object", {"points": [5]}, 422, "points[0]"),
    ("unknown point key", {"points": [{"time": 1, "fields": {"v": 1}}]}, 422, "points[0]"),
    ("fields missing", {"points": [{"at": NOW}]}, 422, "points[0].fields"),
    ("fields empty", {"points": [{"fields": {}}]}, 422, "points[0].fields"),
    ("fields a list", {"points": [{"fields": [1]}]}, 422, "points[0].fields"),
    ("value a string", {"points": [{"fields": {"v": "21.5"}}]}, 422, "points[0].fields.v"),
    ("value a bool", {"points": [{"fields": {"v": True}}]}, 422, "points[0].fields.v"),
    ("value null", {"points": [{"fields": {"v": None}}]}, 422, "points[0].fields.v"),
    ("value an object", {"points": [{"fields": {"v": {"x": 1}}}]}, 422, "points[0].fields.v"),
    ("bad field name", {"points": [{"fields": {"-v": 1}}]}, 422, "points[0].fields.-v"),
    (
        "long field name",
        {"points": [{"fields": {"v" * 65: 1}}]},
        422,
        "points[0].fields." + "v" * 64,
    ),
    (
        "too many fields",
        {"points": [{"fields": {f"f{i}": i for i in range(17)}}]},
        422,
        "points[0].fields",
    ),
    ("time not a time", {"points": [{"at": "yesterday", "fields": {"v": 1}}]}, 422, "points[0].at"),
    (
        "time without a zone",
        {"points": [{"at": "2030-01-01T00:00:00", "fields": {"v": 1}}]},
        422,
        "points[0].at",
    ),
    ("time a bool", {"points": [{"at": True, "fields": {"v": 1}}]}, 422, "points[0].at"),
    (
        "time far in the future",
        {"points": [{"at": NOW + 3600, "fields": {"v": 1}}]},
        422,
        "points[0].at",
    ),
    (
        "time far in the future (RFC 3339)",
        {"points": [{"at": iso(NOW + 86400 * 365), "fields": {"v": 1}}]},
        422,
        "points[0].at",
    ),
    ("clock never set", {"points": [{"at": 12.5, "fields": {"v": 1}}]}, 422, "points[0].at"),
    ("time huge", {"points": [{"at": 1e300, "fields": {"v": 1}}]}, 422, "points[0].at"),
]


@pytest.mark.parametrize(
    "body,status,field", [b[1:] for b in BAD_BATCHES], ids=[b[0] for b in BAD_BATCHES]
)
def test_a_bad_batch_is_a_4xx_naming_the_problem_and_stores_nothing(
    keys: Keys, body: Any, status: int, field: str
):
    series = create(keys)["id"]
    good = [{"at": NOW - 10 - i, "fields": {"kept": i}} for i in range(5)]
    assert push(keys, series, good).status_code == 201
    if isinstance(body, dict) and isinstance(body.get("points"), list) and body["points"]:
        # The bad point comes after good ones: nothing of the batch may be stored.
        body = {**body, "points": [{"fields": {"new_field": 1.0}}] * 3 + body["points"]}
        field = field.replace("points[0]", "points[3]")
    response = keys.client.post(f"{API}/series/{series}/points", json=body, headers=keys.device)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field, answer
    assert answer["detail"].startswith(field)
    after = keys.client.get(f"{API}/series/{series}", headers=AUTH).json()
    assert after["point_count"] == 5
    assert after["fields"] == ["kept"]


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"", "body_missing"),
        (b"{not json", "body_invalid"),
        (b'{"points": [{"fields": {"v": NaN}}]}', "body_invalid"),
        (b'{"points": [{"fields": {"v": Infinity}}]}', "body_invalid"),
        (b'{"points": [{"fields": {"v": -Infinity}}]}', "body_invalid"),
        (b"\xff\xfe", "body_invalid"),
    ],
)
def test_missing_or_broken_json_is_a_400(keys: Keys, raw: bytes, code: str):
    series = create(keys)["id"]
    response = keys.client.post(
        f"{API}/series/{series}/points",
        content=raw,
        headers={**keys.device, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


def test_numbers_too_large_for_a_float_are_refused(keys: Keys):
    series = create(keys)["id"]
    for raw in (
        b'{"points": [{"fields": {"v": 1e999}}]}',
        b'{"points": [{"fields": {"v": 1' + b"0" * 400 + b"}}]}",
    ):
        response = keys.client.post(
            f"{API}/series/{series}/points", content=raw, headers=keys.device
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "points[0].fields.v"
    # Whole numbers beyond 2**63 are fine as floats.
    assert push(keys, series, [{"fields": {"v": 2**70}}]).status_code == 201


def test_batch_size_is_bounded_by_configuration(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RASPAPI_SENSORS_MAX_BATCH", "10")
    client = make_client(rate_limits=())
    series = client.post(f"{API}/series", json={}, headers=AUTH).json()["id"]
    points = [{"fields": {"v": i}} for i in range(11)]
    response = client.post(f"{API}/series/{series}/points", json={"points": points}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["code"] == "batch_too_large"
    assert "at most 10" in response.json()["detail"]
    ok = client.post(f"{API}/series/{series}/points", json={"points": points[:10]}, headers=AUTH)
    assert ok.status_code == 201
    listing = client.get(f"{API}/series", headers=AUTH).json()
    assert listing["max_batch"] == 10
    # A body far beyond what the largest batch needs is cut off early.
    huge = b'{"points": [' + b'{"fields": {"v": 1}},' * 100_000 + b'{"fields": {"v": 1}}]}'
    response = client.post(f"{API}/series/{series}/points", content=huge, headers=AUTH)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_BATCH", "lots"),
        ("MAX_BATCH", "0"),
        ("MAX_SERIES", "100001"),
        ("RETENTION_DAYS", "0.001"),
        ("MAX_FUTURE_SECONDS", "-1"),
        ("PRUNE_INTERVAL", "nan"),
    ],
)
def test_a_bad_setting_fails_the_plugin_with_its_name(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, name: str, value: str
):
    monkeypatch.setenv(f"RASPAPI_SENSORS_{name}", value)
    client = make_client()
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["sensors"]
    assert plugin["state"] == "failed"
    assert f"RASPAPI_SENSORS_{name}" in plugin["reason"]
    response = client.get(f"{API}/series", headers=AUTH)
    assert response.status_code == 503


def test_settings_at_their_bounds_are_taken(make_client: MakeClient):
    from raspapi.plugins.sensors.config import Config

    options = {
        "RASPAPI_SENSORS_MAX_BATCH": "10000",
        "RASPAPI_SENSORS_MAX_SERIES": "1",
        "RASPAPI_SENSORS_RETENTION_DAYS": "0.01",
        "RASPAPI_SENSORS_MAX_FUTURE_SECONDS": "0",
        "RASPAPI_SENSORS_PRUNE_INTERVAL": "86400",
        "RASPAPI_SENSORS_PUBLIC_READ": "on",
    }
    client = make_client(rate_limits=(), options=options)
    assert sensors(client).config == Config(
        max_batch=10_000,
        max_series=1,
        retention_days=0.01,
        max_future_seconds=0.0,
        prune_interval=86400.0,
        public_read=True,
    )
    assert client.post(f"{API}/series", json={}, headers=AUTH).json()["retention_days"] == 0.01
    assert client.post(f"{API}/series", json={}, headers=AUTH).status_code == 409


def test_query_times_take_every_form_and_name_the_field():
    from raspapi.plugins.sensors.validate import query_time

    from raspapi.plugin import Invalid

    now = 1_900_000_000.0
    assert query_time("since", "now", now) == now
    assert query_time("since", " -7d ", now) == now - 7 * 86400
    assert query_time("since", "-1.5h", now) == now - 5400
    assert query_time("since", "1700000000.5", now) == 1700000000.5
    assert query_time("since", "0", now) == 0
    assert query_time("since", "2023-11-14T23:13:20+01:00", now) == 1700000000
    # Unix seconds before 1970 were always taken ("from the very start").
    assert query_time("since", "-5", now) == -5
    assert query_time("since", "-0.5", now) == -0.5
    for text in ("yesterday", "2030-01-01T00:00:00", "nan", "-inf", "1e11", "-1e11", "-5x", ""):
        with pytest.raises(Invalid) as error:
            query_time("until", text, now)
        assert error.value.field == "until", text
    with pytest.raises(Invalid, match="zone"):
        query_time("since", "2030-01-01T00:00:00", now)


def test_a_series_has_at_most_16_fields(keys: Keys):
    series = create(keys)["id"]
    first = {f"a{i}": i for i in range(10)}
    assert push(keys, series, [{"fields": first}]).status_code == 201
    more = {f"b{i}": i for i in range(7)}
    response = push(keys, series, [{"fields": {"a0": 1}}, {"fields": more}])
    assert response.status_code == 422
    assert response.json()["code"] == "too_many_fields"
    assert "b0" in response.json()["detail"]
    after = keys.client.get(f"{API}/series/{series}", headers=AUTH).json()
    assert after["point_count"] == 1 and len(after["fields"]) == 10
    assert push(keys, series, [{"fields": dict(list(more.items())[:6])}]).status_code == 201


def test_series_bodies_are_checked(keys: Keys):
    for body, field in [
        ({"description": 5}, "description"),
        ({"description": "x" * 201}, "description"),
        ({"device_id": "line\nbreak"}, "device_id"),
        ({"units": ["°C"]}, "units"),
        ({"units": {"t": 5}}, "units.t"),
        ({"units": {"bad name": "x"}}, "units.bad name"),
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "7"}, "retention_days"),
        ({"colour": "red"}, "colour"),
    ]:
        response = keys.client.post(f"{API}/series", json=body, headers=keys.device)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field
    assert keys.client.post(f"{API}/series", json=[1], headers=keys.device).status_code == 422
    response = keys.client.post(f"{API}/series", content=b"", headers=keys.device)
    assert response.status_code == 400


def test_unknown_series_and_bad_queries(keys: Keys):
    series = create(keys)["id"]
    assert push(keys, series, [{"fields": {"v": 1}}]).status_code == 201
    for path in (
        f"{API}/series/999",
        f"{API}/series/999/points",
        f"{API}/series/999/points.csv",
        f"{API}/series/99999999999999999999999999/points",
    ):
        response = keys.client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["code"] in ("unknown_series", "not_found")
    for query, field in [
        ("since=yesterday", "since"),
        ("until=2030-01-01T00:00:00", "until"),
        ("step=0", "step"),
        ("step=fast", "step"),
        ("step=nan", "step"),
        ("step=0.001&since=-7d", "step"),
        ("since=-1h&until=-2h&step=60", "since"),
        ("fields=v,nope", "fields"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("cursor=abc", "cursor"),
        ("order=sideways", "order"),
    ]:
        response = keys.client.get(f"{API}/series/{series}/points?{query}", headers=AUTH)
        assert response.status_code == 422, (query, response.text)
        assert response.json()["field"] == field
    assert keys.client.delete(f"{API}/series/999", headers=AUTH).status_code == 404


# -- queries --------------------------------------------------------------------------


def expected_steps(
    points: list[tuple[int, dict[str, float]]], names: list[str], start: int, end: int, step: int
) -> list[dict[str, Any]]:
    """What min/avg/max per step must be, computed from the points themselves."""
    out = []
    for begin in range(start, end, step):
        fields = {}
        for name in names:
            values = [
                f[name] for ts, f in points if begin <= ts < min(begin + step, end) and name in f
            ]
            fields[name] = {
                "count": len(values),
                "min": min(values) if values else None,
                "avg": sum(values) / len(values) if values else None,
                "max": max(values) if values else None,
            }
        out.append(fields)
    return out


def same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for name, w in want.items():
            g = got["fields"][name]
            assert g["count"] == w["count"], (got["at"], name)
            for key in ("min", "avg", "max"):
                if w[key] is None:
                    assert g[key] is None
                else:
                    assert g[key] == pytest.approx(w[key], rel=1e-9, abs=1e-9), (
                        got["at"],
                        name,
                        key,
                    )


@pytest.fixture
def history(keys: Keys) -> Iterator[tuple[Keys, int, list[tuple[int, dict[str, float]]]]]:
    """A series with 3 000 points over the last ~4 hours: irregular times, some fields absent."""
    rng = random.Random(9)
    series = create(keys)["id"]
    now_ms = int(time.time() * 1000)
    points: list[tuple[int, dict[str, float]]] = []
    ts = now_ms - 4 * 3_600_000
    for _ in range(3000):
        ts += rng.randint(1, 9000)
        fields: dict[str, float] = {}
        if rng.random() < 0.9:
            fields["temperature"] = round(rng.uniform(-10, 40), 3)
        if rng.random() < 0.5 or not fields:
            fields["humidity"] = round(rng.uniform(0, 100), 1)
        points.append((ts, fields))
    shuffled = points[:]
    rng.shuffle(shuffled)  # out of order, as a device's backlog may arrive
    for i in range(0, len(shuffled), 500):
        batch = [{"at": ts / 1000, "fields": f} for ts, f in shuffled[i : i + 500]]
        assert push(keys, series, batch).status_code == 201
    yield keys, series, points


@pytest.mark.parametrize("step", [10, 60, 300, 600, 3600, 7, 45.5, 2.5])
def test_steps_match_the_points(history, step: float):
    keys, series, points = history
    since_ms = points[0][0] - 12_345
    until_ms = points[-1][0] + 1
    step_ms = round(step * 1000)
    start = since_ms // step_ms * step_ms
    response = keys.client.get(
        f"{API}/series/{series}/points",
        params={"since": since_ms / 1000, "until": until_ms / 1000, "step": step},
        headers=keys.reader,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == (
        "rollups_300s"
        if step_ms % 300_000 == 0
        else "rollups_10s"
        if step_ms % 10_000 == 0
        else "points"
    )
    assert body["step_seconds"] == step_ms / 1000
    assert datetime.fromisoformat(body["start_at"]).timestamp() * 1000 == start
    same(
        body["steps"], expected_steps(points, ["temperature", "humidity"], start, until_ms, step_ms)
    )


def test_steps_stay_right_after_points_are_deleted(history):
    keys, series, points = history
    svc = sensors(keys.client)
    listing = keys.client.get(
        f"{API}/series/{series}/points",
        params={"since": "-1d", "limit": 10_000},
        headers=AUTH,
    ).json()["points"]
    doomed = listing[100:130]
    for point in doomed:
        response = keys.client.request("DELETE", f"/point/{point['id']}", json={"token": KEY})
        assert response.status_code == 204
    gone = {round(datetime.fromisoformat(p["at"]).timestamp() * 1000) for p in doomed}
    kept = [(ts, f) for ts, f in points if ts not in gone]
    assert svc is sensors(keys.client)
    since_ms = points[0][0] // 600_000 * 600_000
    until_ms = points[-1][0] + 1
    for step in (10, 600):
        body = keys.client.get(
            f"{API}/series/{series}/points",
            params={"since": since_ms / 1000, "until": until_ms / 1000, "step": step},
            headers=AUTH,
        ).json()
        same(
            body["steps"],
            expected_steps(kept, ["temperature", "humidity"], since_ms, until_ms, step * 1000),
        )
    count = keys.client.get(f"{API}/series/{series}", headers=AUTH).json()["point_count"]
    assert count == len(kept)


def test_fields_and_units_in_steps(keys: Keys):
    series = create(keys, units={"temperature": "°C"})["id"]
    now = time.time()
    push(keys, series, [{"at": now - 5, "fields": {"temperature": 20, "humidity": 50}}])
    body = keys.client.get(
        f"{API}/series/{series}/points?since=-1h&step=600&fields=temperature", headers=AUTH
    ).json()
    assert body["fields"] == ["temperature"]
    assert body["units"] == {"temperature": "°C"}
    assert len(body["steps"]) in (6, 7)
    assert all(list(s["fields"]) == ["temperature"] for s in body["steps"])
    # The point is in one step: the last, or the one before it when a step
    # boundary fell in the 5 s since it was taken.
    filled = [s["fields"]["temperature"] for s in body["steps"][-2:]]
    assert {"count": 1, "min": 20.0, "avg": 20.0, "max": 20.0} in filled
    assert sum(f["count"] for f in (s["fields"]["temperature"] for s in body["steps"])) == 1


def test_raw_points_pages_and_order(keys: Keys):
    series = create(keys)["id"]
    now = time.time()
    # Three points share one millisecond: the cursor still pages through each once.
    times = [now - 100 + i for i in range(20)] + [now - 50.5] * 3
    push(keys, series, [{"at": t, "fields": {"v": float(i)}} for i, t in enumerate(times)])
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"since": now - 200, "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = keys.client.get(f"{API}/series/{series}/points", params=params, headers=AUTH).json()
        seen += page["points"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 23
    assert len({p["id"] for p in seen}) == 23
    stamps = [datetime.fromisoformat(p["at"]).timestamp() for p in seen]
    assert stamps == sorted(stamps)
    newest = keys.client.get(
        f"{API}/series/{series}/points",
        params={"since": now - 200, "order": "desc", "limit": 1},
        headers=AUTH,
    ).json()["points"]
    assert newest[0]["fields"] == {"v": 22.0}  # the latest time, and of it the latest id
    # The default window is the last 24 hours.
    old = now - 3 * 86400
    push(keys, series, [{"at": old, "fields": {"v": -1}}])
    recent = keys.client.get(f"{API}/series/{series}/points", headers=AUTH).json()["points"]
    assert len(recent) == 23
    window = keys.client.get(
        f"{API}/series/{series}/points", params={"since": old - 1, "until": old + 1}, headers=AUTH
    ).json()["points"]
    assert [p["fields"] for p in window] == [{"v": -1.0}]


def test_csv_export(keys: Keys):
    series = create(keys)["id"]
    base = (int(time.time()) // 600 - 3) * 600
    push(
        keys,
        series,
        [
            {"at": base + 1.25, "fields": {"t": 20.5, "h": 40}},
            {"at": base + 2, "fields": {"t": 21.5}},
            {"at": base + 700, "fields": {"h": 42}},
        ],
    )
    response = keys.client.get(f"{API}/series/{series}/points.csv", headers=keys.reader)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="series-{series}.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["at", "t", "h"]
    second = datetime.fromtimestamp(base + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert rows[1] == [f"{second}.250Z", "20.5", "40.0"]
    assert rows[2][1:] == ["21.5", ""]
    assert rows[3][1:] == ["", "42.0"]
    assert len(rows) == 4
    stepped = keys.client.get(
        f"{API}/series/{series}/points.csv",
        params={"since": base, "until": base + 1200, "step": 600},
        headers=keys.reader,
    )
    rows = list(csv.reader(io.StringIO(stepped.text)))
    assert rows[0] == [
        "at",
        "t_count",
        "t_min",
        "t_avg",
        "t_max",
        "h_count",
        "h_min",
        "h_avg",
        "h_max",
    ]
    assert rows[1][1:] == ["2", "20.5", "21.0", "21.5", "1", "40.0", "40.0", "40.0"]
    assert rows[2][1:] == ["0", "", "", "", "1", "42.0", "42.0", "42.0"]


def test_csv_export_streams_every_page(keys: Keys, monkeypatch: pytest.MonkeyPatch):
    from raspapi.plugins.sensors import service

    monkeypatch.setattr(service, "CSV_PAGE", 7)
    series = create(keys)["id"]
    now = time.time()
    push(keys, series, [{"at": now - 100 + i, "fields": {"v": i}} for i in range(50)])
    rows = list(
        csv.reader(
            io.StringIO(keys.client.get(f"{API}/series/{series}/points.csv", headers=AUTH).text)
        )
    )
    assert [float(r[1]) for r in rows[1:]] == [float(i) for i in range(50)]


# -- retention ------------------------------------------------------------------------


def test_retention_deletes_old_points_a_bounded_amount_per_run(keys: Keys):
    svc = sensors(keys.client)
    series = create(keys, retention_days=1)["id"]
    kept_series = create(keys, retention_days=10)["id"]
    now = time.time()
    old = [{"at": now - 2 * 86400 + i, "fields": {"v": float(i)}} for i in range(250)]
    new = [{"at": now - 3600 + i, "fields": {"v": 1000.0 + i}} for i in range(10)]
    assert push(keys, series, old + new).status_code == 201
    assert push(keys, kept_series, old).status_code == 201
    svc.config = replace(svc.config, prune_batch=100)
    runs = []
    for _ in range(10):
        runs.append(keys.client.portal.call(svc.prune))  # type: ignore[union-attr]
        if runs[-1] == 0:
            break
    assert runs == [100, 100, 50, 0]
    info = keys.client.get(f"{API}/series/{series}", headers=AUTH).json()
    assert info["point_count"] == 10
    assert datetime.fromisoformat(info["first_at"]).timestamp() == pytest.approx(
        now - 3600, abs=0.01
    )
    body = keys.client.get(
        f"{API}/series/{series}/points", params={"since": "-3d", "step": 600}, headers=AUTH
    ).json()
    assert sum(s["fields"]["v"]["count"] for s in body["steps"]) == 10
    assert keys.client.get(f"{API}/series/{kept_series}", headers=AUTH).json()["point_count"] == 250


def test_a_deleted_series_points_are_purged_and_never_reused(keys: Keys):
    svc = sensors(keys.client)
    first = create(keys)["id"]
    push(keys, first, [{"fields": {"v": float(i)}} for i in range(30)])
    keys.client.delete(f"{API}/series/{first}", headers=keys.device)
    second = create(keys)["id"]
    assert second != first
    assert keys.client.get(f"{API}/series/{second}", headers=AUTH).json()["point_count"] == 0
    svc.config = replace(svc.config, prune_batch=20)
    assert keys.client.portal.call(svc.prune) == 20  # type: ignore[union-attr]
    assert keys.client.portal.call(svc.prune) == 10  # type: ignore[union-attr]

    def left(conn: Any) -> Any:
        return conn.execute("SELECT count(*) FROM points").fetchone()[0], conn.execute(
            "SELECT count(*) FROM rollups"
        ).fetchone()[0]

    assert svc.writer.call(left) == (0, 0)
    assert svc.writer.call(lambda c: c.execute("SELECT count(*) FROM purge").fetchone()[0]) == 0


def test_the_retention_task_runs_in_the_background(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RASPAPI_SENSORS_PRUNE_INTERVAL", "0.1")
    client = make_client()
    series = client.post(f"{API}/series", json={"retention_days": 1}, headers=AUTH).json()["id"]
    old = time.time() - 3 * 86400
    client.post(
        f"{API}/series/{series}/points",
        json={"points": [{"at": old, "fields": {"v": 1}}]},
        headers=AUTH,
    )
    status: dict[str, Any] = {}
    for _ in range(100):  # the status is cached for 2 s
        status = client.get("/ready", headers=AUTH).json()["plugins"]["sensors"]
        if status["details"]["points_pruned"] == 1:
            break
        time.sleep(0.05)
    assert status["state"] == "ok"
    assert status["details"]["points_pruned"] == 1
    assert client.get(f"{API}/series/{series}", headers=AUTH).json()["point_count"] == 0


def test_the_retention_task_sleeps_while_the_store_holds_no_point(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RASPAPI_SENSORS_PRUNE_INTERVAL", "0.1")
    client = make_client()
    svc = sensors(client)
    runs: list[int] = []
    prune_run = svc._prune_run

    async def counted(now: float | None = None) -> tuple[int, bool]:
        result: tuple[int, bool] = await prune_run(now)
        runs.append(result[0])
        return result

    svc._prune_run = counted
    series = client.post(f"{API}/series", json={"retention_days": 1}, headers=AUTH).json()["id"]
    time.sleep(0.6)  # six intervals: an empty store is not looked at again
    assert runs == []
    assert not svc.task.done()
    old = time.time() - 3 * 86400
    client.post(
        f"{API}/series/{series}/points",
        json={"points": [{"at": old, "fields": {"v": 1}}]},
        headers=AUTH,
    )
    for _ in range(100):  # the stored point wakes it, and it is pruned
        if runs:
            break
        time.sleep(0.02)
    assert runs[:1] == [1]
    time.sleep(0.5)  # empty again: asleep again
    assert runs == [1]


def test_status_and_metrics(keys: Keys):
    series = create(keys)["id"]
    push(keys, series, [{"fields": {"v": 1}}, {"fields": {"v": 2}}])
    push(keys, series, [{"fields": {"v": "x"}}])
    details: dict[str, Any] = {}
    for _ in range(100):  # the status is cached for 2 s
        details = keys.client.get("/ready", headers=AUTH).json()["plugins"]["sensors"]["details"]
        if details["series"] == 1:
            break
        time.sleep(0.05)
    assert details["series"] == 1
    assert details["points_ingested"] == 2
    assert details["batches_rejected"] == 1
    text = keys.client.get("/metrics", headers=AUTH).text
    assert "raspapi_sensors_points_ingested_total 2.0" in text
    assert "raspapi_sensors_series 1.0" in text


def test_the_store_survives_a_restart(settings: Settings):
    with TestClient(create_app(settings)) as client:
        series = client.post(f"{API}/series", json={"units": {"v": "V"}}, headers=AUTH).json()["id"]
        pushed = client.post(
            f"{API}/series/{series}/points", json={"points": [{"fields": {"v": 1}}]}, headers=AUTH
        ).json()
    with TestClient(create_app(settings)) as again:
        info = again.get(f"{API}/series/{series}", headers=AUTH).json()
        assert info["point_count"] == 1 and info["units"] == {"v": "V"} and info["fields"] == ["v"]
        later = again.post(
            f"{API}/series/{series}/points", json={"points": [{"fields": {"v": 2}}]}, headers=AUTH
        ).json()
        assert later["first_id"] > pushed["first_id"]


def test_the_state_file_is_private(keys: Keys):
    path = sensors(keys.client).writer.path
    assert path.name == "sensors.db"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "since,steps,step_seconds,source",
    [
        ("-7d", 500, 1210.0, "rollups_10s"),
        ("-365d", 500, 63300.0, "rollups_300s"),
        ("-1h", 500, 8.0, "points"),
        ("-1h", 100, 36.0, "points"),
        ("-1d", 100, 870.0, "rollups_10s"),
        ("-10s", 100, 0.1, "points"),
    ],
)
def test_steps_picks_a_step_the_rollups_serve(
    keys: Keys, since: str, steps: int, step_seconds: float, source: str
):
    series = create(keys)["id"]
    now = time.time()
    push(keys, series, [{"at": now - 5, "fields": {"v": 2}}, {"at": now - 4, "fields": {"v": 4}}])
    body = keys.client.get(
        f"{API}/series/{series}/points", params={"since": since, "steps": steps}, headers=AUTH
    ).json()
    assert body["step_seconds"] == step_seconds
    assert body["source"] == source
    assert steps * 0.9 - 1 <= len(body["steps"]) <= steps + 1  # rounded up: a little fewer
    assert sum(s["fields"]["v"]["count"] for s in body["steps"]) == 2
    both = keys.client.get(
        f"{API}/series/{series}/points", params={"step": 60, "steps": 10}, headers=AUTH
    )
    assert both.status_code == 422 and both.json()["field"] == "steps"

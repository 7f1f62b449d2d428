"""GET /api/v1/metrics/requests: count, errors, latency quantiles per route template."""

from __future__ import annotations

import math
from typing import Any

from starlette.testclient import TestClient

from raspapi.settings import Settings
from raspapi.telemetry.requests import (
    BOUNDS,
    EXPORT_BOUNDS,
    RESPONSE,
    RequestMetrics,
    _Series,
    quantile,
)
from tests.conftest import AUTH, MakeClient
from tests.schema_check import problems


def by_route(client: TestClient) -> dict[tuple[str, str], dict[str, Any]]:
    body = client.get("/api/v1/metrics/requests", headers=AUTH).json()
    assert problems(body, RESPONSE) == []
    return {(r["method"], r["route"]): r for r in body["routes"]}


def test_counted_per_template_never_per_path(client: TestClient):
    for n in range(500):
        client.get(f"/api/v1/networking/x{n}", headers=AUTH)
    for n in range(500):
        client.get(f"/nothing/here/{n}", headers=AUTH)
    routes = by_route(client)
    one = routes[("GET", "/api/v1/networking/{interface}")]["total"]
    assert one["requests"] == 500
    assert one["client_errors"] == 500  # no such interface: 404
    assert routes[("*", "unmatched")]["total"]["requests"] == 500
    assert not any("x1" in route or "/nothing" in route for _, route in routes)
    assert len(routes) < 10


def test_requests_errors_and_windows(make_client: MakeClient):
    client = make_client()
    for _ in range(3):
        assert client.get("/system", headers=AUTH).status_code == 200
    client.get("/system")  # 403: no key
    routes = by_route(client)
    system = routes[("GET", "/system")]
    for window in ("total", "last_5_minutes"):
        assert system[window]["requests"] == 4
        assert system[window]["client_errors"] == 1
        assert system[window]["server_errors"] == 0
        assert 0 < system[window]["p50_ms"] <= system[window]["p95_ms"] <= system[window]["p99_ms"]
        assert system[window]["p99_ms"] < 10_000


def test_server_errors_are_counted(settings: Settings, make_client: MakeClient):
    settings.plugins_dir.mkdir()
    (settings.plugins_dir / "broken.py").write_text(
        "from raspapi import hookimpl\nfrom raspapi.http.routing import ApiRoute\n\n"
        "async def boom(request):\n    raise RuntimeError('boom')\n\n"
        "@hookimpl\ndef raspapi_routes(ctx):\n"
        "    return [ApiRoute('/', boom, response={'type': 'object'})]\n"
    )
    client = make_client()
    assert client.get("/api/v1/broken", headers=AUTH).status_code == 500
    entry = by_route(client)[("GET", "/api/v1/broken")]["total"]
    assert entry["requests"] == 1 and entry["server_errors"] == 1


def test_methods_are_bounded(client: TestClient):
    for method in ("BREW", "PROPFIND", "GET"):
        client.request(method, "/health")
    routes = by_route(client)
    assert routes[("OTHER", "/health")]["total"]["requests"] == 2
    assert routes[("GET", "/health")]["total"]["requests"] == 1


def test_needs_a_key(client: TestClient):
    assert client.get("/api/v1/metrics/requests").status_code == 401


# -- the table itself, on a fake clock -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(metrics: RequestMetrics, series: _Series, seconds: float, status: int = 200) -> None:
    metrics.add(series, status, seconds)


def test_quantiles_are_plausible():
    metrics = RequestMetrics(clock=Clock())
    series = _Series("GET", "/x")
    latencies = [ms / 1000 for ms in range(1, 1001)]  # 1 ms .. 1 s, uniform
    for seconds in latencies:
        record(metrics, series, seconds)
    metrics._series[(0, "GET")] = series
    (stats,) = metrics.snapshot()
    for q, got in (
        (0.5, stats.total.p50_seconds),
        (0.95, stats.total.p95_seconds),
        (0.99, stats.total.p99_seconds),
    ):
        exact = latencies[math.ceil(q * len(latencies)) - 1]
        assert got is not None and abs(got - exact) / exact < 0.12, (q, got, exact)
    assert stats.total.seconds_sum == sum(latencies)


def test_quantile_of_nothing_and_of_outliers():
    assert quantile([0] * (len(BOUNDS) + 1), 0.5) is None
    hist = [0] * (len(BOUNDS) + 1)
    hist[-1] = 3  # slower than 100 s
    assert quantile(hist, 0.99) == BOUNDS[-1]


def test_the_five_minute_window_slides():
    clock = Clock()
    metrics = RequestMetrics(clock=clock)
    series = _Series("GET", "/x")
    metrics._series[(0, "GET")] = series
    for _ in range(10):
        record(metrics, series, 0.010, status=503)
    clock.now += 200
    for _ in range(5):
        record(metrics, series, 0.002)
    (stats,) = metrics.snapshot()
    assert stats.last_5_minutes.requests == 15
    clock.now += 150  # the first ten are now 350 s old
    (stats,) = metrics.snapshot()
    assert stats.total.requests == 15 and stats.total.server_errors == 10
    assert stats.last_5_minutes.requests == 5 and stats.last_5_minutes.server_errors == 0
    assert stats.last_5_minutes.p99_seconds is not None
    assert stats.last_5_minutes.p99_seconds <= 0.0025
    clock.now += 3600
    (stats,) = metrics.snapshot()
    assert stats.last_5_minutes.requests == 0 and stats.last_5_minutes.p50_seconds is None
    assert stats.total.requests == 15


def test_histogram_for_prometheus():
    metrics = RequestMetrics(clock=Clock())
    series = _Series("GET", "/x")
    metrics._series[(0, "GET")] = series
    for seconds in (0.0005, 0.001, 0.003, 0.2, 7.0, 500.0):
        record(metrics, series, seconds)
    ((method, route, buckets, total, count),) = metrics.histogram()
    assert (method, route, count) == ("GET", "/x", 6)
    assert [le for le, _ in buckets] == [*EXPORT_BOUNDS, math.inf]
    cumulative = dict(buckets)
    assert cumulative[0.001] == 2  # le is inclusive
    assert cumulative[0.005] == 3 and cumulative[0.25] == 4 and cumulative[10.0] == 5
    assert cumulative[math.inf] == 6
    assert [n for _, n in buckets] == sorted(n for _, n in buckets)
    assert math.isclose(total, 507.2045)

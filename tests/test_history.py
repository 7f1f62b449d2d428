"""The history plugin: sampling through raspapi_samples, retention and downsampling on a
fake clock, the series API, and a kill -9 of the real daemon while it writes."""

from __future__ import annotations

import itertools
import os
import pkgutil
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import raspapi.plugins
from raspapi.plugins.history import schema as history_schema
from raspapi.plugins.history import service as history_service
from raspapi.plugins.history import store as history_store
from starlette.testclient import TestClient

from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient
from tests.schema_check import problems
from tests.test_cli import env_for, free_port, get

#: 2023-11-14T22:10:00Z: a multiple of 600 s, so 5- and 10-minute steps line up.
T0 = 1_699_999_800
DAY = 86_400
RETENTION = DAY // 4
DOWNSAMPLED = 3 * DAY // 4
BUILTIN = frozenset(m.name for m in pkgutil.iter_modules(raspapi.plugins.__path__))

GAUGE = """
from raspapi import hookimpl

VALUES = {}

@hookimpl
def raspapi_samples(ctx):
    return dict(VALUES)
"""


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


def sampler(client: TestClient) -> Any:
    return client.app.state.runtime.manager.plugins["history"].ctx.state["__service__"]  # type: ignore[attr-defined]


def values(name: str = "gauge") -> dict[str, float]:
    module = sys.modules[f"_raspapi_dropin_{name}"]
    table: dict[str, float] = module.VALUES
    return table


def series(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/history", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The sampler's wall clock."""
    fake = FakeClock(T0 - 600)
    monkeypatch.setattr(history_service, "clock", fake)
    return fake


def tick(client: TestClient, history: Any) -> None:
    """One sampling interval, now, on the app's event loop."""
    assert client.portal is not None
    client.portal.call(history.tick)


def started(client: TestClient) -> Any:
    """The sampler, which has written nothing yet (its first interval is an hour away)."""
    history = sampler(client)
    assert history.written == 0 and history.failures == 0
    return history


@pytest.fixture
def gauge_client(settings: Settings, make_client: MakeClient, clock: FakeClock) -> TestClient:
    """Only the history and a drop-in ``gauge`` plugin; the sampler left to the test."""
    dropin(settings, "gauge", GAUGE)
    return make_client(
        disable=BUILTIN - {"history"},
        history_interval=3600.0,
        history_retention_days=RETENTION / DAY,
        history_downsampled_days=DOWNSAMPLED / DAY,
    )


def test_hook_raspapi_samples(
    settings: Settings, make_client: MakeClient, clock: FakeClock, root: Path
):
    dropin(
        settings,
        "meter",
        """
        import math
        from raspapi import hookimpl

        @hookimpl
        async def raspapi_samples(ctx):
            return {"meter.watts": 42.5, "meter.on": True, "Bad Name": 1.0,
                    "meter.nan": math.nan, "meter.text": "12"}
        """,
    )
    dropin(
        settings,
        "broken",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_samples(ctx):
            raise RuntimeError("sensor unplugged")
        """,
    )
    client = make_client(history_interval=3600.0)
    history = started(client)
    tick(client, history)  # the baselines
    # Between two intervals the CPUs worked and wlan0 sent 1000 bytes.
    stat = root / "proc/stat"
    stat.write_text(
        stat.read_text().replace("cpu  10000 200 5000 80000", "cpu  10100 200 5000 80300")
    )
    dev = root / "proc/net/dev"
    dev.write_text(dev.read_text().replace("345678901", "345679901"))
    time.sleep(1.1)  # past the plugins' 1 s caches
    clock.now += 10
    tick(client, history)
    names = {
        m["name"]: m for m in client.get("/api/v1/history/metrics", headers=AUTH).json()["metrics"]
    }
    assert names["meter.watts"]["last_value"] == 42.5
    assert names["meter.on"]["last_value"] == 1.0
    assert not {"Bad Name", "meter.nan", "meter.text"} & names.keys()
    # The built-in plugins' samples, named as documented.
    for name in (
        "cpu.percent",
        "memory.percent",
        "swap.percent",
        "load.avg_1m",
        "disk.root.percent",
        "temperature.thermal_zone0.celsius",
        "temperature.hwmon0.temp1.celsius",
        "throttling.under_voltage",
        "net.eth0.rx_bytes_per_second",
        "net.wlan0.tx_bytes_per_second",
    ):
        assert name in names, name
    assert names["temperature.thermal_zone0.celsius"]["last_value"] == 48.686
    assert names["cpu.percent"]["last_value"] == 25.0
    # 1000 bytes over the real time between the two intervals (1.1 s or more).
    assert 0 < names["net.wlan0.tx_bytes_per_second"]["last_value"] <= 1000 / 1.1
    assert names["net.eth0.rx_bytes_per_second"]["last_value"] == 0.0
    assert "net.lo.rx_bytes_per_second" not in names
    # The plugin that raised is skipped, and says so in /metrics.
    text = client.get("/metrics", headers=AUTH).text
    assert 'raspapi_plugin_collect_success{hook="samples",plugin="broken"} 0.0' in text
    assert 'raspapi_plugin_collect_success{hook="samples",plugin="meter"} 1.0' in text


def test_retention_and_downsampling_on_a_fake_clock(
    gauge_client: TestClient, clock: FakeClock, settings: Settings
):
    # Values are kept 6 hours, 5-minute rollups 18 hours; a day of samples, one
    # every 10 minutes, pruning as it goes.
    client, history = gauge_client, started(gauge_client)
    table = values()
    ticks = DAY // 600
    for i in range(ticks):
        clock.now = T0 + i * 600
        table["gauge.value"] = float(i)
        if i < 10:
            table["gauge.gone"] = 1.0
        else:
            table.pop("gauge.gone", None)
        tick(client, history)
    now = clock.now
    assert history.written == ticks and history.failures == 0

    db = sqlite3.connect(settings.state_dir / "history.db")
    (metric,) = db.execute("SELECT id FROM metrics WHERE name = 'gauge.value'").fetchone()
    oldest_raw, raw = db.execute(
        "SELECT min(ts), count(*) FROM samples WHERE metric = ?", (metric,)
    ).fetchone()
    oldest_rollup = db.execute(
        "SELECT min(ts) FROM rollups WHERE metric = ?", (metric,)
    ).fetchone()[0]
    db.close()
    # Values: the last 6 hours (pruned every 10 minutes, so up to one more).
    assert (now - RETENTION) * 1000 - 600_000 <= oldest_raw
    assert raw <= RETENTION // 600 + 2
    # Rollups: 18 hours, then gone.
    assert abs(oldest_rollup - (now - DOWNSAMPLED) * 1000) <= 600_000

    # Hourly steps over the rollups: min, avg and max of six values each.
    body = series(
        client, metric="gauge.value", since=str(now - DOWNSAMPLED), until=str(now + 1), step=3600
    )
    assert body["source"] == "rollups" and body["step_seconds"] == 3600
    assert not problems(body, history_schema.SERIES)
    full = [p for p in body["points"] if p["count"] == 6]
    assert len(full) >= 16
    for point in full:
        first = (point["timestamp"] - T0) / 600
        assert point["min"] == first
        assert point["max"] == first + 5
        assert point["avg"] == pytest.approx(first + 2.5)
        assert point["timestamp"] % 3600 == 0  # aligned to the step
    # Older than the rollups' retention: empty steps.
    old = series(
        client, metric="gauge.value", since=str(T0), until=str(now - DOWNSAMPLED - 900), step=3600
    )
    assert old["points"]
    assert all(p["count"] == 0 and p["avg"] is None for p in old["points"])

    # Two-minute steps over 12 hours: the values for the last 6, rollups before
    # (each 5-minute bucket in the step where it starts).
    body = series(client, metric="gauge.value", since="-12h", until="now", step=120)
    assert body["source"] == "mixed" and len(body["points"]) == 360
    found = [p for p in body["points"] if p["count"]]
    assert [p["count"] for p in found] == [1] * 72
    # From the sample at since (included) to the one at until (excluded).
    assert [p["avg"] for p in found] == [float(i) for i in range(ticks - 73, ticks - 1)]
    for point in found:  # each in the step holding its sample (or its sample's bucket)
        sample_at = T0 + point["avg"] * 600
        assert point["timestamp"] <= sample_at < point["timestamp"] + 300

    listed = client.get("/api/v1/history/metrics", headers=AUTH).json()
    assert listed["retention_days"] == 0.25 and listed["downsampled_days"] == 0.75
    names = {m["name"]: m for m in listed["metrics"]}
    # gauge.gone stopped 22 hours ago: past both retentions, its name is gone too.
    assert set(names) == {"gauge.value"}
    assert names["gauge.value"]["last_value"] == float(ticks - 1)
    assert names["gauge.value"]["last_at"] == "2023-11-15T22:00:00Z"


def test_series_defaults_and_short_steps(gauge_client: TestClient, clock: FakeClock):
    client, history = gauge_client, started(gauge_client)
    for i in range(30):
        clock.now = T0 + 3600 + i * 2.5
        values()["gauge.fast"] = float(i % 3)
        tick(client, history)
    body = series(client, metric="gauge.fast", since=str(T0 + 3600), until=str(T0 + 3675), step=5)
    assert body["source"] == "samples"
    assert body["start_at"] == "2023-11-14T23:10:00Z"
    assert len(body["points"]) == 15
    first = body["points"][0]
    assert first == {
        "at": "2023-11-14T23:10:00Z",
        "timestamp": T0 + 3600,
        "min": 0.0,
        "avg": 0.5,
        "max": 1.0,
        "count": 2,
    }
    # Sub-second steps carry milliseconds.
    body = series(client, metric="gauge.fast", since=str(T0 + 3600), until=str(T0 + 3601), step=0.5)
    assert body["points"][1]["at"] == "2023-11-14T23:10:00.500Z"
    # No step: the range in at most 500 points, at least the sampling interval.
    clock.now = T0 + 3600 + 80
    body = series(client, metric="gauge.fast", since="-1h")
    assert body["step_seconds"] == 3600
    body = series(client, metric="gauge.fast", since="2023-11-14T23:00:00+01:00")
    assert body["start_at"] == "2023-11-14T22:00:00Z"  # the last 24 h would start later


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({}, 422, "metric"),
        ({"metric": "nope.nothing"}, 404, None),
        ({"metric": "gauge.x", "since": "-1h", "until": "-2h"}, 422, "since"),
        ({"metric": "gauge.x", "since": "yesterday"}, 422, "since"),
        ({"metric": "gauge.x", "until": "1e300"}, 422, "until"),
        ({"metric": "gauge.x", "step": "0"}, 422, "step"),
        ({"metric": "gauge.x", "step": "nan"}, 422, "step"),
        ({"metric": "gauge.x", "since": "-30d", "step": "60"}, 422, "step"),
    ],
)
def test_bad_queries(
    gauge_client: TestClient,
    clock: FakeClock,
    params: dict[str, str],
    status: int,
    field: str | None,
):
    values()["gauge.x"] = 1.0
    history = started(gauge_client)
    clock.now += 10
    tick(gauge_client, history)
    response = gauge_client.get("/api/v1/history", params=params, headers=AUTH)
    assert response.status_code == status, response.text
    body = response.json()
    assert body.get("field") == field
    if status == 404:
        assert body["code"] == "unknown_metric"
    if field == "step" and "30d" in str(params):
        assert re.search(r"gives 4320\d points; at most 2000: use 129\d or more", body["detail"])


def test_needs_a_key_and_documents_its_schema(gauge_client: TestClient):
    assert gauge_client.get("/api/v1/history?metric=x").status_code == 401
    assert gauge_client.get("/api/v1/history/metrics").status_code == 401
    paths = gauge_client.get("/openapi.json").json()["paths"]
    assert "/api/v1/history" in paths and "/api/v1/history/metrics" in paths
    text = gauge_client.get("/metrics", headers=AUTH).text
    assert "raspapi_history_intervals_written_total" in text


def test_a_clock_going_back_skips_samples(gauge_client: TestClient, clock: FakeClock):
    history = started(gauge_client)
    values()["gauge.x"] = 1.0
    clock.now = T0 + 100
    tick(gauge_client, history)
    written = history.written
    clock.now = T0 + 50
    tick(gauge_client, history)
    assert history.written == written and history.failures == 0
    clock.now = T0 + 110
    tick(gauge_client, history)
    assert history.written == written + 1


# -- kill -9 of the real daemon ----------------------------------------------------

BULK = """
import random
from raspapi import hookimpl

@hookimpl
def raspapi_samples(ctx):
    # Enough names that each interval's transaction takes a while.
    return {f"bulk.{i}.value": random.random() for i in range(2000)}
"""
INTERVAL = 0.2


def _serve(settings: Settings, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "raspapi", "serve", "--port", str(port)],
        env=env_for(settings, RASPAPI_HISTORY_INTERVAL=str(INTERVAL), RASPAPI_LOG_LEVEL="warning"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if get(port, "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the daemon did not start: {proc.communicate()[1][-2000:]}")


def _check_store(path: Path, killed_at: float) -> int:
    """Integrity, every interval all or nothing, and at most one interval lost."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Each interval wrote its values and their rollups in one transaction.
        mismatched = db.execute(
            "SELECT count(*) FROM metrics m WHERE "
            "(SELECT count(*) FROM samples WHERE metric = m.id) != "
            "(SELECT coalesce(sum(count), 0) FROM rollups WHERE metric = m.id)"
        ).fetchone()[0]
        assert mismatched == 0
        per_tick = db.execute(
            "SELECT count(*) FROM samples s JOIN metrics m ON m.id = s.metric "
            "WHERE m.name LIKE 'bulk.%' GROUP BY s.ts"
        ).fetchall()
        assert per_tick and {n for (n,) in per_tick} == {2000}
        (metric,) = db.execute("SELECT id FROM metrics WHERE name = 'bulk.0.value'").fetchone()
        stamps = [
            t / 1000
            for (t,) in db.execute("SELECT ts FROM samples WHERE metric = ? ORDER BY ts", (metric,))
        ]
    finally:
        db.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # The interval being written when the process died may be lost; nothing before it.
    longest = max(gaps[-20:], default=INTERVAL)
    assert killed_at - stamps[-1] <= longest + INTERVAL, (killed_at - stamps[-1], longest)
    return len(stamps)


@pytest.mark.integration
def test_kill_9_while_writing_keeps_the_store_whole(settings: Settings):
    dropin(settings, "bulk", BULK)
    store = settings.state_dir / "history.db"
    count = 0
    for _ in range(3):
        proc = _serve(settings, free_port())
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # until this run has written a few intervals
                time.sleep(0.3)
                if store.exists() and _written(store) >= count + 5:
                    break
            time.sleep(random.uniform(0.0, 0.5))
            killed_at = time.time()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        written = _check_store(store, killed_at)
        assert written > count
        count = written


def _written(path: Path) -> int:
    db = sqlite3.connect(path, timeout=5)
    try:
        row = db.execute(
            "SELECT count(*) FROM samples "
            "WHERE metric = (SELECT id FROM metrics WHERE name = 'bulk.0.value')"
        ).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_names_are_capped(
    gauge_client: TestClient,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setattr(history_store, "MAX_METRICS", 3)
    history = started(gauge_client)
    values().update({f"gauge.n{i}": float(i) for i in range(5)})
    clock.now = T0
    tick(gauge_client, history)
    names = gauge_client.get("/api/v1/history/metrics", headers=AUTH).json()["metrics"]
    assert [m["name"] for m in names] == ["gauge.n0", "gauge.n1", "gauge.n2"]
    assert "more than 3 names: not sampling gauge.n3" in caplog.text

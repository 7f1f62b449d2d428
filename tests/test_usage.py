"""The usage plugin: bytes per device from a scripted hostapd whose counters grow,
reset and disappear, on a fake clock; quotas that block and lift themselves;
retention; bad input; and a kill -9 of the real daemon while it writes."""

from __future__ import annotations

import calendar
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from raspapi.plugins.usage import service as usage_module
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings
from tests.conftest import AUTH, loop_factory
from tests.hostapd_peer import ScriptedHostapd, ctrl_path, short_root
from tests.test_admin_browser import (  # noqa: F401 - fixtures
    Daemon,
    browser,
    daemon,
    open_page,
    sign_in,
)
from tests.test_cli import CLI, env_for, free_port, get

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

PIXEL = "b8:27:eb:4f:12:a3"  # lease "pixel-7"
ESP32 = "e4:5f:01:aa:bb:cc"  # lease "esp32-sensor"
STATIC = "02:11:22:33:44:55"  # no lease
#: 2030-01-15T10:00:00Z
T0 = calendar.timegm((2030, 1, 15, 10, 0, 0))
DAY = 86400


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


@pytest.fixture
def peer(root: Path) -> Iterator[ScriptedHostapd]:
    with ScriptedHostapd(ctrl_path(root)) as scripted:
        yield scripted


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(T0)
    monkeypatch.setattr(usage_module, "clock", fake)
    monkeypatch.setattr(usage_module, "timezone", UTC)
    return fake


def app_settings(settings: Settings, **options: str) -> Settings:
    """The sampler left to the test (its first interval is an hour away); no cache."""
    return settings.with_(
        history_interval=3600.0, cache_ttl=0.0, options={**settings.options, **options}
    )


def started(settings: Settings, loop: str = "asyncio") -> TestClient:
    client = TestClient(
        create_app(settings),
        raise_server_exceptions=False,
        backend_options={"loop_factory": loop_factory(loop)},
    )
    client.__enter__()
    return client


def service(client: TestClient) -> Any:
    return client.app.state.runtime.manager.plugins["usage"].ctx.state["__service__"]  # type: ignore[attr-defined]


def tick(client: TestClient) -> None:
    usage = service(client)
    failures = usage.failures
    assert client.portal is not None
    client.portal.call(usage.tick)
    assert usage.failures == failures, "the interval failed"


def station(peer: ScriptedHostapd, mac: str, rx: int, tx: int, connected: int) -> None:
    with peer._lock:
        values = peer.stations.get(mac)
    if values is None:
        peer.add_station(mac, rx_bytes=rx, tx_bytes=tx, connected_time=connected)
    else:
        with peer._lock:
            values.update(rx_bytes=rx, tx_bytes=tx, connected_time=connected)


def leave(peer: ScriptedHostapd, mac: str) -> None:
    with peer._lock:
        peer.stations.pop(mac, None)


def usage(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/usage", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_mac(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["mac"]: d for d in body["devices"]}


# -- accounting ------------------------------------------------------------------------


def test_totals_are_exact_across_growth_reconnects_departures_and_restarts(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock, loop_name: str
) -> None:
    config = app_settings(settings)
    client = started(config, loop_name)
    try:
        station(peer, PIXEL, 1000, 5000, 10)
        tick(client)  # the first look of all: a baseline, nothing counted
        assert usage(client)["devices"] == []
        clock.now += 10
        station(peer, PIXEL, 3000, 9000, 20)
        tick(client)  # +2000 / +4000
        clock.now += 10
        station(peer, PIXEL, 3500, 9500, 30)
        station(peer, ESP32, 100, 200, 5)  # new since the last sample: counted whole
        tick(client)
        clock.now += 10
        station(peer, PIXEL, 50, 70, 1)  # reconnected: the counter started again
        tick(client)
        clock.now += 10
        leave(peer, PIXEL)
        station(peer, ESP32, 150, 260, 45)
        tick(client)
        clock.now = T0 + 3600 + 10
        station(peer, PIXEL, 10, 20, 2)  # back, in the next hour
        tick(client)
    finally:
        client.__exit__(None, None, None)

    # The daemon restarts; the station kept its association meanwhile.
    clock.now = T0 + 3600 + 20
    station(peer, PIXEL, 60, 80, 12)
    client = started(config, loop_name)
    try:
        tick(client)
        now = T0 + 3600 + 30
        clock.now = now
        body = usage(client, since=str(T0 - 1), until="now", step="hour")
        devices = by_mac(body)
        assert [d["mac"] for d in body["devices"]] == [PIXEL, ESP32]  # largest first
        pixel = devices[PIXEL]
        assert pixel["hostname"] == "pixel-7"
        assert (pixel["rx_bytes"], pixel["tx_bytes"]) == (2610, 4650)
        assert pixel["uploaded_bytes"] == 2610 and pixel["downloaded_bytes"] == 4650
        assert pixel["total_bytes"] == 7260
        assert [(s["start_at"], s["rx_bytes"], s["tx_bytes"]) for s in pixel["steps"]] == [
            ("2030-01-15T10:00:00Z", 2550, 4570),
            ("2030-01-15T11:00:00Z", 60, 80),
        ]
        esp = devices[ESP32]
        assert (esp["hostname"], esp["rx_bytes"], esp["tx_bytes"]) == ("esp32-sensor", 150, 260)

        day = by_mac(usage(client, since="-1d", step="day"))
        assert [(s["start_at"], s["total_bytes"]) for s in day[PIXEL]["steps"]] == [
            ("2030-01-15T00:00:00Z", 7260)
        ]
        one = client.get(f"/api/v1/usage/{PIXEL}", params={"step": "hour"}, headers=AUTH)
        assert one.status_code == 200 and one.json()["device"]["total_bytes"] == 7260
        assert client.get(f"/api/v1/usage/{STATIC}", headers=AUTH).status_code == 404
        top = usage(client, since="-1d", top=1)
        assert [d["mac"] for d in top["devices"]] == [PIXEL]

        csv = client.get("/api/v1/usage.csv", params={"step": "hour"}, headers=AUTH)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0] == (
            "mac,hostname,start_at,rx_bytes,tx_bytes,total_bytes,uploaded_bytes,downloaded_bytes"
        )
        assert f"{PIXEL},pixel-7,2030-01-15T10:00:00Z,2550,4570,7120,2550,4570" in lines
        assert len(lines) == 1 + 3

        metrics = client.get("/metrics", headers=AUTH).text
        assert (
            f'raspapi_client_receive_bytes_total{{hostname="pixel-7",mac="{PIXEL}"}} 2610.0'
            in metrics
        )
        assert (
            f'raspapi_client_transmit_bytes_total{{hostname="esp32-sensor",mac="{ESP32}"}} 260.0'
            in metrics
        )
    finally:
        client.__exit__(None, None, None)


def test_devices_past_the_daily_cap_are_counted_as_other(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock
) -> None:
    client = started(
        app_settings(settings, RASPAPI_USAGE_MAX_DEVICES="2", RASPAPI_USAGE_METRICS_DEVICES="1")
    )
    try:
        tick(client)  # baseline (no stations yet)
        macs = [f"02:00:00:00:00:{i:02x}" for i in range(5)]
        for i, mac in enumerate(macs):
            station(peer, mac, 100 * (i + 1), 10, 1)
        clock.now += 10
        tick(client)
        devices = by_mac(usage(client, since="-1h", step="hour"))
        assert set(devices) == {macs[0], macs[1], "other"}
        assert devices["other"]["rx_bytes"] == 300 + 400 + 500
        assert devices["other"]["tx_bytes"] == 30
        assert service(client).overflowed == 3
        # Prometheus: the largest device, and the rest (the cap's "other" too) summed.
        lines = [
            line
            for line in client.get("/metrics", headers=AUTH).text.splitlines()
            if line.startswith("raspapi_client_receive_bytes_total{")
        ]
        assert sorted(lines) == [
            f'raspapi_client_receive_bytes_total{{hostname="",mac="{macs[1]}"}} 200.0',
            'raspapi_client_receive_bytes_total{hostname="",mac="other"} 1300.0',
        ]
    finally:
        client.__exit__(None, None, None)


def test_retention_on_the_fake_clock(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock
) -> None:
    config = app_settings(settings, RASPAPI_USAGE_HOURLY_DAYS="2", RASPAPI_USAGE_DAILY_DAYS="4")
    client = started(config)
    try:
        station(peer, PIXEL, 0, 0, 1)
        tick(client)
        clock.now += 10
        station(peer, PIXEL, 1000, 1000, 11)
        tick(client)  # 2000 bytes on day 0
        span = {"since": str(T0 - DAY), "until": "now"}
        for days, hourly, daily in ((1, 2000, 2000), (3, 0, 2000), (5, 0, 0)):
            clock.now = T0 + days * DAY + 20
            tick(client)  # nothing new; prunes what is past its retention
            hours = by_mac(usage(client, step="hour", **{**span, "since": str(T0 - 1)}))
            assert hours.get(PIXEL, {}).get("total_bytes", 0) == hourly, days
            found = by_mac(usage(client, step="day", **span))
            assert found.get(PIXEL, {}).get("total_bytes", 0) == daily, days
    finally:
        client.__exit__(None, None, None)


# -- quotas ----------------------------------------------------------------------------


def test_a_quota_blocks_lifts_at_the_reset_and_survives_a_restart(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock, loop_name: str
) -> None:
    config = app_settings(settings)
    clock.now = T0 + 12 * 3600  # 22:00 UTC
    client = started(config, loop_name)
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        bus = service(client).ctx.events
        publish = bus.publish

        def recording(type: str, data: dict[str, Any], **kw: Any) -> None:
            events.append((type, data))
            publish(type, data, **kw)

        bus.publish = recording
        put = client.put(f"/api/v1/usage/quotas/{PIXEL}", json={"daily_bytes": 1000}, headers=AUTH)
        assert put.status_code == 200, put.text
        assert put.json()["resets_at"] == "2030-01-16T00:00:00Z"
        note = client.put(
            f"/api/v1/usage/quotas/{ESP32}",
            json={"monthly_bytes": 500, "resets_on_day": 31, "action": "notify"},
            headers=AUTH,
        )
        assert note.status_code == 200 and note.json()["resets_at"] == "2030-01-31T00:00:00Z"
        station(peer, PIXEL, 0, 0, 1)
        station(peer, ESP32, 0, 0, 1)
        tick(client)
        clock.now += 10
        station(peer, PIXEL, 300, 300, 11)
        station(peer, ESP32, 200, 200, 11)
        tick(client)
        assert peer.sent("DENY_ACL") == [] and events == []
        clock.now += 10
        station(peer, PIXEL, 600, 600, 21)  # 1200 bytes: past 1000
        station(peer, ESP32, 300, 300, 21)  # 600 bytes: past 500, notify only
        tick(client)
        assert f"DENY_ACL ADD_MAC {PIXEL}" in peer.sent("DENY_ACL")
        assert any(c.startswith(f"DEAUTHENTICATE {PIXEL}") for c in peer.sent("DEAUTHENTICATE"))
        assert not any(ESP32 in c for c in peer.commands if c.startswith(("DENY", "DEAUTH")))
        exceeded = {d["mac"]: d for t, d in events if t == "usage.quota_exceeded"}
        assert exceeded[PIXEL]["used_bytes"] == 1200 and exceeded[PIXEL]["action"] == "block"
        assert exceeded[ESP32]["action"] == "notify"
        assert exceeded[PIXEL]["until_at"] == "2030-01-16T00:00:00Z"
        states = client.get("/api/v1/usage/quotas", headers=AUTH).json()["devices"]
        assert {s["mac"]: s["state"] for s in states} == {PIXEL: "blocked", ESP32: "exceeded"}
        audit = client.get("/api/v1/audit", headers=AUTH).json()["entries"]
        routes = [e["route"] for e in audit if e["method"] == "EVENT"]
        assert routes.count("usage.quota_exceeded") == 2
        # Once per period: more traffic sends no second event.
        clock.now += 10
        tick(client)
        assert len([t for t, _ in events if t == "usage.quota_exceeded"]) == 2
    finally:
        client.__exit__(None, None, None)

    # hostapd restarted meanwhile and forgot its deny list: the daemon denies again.
    with peer._lock:
        peer.denied.clear()
    clock.now = T0 + 13 * 3600
    client = started(config, loop_name)
    try:
        assert peer.denied == [PIXEL]
        assert service(client).blocks[PIXEL].until == T0 + 14 * 3600
        clock.now = T0 + 14 * 3600 + 5  # local midnight has passed: the day's quota resets
        tick(client)
        assert f"DENY_ACL DEL_MAC {PIXEL}" in peer.sent("DENY_ACL")
        assert peer.denied == []
        states = client.get("/api/v1/usage/quotas", headers=AUTH).json()["devices"]
        assert PIXEL not in {s["mac"] for s in states if s["state"] != "ok"}
        # The monthly notify quota is still exceeded until the 31st.
        assert service(client).blocks[ESP32].action == "notify"
    finally:
        client.__exit__(None, None, None)


def test_removing_a_quota_lifts_its_block_and_default_applies_to_all(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock
) -> None:
    client = started(app_settings(settings))
    try:
        assert (
            client.put(
                "/api/v1/usage/quotas/default", json={"daily_bytes": 100}, headers=AUTH
            ).status_code
            == 200
        )
        station(peer, PIXEL, 0, 0, 1)
        station(peer, ESP32, 0, 0, 1)
        tick(client)
        clock.now += 10
        station(peer, PIXEL, 100, 100, 11)
        station(peer, ESP32, 10, 10, 11)
        tick(client)
        assert peer.denied == [PIXEL]
        listed = client.get("/api/v1/usage/quotas", headers=AUTH).json()
        assert [q["target"] for q in listed["quotas"]] == ["default"]
        deleted = client.delete("/api/v1/usage/quotas/default", headers=AUTH)
        assert deleted.status_code == 200 and deleted.json() == {"deleted": "default"}
        assert peer.denied == []
        assert client.delete("/api/v1/usage/quotas/default", headers=AUTH).status_code == 404
    finally:
        client.__exit__(None, None, None)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"daily_bytes": -1}, "daily_bytes"),
        ({"daily_bytes": 0}, "daily_bytes"),
        ({"daily_bytes": 10**16}, "daily_bytes"),
        ({"daily_bytes": 2**80}, "daily_bytes"),
        ({"daily_bytes": 1.5}, "daily_bytes"),
        ({"daily_bytes": "1000"}, "daily_bytes"),
        ({"daily_bytes": True}, "daily_bytes"),
        ({"monthly_bytes": -5, "resets_on_day": 1}, "monthly_bytes"),
        ({"daily_bytes": 1, "monthly_bytes": 1}, "daily_bytes"),
        ({}, "daily_bytes"),
        ({"daily_bytes": 1, "resets_on_day": 3}, "resets_on_day"),
        ({"monthly_bytes": 1, "resets_on_day": 0}, "resets_on_day"),
        ({"monthly_bytes": 1, "resets_on_day": 32}, "resets_on_day"),
        ({"daily_bytes": 1, "action": "kill"}, "action"),
        ({"daily_bytes": 1, "weekly_bytes": 1}, "weekly_bytes"),
    ],
)
def test_bad_quotas_are_422(
    settings: Settings, clock: FakeClock, body: dict[str, Any], field: str
) -> None:
    client = started(app_settings(settings))
    try:
        response = client.put(f"/api/v1/usage/quotas/{PIXEL}", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
        assert client.get("/api/v1/usage/quotas", headers=AUTH).json()["quotas"] == []
    finally:
        client.__exit__(None, None, None)


def test_bad_queries_and_macs_never_give_a_500(settings: Settings, clock: FakeClock) -> None:
    client = started(app_settings(settings))
    try:
        for mac in ("zz:27:eb:4f:12:a3", "b8:27:eb:4f:12", "b8-27-eb-4f-12-a3", "x" * 5000):
            for response in (
                client.get(f"/api/v1/usage/{mac}", headers=AUTH),
                client.put(f"/api/v1/usage/quotas/{mac}", json={"daily_bytes": 1}, headers=AUTH),
                client.delete(f"/api/v1/usage/quotas/{mac}", headers=AUTH),
            ):
                assert response.status_code == 422, (mac, response.text)
                assert response.json()["field"] == "mac"
        for params, field in (
            ({"since": "yesterday"}, "since"),
            ({"since": "-1d", "until": "-2d"}, "since"),
            ({"until": "1e400"}, "until"),
            ({"step": "minute"}, "step"),
            ({"top": "0"}, "top"),
            ({"top": "100000"}, "top"),
            ({"top": "x"}, "top"),
            ({"since": "-40d", "step": "hour"}, "since"),
            ({"since": "-30d", "step": "hour", "top": "200"}, "top"),
            ({"since": "-" + "9" * 60 + "d"}, "since"),
        ):
            for path in ("/api/v1/usage", "/api/v1/usage.csv"):
                if path.endswith(".csv") and field == "top" and params.get("top") == "200":
                    continue  # the CSV streams any number of steps
                response = client.get(path, params=params, headers=AUTH)
                assert response.status_code == 422, (path, params, response.text)
                assert response.json()["field"] == field
        response = client.put(
            f"/api/v1/usage/quotas/{PIXEL}",
            content=b"{not json",
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 400
        response = client.put(f"/api/v1/usage/quotas/{PIXEL}", json=[1], headers=AUTH)
        assert response.status_code == 400
    finally:
        client.__exit__(None, None, None)


def test_scopes(settings: Settings, clock: FakeClock) -> None:
    client = started(app_settings(settings))
    try:
        assert client.get("/api/v1/usage").status_code == 401
        made = client.post(
            "/api/v1/keys", json={"name": "reader", "scopes": ["read"]}, headers=AUTH
        )
        assert made.status_code == 201, made.text
        reader = {"access_token": made.json()["key"]}
        assert client.get("/api/v1/usage", headers=reader).status_code == 200
        assert client.get("/api/v1/usage/quotas", headers=reader).status_code == 200
        denied = client.put("/api/v1/usage/quotas/default", json={"daily_bytes": 1}, headers=reader)
        assert denied.status_code == 403
    finally:
        client.__exit__(None, None, None)


# -- the admin panel ------------------------------------------------------------------


def test_the_admin_panel_draws_todays_top_devices_as_svg(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock
) -> None:
    from tests.test_admin import assert_admin_headers, assert_no_inline_code, sign_in

    client = started(app_settings(settings))
    try:
        client.put(f"/api/v1/usage/quotas/{ESP32}", json={"daily_bytes": 10}, headers=AUTH)
        station(peer, PIXEL, 0, 0, 1)
        station(peer, ESP32, 0, 0, 1)
        tick(client)
        clock.now += 10
        station(peer, PIXEL, 4_000_000, 1_000_000, 11)
        station(peer, ESP32, 1000, 1000, 11)
        tick(client)
        sign_in(client)
        page = client.get("/admin/plugins/usage")
        assert page.status_code == 200
        assert_admin_headers(page)
        assert_no_inline_code(page.text)
        assert "<svg" in page.text
        assert "pixel-7" in page.text and "5.0 MB" in page.text
        assert "2.0 kB of 10 B, blocked" in page.text
        assert page.text.count("<rect") == 2
        assert 'width="280.0"' in page.text  # the largest bar is the full width
    finally:
        client.__exit__(None, None, None)


# -- kill -9 ---------------------------------------------------------------------------


def _serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env_for(
            settings,
            RASPAPI_HISTORY_INTERVAL="0.1",
            RASPAPI_CACHE_TTL="0",
            RASPAPI_ACCESS_LOG="off",
            RASPAPI_LOG_LEVEL="warning",
            RASPAPI_DISABLE="history,sensors,clients",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            if get(port, "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("the daemon did not answer /health within 30 s")


def _committed(path: Path) -> tuple[int, int] | None:
    """(bytes in the daily buckets, the counter they were computed from)."""
    if not path.exists():
        return None
    db = sqlite3.connect(path, timeout=5)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        total = db.execute("SELECT coalesce(sum(rx), 0) FROM daily").fetchone()[0]
        hourly = db.execute("SELECT coalesce(sum(rx), 0) FROM hourly").fetchone()[0]
        assert hourly == total  # both written in the same transaction
        row = db.execute("SELECT rx FROM counters WHERE mac = ?", (PIXEL,)).fetchone()
        return (int(total), int(row[0])) if row else None
    except sqlite3.OperationalError:
        return None  # not made yet
    finally:
        db.close()


@pytest.mark.integration
def test_kill_9_while_writing_loses_nothing_committed(
    settings: Settings, peer: ScriptedHostapd
) -> None:
    store = settings.state_dir / "usage.db"
    start = 1_000_000
    station(peer, PIXEL, start, 0, 1)
    stop = threading.Event()

    def grow() -> None:  # the station downloads 1000 bytes every 5 ms
        for i in range(200_000):  # bounded
            if stop.wait(0.005):
                return
            station(peer, PIXEL, start + 1000 * (i + 1), 0, 1 + i // 200)

    grower = threading.Thread(target=grow)
    try:
        for round_ in range(3):
            proc = _serve(settings, free_port())
            try:
                if round_ == 0:  # the baseline first, then traffic
                    deadline = time.monotonic() + 20
                    while _committed(store) is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    grower.start()
                before = _committed(store)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                    now = _committed(store)
                    if now and before and now[1] >= before[1] + 20_000:
                        break
                time.sleep(0.037 * (round_ + 1))  # inside an interval, not on a boundary
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            committed = _committed(store)
            assert committed is not None
            total, counter = committed
            # Every committed interval is whole: the buckets hold exactly what the
            # committed counter says went through since the baseline.
            assert total == counter - start, (round_, total, counter)
        stop.set()
        grower.join(10)
        with peer._lock:
            final = peer.stations[PIXEL]["rx_bytes"]
        # After the last kill, the daemon starts again and counts what it missed.
        proc = _serve(settings, free_port())
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(0.1)
                committed = _committed(store)
                if committed and committed[1] == final:
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        assert _committed(store) == (final - start, final)
    finally:
        stop.set()
        if grower.is_alive():
            grower.join(10)


# -- the panel in a real browser ---------------------------------------------------------


@pytest.fixture
def seeded(settings: Settings) -> None:
    """usage.db as a day of traffic leaves it: two devices today, one blocked."""
    from raspapi.plugins.usage.store import MIGRATIONS, Block, Delta, Quota, UsageDB

    from raspapi.state.storage import Store

    now = time.time()
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    store = Store(settings.state_dir / "usage.db", MIGRATIONS)
    try:
        db = store.call(UsageDB)
        deltas = [Delta(PIXEL, "pixel-7", 3_000_000, 9_000_000), Delta(ESP32, None, 5000, 5000)]
        store.call(lambda _: db.write(now, int(now) // 3600 * 3600, today, deltas, {}, []))
        store.call(lambda _: db.put_quota(Quota(ESP32, 1000, None, None, "block", now)))
        store.call(
            lambda _: db.put_block(
                Block(ESP32, f"day {today}", "block", 10_000, 1000, now, now + 3600)
            )
        )
    finally:
        store.close()


@pytest.mark.integration
def test_the_panel_renders_in_chromium_without_a_csp_violation(
    seeded: None,
    daemon: Daemon,  # noqa: F811 - the fixture
    browser: BrowserContext,  # noqa: F811 - the fixture
) -> None:
    # ``seeded`` comes first: the daemon starts on the seeded database.
    page, errors = open_page(browser, "phone")
    sign_in(page, daemon, AUTH["access_token"])
    page.goto(f"{daemon.url}/admin/plugins/usage")
    bars = page.locator("svg.bars rect")
    assert bars.count() == 2
    boxes = [bars.nth(i).bounding_box() for i in range(2)]
    assert boxes[0] is not None and boxes[1] is not None
    assert boxes[0]["width"] > boxes[1]["width"] > 0  # drawn, the largest first
    chart = page.text_content("svg.bars") or ""
    assert "12.0 MB" in chart and "10.0 kB of 1.0 kB, blocked" in chart
    assert errors == [], errors


def test_panel_bars_are_checked() -> None:
    from raspapi.admin.panels import Bar, Panel

    assert Bar("a", 1.7).fraction == 1.0 and Bar("b", -3).fraction == 0.0
    for bad in (float("nan"), float("inf"), "0.5"):
        with pytest.raises(ValueError):
            Bar("x", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Panel("too many", bars=[Bar(str(i), 0.1) for i in range(51)])
    with pytest.raises(ValueError):
        Panel("not bars", bars=[("a", 0.5)])  # type: ignore[list-item]


def test_periods_and_the_quota_cap(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raspapi.plugins.usage.store import Quota

    client = started(app_settings(settings))
    try:
        usage = service(client)

        def period(resets: int | None, y: int, m: int, d: int) -> tuple[str, str]:
            quota = Quota(PIXEL, None if resets else 1, 1 if resets else None, resets, "block", 0)
            found = usage.period(quota, calendar.timegm((y, m, d, 12, 0, 0)))
            return found.first_day, time.strftime("%Y-%m-%d", time.gmtime(found.until))

        assert period(None, 2030, 2, 28) == ("2030-02-28", "2030-03-01")
        assert period(1, 2030, 2, 28) == ("2030-02-01", "2030-03-01")
        assert period(31, 2030, 2, 28) == ("2030-02-28", "2030-03-31")  # the month's last day
        assert period(31, 2030, 2, 27) == ("2030-01-31", "2030-02-28")
        assert period(15, 2030, 1, 3) == ("2029-12-15", "2030-01-15")
        assert period(15, 2030, 12, 20) == ("2030-12-15", "2031-01-15")

        monkeypatch.setattr(usage_module, "MAX_QUOTAS", 2)
        for target in ("default", PIXEL):
            response = client.put(
                f"/api/v1/usage/quotas/{target}", json={"daily_bytes": 5}, headers=AUTH
            )
            assert response.status_code == 200
        third = client.put(f"/api/v1/usage/quotas/{ESP32}", json={"daily_bytes": 5}, headers=AUTH)
        assert third.status_code == 409 and third.json()["code"] == "too_many_quotas"
        again = client.put(f"/api/v1/usage/quotas/{PIXEL}", json={"daily_bytes": 9}, headers=AUTH)
        assert again.status_code == 200  # replacing one is not adding one
    finally:
        client.__exit__(None, None, None)


def test_metric_families_are_kept_for_a_cache_period(
    settings: Settings, peer: ScriptedHostapd, clock: FakeClock
) -> None:
    """A scrape within a cache period gets the same family objects (rendered once,
    no store query); after it, the last ones while the next query runs."""
    from raspapi.plugins.usage import telemetry

    client = started(settings.with_(history_interval=3600.0, cache_ttl=60.0))
    try:
        usage = service(client)
        assert client.portal is not None
        first = client.portal.call(telemetry.families, usage)
        assert client.portal.call(telemetry.families, usage) is first
        usage.ctx.cache.invalidate("metrics")
        assert client.portal.call(telemetry.families, usage) is not first
    finally:
        client.__exit__(None, None, None)

"""The stats plugin: V6Direct RASPAPI's /stats routes, shapes and values, on the fixture Pi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from raspapi.plugins.stats import schema as stats_schema
from raspapi.plugins.stats import service as stats_module
from starlette.testclient import TestClient

from tests.conftest import KEY, MakeClient
from tests.schema_check import problems

V6 = {"X-API-Key": KEY}  # V6Direct's header
BOOT = 1710065471  # btime of the fixture's /proc/stat
NOW = BOOT + 86_400 + 0.25


@pytest.fixture
def client(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(stats_module, "clock", lambda: NOW)
    return make_client()


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=V6)
    assert response.status_code == 200, response.text
    return response.json()


def service(client: TestClient) -> Any:
    return client.app.state.runtime.manager.plugins["stats"].ctx.service(stats_module.Stats)  # type: ignore[attr-defined]


def refresh(client: TestClient, body: Any = None) -> dict[str, Any]:
    response = client.post("/stats/refresh", json=body or {}, headers=V6)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_full_snapshot_has_v6directs_fields_in_order(client: TestClient):
    body = get(client, "/stats")
    assert list(body) == [
        "timestamp_utc",
        "node",
        "cpu",
        "memory",
        "disks",
        "interfaces",
        "cache_age_seconds",
    ]
    assert not problems(body, stats_schema.SNAPSHOT)
    assert body["timestamp_utc"] == "2024-03-11T10:11:11.250000Z"
    assert body["cache_age_seconds"] == 0.0
    node = body["node"]
    assert list(node) == [
        "hostname",
        "platform",
        "architecture",
        "python_version",
        "boot_time_utc",
        "uptime_seconds",
        "node_role",
        "network_name",
        "asn",
    ]
    assert node["hostname"] == "raspberrypi"
    assert node["platform"] == "Linux 6.6.51+rpt-rpi-v8"
    assert node["boot_time_utc"] == "2024-03-10T10:11:11Z"
    assert node["uptime_seconds"] == 86_400
    assert (node["node_role"], node["network_name"], node["asn"]) == (
        "raspi-telemetry",
        "V6Direct",
        "AS213413",
    )
    # psutil's arithmetic on the fixture's /proc/meminfo, in MB of 10^6 bytes.
    assert body["memory"] == {
        "total_mb": 3976.11,
        "available_mb": 3484.39,
        "used_mb": 378.53,
        "percent": 12.4,
        "swap_total_mb": 104.85,
        "swap_used_mb": 4.19,
        "swap_percent": 4.0,
    }
    cpu = body["cpu"]
    assert list(cpu) == [
        "usage_percent",
        "per_core",
        "frequency_mhz",
        "temperature_celcius",  # sic: V6Direct's spelling
        "load_avg_1m",
        "load_avg_5m",
        "load_avg_15m",
    ]
    assert cpu["frequency_mhz"] == 1725.0  # mean of 1500, 1800, 1800, 1800
    assert cpu["temperature_celcius"] == 48.69
    assert (cpu["load_avg_1m"], cpu["load_avg_5m"], cpu["load_avg_15m"]) == (0.42, 0.35, 0.3)
    assert len(cpu["per_core"]) == 4
    mounts = [d["mountpoint"] for d in body["disks"]]
    assert mounts[:3] == ["/", "/boot/firmware", "/media/pi/USB DISK"]  # devices only
    assert "/mnt/nas" not in mounts and "/proc" not in mounts


def test_interfaces_and_the_interface_filter(client: TestClient):
    everything = get(client, "/stats/network")
    assert [i["name"] for i in everything] == ["lo", "eth0", "wlan0", "docker0"]
    eth0 = everything[1]
    assert eth0 == {
        "name": "eth0",
        "bytes_sent": 987654321,
        "bytes_recv": 1234567890,
        "packets_sent": 1456789,
        "packets_recv": 2345678,
        "errors_in": 3,
        "errors_out": 1,
        "drop_in": 17,
        "drop_out": 2,
        "addresses": [
            "dc:a6:32:12:34:56",
            "192.168.1.50",
            "192.168.1.51",
            "2001:db8:1:2:dea6:32ff:fe12:3456",
        ],
    }
    assert everything[0]["addresses"] == ["00:00:00:00:00:00", "127.0.0.1", "::1"]
    assert get(client, "/stats/network", interface="wlan0") == [everything[2]]
    missing = client.get("/stats/network", params={"interface": "wg9"}, headers=V6)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Interface 'wg9' not found."}


def test_cpu_memory_and_node_are_parts_of_the_snapshot(client: TestClient):
    full = get(client, "/stats")
    assert get(client, "/stats/cpu") == full["cpu"]
    assert get(client, "/stats/memory") == full["memory"]
    assert get(client, "/stats/node") == full["node"]


def test_cpu_use_since_the_previous_snapshot(client: TestClient, root: Path):
    get(client, "/stats")
    stat = root / "proc/stat"
    text = stat.read_text()
    # 400 more ticks on the machine, 100 of them busy; cpu1 alone did all the work.
    text = text.replace("cpu  10000 200 5000 80000", "cpu  10100 200 5000 80300")
    text = text.replace("cpu1 2600 40 1300 19900", "cpu1 2700 40 1300 19900")
    stat.write_text(text)
    refresh(client)
    cpu = get(client, "/stats/cpu")
    assert cpu["usage_percent"] == 25.0
    assert cpu["per_core"] == [0.0, 100.0, 0.0, 0.0]


def test_the_snapshot_is_cached_for_30_seconds(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, root: Path
):
    first = get(client, "/stats")
    (root / "proc/loadavg").write_text("3.00 2.00 1.00 1/100 5\n")
    monkeypatch.setattr(stats_module, "clock", lambda: NOW + 5)
    again = get(client, "/stats")
    assert again["timestamp_utc"] == first["timestamp_utc"]
    assert again["cpu"]["load_avg_1m"] == 0.42
    assert again["cache_age_seconds"] >= 0.0
    # The cache expires after 30 s (moved back here rather than waited for).
    service(client).taken_at -= 31
    later = get(client, "/stats")
    assert later["timestamp_utc"] == "2024-03-11T10:11:16.250000Z"
    assert later["cpu"]["load_avg_1m"] == 3.0
    assert len(get(client, "/stats/history")) == 2


def test_history_limit_and_refresh(client: TestClient, make_client: MakeClient):
    for _ in range(3):
        answer = refresh(client, {"reason": "Deploying new config"})
    assert answer == {
        "success": True,
        "message": "Cache refreshed sucessfully. Reason: Deploying new config",
        "cleared_history": False,
        "new_snapshot_timestamp": "2024-03-11T10:11:11.250000Z",
    }
    history = get(client, "/stats/history")
    assert len(history) == 3
    assert history[-1] == {
        "timestamp_utc": "2024-03-11T10:11:11.250000Z",
        "cpu_percent": 0.0,
        "memory_percent": 12.4,
        "swap_percent": 4.0,
    }
    assert not problems(history, stats_schema.HISTORY)
    assert get(client, "/stats/history", limit=1) == history[-1:]
    for bad in ("0", "61", "x"):
        response = client.get("/stats/history", params={"limit": bad}, headers=V6)
        assert response.status_code == 422 and response.json()["field"] == "limit"
    # Kept across a restart, in the state folder.
    assert len(get(make_client(), "/stats/history")) == 3
    cleared = refresh(client, {"full": True})
    assert cleared["cleared_history"] is True
    assert cleared["message"] == "Cache refreshed sucessfully."
    assert len(get(client, "/stats/history")) == 1


def test_history_keeps_60_samples(client: TestClient):
    for _ in range(62):
        service(client).taken_at -= 31  # the snapshot is stale: the next read polls
        get(client, "/stats")
    assert len(get(client, "/stats/history")) == 60


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"reason": 5}, 422, "reason"),
        ({"reason": "x" * 501}, 422, "reason"),
        ({"full": "maybe"}, 422, "full"),
        ([1], 422, "body"),
    ],
)
def test_refresh_rejects_bad_bodies(
    client: TestClient, body: Any, status: int, field: str | None
) -> None:
    response = client.post("/stats/refresh", json=body, headers=V6)
    assert response.status_code == status
    assert response.json()["field"] == field


def test_refresh_body_is_optional_and_lenient(client: TestClient):
    assert client.post("/stats/refresh", headers=V6).json()["cleared_history"] is False
    assert refresh(client, {"full": "true", "reason": None})["cleared_history"] is True
    assert client.post("/stats/refresh", content=b"{", headers=V6).status_code == 400


def test_keys_and_scopes(client: TestClient):
    assert client.get("/stats").status_code == 403
    assert client.get("/stats", headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.get("/stats", headers={"access_token": KEY}).status_code == 200
    made = client.post(
        "/api/v1/keys", json={"name": "dashboard", "scopes": ["read"]}, headers=V6
    ).json()
    reader = {"X-API-Key": made["key"]}
    assert client.get("/stats/cpu", headers=reader).status_code == 200
    # Refreshing can clear the history: it needs the control scope.
    assert client.post("/stats/refresh", json={}, headers=reader).status_code == 403


def test_documented_in_openapi(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/stats", "/stats/cpu", "/stats/memory", "/stats/network", "/stats/node"):
        assert "get" in paths[path]
    assert "post" in paths["/stats/refresh"]
    params = paths["/stats/history"]["get"]["parameters"]
    assert params[0]["name"] == "limit" and params[0]["schema"]["maximum"] == 60


def test_on_the_machine_itself_addresses_come_from_psutil_as_ip_lists_them():
    """Root "/": psutil (what V6Direct calls) instead of starting `ip`; the same
    addresses, in the same order, as `ip -j address show` on this machine."""
    import shutil
    import subprocess

    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("no ip here to compare with")
    text = subprocess.run([ip, "-j", "address", "show"], capture_output=True, check=True).stdout
    assert stats_module.psutil_addresses() == stats_module.parse_addresses(text.decode())

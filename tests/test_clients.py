"""The clients plugin: RaspAP's /clients, /api/v1/clients, kicks and bans.

Stations come from the scripted hostapd control socket (through the hostapd
plugin and the stations hook); leases and the neighbour table are the fixture
machine's /var/lib/misc/dnsmasq.leases and /proc/net/arp.
"""

from __future__ import annotations

import ast
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.security.auth import Principal
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient
from tests.hostapd_peer import ScriptedHostapd, ctrl_path, short_root

PIXEL = "b8:27:eb:4f:12:a3"  # lease "pixel-7", neighbour on wlan0
ESP32 = "e4:5f:01:aa:bb:cc"  # lease "esp32-sensor", neighbour on wlan0
LEFT = "3c:22:fb:91:08:d4"  # lease, neighbour on wlan0, no longer a station
MACBOOK = "dc:a6:32:0b:7c:5e"  # lease, neighbour on eth0
STATIC = "02:11:22:33:44:55"  # a station with a static address: no lease
READ_KEY = "reader0123456789abcdefghijklmnop"
LEGACY_ITEM_KEYS = ["timestamp", "mac_address", "ip_address", "hostname", "client_id"]


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


@pytest.fixture
def peer(root: Path) -> Iterator[ScriptedHostapd]:
    with ScriptedHostapd(ctrl_path(root)) as scripted:
        scripted.add_station(PIXEL, signal=-52, rx_rate=1300, tx_rate=866)
        scripted.add_station(ESP32, signal=-71, connected_time=86400)
        scripted.add_station(STATIC)
        yield scripted


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- RaspAP's /clients -----------------------------------------------------------------


def test_clients_counts_agree_with_the_list(client: TestClient, peer: ScriptedHostapd) -> None:
    response = client.get("/clients", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "active_clients_amount",
        "active_wireless_clients_amount",
        "active_ethernet_clients_amount",
        "active_clients",
    ]
    items = body["active_clients"]
    assert body["active_clients_amount"] == len(items) == 5
    kinds = {item["mac_address"]: item["connection_type"] for item in items}
    assert kinds == {
        PIXEL: "wireless",
        ESP32: "wireless",
        STATIC: "wireless",
        LEFT: "unknown",
        MACBOOK: "ethernet",
    }
    assert body["active_wireless_clients_amount"] == 3
    assert body["active_ethernet_clients_amount"] == 1
    pixel = items[0]
    assert list(pixel) == [*LEGACY_ITEM_KEYS, "connection_type"]
    assert pixel == {
        "timestamp": 1893459600,
        "mac_address": PIXEL,
        "ip_address": "10.3.141.101",
        "hostname": "pixel-7",
        "client_id": "01:b8:27:eb:4f:12:a3",
        "connection_type": "wireless",
    }
    static = next(item for item in items if item["mac_address"] == STATIC)
    assert static == {
        "timestamp": 0,
        "mac_address": STATIC,
        "ip_address": "",
        "hostname": "*",
        "client_id": "*",
        "connection_type": "wireless",
    }


def test_clients_by_interface(client: TestClient, peer: ScriptedHostapd) -> None:
    wlan0 = client.get("/clients/wlan0", headers=AUTH).json()
    assert list(wlan0) == ["active_clients_amount", "active_clients"]
    assert wlan0["active_clients_amount"] == len(wlan0["active_clients"]) == 4
    assert {item["mac_address"] for item in wlan0["active_clients"]} == {
        PIXEL,
        ESP32,
        STATIC,
        LEFT,
    }
    assert all(list(item) == LEGACY_ITEM_KEYS for item in wlan0["active_clients"])
    eth0 = client.get("/clients/eth0", headers=AUTH).json()
    assert [item["mac_address"] for item in eth0["active_clients"]] == [MACBOOK]
    assert eth0["active_clients_amount"] == 1


def test_an_unknown_interface_is_zero_and_empty(client: TestClient, peer: ScriptedHostapd) -> None:
    for name in ("wlan9", "$(reboot)", "wlan0;ls"):
        response = client.get(f"/clients/{name}", headers=AUTH)
        assert response.status_code == 200
        assert response.json() == {"active_clients_amount": 0, "active_clients": []}


def test_clients_without_hostapd_still_answer(client: TestClient) -> None:
    body = client.get("/clients", headers=AUTH).json()
    kinds = {item["mac_address"]: item["connection_type"] for item in body["active_clients"]}
    assert kinds == {PIXEL: "unknown", ESP32: "unknown", LEFT: "unknown", MACBOOK: "ethernet"}
    assert body["active_clients_amount"] == 4
    assert body["active_wireless_clients_amount"] == 0
    assert body["active_ethernet_clients_amount"] == 1


def test_clients_without_any_file_answer_zero(root: Path, client: TestClient) -> None:
    (root / "var/lib/misc/dnsmasq.leases").unlink()
    (root / "proc/net/arp").unlink()
    response = client.get("/clients", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "active_clients_amount": 0,
        "active_wireless_clients_amount": 0,
        "active_ethernet_clients_amount": 0,
        "active_clients": [],
    }


def test_malformed_lease_and_neighbour_lines_are_skipped(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    leases = root / "var/lib/misc/dnsmasq.leases"
    leases.write_text(
        leases.read_text()
        + "duid 00:01:00:01:2c:1f:aa:bb:dc:a6:32:0b:7c:5e\n"
        + "1893459600 123456 2001:db8::5 phone 00:01:00:01\n"
        + "not a lease\n\n"
    )
    arp = root / "proc/net/arp"
    arp.write_text(arp.read_text() + "garbage\n10.3.141.9 0x1 zz b8:27:eb:00:00:09 * wlan0\n")
    assert client.get("/clients", headers=AUTH).json()["active_clients_amount"] == 5


def test_clients_need_a_key(client: TestClient) -> None:
    response = client.get("/clients")
    assert response.status_code == 403
    assert response.json() == {"detail": "403: Unauthorized"}


# -- /api/v1/clients -----------------------------------------------------------------------


def test_v1_lists_stations_with_signal_and_traffic(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    body = client.get("/api/v1/clients", headers=AUTH).json()
    assert body["count"] == len(body["clients"]) == 5
    assert body["counts"] == {"wireless": 3, "ethernet": 1, "unknown": 1}
    pixel = next(c for c in body["clients"] if c["mac"] == PIXEL)
    assert pixel == {
        "mac": PIXEL,
        "ip": "10.3.141.101",
        "hostname": "pixel-7",
        "interface": "wlan0",
        "connection_type": "wireless",
        "signal_dbm": -52,
        "rx_bytes": 10316,
        "tx_bytes": 13542,
        "rx_bitrate_kbps": 130000,
        "tx_bitrate_kbps": 86600,
        "connected_seconds": 1063,
        "inactive_ms": 2140,
        "authorized": True,
        "lease_expires_at": "2030-01-01T01:00:00Z",
    }
    macbook = next(c for c in body["clients"] if c["mac"] == MACBOOK)
    assert macbook["connection_type"] == "ethernet"
    assert macbook["interface"] == "eth0"
    assert macbook["hostname"] == "macbook-air"
    assert macbook["signal_dbm"] is None
    assert macbook["rx_bytes"] is None


def test_v1_filters(client: TestClient, peer: ScriptedHostapd) -> None:
    wired = client.get("/api/v1/clients?connection_type=ethernet", headers=AUTH).json()
    assert [c["mac"] for c in wired["clients"]] == [MACBOOK]
    on_wlan0 = client.get("/api/v1/clients?interface=wlan0", headers=AUTH).json()
    assert on_wlan0["count"] == 4
    bad = client.get("/api/v1/clients?connection_type=carrier-pigeon", headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["field"] == "connection_type"


def test_one_station_sweep_per_refresh_however_many_callers(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    errors: list[int] = []

    def poll() -> None:
        for _ in range(10):
            response = client.get("/api/v1/clients", headers=AUTH)
            if response.status_code != 200:
                errors.append(response.status_code)
            client.get("/clients", headers=AUTH)

    started = time.monotonic()
    threads = [threading.Thread(target=poll) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started
    assert errors == []
    # 320 requests; the cache lives 1 s and every caller shares one refresh.
    assert 1 <= peer.counts["STA-FIRST"] <= int(elapsed) + 2
    assert peer.counts["STA-NEXT"] == 3 * peer.counts["STA-FIRST"]


# -- kick and ban -------------------------------------------------------------------------


def test_kick_deauthenticates_the_station(client: TestClient, peer: ScriptedHostapd) -> None:
    assert client.get("/api/v1/clients", headers=AUTH).json()["counts"]["wireless"] == 3
    response = client.post(f"/api/v1/clients/{PIXEL.upper()}/kick", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"mac": PIXEL, "deauthenticated": True, "ban": None}
    assert peer.sent("DEAUTHENTICATE") == [f"DEAUTHENTICATE {PIXEL}"]
    assert peer.sent("DENY_ACL") == []
    after = client.get("/api/v1/clients", headers=AUTH).json()
    assert after["counts"]["wireless"] == 2
    # Still in the neighbour table of wlan0, no longer associated.
    assert next(c for c in after["clients"] if c["mac"] == PIXEL)["connection_type"] == "unknown"


def test_kick_of_a_mac_that_is_not_connected_is_404(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    response = client.post(f"/api/v1/clients/{MACBOOK}/kick", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "not_connected"
    assert peer.sent("DEAUTHENTICATE") == []


def test_kick_with_a_ban_denies_then_lifts_it_on_time(
    settings: Settings, client: TestClient, peer: ScriptedHostapd
) -> None:
    response = client.post(f"/api/v1/clients/{ESP32}/kick", headers=AUTH, json={"ban_seconds": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["deauthenticated"] is True
    assert body["ban"]["mac"] == ESP32
    assert body["ban"]["expires_at"].endswith("Z")
    assert peer.sent("DENY_ACL") == [f"DENY_ACL ADD_MAC {ESP32}"]
    assert peer.denied == [ESP32]
    bans = client.get("/api/v1/clients/bans", headers=AUTH).json()["bans"]
    assert [b["mac"] for b in bans] == [ESP32]
    saved = json.loads((settings.state_dir / "clients-bans.json").read_text())
    assert [b["mac"] for b in saved] == [ESP32]
    assert wait_for(lambda: peer.denied == [])
    assert peer.sent("DENY_ACL")[-1] == f"DENY_ACL DEL_MAC {ESP32}"
    assert client.get("/api/v1/clients/bans", headers=AUTH).json() == {"bans": []}
    assert json.loads((settings.state_dir / "clients-bans.json").read_text()) == []


def test_a_mac_that_is_not_connected_can_be_banned_ahead(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    response = client.post(
        f"/api/v1/clients/{MACBOOK}/kick", headers=AUTH, json={"ban_seconds": 600}
    )
    assert response.status_code == 200
    assert response.json()["deauthenticated"] is False
    assert response.json()["ban"]["remaining_seconds"] == 600
    assert peer.sent("DEAUTHENTICATE") == []
    assert peer.denied == [MACBOOK]


def test_a_ban_can_be_lifted_early(client: TestClient, peer: ScriptedHostapd) -> None:
    client.post(f"/api/v1/clients/{PIXEL}/kick", headers=AUTH, json={"ban_seconds": 3600})
    response = client.delete(f"/api/v1/clients/bans/{PIXEL}", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"mac": PIXEL, "lifted": True}
    assert peer.denied == []
    assert client.get("/api/v1/clients/bans", headers=AUTH).json() == {"bans": []}
    again = client.delete(f"/api/v1/clients/bans/{PIXEL}", headers=AUTH)
    assert again.status_code == 404
    assert again.json()["code"] == "not_banned"


def test_bans_survive_a_restart_and_are_lifted_when_due(
    settings: Settings, peer: ScriptedHostapd
) -> None:
    with TestClient(create_app(settings)) as client:
        client.post(f"/api/v1/clients/{PIXEL}/kick", headers=AUTH, json={"ban_seconds": 3600})
        client.post(f"/api/v1/clients/{ESP32}/kick", headers=AUTH, json={"ban_seconds": 3600})
    path = settings.state_dir / "clients-bans.json"
    saved = json.loads(path.read_text())
    for ban in saved:
        if ban["mac"] == ESP32:
            ban["expires_at"] = time.time() - 5  # ran out while the daemon was down
    path.write_text(json.dumps(saved))
    with TestClient(create_app(settings)) as client:
        assert wait_for(lambda: f"DENY_ACL DEL_MAC {ESP32}" in peer.sent("DENY_ACL"))
        bans = client.get("/api/v1/clients/bans", headers=AUTH).json()["bans"]
        assert [b["mac"] for b in bans] == [PIXEL]


def test_a_corrupt_bans_file_is_ignored(settings: Settings, peer: ScriptedHostapd) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / "clients-bans.json").write_text("{not json")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/clients/bans", headers=AUTH).json() == {"bans": []}


@pytest.mark.parametrize(
    "mac",
    [
        "zz:27:eb:4f:12:a3",
        "b8:27:eb:4f:12",
        "b8-27-eb-4f-12-a3",
        "b827eb4f12a3",
        "b8:27:eb:4f:12:a3:00",
    ],
)
def test_malformed_macs_are_422(client: TestClient, peer: ScriptedHostapd, mac: str) -> None:
    for response in (
        client.post(f"/api/v1/clients/{mac}/kick", headers=AUTH),
        client.delete(f"/api/v1/clients/bans/{mac}", headers=AUTH),
    ):
        assert response.status_code == 422
        assert response.json()["field"] == "mac"
    assert peer.sent("DEAUTHENTICATE") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ban_seconds": "60"}, "ban_seconds"),
        ({"ban_seconds": 0}, "ban_seconds"),
        ({"ban_seconds": -5}, "ban_seconds"),
        ({"ban_seconds": 7 * 24 * 3600 + 1}, "ban_seconds"),
        ({"ban_seconds": True}, "ban_seconds"),
        ({"ban_seconds": 1.5}, "ban_seconds"),
        ({"ban_minutes": 5}, "ban_minutes"),
        ([60], "body"),
    ],
)
def test_bad_kick_bodies_are_422(
    client: TestClient, peer: ScriptedHostapd, body: Any, field: str
) -> None:
    response = client.post(f"/api/v1/clients/{PIXEL}/kick", headers=AUTH, json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert peer.sent("DEAUTHENTICATE") == peer.sent("DENY_ACL") == []


def test_kick_and_unban_need_the_control_scope(client: TestClient, peer: ScriptedHostapd) -> None:
    reader = Principal("dashboard", frozenset({"read"}))
    client.app.state.runtime.auth.lookups.append(  # type: ignore[attr-defined]
        lambda key: reader if key == READ_KEY else None
    )
    headers = {"access_token": READ_KEY}
    assert client.post(f"/api/v1/clients/{PIXEL}/kick", headers=headers).status_code == 403
    assert client.delete(f"/api/v1/clients/bans/{PIXEL}", headers=headers).status_code == 403
    assert client.get("/api/v1/clients/bans", headers=headers).status_code == 200
    assert peer.sent("DEAUTHENTICATE") == []


def test_a_ban_without_hostapd_is_503(client: TestClient) -> None:
    response = client.post(f"/api/v1/clients/{PIXEL}/kick", headers=AUTH, json={"ban_seconds": 60})
    assert response.status_code == 503
    assert "hostapd is not running" in response.json()["detail"]
    assert client.get("/api/v1/clients/bans", headers=AUTH).json() == {"bans": []}


def test_with_the_hostapd_plugin_disabled_nothing_can_be_kicked(
    make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client(disable=frozenset({"hostapd"}))
    assert client.get("/clients", headers=AUTH).json()["active_wireless_clients_amount"] == 0
    response = client.post(f"/api/v1/clients/{MACBOOK}/kick", headers=AUTH, json={"ban_seconds": 9})
    assert response.status_code == 503
    assert "no plugin runs an access point" in response.json()["detail"]


def test_the_clients_plugin_does_not_import_other_plugins() -> None:
    sources = sorted((Path(__file__).parent.parent / "plugins" / "clients").glob("*.py"))
    assert sources
    for source in sources:
        tree = ast.parse(source.read_text())
        modules = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert not [m for m in modules if "plugins" in m or "hostapd" in m], source


# -- the hooks the clients plugin consumes --------------------------------------------------


def dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


def test_hook_raspapi_stations(settings: Settings, make_client: MakeClient) -> None:
    dropin(
        settings,
        "otherap",
        """
        from raspapi import hookimpl

        @hookimpl
        async def raspapi_stations(ctx):
            return [{"mac": "02:aa:00:00:00:01", "interface": "wlan1", "signal_dbm": -30}]
        """,
    )
    dropin(
        settings,
        "brokenap",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_stations(ctx):
            raise RuntimeError("radio on fire")
        """,
    )
    client = make_client(disable=frozenset({"hostapd"}))
    body = client.get("/api/v1/clients?connection_type=wireless", headers=AUTH).json()
    assert [(c["mac"], c["interface"], c["signal_dbm"]) for c in body["clients"]] == [
        ("02:aa:00:00:00:01", "wlan1", -30)
    ]
    assert client.get("/clients/wlan1", headers=AUTH).json()["active_clients_amount"] == 1


def test_hook_raspapi_station_action(settings: Settings, make_client: MakeClient) -> None:
    log = settings.state_dir / "actions.log"
    dropin(
        settings,
        "otherap",
        f"""
        from raspapi import hookimpl

        @hookimpl
        def raspapi_stations(ctx):
            return [{{"mac": "02:aa:00:00:00:01", "interface": "wlan1"}}]

        @hookimpl
        async def raspapi_station_action(ctx, action, mac):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{action}} {{mac}}\\n")
            return True
        """,
    )
    dropin(
        settings,
        "noap",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_station_action(ctx, action, mac):
            return None  # runs no access point: takes no part
        """,
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    client = make_client(disable=frozenset({"hostapd"}))
    response = client.post(
        "/api/v1/clients/02:AA:00:00:00:01/kick", headers=AUTH, json={"ban_seconds": 60}
    )
    assert response.status_code == 200
    assert response.json()["deauthenticated"] is True
    assert client.delete("/api/v1/clients/bans/02:aa:00:00:00:01", headers=AUTH).status_code == 200
    assert log.read_text().splitlines() == [
        "deny 02:aa:00:00:00:01",
        "deauthenticate 02:aa:00:00:00:01",
        "allow 02:aa:00:00:00:01",
    ]

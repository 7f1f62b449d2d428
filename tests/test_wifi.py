"""The wifi plugin against a scripted wpa_supplicant control socket.

What the wired driver cannot show (scan results, signal, a wrong key) is
scripted here; tests/test_wifi_real.py runs the real wpa_supplicant.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from raspapi.plugins.wifi import service as wifi_service
from raspapi.plugins.wifi.service import parse_scan, security, unescape
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient
from tests.hostapd_peer import short_root
from tests.test_admin import sign_in
from tests.test_events import Stream
from tests.test_metrics import samples, scrape, value
from tests.wpa_peer import Ap, ScriptedWpa

HOME = Ap(b"Home", "aa:bb:cc:00:00:01", '"home-pass-123"', freq=5180, signal=-58)
CAFE = Ap('Café "Sol"'.encode(), "aa:bb:cc:00:00:02", '"espresso!"', freq=2437)
OPEN = Ap(b"FreeWifi", "aa:bb:cc:00:00:03", None)
SECRET = "espresso!"


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


def ctrl(root: Path, interface: str = "wlan1") -> Path:
    return root / "var" / "run" / "wpa_supplicant" / interface


@pytest.fixture
def peer(root: Path) -> Iterator[ScriptedWpa]:
    """Connected to Home (known, id 0), with a disabled "Old" network (id 1)."""
    scripted = ScriptedWpa(ctrl(root), aps=[HOME, CAFE, OPEN])
    home = scripted.add("Home", '"home-pass-123"', priority=5)
    scripted.add("Old", '"old-pass-123"', disabled=True)
    scripted.join_now(home.id)
    with scripted:
        yield scripted


@pytest.fixture
def wifi(make_client: MakeClient, loop_name: str) -> TestClient:
    return make_client(loop=loop_name, cache_ttl=0, options={"RASPAPI_WIFI_CONNECT_TIMEOUT": "2"})


# -- reading ---------------------------------------------------------------------------


def test_overview_shows_the_upstream_network(wifi: TestClient, peer: ScriptedWpa) -> None:
    response = wifi.get("/api/v1/wifi", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ctrl_interface"] == "/var/run/wpa_supplicant"
    [iface] = body["interfaces"]
    assert iface == {
        "interface": "wlan1",
        "state": "completed",
        "connected": True,
        "ssid": "Home",
        "bssid": "aa:bb:cc:00:00:01",
        "network_id": 0,
        "frequency_mhz": 5180,
        "band": "5",
        "signal_dbm": -58,
        "link_speed_mbps": 300,
        "key_mgmt": "WPA2-PSK",
        "ip_address": "192.168.8.23",
        "connected_since": iface["connected_since"],
    }
    assert iface["connected_since"].endswith("Z")
    assert peer.counts["SIGNAL_POLL"] >= 1
    ready = wifi.get("/ready", headers=AUTH).json()["plugins"]["wifi"]
    assert ready["state"] == "ok"
    assert ready["details"] == {"interfaces": ["wlan1"], "connected": ["wlan1"]}


def test_known_networks_never_show_a_passphrase(wifi: TestClient, peer: ScriptedWpa) -> None:
    response = wifi.get("/api/v1/wifi/wlan1/networks", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "interface": "wlan1",
        "networks": [
            {"id": 0, "ssid": "Home", "priority": 5, "disabled": False, "current": True},
            {"id": 1, "ssid": "Old", "priority": 0, "disabled": True, "current": False},
        ],
    }
    assert "pass" not in response.text
    assert not [c for c in peer.commands if "psk" in c]


def test_scan_results_are_decoded_classified_and_sorted(
    wifi: TestClient, peer: ScriptedWpa
) -> None:
    response = wifi.get("/api/v1/wifi/wlan1/scan", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["refreshed"] is False
    nets = body["networks"]
    assert [n["signal_dbm"] for n in nets] == sorted((n["signal_dbm"] for n in nets), reverse=True)
    by_bssid = {n["bssid"]: n for n in nets}
    assert by_bssid["aa:bb:cc:00:00:02"]["ssid"] == 'Café "Sol"'
    assert by_bssid["aa:bb:cc:00:00:02"]["security"] == "wpa3-sae"
    assert by_bssid["aa:bb:cc:00:00:02"]["band"] == "5"
    assert by_bssid["aa:bb:cc:00:00:01"] | {"flags": ""} == {
        "ssid": "Home",
        "hidden": False,
        "bssid": "aa:bb:cc:00:00:01",
        "frequency_mhz": 2412,
        "band": "2.4",
        "signal_dbm": -71,
        "security": "wpa2-psk",
        "flags": "",
        "known": True,
    }
    assert by_bssid["aa:bb:cc:00:00:03"]["security"] == "open"
    assert by_bssid["aa:bb:cc:00:00:04"]["security"] == "enterprise"
    assert by_bssid["aa:bb:cc:00:00:06"]["ssid"] == "旅館"
    assert by_bssid["aa:bb:cc:00:00:06"]["security"] == "wpa2-wpa3"
    for hidden in ("aa:bb:cc:00:00:05", "aa:bb:cc:00:00:07"):
        assert by_bssid[hidden]["hidden"] is True
        assert by_bssid[hidden]["ssid"] is None
        assert by_bssid[hidden]["known"] is False
    assert by_bssid["aa:bb:cc:00:00:07"]["security"] == "wep"
    assert peer.counts["SCAN"] == 0


def test_scan_refresh_waits_for_the_results(wifi: TestClient, peer: ScriptedWpa) -> None:
    response = wifi.get("/api/v1/wifi/wlan1/scan?refresh=true", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["refreshed"] is True
    assert peer.counts["SCAN"] == 1
    # The daemon attached for the results, then detached.
    assert peer.counts["ATTACH"] == 1 and peer.counts["DETACH"] == 1


def test_a_scan_that_never_ends_is_bounded(make_client: MakeClient, peer: ScriptedWpa) -> None:
    client = make_client(options={"RASPAPI_WIFI_SCAN_TIMEOUT": "1"})
    peer.silent_scan = True
    response = client.get("/api/v1/wifi/wlan1/scan?refresh=1", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["refreshed"] is False
    assert body["refresh_error"] == "no scan results within 1 s"
    assert len(body["networks"]) == 7  # the previous results still


def test_unescape_and_security() -> None:
    assert unescape(r"Caf\xc3\xa9 \"x\" \\ \e\n\t") == 'Café "x" \\ \x1b\n\t'.encode()
    assert unescape(r"bad \xZZ") == rb"bad \xZZ"
    assert security("[WPA-PSK-TKIP][ESS]") == "wpa-psk"
    assert security("[RSN-OWE-CCMP][ESS]") == "owe"
    big = "bssid / frequency / signal level / flags / ssid\n" + "".join(
        f"aa:bb:cc:00:{i // 256:02x}:{i % 256:02x}\t2412\t-50\t[ESS]\tx\n" for i in range(2000)
    )
    assert len(parse_scan(big, set())) == wifi_service.MAX_SCAN_RESULTS
    assert parse_scan("header\nnot a line\n\t\t\t\n", set()) == []


# -- connecting ------------------------------------------------------------------------


def test_connect_joins_saves_and_keeps_the_other_networks(
    wifi: TestClient, peer: ScriptedWpa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"ssid": 'Café "Sol"', "passphrase": SECRET, "priority": 3}
    response = wifi.post("/api/v1/wifi/wlan1/connect", headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["result"] == "connected"
    assert answer["connected"] is True
    assert answer["reason"] is None
    assert answer["network_id"] == 2
    assert answer["saved"] is True
    # The SSID went as hex: its quote never reached the protocol as text.
    assert f"SET_NETWORK 2 ssid {CAFE.ssid.hex()}" in peer.commands
    assert peer.counts["SAVE_CONFIG"] == 1
    # SELECT_NETWORK disabled the others: Home is enabled again, Old stays disabled.
    assert "ENABLE_NETWORK 0" in peer.commands
    assert "ENABLE_NETWORK 1" not in peer.commands
    networks = wifi.get("/api/v1/wifi/wlan1/networks", headers=AUTH).json()["networks"]
    assert [(n["ssid"], n["disabled"], n["current"]) for n in networks] == [
        ("Home", False, False),
        ("Old", True, False),
        ('Café "Sol"', False, True),
    ]
    assert networks[2]["priority"] == 3
    state = wifi.get("/api/v1/wifi", headers=AUTH).json()["interfaces"][0]
    assert state["ssid"] == 'Café "Sol"'
    assert SECRET not in response.text
    assert SECRET not in caplog.text


def test_a_wrong_passphrase_falls_back_to_the_previous_network(
    wifi: TestClient, peer: ScriptedWpa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"ssid": 'Café "Sol"', "passphrase": "not-the-key"}
    response = wifi.post("/api/v1/wifi/wlan1/connect", headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["result"] == "fell_back"
    assert answer["connected"] is False
    assert answer["reason"] == "WRONG_KEY"
    assert answer["previous_network_id"] == 0
    assert answer["restored"] is True
    assert answer["saved"] is False
    assert peer.counts["SAVE_CONFIG"] == 0
    assert "REMOVE_NETWORK 2" in peer.commands
    assert peer.sent("SELECT_NETWORK") == ["SELECT_NETWORK 2", "SELECT_NETWORK 0"]
    assert [n.id for n in peer.networks] == [0, 1]
    assert [n.disabled for n in peer.networks] == [False, True]
    assert peer.state == "COMPLETED" and peer.current == 0
    assert "not-the-key" not in caplog.text


def test_an_absent_network_fails_after_the_timeout(make_client: MakeClient, root: Path) -> None:
    scripted = ScriptedWpa(ctrl(root), aps=[])
    with scripted:
        client = make_client(options={"RASPAPI_WIFI_CONNECT_TIMEOUT": "1"})
        response = client.post(
            "/api/v1/wifi/wlan1/connect", headers=AUTH, json={"ssid": "Nowhere", "hidden": True}
        )
    answer = response.json()
    assert answer["result"] == "failed"
    assert answer["reason"] == "NETWORK_NOT_FOUND"
    assert "within 1 s" in answer["detail"]
    assert answer["restored"] is None
    assert "SET_NETWORK 0 scan_ssid 1" in scripted.commands
    assert "SET_NETWORK 0 key_mgmt NONE" in scripted.commands
    assert scripted.networks == []


def test_two_connects_do_not_interleave(wifi: TestClient, peer: ScriptedWpa) -> None:
    answers: list[dict[str, object]] = []

    def join(body: dict[str, object]) -> None:
        answers.append(wifi.post("/api/v1/wifi/wlan1/connect", headers=AUTH, json=body).json())

    threads = [
        threading.Thread(target=join, args=({"ssid": "FreeWifi"},)),
        threading.Thread(target=join, args=({"ssid": 'Café "Sol"', "passphrase": SECRET},)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(str(a["result"]) for a in answers) == ["connected", "connected"]
    # Each ADD_NETWORK ... SAVE_CONFIG run is whole: no second ADD in between.
    verbs = [
        c.split(" ", 1)[0]
        for c in peer.commands
        if c.split(" ", 1)[0] in ("ADD_NETWORK", "SAVE_CONFIG")
    ]
    assert verbs == ["ADD_NETWORK", "SAVE_CONFIG", "ADD_NETWORK", "SAVE_CONFIG"]


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ssid": 'Home\nSET_NETWORK 0 psk "x"'}, "ssid"),
        ({"ssid": "Ho\x00me"}, "ssid"),
        ({"ssid": "tab\there"}, "ssid"),
        ({"ssid": ""}, "ssid"),
        ({"ssid": "x" * 33}, "ssid"),
        ({"ssid": "é" * 17}, "ssid"),
        ({"ssid": 42}, "ssid"),
        ({"ssid": "Home", "passphrase": "short77"}, "passphrase"),
        ({"ssid": "Home", "passphrase": "x" * 64}, "passphrase"),
        ({"ssid": "Home", "passphrase": "new\nline-pass"}, "passphrase"),
        ({"ssid": "Home", "passphrase": 'quote"inside'}, "passphrase"),
        ({"ssid": "Home", "passphrase": "ünïcödé-pass"}, "passphrase"),
        ({"ssid": "Home", "hidden": "yes"}, "hidden"),
        ({"ssid": "Home", "priority": -1}, "priority"),
        ({"ssid": "Home", "priority": True}, "priority"),
        ({"ssid": "Home", "bssid": "aa:bb:cc:dd:ee:ff"}, "bssid"),
        ({"passphrase": "long-enough"}, "ssid"),
        ([], "body"),
    ],
)
def test_bad_connect_input_is_refused_before_wpa_supplicant_hears_of_it(
    client: TestClient, peer: ScriptedWpa, body: object, field: str
) -> None:
    response = client.post("/api/v1/wifi/wlan1/connect", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert peer.counts["ADD_NETWORK"] == 0
    if isinstance(body, dict) and isinstance(body.get("passphrase"), str):
        assert body["passphrase"] not in response.text


def test_an_ssid_cannot_inject_a_command(make_client: MakeClient, peer: ScriptedWpa) -> None:
    """Even past validation (called directly), a newline, quote or NUL in an
    SSID is hex on the wire: one SET_NETWORK, nothing else."""
    from raspapi.plugins.wifi.validate import Join

    client = make_client(options={"RASPAPI_WIFI_CONNECT_TIMEOUT": "1"})
    nasty = b'x"\nSET_NETWORK 0 psk "evil"\x00'
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    service = manager.plugins["wifi"].ctx.service(wifi_service.Wifi)
    assert client.portal is not None
    client.portal.call(service.connect, "wlan1", Join(nasty, None, False, None))
    sets = peer.sent("SET_NETWORK")
    assert sets[0] == f"SET_NETWORK 2 ssid {nasty.hex()}"
    assert all("\n" not in c and "\x00" not in c and '"' not in c for c in sets)
    assert [n.psk for n in peer.networks if n.id == 0] == ['"home-pass-123"']


def test_a_quoted_ssid_is_accepted_and_hex_encoded(wifi: TestClient, peer: ScriptedWpa) -> None:
    response = wifi.post(
        "/api/v1/wifi/wlan1/connect", headers=AUTH, json={"ssid": 'a"b', "passphrase": "x" * 63}
    )
    assert response.status_code == 200
    assert "SET_NETWORK 2 ssid " + b'a"b'.hex() in peer.commands
    assert 'SET_NETWORK 2 psk "' + "x" * 63 + '"' in peer.commands


def test_a_raw_psk_goes_unquoted(wifi: TestClient, peer: ScriptedWpa) -> None:
    psk = "ABCDEF0123456789" * 4
    wifi.post("/api/v1/wifi/wlan1/connect", headers=AUTH, json={"ssid": "x", "passphrase": psk})
    assert f"SET_NETWORK 2 psk {psk.lower()}" in peer.commands


def test_unknown_interfaces_and_ids(client: TestClient, peer: ScriptedWpa) -> None:
    for path in ("/api/v1/wifi/wlan9/networks", "/api/v1/wifi/..%2f..%2fetc/scan"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["code"] in ("unknown_interface", "not_found")
    response = client.get("/api/v1/wifi/" + "w" * 300 + "/networks", headers=AUTH)
    assert response.status_code == 404
    assert "w" * 30 not in response.text
    assert client.delete("/api/v1/wifi/wlan1/networks/abc", headers=AUTH).status_code == 422
    assert client.delete("/api/v1/wifi/wlan1/networks/99", headers=AUTH).status_code == 404
    assert client.delete("/api/v1/wifi/wlan1/networks/9" * 1, headers=AUTH).status_code == 404
    big = client.delete("/api/v1/wifi/wlan1/networks/" + "9" * 40, headers=AUTH)
    assert big.status_code == 422
    assert client.post("/api/v1/wifi/wlan1/connect", headers=AUTH, content=b"{").status_code == 400
    huge = json.dumps({"ssid": "x", "passphrase": "y" * 10000})
    assert client.post("/api/v1/wifi/wlan1/connect", headers=AUTH, content=huge).status_code == 413


def test_read_keys_cannot_connect(client: TestClient, peer: ScriptedWpa) -> None:
    assert client.post("/api/v1/wifi/wlan1/connect", json={"ssid": "x"}).status_code == 401


# -- control ---------------------------------------------------------------------------


def test_forget_removes_and_saves(wifi: TestClient, peer: ScriptedWpa) -> None:
    response = wifi.delete("/api/v1/wifi/wlan1/networks/1", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "interface": "wlan1",
        "removed": 1,
        "ssid": "Old",
        "was_current": False,
        "saved": True,
        "save_error": None,
    }
    assert [n.id for n in peer.networks] == [0]
    assert peer.counts["SAVE_CONFIG"] == 1


def test_disconnect_and_reconnect(wifi: TestClient, peer: ScriptedWpa) -> None:
    down = wifi.post("/api/v1/wifi/wlan1/disconnect", headers=AUTH)
    assert down.json() == {"action": "disconnect", "interface": "wlan1", "state": "disconnected"}
    up = wifi.post("/api/v1/wifi/wlan1/reconnect", headers=AUTH)
    assert up.json() == {"action": "reconnect", "interface": "wlan1", "state": "completed"}


# -- unavailable -----------------------------------------------------------------------


def test_without_wpa_supplicant_the_plugin_says_so(client: TestClient) -> None:
    ready = client.get("/ready", headers=AUTH).json()["plugins"]["wifi"]
    assert ready["state"] == "unavailable"
    assert ready["reason"] == (
        "wpa_supplicant is not running (no control socket in /var/run/wpa_supplicant)"
    )
    response = client.get("/api/v1/wifi", headers=AUTH)
    assert response.status_code == 503
    assert "wpa_supplicant is not running" in response.json()["detail"]


def test_networkmanager_is_named(make_client: MakeClient, root: Path) -> None:
    (root / "run" / "NetworkManager").mkdir(parents=True)
    ready = make_client().get("/ready", headers=AUTH).json()["plugins"]["wifi"]
    assert ready["state"] == "unavailable"
    assert "NetworkManager manages Wi-Fi" in ready["reason"]


def test_a_stale_socket_is_unavailable(make_client: MakeClient, root: Path) -> None:
    scripted = ScriptedWpa(ctrl(root)).start()
    scripted.stop()
    path = ctrl(root)
    import socket as _socket

    stale = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody answers
    ready = make_client().get("/ready", headers=AUTH).json()["plugins"]["wifi"]
    assert ready["state"] == "unavailable"
    assert "wpa_supplicant is not running (nobody answers on" in ready["reason"]


def test_options_are_checked(make_client: MakeClient) -> None:
    client = make_client(options={"RASPAPI_WIFI_CONNECT_TIMEOUT": "0"})
    ready = client.get("/ready", headers=AUTH).json()["plugins"]["wifi"]
    assert ready["state"] == "failed"
    assert "RASPAPI_WIFI_CONNECT_TIMEOUT" in ready["reason"]


# -- telemetry -------------------------------------------------------------------------


def test_samples_metrics_and_panel(client: TestClient, peer: ScriptedWpa) -> None:
    found = samples(scrape(client))
    assert value(found, "wifi_client_connected", interface="wlan1") == 1
    assert value(found, "wifi_client_signal_dbm", interface="wlan1") == -58
    assert client.portal is not None
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    sampled = client.portal.call(manager.samples)
    assert sampled["wifi.wlan1.signal_dbm"] == -58
    sign_in(client)
    page = client.get("/admin/plugins/wifi")
    assert page.status_code == 200
    assert "Upstream Wi-Fi" in page.text
    assert "Home, completed, -58 dBm, 5 GHz, 192.168.8.23" in page.text


def test_connections_are_events(make_client: MakeClient, peer: ScriptedWpa) -> None:
    client = make_client(events_interval=0.05, cache_ttl=0)
    stream = Stream(client).start()
    try:
        assert stream.next()[0] == "snapshot"
        peer.state = "DISCONNECTED"
        kind, data = stream.until(lambda k, d: k.startswith("wifi."))
        assert kind == "wifi.disconnected"
        assert data["interface"] == "wlan1" and data["ssid"] == "Home"
        peer.state = "COMPLETED"
        kind, data = stream.until(lambda k, d: k.startswith("wifi."))
        assert kind == "wifi.connected"
        assert data == {**data, "interface": "wlan1", "ssid": "Home", "bssid": HOME.bssid}
    finally:
        stream.close()


def test_a_refused_setting_removes_the_new_network(wifi: TestClient, peer: ScriptedWpa) -> None:
    peer.refuse_set = {"priority"}
    response = wifi.post(
        "/api/v1/wifi/wlan1/connect", headers=AUTH, json={"ssid": "FreeWifi", "priority": 7}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "priority"
    assert [n.id for n in peer.networks] == [0, 1]
    assert peer.counts["SELECT_NETWORK"] == 0
    assert peer.state == "COMPLETED" and peer.current == 0

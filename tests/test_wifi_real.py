"""The wifi plugin against the real wpa_supplicant (``-D wired`` on a veth pair).

wpa_supplicant runs in a network namespace the test creates and removes,
with its control socket under the fixture root and a configuration file of
its own (``update_config=1``, so SAVE_CONFIG rewrites it). The wired driver
"associates" at once with an open network; a WPA-PSK network never finishes
its 4-way handshake there (no authenticator), which is a real failed
connection for the fall-back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient
from tests.hostapd_peer import short_root
from tests.wpa_peer import real_wpa_supplicant

pytestmark = pytest.mark.integration

CONF = """\
ctrl_interface={ctrl}
update_config=1
ap_scan=1

network={{
\tssid="Home"
\tkey_mgmt=NONE
\tpriority=5
\tid_str="home"
}}

network={{
\tssid="Office"
\tpsk="office-secret-1"
\tdisabled=1
}}
"""


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


@pytest.fixture
def conf(root: Path) -> Path:
    path = root.parent / "wpa.conf"
    path.write_text(CONF.format(ctrl=root / "var/run/wpa_supplicant"))
    return path


@pytest.fixture
def wpa(root: Path, conf: Path) -> Iterator[None]:
    with real_wpa_supplicant(root / "var/run/wpa_supplicant", conf):
        yield


def wait_state(client: TestClient, state: str, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, object] = client.get("/api/v1/wifi", headers=AUTH).json()["interfaces"][0]
        if view["state"] == state or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def test_real_wpa_supplicant(
    make_client: MakeClient, loop_name: str, wpa: None, conf: Path
) -> None:
    client = make_client(loop=loop_name, cache_ttl=0, options={"RASPAPI_WIFI_CONNECT_TIMEOUT": "3"})
    # STATUS: the wired driver has "associated" with Home.
    view = wait_state(client, "completed")
    assert view["interface"] == "v0"
    assert view["connected"] is True
    assert view["ssid"] == "Home"
    assert view["key_mgmt"] == "NONE"
    assert view["signal_dbm"] is None  # SIGNAL_POLL fails on a wired driver
    assert client.get("/ready").json()["plugins"]["wifi"]["state"] == "ok"

    # LIST_NETWORKS, with GET_NETWORK for the priority; never a passphrase.
    response = client.get("/api/v1/wifi/v0/networks", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["networks"] == [
        {"id": 0, "ssid": "Home", "priority": 5, "disabled": False, "current": True},
        {"id": 1, "ssid": "Office", "priority": 0, "disabled": True, "current": False},
    ]
    assert "office-secret" not in response.text

    # ADD_NETWORK, SET_NETWORK (hex SSID with a quote), SELECT_NETWORK, SAVE_CONFIG.
    response = client.post(
        "/api/v1/wifi/v0/connect", headers=AUTH, json={"ssid": 'Guest "5"', "priority": 2}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["result"] == "connected", answer
    assert answer["saved"] is True
    guest = answer["network_id"]
    view = wait_state(client, "completed")
    assert view["ssid"] == 'Guest "5"'
    saved = conf.read_text()
    # Rewritten by wpa_supplicant, and nothing else lost: Home enabled with its
    # priority and id_str, Office's passphrase and disabled flag kept.
    assert 'ssid="Home"' in saved and "priority=5" in saved and 'id_str="home"' in saved
    assert 'psk="office-secret-1"' in saved
    assert saved.count("disabled=1") == 1
    assert "update_config=1" in saved
    assert 'ssid="Guest "5""' in saved  # read back up to the last quote
    networks = client.get("/api/v1/wifi/v0/networks", headers=AUTH).json()["networks"]
    assert [(n["ssid"], n["disabled"], n["current"]) for n in networks] == [
        ("Home", False, False),
        ("Office", True, False),
        ('Guest "5"', False, True),
    ]

    # A WPA-PSK network never completes over the wire: fall back to Guest.
    before = conf.read_bytes()
    response = client.post(
        "/api/v1/wifi/v0/connect",
        headers=AUTH,
        json={"ssid": "Cafe", "passphrase": "wrong-passphrase"},
    )
    answer = response.json()
    assert answer["result"] == "fell_back", answer
    assert answer["connected"] is False
    assert answer["reason"] == "TIMEOUT", answer
    assert answer["previous_network_id"] == guest
    assert answer["restored"] is True
    assert conf.read_bytes() == before  # not saved
    networks = client.get("/api/v1/wifi/v0/networks", headers=AUTH).json()["networks"]
    assert [n["ssid"] for n in networks] == ["Home", "Office", 'Guest "5"']
    assert [n["disabled"] for n in networks] == [False, True, False]
    assert wait_state(client, "completed")["ssid"] == 'Guest "5"'

    # REMOVE_NETWORK and SAVE_CONFIG.
    response = client.delete(f"/api/v1/wifi/v0/networks/{guest}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["saved"] is True
    assert "Guest" not in conf.read_text()
    assert 'psk="office-secret-1"' in conf.read_text()

    # DISCONNECT and RECONNECT.
    response = client.post("/api/v1/wifi/v0/disconnect", headers=AUTH)
    assert response.json()["state"] == "disconnected"
    client.post("/api/v1/wifi/v0/reconnect", headers=AUTH)
    assert wait_state(client, "completed")["ssid"] == "Home"

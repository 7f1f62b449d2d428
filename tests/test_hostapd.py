"""The hostapd plugin against a scripted control socket (tests/hostapd_peer.py).

What the real hostapd can show with ``driver=none`` is tested against it in
test_hostapd_real.py; here: the parser, RaspAP's /ap, the v1 routes, bad
input, and the rollback with a short timeout.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from raspapi.plugins.hostapd import service as hostapd_service
from raspapi.plugins.hostapd.config import HostapdConf
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.security.auth import Principal
from raspapi.settings import Settings
from tests import hostapd_peer
from tests.conftest import AUTH, MakeClient
from tests.hostapd_peer import ScriptedHostapd, ctrl_path, short_root
from tests.test_metrics import samples, scrape, value

CONF = "etc/hostapd/hostapd.conf"
READ_KEY = "reader0123456789abcdefghijklmnop"
CONTROL_KEY = "control0123456789abcdefghijklmno"
READER = {"access_token": READ_KEY}
CONTROLLER = {"access_token": CONTROL_KEY}
AP_KEYS = [
    "driver",
    "ctrl_interface",
    "ctrl_interface_group",
    "auth_algs",
    "wpa_key_mgmt",
    "beacon_int",
    "ssid",
    "channel",
    "hw_mode",
    "ieee80211n",
    "frequency_band",
    "wpa_passphrase",
    "interface",
    "wpa",
    "wpa_pairwise",
    "country_code",
    "ignore_broadcast_ssid",
]


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


@pytest.fixture
def peer(root: Path) -> Iterator[ScriptedHostapd]:
    with ScriptedHostapd(ctrl_path(root)) as scripted:
        yield scripted


def with_keys(client: TestClient) -> TestClient:
    """A read-only key and a control key besides the admin key."""
    keys = {
        READ_KEY: Principal("dashboard", frozenset({"read"})),
        CONTROL_KEY: Principal("automation", frozenset({"read", "control"})),
    }
    client.app.state.runtime.auth.lookups.append(keys.get)  # type: ignore[attr-defined]
    return client


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- the parser ------------------------------------------------------------------------


TRICKY = """\
# ssid=commented-out
driver=nl80211
ignore_broadcast_ssid=1
interface=wlan0
ssid=first
wpa_passphrase=has=equals=signs

ssid=second
#interface=uap0
channel=6
bss=wlan0_1
ssid=guest
"""


def test_parser_takes_the_last_line_of_a_key_and_ignores_comments() -> None:
    conf = HostapdConf.parse(TRICKY)
    values = conf.values()
    assert values["ssid"] == "second"
    assert values["interface"] == "wlan0"
    assert values["wpa_passphrase"] == "has=equals=signs"
    assert values["ignore_broadcast_ssid"] == "1"
    assert conf.interfaces() == ["wlan0", "wlan0_1"]
    assert conf.values(1) == {"bss": "wlan0_1", "ssid": "guest"}
    assert conf.ctrl_dir() == "/var/run/hostapd"


def test_parser_never_matches_a_key_by_substring() -> None:
    conf = HostapdConf.parse("ignore_broadcast_ssid=1\nctrl_interface_group=0\n")
    assert conf.get("ssid") is None
    assert conf.get("ctrl_interface") is None
    assert HostapdConf.parse("ctrl_interface=DIR=/run/hostapd GROUP=netdev\n").ctrl_dir() == (
        "/run/hostapd"
    )


def test_rewrite_changes_one_line_and_keeps_every_other_byte() -> None:
    text = TRICKY.replace("\n", "\r\n")
    conf = HostapdConf.parse(text)
    conf.set("ssid", "third")
    conf.set("country_code", "GB")
    out = conf.render()
    assert out == text.replace("ssid=second", "ssid=third").replace(
        "channel=6\r\n", "channel=6\r\ncountry_code=GB\r\n"
    )
    assert HostapdConf.parse(out).values(1)["ssid"] == "guest"


def test_rewrite_round_trips_bytes_that_are_not_utf8() -> None:
    raw = b"ssid=caf\xe9\ninterface=wlan0\n"
    conf = HostapdConf.parse(raw.decode("utf-8", "surrogateescape"))
    conf.set("channel", "1")
    assert conf.render().encode("utf-8", "surrogateescape") == raw + b"channel=1\n"


# -- RaspAP's /ap ------------------------------------------------------------------------


def test_ap_answers_raspap_keys_in_order_from_the_file(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    response = client.get("/ap", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == AP_KEYS
    assert body == {
        "driver": "nl80211",
        "ctrl_interface": "/var/run/hostapd",
        "ctrl_interface_group": "0",
        "auth_algs": "1",
        "wpa_key_mgmt": "WPA-PSK",
        "beacon_int": "100",
        "ssid": "raspi-webgui",
        "channel": "1",
        "hw_mode": "g",
        "ieee80211n": "0",
        "frequency_band": "2.4",
        "wpa_passphrase": "ChangeMe",
        "interface": "wlan0",
        "wpa": "2",
        "wpa_pairwise": "CCMP",
        "country_code": "GB",
        "ignore_broadcast_ssid": "0",
    }


def test_ap_hides_the_passphrase_from_keys_that_are_not_admin(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    with_keys(client)
    assert client.get("/ap", headers=READER).json()["wpa_passphrase"] == ""
    assert client.get("/ap", headers=CONTROLLER).json()["wpa_passphrase"] == ""
    assert client.get("/ap", headers=AUTH).json()["wpa_passphrase"] == "ChangeMe"


def test_ap_frequency_band_comes_from_the_live_frequency(root: Path, client: TestClient) -> None:
    with ScriptedHostapd(ctrl_path(root), channel=36, freq=5180):
        assert client.get("/ap", headers=AUTH).json()["frequency_band"] == "5"


def test_ap_without_hostapd_running_answers_from_the_file(client: TestClient) -> None:
    body = client.get("/ap", headers=AUTH).json()
    assert body["ssid"] == "raspi-webgui"
    assert body["frequency_band"] is None


def test_ap_without_hostapd_conf_answers_empty_strings(root: Path, client: TestClient) -> None:
    (root / CONF).unlink()
    response = client.get("/ap", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == AP_KEYS
    assert body == {key: None if key == "frequency_band" else "" for key in AP_KEYS}


def test_ap_does_not_leak_comments_or_substring_matches(root: Path, client: TestClient) -> None:
    (root / CONF).write_text(TRICKY)
    body = client.get("/ap", headers=AUTH).json()
    assert body["ssid"] == "second"
    assert body["interface"] == "wlan0"
    assert body["ignore_broadcast_ssid"] == "1"
    assert body["channel"] == "6"
    assert body["hw_mode"] == ""


def test_ap_needs_a_key_with_raspaps_answer(client: TestClient) -> None:
    response = client.get("/ap")
    assert response.status_code == 403
    assert response.json() == {"detail": "403: Unauthorized"}


# -- status ------------------------------------------------------------------------------


def test_v1_status_is_hostapds_live_status(client: TestClient, peer: ScriptedHostapd) -> None:
    peer.add_station("b8:27:eb:4f:12:a3")
    peer.add_station("e4:5f:01:aa:bb:cc")
    body = client.get("/api/v1/hostapd/status", headers=AUTH).json()
    assert body["state"] == "enabled"
    assert body["interface"] == "wlan0"
    assert body["ssid"] == "raspi-webgui"
    assert body["bssid"] == "dc:a6:32:ab:cd:ef"
    assert body["channel"] == 1
    assert body["frequency_mhz"] == 2412
    assert body["band"] == "2.4"
    assert body["hw_mode"] == "g"
    assert body["country_code"] == "GB"
    assert body["num_stations"] == 2


def test_v1_overview_has_status_config_and_service(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    with_keys(client)
    body = client.get("/api/v1/hostapd", headers=READER).json()
    assert body["status"]["ssid"] == "raspi-webgui"
    assert body["config"]["values"]["ssid"] == "raspi-webgui"
    assert body["config"]["values"]["wpa_passphrase"] is None
    assert body["config"]["redacted"] == ["wpa_passphrase"]
    assert body["service"]["unit"] == "hostapd.service"
    assert body["service"]["active_state"] == "active"
    admin = client.get("/api/v1/hostapd/config", headers=AUTH).json()
    assert admin["values"]["wpa_passphrase"] == "ChangeMe"
    assert admin["redacted"] == []


def test_unsolicited_event_messages_are_skipped(client: TestClient, peer: ScriptedHostapd) -> None:
    peer.events = 3
    assert client.get("/api/v1/hostapd/status", headers=AUTH).json()["ssid"] == "raspi-webgui"


def test_without_hostapd_the_plugin_is_unavailable_not_failed(client: TestClient) -> None:
    response = client.get("/api/v1/hostapd", headers=AUTH)
    assert response.status_code == 503
    assert "hostapd is not running" in response.json()["detail"]
    assert "/var/run/hostapd/wlan0" in response.json()["detail"]
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["hostapd"]
    assert plugin["state"] == "unavailable"
    assert client.get("/system", headers=AUTH).json()["hostapdStatus"] == 0


def test_a_stale_socket_file_means_not_running(root: Path, client: TestClient) -> None:
    path = ctrl_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))  # hostapd crashed: the file stays, nobody reads it
    assert path.exists()
    response = client.get("/api/v1/hostapd/status", headers=AUTH)
    assert response.status_code == 503
    assert "nobody answers" in response.json()["detail"]


def test_a_silent_hostapd_times_out(
    client: TestClient, peer: ScriptedHostapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hostapd_service, "CTRL_TIMEOUT", 0.2)
    peer.silent = True
    started = time.monotonic()
    response = client.get("/api/v1/hostapd/status", headers=AUTH)
    assert response.status_code == 503
    assert "did not answer STATUS within 0.2 s" in response.json()["detail"]
    assert time.monotonic() - started < 2


def test_system_hostapd_status_is_1_when_hostapd_answers(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    assert client.get("/system", headers=AUTH).json()["hostapdStatus"] == 1


def test_client_socket_files_are_removed(
    settings: Settings, peer: ScriptedHostapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/hostapd/status", headers=AUTH).status_code == 200
        assert len(list(runtime.glob("raspapi-ctrl-*/s"))) == 1
    assert list(runtime.iterdir()) == []


# -- control -----------------------------------------------------------------------------


def test_disable_enable_and_reload(client: TestClient, peer: ScriptedHostapd) -> None:
    response = client.post("/api/v1/hostapd/disable", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "action": "disable",
        "interface": "wlan0",
        "changed": True,
        "state": "disabled",
    }
    again = client.post("/api/v1/hostapd/disable", headers=AUTH).json()
    assert again["changed"] is False
    assert client.post("/api/v1/hostapd/enable", headers=AUTH).json()["state"] == "enabled"
    assert client.post("/api/v1/hostapd/reload", headers=AUTH).status_code == 200
    assert peer.sent("DISABLE") == ["DISABLE"]
    assert peer.sent("ENABLE") == ["ENABLE"]
    assert peer.sent("RELOAD") == ["RELOAD"]


def test_restart_goes_through_systemctl(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    response = client.post("/api/v1/hostapd/restart", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["state"] == "active"
    calls = (root / "fake/systemctl.log").read_text().splitlines()
    assert "restart --no-ask-password -- hostapd.service" in calls


def test_restart_works_while_hostapd_is_down(root: Path, client: TestClient) -> None:
    # No peer: hostapd is not running, so the plugin is unavailable; the route
    # that brings it back must still answer.
    assert client.get("/api/v1/hostapd", headers=AUTH).status_code == 503
    response = client.post("/api/v1/hostapd/restart", headers=AUTH)
    assert response.status_code == 200, response.text
    calls = (root / "fake/systemctl.log").read_text().splitlines()
    assert "restart --no-ask-password -- hostapd.service" in calls
    assert client.post("/api/v1/hostapd/enable", headers=AUTH).status_code == 503


def test_restart_failure_is_a_clear_502(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    (root / "fake/systemd/fail").mkdir(parents=True, exist_ok=True)
    (root / "fake/systemd/fail/hostapd.service").touch()
    response = client.post("/api/v1/hostapd/restart", headers=AUTH)
    assert response.status_code == 502
    assert response.json()["code"] == "restart_failed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/hostapd/enable"),
        ("POST", "/api/v1/hostapd/disable"),
        ("POST", "/api/v1/hostapd/reload"),
        ("POST", "/api/v1/hostapd/restart"),
        ("PATCH", "/api/v1/hostapd/config"),
        ("POST", "/api/v1/hostapd/config/confirm"),
    ],
)
def test_control_needs_the_control_scope(
    client: TestClient, peer: ScriptedHostapd, method: str, path: str
) -> None:
    with_keys(client)
    response = client.request(method, path, headers=READER, json={"ssid": "x"})
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
    assert peer.sent("DISABLE") == peer.sent("SET") == []


def test_a_control_key_may_act(client: TestClient, peer: ScriptedHostapd) -> None:
    with_keys(client)
    assert client.post("/api/v1/hostapd/reload", headers=CONTROLLER).status_code == 200


# -- configuration changes ------------------------------------------------------------------


def conf_text(root: Path) -> str:
    return (root / CONF).read_text()


def test_patch_rewrites_one_line_applies_it_and_arms_a_rollback(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    before = conf_text(root)
    os.chmod(root / CONF, 0o640)
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "Café net"})
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] == ["ssid"]
    assert body["applied"] is True
    assert body["confirm_url"] == "/api/v1/hostapd/config/confirm"
    deadline = datetime.fromisoformat(body["confirm_by"].replace("Z", "+00:00"))
    assert body["confirm_by"].endswith("Z")
    assert 50 <= (deadline - datetime.now(UTC)).total_seconds() <= 61
    assert conf_text(root) == before.replace("ssid=raspi-webgui", "ssid=Café net")
    assert (root / CONF).stat().st_mode & 0o777 == 0o640
    assert peer.sent("SET") == ["SET ssid Café net"]
    assert peer.commands[-2:] == ["DISABLE", "ENABLE"]
    assert client.get("/api/v1/hostapd/status", headers=AUTH).json()["ssid"] == "Café net"
    pending = client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"]
    assert pending["changed"] == ["ssid"]
    assert pending["confirm_by"] == body["confirm_by"]

    confirmed = client.post("/api/v1/hostapd/config/confirm", headers=AUTH)
    assert confirmed.status_code == 200
    assert confirmed.json() == {"confirmed": True, "changed": ["ssid"]}
    assert client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"] is None
    second = client.post("/api/v1/hostapd/config/confirm", headers=AUTH)
    assert second.status_code == 409
    assert second.json()["code"] == "nothing_to_confirm"


def test_patch_of_several_fields(root: Path, client: TestClient, peer: ScriptedHostapd) -> None:
    response = client.patch(
        "/api/v1/hostapd/config",
        headers=AUTH,
        json={
            "hw_mode": "a",
            "channel": 36,
            "country_code": "de",
            "hidden": True,
            "wpa_passphrase": "correct horse battery",
        },
    )
    assert response.status_code == 200
    assert response.json()["changed"] == [
        "wpa_passphrase",
        "hw_mode",
        "channel",
        "country_code",
        "hidden",
    ]
    text = conf_text(root)
    for line in (
        "hw_mode=a",
        "channel=36",
        "country_code=DE",
        "ignore_broadcast_ssid=1",
        "wpa_passphrase=correct horse battery",
    ):
        assert line in text.splitlines()
    assert "SET channel 36" in peer.sent("SET")


def test_patch_with_a_64_hex_psk_replaces_the_passphrase(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    psk = "0123456789ABCDEF" * 4
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"wpa_passphrase": psk})
    assert response.status_code == 200
    lines = conf_text(root).splitlines()
    assert f"wpa_psk={psk.lower()}" in lines
    assert not any(line.startswith("wpa_passphrase=") for line in lines)
    assert client.get("/ap", headers=AUTH).json()["wpa_passphrase"] == ""


def test_patch_that_changes_nothing_arms_nothing(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    before = conf_text(root)
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "raspi-webgui"})
    assert response.status_code == 200
    assert response.json() == {
        "changed": [],
        "applied": False,
        "apply_error": None,
        "confirm_by": None,
        "confirm_url": None,
    }
    assert conf_text(root) == before
    assert peer.sent("SET") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ssid": "a" * 33}, "ssid"),
        ({"ssid": "é" * 17}, "ssid"),  # 34 bytes
        ({"ssid": ""}, "ssid"),
        ({"ssid": "evil\nctrl_interface=/tmp"}, "ssid"),
        ({"ssid": "nul\x00byte"}, "ssid"),
        ({"ssid": 5}, "ssid"),
        ({"ssid": None}, "ssid"),
        ({"wpa_passphrase": "short"}, "wpa_passphrase"),
        ({"wpa_passphrase": "g" * 64}, "wpa_passphrase"),
        ({"wpa_passphrase": "long enough\nwpa=0"}, "wpa_passphrase"),
        ({"wpa_passphrase": "long enough\x00"}, "wpa_passphrase"),
        ({"wpa_passphrase": "pässwörter"}, "wpa_passphrase"),
        ({"wpa_passphrase": ["ChangeMe2"]}, "wpa_passphrase"),
        ({"channel": "6"}, "channel"),
        ({"channel": True}, "channel"),
        ({"channel": 6.0}, "channel"),
        ({"channel": 14}, "channel"),
        ({"channel": 36}, "channel"),
        ({"hw_mode": "a", "channel": 6}, "channel"),
        ({"hw_mode": "a"}, "channel"),
        ({"hw_mode": "n"}, "hw_mode"),
        ({"country_code": "XX"}, "country_code"),
        ({"country_code": "GBR"}, "country_code"),
        ({"country_code": "G\nB"}, "country_code"),
        ({"hidden": "yes"}, "hidden"),
        ({"hidden": 1}, "hidden"),
        ({"interface": "wlan1"}, "interface"),
        ({"ssid": "ok", "driver": "none"}, "driver"),
        ({}, "body"),
        (["ssid", "x"], "body"),
        ("ssid", "body"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    root: Path, client: TestClient, peer: ScriptedHostapd, body: Any, field: str
) -> None:
    before = conf_text(root)
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["code"] == "invalid"
    assert conf_text(root) == before
    assert peer.sent("SET") == []


def test_error_messages_never_repeat_a_passphrase(
    client: TestClient, peer: ScriptedHostapd
) -> None:
    secret = "s3cret\nvalue-that-is-long"
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"wpa_passphrase": secret})
    assert response.status_code == 422
    assert "s3cret" not in response.text


def test_malformed_json_is_a_400(root: Path, client: TestClient, peer: ScriptedHostapd) -> None:
    response = client.patch(
        "/api/v1/hostapd/config",
        headers={**AUTH, "content-type": "application/json"},
        content=b'{"ssid": ',
    )
    assert response.status_code == 400
    assert response.json()["code"] == "body_invalid"


def test_passphrase_on_an_open_network_is_refused(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    (root / CONF).write_text("interface=wlan0\nssid=open\nctrl_interface=/var/run/hostapd\n")
    response = client.patch(
        "/api/v1/hostapd/config", headers=AUTH, json={"wpa_passphrase": "long enough"}
    )
    assert response.status_code == 422
    assert "open" in response.json()["detail"]


def test_a_setting_hostapd_refuses_is_undone_at_once(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    before = conf_text(root)
    peer.refuse.add("channel")
    response = client.patch(
        "/api/v1/hostapd/config", headers=AUTH, json={"ssid": "new", "channel": 6}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "channel"
    assert "previous settings are back" in response.json()["detail"]
    assert conf_text(root) == before
    assert peer.sent("SET") == [
        "SET ssid new",
        "SET channel 6",
        "SET ssid raspi-webgui",
        "SET channel 1",
    ]
    assert peer.state == "ENABLED"
    assert client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"] is None


# -- rollback ----------------------------------------------------------------------------------


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("RASPAPI_HOSTAPD_CONFIRM_SECONDS", "0.5")
    return 0.5


def test_an_unconfirmed_change_is_rolled_back(
    root: Path, quick: float, make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client()
    before = (root / CONF).read_bytes()
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "lockout"})
    assert response.status_code == 200
    assert "ssid=lockout" in conf_text(root)
    assert wait_for(lambda: (root / CONF).read_bytes() == before)
    assert wait_for(lambda: peer.settings["ssid"] == "raspi-webgui")
    assert peer.sent("SET") == ["SET ssid lockout", "SET ssid raspi-webgui"]
    assert peer.state == "ENABLED"
    assert client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"] is None
    assert client.post("/api/v1/hostapd/config/confirm", headers=AUTH).status_code == 409


def test_a_confirmed_change_stays(
    root: Path, quick: float, make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client()
    assert (
        client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "kept"}).status_code
        == 200
    )
    assert client.post("/api/v1/hostapd/config/confirm", headers=AUTH).status_code == 200
    time.sleep(quick * 3)
    assert "ssid=kept" in conf_text(root)
    assert peer.sent("SET") == ["SET ssid kept"]


def test_two_unconfirmed_changes_roll_back_to_the_last_confirmed_file(
    root: Path, quick: float, make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client()
    before = (root / CONF).read_bytes()
    client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "one"})
    second = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"channel": 11})
    assert second.status_code == 200
    pending = client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"]
    assert pending["changed"] == ["ssid", "channel"]
    assert wait_for(lambda: (root / CONF).read_bytes() == before)
    assert wait_for(lambda: peer.settings == {"ssid": "raspi-webgui", "channel": "1"})


def test_stopping_the_daemon_rolls_back_an_unconfirmed_change(
    root: Path, settings: Settings, peer: ScriptedHostapd
) -> None:
    before = (root / CONF).read_bytes()
    with TestClient(create_app(settings)) as client:
        client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "gone"})
        assert (root / CONF).read_bytes() != before
    assert (root / CONF).read_bytes() == before


def test_a_bad_confirm_timeout_setting_fails_the_plugin_clearly(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RASPAPI_HOSTAPD_CONFIRM_SECONDS", "soon")
    client = make_client()
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["hostapd"]
    assert plugin["state"] == "failed"
    assert "RASPAPI_HOSTAPD_CONFIRM_SECONDS" in plugin["reason"]


def test_an_access_point_that_does_not_start_again_gets_the_old_settings_back(
    root: Path, client: TestClient, peer: ScriptedHostapd
) -> None:
    before = conf_text(root)
    peer.refuse.add("ENABLE")
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"hw_mode": "b"})
    assert response.status_code == 422
    assert response.json()["field"] == "hw_mode"
    assert "did not start again" in response.json()["detail"]
    assert conf_text(root) == before
    assert peer.sent("SET") == ["SET hw_mode b", "SET hw_mode g"]
    assert peer.sent("ENABLE") == ["ENABLE", "ENABLE"]


def test_a_missing_hostapd_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.hostapd_peer.shutil.which", lambda name: None)
    monkeypatch.setattr(hostapd_peer, "_SBIN_HOSTAPD", ("/nonexistent/hostapd",))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        hostapd_peer.hostapd_program()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        hostapd_peer.hostapd_program()


def test_a_read_only_file_system_is_a_clear_503(
    root: Path, client: TestClient, peer: ScriptedHostapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: Any, **kwargs: Any) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(hostapd_service, "atomic_write", read_only)
    response = client.patch("/api/v1/hostapd/config", headers=AUTH, json={"ssid": "new"})
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "cannot write /etc/hostapd/hostapd.conf: Read-only file system"
    )
    assert peer.sent("SET") == []
    assert client.get("/api/v1/hostapd/config", headers=AUTH).json()["pending_change"] is None


# -- metrics: a scrape answered from the last values ---------------------------------------


class FrozenClock:
    """The hostapd plugin's cache clock, moved by hand: expiry without sleeping."""

    def __init__(self, client: TestClient) -> None:
        manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
        self.cache = manager.plugins["hostapd"].ctx.cache
        self.now: float = self.cache.clock()
        self.cache.clock = lambda: self.now

    def expire(self) -> None:
        """Past the cache period, within the stale one (two periods)."""
        self.now += self.cache.ttl * 1.01


def stations_of(client: TestClient) -> dict[str, float]:
    found = samples(scrape(client))
    return {
        dict(labels)["interface"]: v
        for (name, labels), v in found.items()
        if name == "hostapd_stations"
    }


def test_a_scrape_after_expiry_answers_hostapd_up_from_the_last_status(
    make_client: MakeClient,
    loop_name: str,
    peer: ScriptedHostapd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hostapd_service, "CTRL_TIMEOUT", 0.3)
    client = make_client(loop=loop_name)
    clock = FrozenClock(client)
    # The first scrape waits for hostapd's answer: there is no earlier one.
    assert value(samples(scrape(client)), "hostapd_up") == 1
    asked = peer.counts["STATUS"]
    peer.silent = True  # hostapd hangs: a STATUS now fails after CTRL_TIMEOUT
    clock.expire()
    # Answered from the last STATUS: waiting would have said 0.
    assert value(samples(scrape(client)), "hostapd_up") == 1
    # The refresh asks hostapd behind it, and its answer is the next scrape's.
    assert wait_for(lambda: peer.counts["STATUS"] > asked)
    assert wait_for(lambda: value(samples(scrape(client)), "hostapd_up") == 0)


def test_a_scrape_after_expiry_answers_from_the_last_read_of_hostapd_conf(
    root: Path, make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client()
    clock = FrozenClock(client)
    assert stations_of(client) == {"wlan0": 0}
    with open(root / CONF, "a") as fh:
        fh.write("bss=wlan0_1\nssid=guest\n")
    clock.expire()
    # Answered from the last read of hostapd.conf while the next one runs.
    assert stations_of(client) == {"wlan0": 0}
    assert wait_for(lambda: stations_of(client) == {"wlan0": 0, "wlan0_1": 0})


def test_a_scrape_after_a_restart_asks_hostapd_again(
    root: Path, make_client: MakeClient, peer: ScriptedHostapd
) -> None:
    client = make_client()
    FrozenClock(client)  # nothing expires by itself in this test
    assert value(samples(scrape(client)), "hostapd_up") == 1
    peer.stop()  # hostapd does not come back from the restart
    assert client.post("/api/v1/hostapd/restart", headers=AUTH).status_code == 200
    # The restart dropped the last answers: this scrape waits for a new one.
    assert value(samples(scrape(client)), "hostapd_up") == 0


# -- an absent control socket is not tried ---------------------------------------------


def ask_counting(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, ask: Callable[[Any], Any]
) -> tuple[Any, int, int]:
    """``await ask(manager)`` on the app's loop: its answer, how many times the
    loop handed work to its default executor, and how many control sockets
    were connected (or tried)."""
    import asyncio

    from raspapi.host import wpactrl

    connects = 0
    real_connect = wpactrl.connect

    def counting_connect(*args: Any) -> Any:
        nonlocal connects
        connects += 1
        return real_connect(*args)

    monkeypatch.setattr(wpactrl, "connect", counting_connect)
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]

    async def run() -> tuple[Any, int]:
        loop = asyncio.get_running_loop()
        handed = 0
        original = loop.run_in_executor

        def counting(executor: Any, func: Any, *args: Any) -> Any:
            nonlocal handed
            handed += 1
            return original(executor, func, *args)

        loop.run_in_executor = counting  # type: ignore[method-assign,assignment]
        try:
            return await ask(manager), handed
        finally:
            del loop.run_in_executor

    assert client.portal is not None
    answer, handed = client.portal.call(run)
    return answer, handed, connects


def test_an_absent_control_socket_costs_no_thread_hop_and_no_connect(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    FrozenClock(client)  # hostapd.conf stays read: nothing expires by itself
    stations, handed, connects = ask_counting(client, monkeypatch, lambda m: m.stations())
    assert (stations, handed, connects) == ([], 1, 0)  # the one read of hostapd.conf
    cache = client.app.state.runtime.manager.plugins["hostapd"].ctx.cache  # type: ignore[attr-defined]
    cache.invalidate("stations")
    # The next sweep (the usage sampler's, each interval) asks nothing of a thread.
    stations, handed, connects = ask_counting(client, monkeypatch, lambda m: m.stations())
    assert (stations, handed, connects) == ([], 0, 0)
    # STATUS says what connecting would have said, without trying.
    response = client.get("/api/v1/hostapd/status", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["detail"].endswith(
        ": hostapd is not running (no control socket at /var/run/hostapd/wlan0)"
    )
    assert client.get("/system", headers=AUTH).json()["hostapdStatus"] == 0
    _, handed, connects = ask_counting(client, monkeypatch, lambda m: m.samples())
    assert connects == 0


def test_a_control_socket_that_appears_is_seen_within_one_cache_period(
    root: Path, make_client: MakeClient
) -> None:
    client = make_client()
    clock = FrozenClock(client)
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    hostapd = manager.plugins["hostapd"].ctx.service(hostapd_service.Hostapd)
    assert client.portal is not None
    assert client.portal.call(hostapd.running) is False
    assert client.portal.call(manager.stations) == []
    with ScriptedHostapd(ctrl_path(root)) as peer:
        peer.add_station("a8:5e:45:00:00:01", rx_bytes=10)
        assert client.portal.call(hostapd.running) is False  # within the period
        clock.expire()
        assert client.portal.call(hostapd.running) is True
        hostapd.ctx.cache.invalidate("stations")
        assert [s["mac"] for s in client.portal.call(manager.stations)] == ["a8:5e:45:00:00:01"]
        assert client.portal.call(manager.samples)["wifi.stations"] == 1


def test_the_same_bytes_of_hostapd_conf_are_parsed_once(
    root: Path, make_client: MakeClient
) -> None:
    client = make_client()
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    hostapd = manager.plugins["hostapd"].ctx.service(hostapd_service.Hostapd)
    first, again = hostapd.read_config(), hostapd.read_config()
    assert first.conf is not None and again.conf is first.conf
    (root / CONF).write_text(conf_text(root).replace("ssid=raspi-webgui", "ssid=other"))
    changed = hostapd.read_config()
    assert changed.conf is not first.conf
    assert changed.conf is not None and changed.conf.values()["ssid"] == "other"
    assert first.conf.values()["ssid"] == "raspi-webgui"

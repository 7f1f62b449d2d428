"""The wireguard plugin through the real app, on a fixture root laid out like RaspAP.

``wg show all dump`` comes from a recording wrapper (tests/wg_fixture.py) so
handshakes and counters are exact; keys come from the real ``wg``. The tests
against real interfaces are in test_wireguard_live.py.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import segno
from raspapi.plugins.wireguard import config as wgconfig
from starlette.testclient import TestClient

from raspapi.security.auth import Principal
from tests.conftest import AUTH, MakeClient
from tests.wg_fixture import FakeWg, Recorder, fixture_key, install_fake_systemctl, install_fake_wg


@pytest.fixture
def client(loop_client: TestClient) -> TestClient:
    """The app once on each event loop: the service runs its programs on uvloop."""
    return loop_client


API = "/api/v1/wireguard"
STRAY = "iXBzZZfHC8QvdGqHUwFUVoVgs7ubsT3UOCU/vXoPiHY="
WG9_PUB = "1CrP9bCTxP5Lm+J9y3sZ7eiTBgKAq4ZGvu4J5eC3ZXU="


@pytest.fixture
def fake_wg(root: Path, tmp_path: Path) -> FakeWg:
    return install_fake_wg(root, tmp_path / "fake")


@pytest.fixture
def systemctl(root: Path, tmp_path: Path) -> Recorder:
    return install_fake_systemctl(root, tmp_path / "fake")


class Keys:
    def __init__(self, root: Path) -> None:
        self.server_private = fixture_key(root, "wg-server-private.key")
        self.server_public = fixture_key(root, "wg-server-public.key")
        self.phone_private = fixture_key(root, "wg-peer-private.key")
        self.phone_public = fixture_key(root, "wg-peer-public.key")
        text = (root / "etc/wireguard/wg0.conf").read_text()
        self.psk = re.search(r"PresharedKey = (\S+)", text).group(1)  # type: ignore[union-attr]
        self.laptop_public = wgconfig.parse(text).peers[1].public_key or ""
        self.secrets = [self.server_private, self.phone_private, self.psk]


@pytest.fixture
def keys(root: Path) -> Keys:
    return Keys(root)


def live_dump(keys: Keys, *, phone_age: int = 30) -> str:
    now = int(time.time())
    return "".join(
        line + "\n"
        for line in (
            f"wg0\t{keys.server_private}\t{keys.server_public}\t51820\toff",
            f"wg0\t{keys.phone_public}\t{keys.psk}\t198.51.100.20:53211\t10.8.2.2/32\t"
            f"{now - phone_age}\t123456\t654321\toff",
            f"wg0\t{STRAY}\t(none)\t(none)\t10.8.2.77/32\t0\t0\t0\t25",
            f"wg9\t{keys.phone_private}\t{WG9_PUB}\t51999\t0x2a",
        )
    )


def assert_no_secret(text: str, keys: Keys) -> None:
    for secret in keys.secrets:
        assert secret not in text


def wg_answer(client: TestClient) -> dict[str, Any]:
    response = client.get(API, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- GET /api/v1/wireguard ----------------------------------------------------------


def test_live_state_merged_with_config(client: TestClient, fake_wg: FakeWg, keys: Keys) -> None:
    fake_wg.set_dump(live_dump(keys))
    response = client.get(API, headers=AUTH)
    assert response.status_code == 200
    assert_no_secret(response.text, keys)
    body = response.json()
    assert body["live_error"] is None and body["config_error"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["updated_at"])
    # client.conf is the phone's end of the tunnel, not an interface here.
    assert [i["name"] for i in body["interfaces"]] == ["wg0", "wg9"]
    wg0, wg9 = body["interfaces"]
    assert {k: v for k, v in wg0.items() if k != "peers"} == {
        "name": "wg0",
        "up": True,
        "public_key": keys.server_public,
        "listen_port": 51820,
        "fwmark": None,
        "address": ["10.8.2.1/24"],
        "config_file": "wg0.conf",
        "peer_count": 3,
        "connected_peer_count": 1,
        "rx_bytes": 123456,
        "tx_bytes": 654321,
    }
    phone, laptop, stray = wg0["peers"]
    handshake_at = phone.pop("latest_handshake_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", handshake_at)
    assert 29 <= phone.pop("handshake_age_seconds") <= 40
    assert phone == {
        "public_key": keys.phone_public,
        "name": "phone",
        "endpoint": "198.51.100.20:53211",
        "allowed_ips": ["10.8.2.2/32"],
        "rx_bytes": 123456,
        "tx_bytes": 654321,
        "persistent_keepalive_seconds": None,
        "connected": True,
        "has_preshared_key": True,
        "live": True,
        "in_config": True,
    }
    # In the config, not on the running interface.
    assert laptop == {
        "public_key": keys.laptop_public,
        "name": "Laptop (Anna's)",
        "endpoint": "203.0.113.7:41000",
        "allowed_ips": ["10.8.2.3/32", "192.168.50.0/24"],
        "latest_handshake_at": None,
        "handshake_age_seconds": None,
        "rx_bytes": 0,
        "tx_bytes": 0,
        "persistent_keepalive_seconds": 25,
        "connected": False,
        "has_preshared_key": False,
        "live": False,
        "in_config": True,
    }
    # On the running interface, not in the config (added with `wg set` by hand).
    assert stray["name"] is None and stray["live"] and not stray["in_config"]
    assert stray["persistent_keepalive_seconds"] == 25 and stray["latest_handshake_at"] is None
    assert wg9["config_file"] is None and wg9["address"] == [] and wg9["fwmark"] == 42
    assert wg9["public_key"] == WG9_PUB and wg9["peers"] == []

    one = client.get(f"{API}/wg0", headers=AUTH)
    assert one.status_code == 200
    assert one.json()["peers"][0]["public_key"] == keys.phone_public


def test_old_handshake_is_not_connected(client: TestClient, fake_wg: FakeWg, keys: Keys) -> None:
    fake_wg.set_dump(live_dump(keys, phone_age=181))
    phone = client.get(f"{API}/wg0", headers=AUTH).json()["peers"][0]
    assert phone["handshake_age_seconds"] >= 181 and phone["connected"] is False


def test_down_interface_comes_from_its_config(
    client: TestClient, fake_wg: FakeWg, keys: Keys
) -> None:
    body = wg_answer(client)
    assert_no_secret(str(body), keys)
    (wg0,) = body["interfaces"]
    assert wg0["up"] is False
    # Derived from the config's PrivateKey with `wg pubkey` (the key on stdin).
    assert wg0["public_key"] == keys.server_public
    assert [p["name"] for p in wg0["peers"]] == ["phone", "Laptop (Anna's)"]
    assert not any(p["live"] for p in wg0["peers"])
    for call in fake_wg.calls():
        assert_no_secret(call, keys)


def test_wg_show_failing(client: TestClient, fake_wg: FakeWg) -> None:
    fake_wg.set_dump("!Unable to access interface: Operation not permitted\n")
    body = wg_answer(client)
    assert body["live_error"] == (
        "wg show all dump: exited with status 1: Unable to access interface: "
        "Operation not permitted"
    )
    (wg0,) = body["interfaces"]
    assert wg0["up"] is None and wg0["peer_count"] == 2
    entry = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
    assert entry["state"] == "ok" and "Operation not permitted" in entry["details"]["live_error"]


def test_interface_link_down_in_sys(
    client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path
) -> None:
    flags = root / "sys/class/net/wg0/flags"
    flags.parent.mkdir(parents=True, exist_ok=True)
    flags.write_text("0x1090\n")
    fake_wg.set_dump(live_dump(keys))
    assert client.get(f"{API}/wg0", headers=AUTH).json()["up"] is False


def test_one_wg_show_per_refresh(make_client: MakeClient, fake_wg: FakeWg, keys: Keys) -> None:
    fake_wg.set_dump(live_dump(keys))
    client = make_client(cache_ttl=60)
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: client.get(API, headers=AUTH).status_code, range(64)))
    assert codes == [200] * 64
    assert fake_wg.calls().count("show all dump") == 1


def test_a_poll_never_waits_for_a_refresh(
    make_client: MakeClient, fake_wg: FakeWg, keys: Keys
) -> None:
    fake_wg.set_dump(live_dump(keys))
    client = make_client(cache_ttl=0.2)
    assert len(wg_answer(client)["interfaces"]) == 2
    fake_wg.set_dump("")
    fake_wg.slow(1.5)
    time.sleep(0.3)
    started = time.monotonic()
    # Past the cache period: answered at once from the last refresh...
    assert len(wg_answer(client)["interfaces"]) == 2
    assert time.monotonic() - started < 1.0
    # ... while the next one runs in the background, once.
    deadline = time.monotonic() + 10
    while len(wg_answer(client)["interfaces"]) == 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert wg_answer(client)["interfaces"][0]["up"] is False
    assert 2 <= fake_wg.calls().count("show all dump") <= 4


def test_unknown_and_bad_interface_names(client: TestClient, fake_wg: FakeWg) -> None:
    response = client.get(f"{API}/wg7", headers=AUTH)
    assert response.status_code == 404 and response.json()["code"] == "unknown_interface"
    response = client.get(f"{API}/{'x' * 16}", headers=AUTH)
    assert response.status_code == 422 and response.json()["field"] == "interface"


def test_status_details_for_ready(client: TestClient, fake_wg: FakeWg, keys: Keys) -> None:
    fake_wg.set_dump(live_dump(keys))
    entry = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
    assert entry["state"] == "ok"
    assert entry["details"]["interfaces"] == {
        "wg0": {"up": True, "peers": 3, "connected_peers": 1},
        "wg9": {"up": True, "peers": 0, "connected_peers": 0},
    }


def test_unavailable_without_wg(client: TestClient, root: Path) -> None:
    runner = client.app.state.runtime.manager.runner  # type: ignore[attr-defined]
    runner.search_path = str(root / "usr/bin")  # a machine without wireguard-tools
    entry = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
    assert entry["state"] == "unavailable"
    assert "wg is not installed" in entry["reason"]
    response = client.get(API, headers=AUTH)
    assert response.status_code == 503 and "wg is not installed" in response.json()["detail"]
    # RaspAP's route lists files and needs no wg.
    assert client.get("/wireguard", headers=AUTH).json()["client_config_active"] == "wg0.conf"


def test_unavailable_without_any_interface(client: TestClient, fake_wg: FakeWg, root: Path) -> None:
    shutil.rmtree(root / "etc/wireguard")
    entry = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
    assert entry["state"] == "unavailable"
    assert entry["reason"].startswith("no WireGuard interface")
    assert client.get(API, headers=AUTH).status_code == 503


# -- GET /wireguard (RaspAP) ------------------------------------------------------------

PROFILES = [
    {"config": "client.conf"},
    {"config": "wg-peer-private.key"},
    {"config": "wg-peer-public.key"},
    {"config": "wg-server-private.key"},
    {"config": "wg-server-public.key"},
]


def legacy(client: TestClient) -> dict[str, Any]:
    response = client.get("/wireguard", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert list(body) == ["client_configs", "client_config_names", "client_config_active"]
    return body


def test_legacy_with_regular_wg0(client: TestClient, keys: Keys) -> None:
    response = client.get("/wireguard", headers=AUTH)
    assert_no_secret(response.text, keys)
    assert legacy(client) == {
        "client_configs": "6",
        "client_config_names": PROFILES,
        "client_config_active": "wg0.conf",
    }


@pytest.mark.parametrize(
    ("target", "active"),
    [
        ("/etc/wireguard/client.conf", "client.conf"),
        ("client.conf", "client.conf"),
        ("/etc/wireguard/missing.conf", "missing.conf"),
    ],
)
def test_legacy_with_symlinked_wg0(
    make_client: MakeClient, root: Path, fake_wg: FakeWg, keys: Keys, target: str, active: str
) -> None:
    wg0 = root / "etc/wireguard/wg0.conf"
    wg0.unlink()
    wg0.symlink_to(target)
    client = make_client()
    assert legacy(client) == {
        # find -type f: the link is not a file
        "client_configs": "5",
        "client_config_names": PROFILES,
        "client_config_active": active,
    }
    if active == "client.conf":
        # The active profile is read through the link, inside the root, and is
        # listed once, under the link's name.
        (iface,) = wg_answer(client)["interfaces"]
        assert iface["name"] == "wg0" and iface["address"] == ["10.8.2.2/24"]
        assert iface["peers"][0]["endpoint"] == "vpn.example.net:51820"


def test_legacy_without_wg0_or_folder(client: TestClient, root: Path) -> None:
    (root / "etc/wireguard/wg0.conf").unlink()
    client.app.state.runtime.manager.plugins["wireguard"].ctx.cache.invalidate()  # type: ignore[attr-defined]
    assert legacy(client)["client_config_active"] == ""
    shutil.rmtree(root / "etc/wireguard")
    client.app.state.runtime.manager.plugins["wireguard"].ctx.cache.invalidate()  # type: ignore[attr-defined]
    assert legacy(client) == {
        "client_configs": "0",
        "client_config_names": [],
        "client_config_active": "",
    }


def test_legacy_with_unreadable_folder(
    make_client: MakeClient, root: Path, fake_wg: FakeWg
) -> None:
    folder = root / "etc/wireguard"
    shutil.rmtree(folder)
    folder.symlink_to("wireguard")  # ELOOP: as unreadable as it gets, even for root
    client = make_client()
    assert legacy(client) == {
        "client_configs": "0",
        "client_config_names": [],
        "client_config_active": "",
    }
    entry = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
    assert entry["state"] == "unavailable"
    assert entry["reason"].startswith("cannot read /etc/wireguard: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder of mode 000")
def test_legacy_with_folder_of_mode_000(make_client: MakeClient, root: Path) -> None:
    folder = root / "etc/wireguard"
    folder.chmod(0)
    try:
        body = legacy(make_client())
    finally:
        folder.chmod(0o700)
    assert body == {"client_configs": "0", "client_config_names": [], "client_config_active": ""}


# -- POST /api/v1/wireguard/{interface}/peers ---------------------------------------


def add(client: TestClient, body: dict[str, Any], interface: str = "wg0", **params: str) -> Any:
    return client.post(f"{API}/{interface}/peers", json=body, headers=AUTH, params=params)


def test_add_peer_to_a_down_interface(
    client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path
) -> None:
    path = root / "etc/wireguard/wg0.conf"
    before = path.read_bytes()
    response = add(client, {"name": "Phone of Bob", "dns": ["10.8.2.1"]})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["interface"] == "wg0" and body["name"] == "Phone of Bob"
    assert body["address"] == ["10.8.2.4/32"]  # .1 server, .2 phone, .3 laptop
    assert body["allowed_ips"] == ["10.8.2.4/32"]
    assert body["endpoint"] == "vpn.example.net:51820"  # the config's "# Endpoint =" comment
    assert body["applied"] is False
    assert response.headers["x-peer-public-key"] == body["public_key"]

    text = body["client_config"]
    private = re.search(r"^PrivateKey = (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
    psk = re.search(r"^PresharedKey = (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
    derived = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True)
    assert derived.stdout.strip() == body["public_key"]
    assert text == (
        "[Interface]\n# Name = Phone of Bob\n"
        f"PrivateKey = {private}\nAddress = 10.8.2.4/32\nDNS = 10.8.2.1\n\n"
        f"[Peer]\nPublicKey = {keys.server_public}\nPresharedKey = {psk}\n"
        "Endpoint = vpn.example.net:51820\nAllowedIPs = 0.0.0.0/0, ::/0\n"
        "PersistentKeepalive = 25\n"
    )
    assert body["qr_svg"].startswith("<svg")  # the exact code: test_qr_code_encodes_...

    # The config file: every old byte kept, the new section appended, mode 0600.
    after = path.read_bytes()
    assert after.startswith(before)
    assert after[len(before) :].decode() == (
        f"\n[Peer]\n# Name = Phone of Bob\nPublicKey = {body['public_key']}\n"
        f"PresharedKey = {psk}\nAllowedIPs = 10.8.2.4/32\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Keys never pass on a command line.
    for call in fake_wg.calls():
        assert private not in call and psk not in call

    # The new peer is listed, by name, without its secrets.
    listing = client.get(f"{API}/wg0", headers=AUTH)
    assert private not in listing.text and psk not in listing.text
    new = listing.json()["peers"][-1]
    assert (new["name"], new["in_config"], new["live"]) == ("Phone of Bob", True, False)

    # Removing it gives back the original file, byte for byte.
    response = client.delete(f"{API}/wg0/peers/{quote(body['public_key'], safe='')}", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "interface": "wg0",
        "public_key": body["public_key"],
        "removed_from_config": True,
        "removed_from_interface": False,
    }
    assert path.read_bytes() == before


def test_qr_code_encodes_the_client_config(client: TestClient, fake_wg: FakeWg) -> None:
    body = add(client, {"name": "tablet", "endpoint": "192.0.2.1:4500"}).json()
    assert "Endpoint = 192.0.2.1:4500\n" in body["client_config"]
    import io

    buffer = io.BytesIO()
    segno.make(body["client_config"], error="m").save(
        buffer, kind="svg", scale=4, border=4, xmldecl=False
    )
    assert body["qr_svg"] == buffer.getvalue().decode()


@pytest.mark.parametrize(
    ("fmt", "media", "magic"),
    [
        ("svg", "image/svg+xml", b"<svg"),
        ("png", "image/png", b"\x89PNG"),
        ("conf", "text/plain", b"[Interface]"),
    ],
)
def test_add_peer_formats(
    client: TestClient, fake_wg: FakeWg, fmt: str, media: str, magic: bytes
) -> None:
    response = add(client, {"name": f"as {fmt}"}, format=fmt)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith(media)
    assert response.content.startswith(magic)
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", response.headers["x-peer-public-key"])


def test_endpoint_from_the_host_header(client: TestClient, fake_wg: FakeWg, root: Path) -> None:
    path = root / "etc/wireguard/wg0.conf"
    path.write_text(path.read_text().replace("# Endpoint = vpn.example.net\n", ""))
    response = client.post(
        f"{API}/wg0/peers", json={"name": "x"}, headers={**AUTH, "Host": "pi.local:8081"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["endpoint"] == "pi.local:51820"


def test_add_peer_applies_to_the_running_interface(
    client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path
) -> None:
    fake_wg.set_dump(live_dump(keys))
    response = add(client, {"name": "live one", "allowed_ips": ["192.168.60.0/24"]})
    assert response.status_code == 201, response.text
    body = response.json()
    # 10.8.2.77 is taken by a peer that is only on the running interface.
    assert body["address"] == ["10.8.2.4/32"] and body["applied"] is True
    assert body["allowed_ips"] == ["10.8.2.4/32", "192.168.60.0/24"]
    psk = re.search(r"^PresharedKey = (\S+)$", body["client_config"], re.M).group(1)  # type: ignore[union-attr]
    sets = [c for c in fake_wg.calls() if c.startswith("set ")]
    assert sets == [
        f"set wg0 peer {body['public_key']} preshared-key /dev/stdin "
        "allowed-ips 10.8.2.4/32,192.168.60.0/24"
    ]
    assert fake_wg.stdin_log.read_text() == psk + "\n"


def test_failed_apply_leaves_the_config_unchanged(
    client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path
) -> None:
    fake_wg.set_dump(live_dump(keys))
    fake_wg.fail()
    before = (root / "etc/wireguard/wg0.conf").read_bytes()
    response = add(client, {"name": "doomed"})
    assert response.status_code == 502
    assert response.json()["code"] == "apply_failed"
    assert "Operation not permitted" in response.json()["detail"]
    assert (root / "etc/wireguard/wg0.conf").read_bytes() == before


def test_concurrent_additions_get_distinct_addresses(
    client: TestClient, fake_wg: FakeWg, root: Path
) -> None:
    barrier = threading.Barrier(12)

    def one(i: int) -> Any:
        barrier.wait()
        return add(client, {"name": f"device {i}"})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(one, range(12)))
    assert [r.status_code for r in responses] == [201] * 12
    addresses = sorted(r.json()["address"][0] for r in responses)
    assert len(set(addresses)) == 12
    assert set(addresses) == {f"10.8.2.{n}/32" for n in range(4, 16)}
    cfg = wgconfig.parse((root / "etc/wireguard/wg0.conf").read_text())
    assert len(cfg.peers) == 14
    assert sorted(p.allowed_ips[0] for p in cfg.peers[2:]) == addresses


def test_symlinked_config_is_written_through_the_link(
    make_client: MakeClient, root: Path, fake_wg: FakeWg
) -> None:
    folder = root / "etc/wireguard"
    (folder / "server.conf").write_bytes((folder / "wg0.conf").read_bytes())
    (folder / "wg0.conf").unlink()
    (folder / "wg0.conf").symlink_to("/etc/wireguard/server.conf")
    client = make_client()
    assert add(client, {"name": "via link"}).status_code == 201
    assert os.readlink(folder / "wg0.conf") == "/etc/wireguard/server.conf"
    assert "# Name = via link" in (folder / "server.conf").read_text()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "name", "required"),
        ({"name": "two\nlines"}, "name", "control characters"),
        ({"name": "tab\there"}, "name", "control characters"),
        ({"name": "x" * 65}, "name", "at most 64"),
        ({"name": "   "}, "name", "empty"),
        ({"name": 7}, "name", "string"),
        ({"name": "a", "allowed_ips": ["10.9.0.1/24"]}, "allowed_ips", "host bits"),
        ({"name": "a", "allowed_ips": ["banana"]}, "allowed_ips", "not an IP network"),
        ({"name": "a", "allowed_ips": "10.8.2.0/28"}, "allowed_ips", "overlaps"),
        ({"name": "a", "allowed_ips": [1]}, "allowed_ips", "list of strings"),
        ({"name": "a", "client_allowed_ips": []}, "client_allowed_ips", "at least one"),
        ({"name": "a", "dns": ["dns.example"]}, "dns", "not an IP address"),
        ({"name": "a", "endpoint": "evil\nPostUp = rm -rf /"}, "endpoint", "host name"),
        ({"name": "a", "endpoint": "host:70000"}, "endpoint", "port"),
        ({"name": "a", "persistent_keepalive_seconds": -1}, "persistent_keepalive_seconds", "0"),
        ({"name": "a", "PrivateKey": "x"}, "PrivateKey", "unknown field"),
    ],
)
def test_bad_peer_input(
    client: TestClient, fake_wg: FakeWg, root: Path, body: dict[str, Any], field: str, words: str
) -> None:
    before = (root / "etc/wireguard/wg0.conf").read_bytes()
    response = add(client, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert (root / "etc/wireguard/wg0.conf").read_bytes() == before


def test_bad_peer_requests(client: TestClient, fake_wg: FakeWg) -> None:
    response = client.post(f"{API}/wg0/peers", content=b"[1]", headers=AUTH)
    assert response.status_code == 400
    response = client.post(f"{API}/wg0/peers", content=b"{", headers=AUTH)
    assert response.status_code == 400
    response = add(client, {"name": "a"}, interface="wg5")
    assert response.status_code == 404 and response.json()["code"] == "unknown_interface"
    response = add(client, {"name": "a"}, interface="bad:name")
    assert response.status_code == 422 and response.json()["field"] == "interface"


def test_live_interface_without_config_cannot_take_peers(
    client: TestClient, fake_wg: FakeWg, keys: Keys
) -> None:
    fake_wg.set_dump(live_dump(keys))
    response = add(client, {"name": "a"}, interface="wg9")
    assert response.status_code == 409 and response.json()["code"] == "no_config"


def test_config_without_room_for_peers(client: TestClient, fake_wg: FakeWg, root: Path) -> None:
    path = root / "etc/wireguard/wg0.conf"
    path.write_text(path.read_text().replace("10.8.2.1/24", "10.8.2.1/30"))
    response = add(client, {"name": "a"})
    assert response.status_code == 409 and response.json()["code"] == "no_address"
    assert "no free address left in 10.8.2.0/30" in response.json()["detail"]
    path.write_text(path.read_text().replace("Address = 10.8.2.1/30\n", ""))
    response = add(client, {"name": "a"})
    assert response.status_code == 409 and "no usable Address" in response.json()["detail"]


def test_read_key_cannot_add_peers(client: TestClient, fake_wg: FakeWg) -> None:
    auth = client.app.state.runtime.auth  # type: ignore[attr-defined]
    dashboard = Principal("dashboard", frozenset({"read"}))
    auth.lookups.append(lambda key: dashboard if key == "dashboard-key" else None)
    headers = {"access_token": "dashboard-key"}
    assert client.get(API, headers=headers).status_code == 200
    response = client.post(f"{API}/wg0/peers", json={"name": "a"}, headers=headers)
    assert response.status_code == 403 and response.json()["code"] == "missing_scope"
    assert client.post(f"{API}/wg0/up", headers=headers).status_code == 403


# -- DELETE /api/v1/wireguard/{interface}/peers/{public_key} --------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: quote(k, safe=""),  # standard base64, '/' as %2F, '+' as %2B
        lambda k: k.replace("+", "-").replace("/", "_"),  # URL-safe base64
        lambda k: k.replace("+", "-").replace("/", "_").rstrip("="),  # ... without padding
        lambda k: k,  # as is: '/' splits the path, the route takes it whole
    ],
)
def test_delete_peer_key_encodings(
    client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path, encode: Any
) -> None:
    path = root / "etc/wireguard/wg0.conf"
    before = path.read_text()
    assert "/" in keys.laptop_public and "+" in keys.laptop_public
    response = client.delete(f"{API}/wg0/peers/{encode(keys.laptop_public)}", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["public_key"] == keys.laptop_public
    start = before.index("[Peer]\n#name: Laptop")
    assert path.read_text() == before[: start - 1]
    response = client.delete(f"{API}/wg0/peers/{encode(keys.laptop_public)}", headers=AUTH)
    assert response.status_code == 404 and response.json()["code"] == "unknown_peer"


def test_delete_live_peer(client: TestClient, fake_wg: FakeWg, keys: Keys, root: Path) -> None:
    fake_wg.set_dump(live_dump(keys))
    response = client.delete(f"{API}/wg0/peers/{quote(keys.phone_public)}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["removed_from_interface"] is True
    assert f"set wg0 peer {keys.phone_public} remove" in fake_wg.calls()
    text = (root / "etc/wireguard/wg0.conf").read_text()
    assert keys.phone_public not in text and "# Name = phone" not in text
    assert "#name: Laptop (Anna's)" in text
    # A peer only on the running interface is removed from it alone.
    response = client.delete(f"{API}/wg0/peers/{quote(STRAY, safe='')}", headers=AUTH)
    assert response.json()["removed_from_config"] is False
    assert response.json()["removed_from_interface"] is True


@pytest.mark.parametrize("key", ["short", "A" * 44, "%00" * 44, "a/b/c"])
def test_delete_malformed_key(client: TestClient, fake_wg: FakeWg, key: str) -> None:
    response = client.delete(f"{API}/wg0/peers/{key}", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == "public_key"


def test_delete_on_unknown_interface(client: TestClient, fake_wg: FakeWg) -> None:
    response = client.delete(f"{API}/wg3/peers/{STRAY.replace('/', '_')}", headers=AUTH)
    assert response.status_code == 404 and response.json()["code"] == "unknown_interface"


# -- up / down -----------------------------------------------------------------------


def test_up_and_down_through_wg_quick(
    client: TestClient, fake_wg: FakeWg, systemctl: Recorder
) -> None:
    response = client.post(f"{API}/wg0/up", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "interface": "wg0",
        "unit": "wg-quick@wg0.service",
        "action": "up",
        "active_state": "active",
    }
    response = client.post(f"{API}/wg0/down", headers=AUTH)
    assert response.status_code == 200 and response.json()["action"] == "down"
    acts = [c for c in systemctl.calls() if not c.startswith("show")]
    assert acts == [
        "start --no-ask-password -- wg-quick@wg0.service",
        "stop --no-ask-password -- wg-quick@wg0.service",
    ]


def test_up_errors(client: TestClient, fake_wg: FakeWg, systemctl: Recorder) -> None:
    response = client.post(f"{API}/wg4/up", headers=AUTH)
    assert response.status_code == 404 and response.json()["code"] == "unknown_interface"
    systemctl.fail()
    response = client.post(f"{API}/wg0/up", headers=AUTH)
    assert response.status_code == 502 and response.json()["code"] == "systemctl_failed"
    assert "wg-quick@wg0.service" in response.json()["detail"]
    assert client.get(f"{API}/wg0/up", headers=AUTH).status_code == 405


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths[API]) == {"get"}
    assert "post" in paths[f"{API}/{{interface}}/peers"]
    assert "delete" in paths[f"{API}/{{interface}}/peers/{{public_key}}"]
    assert "get" in paths["/wireguard"]

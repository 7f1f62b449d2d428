"""The wireguard plugin against real WireGuard: wireguard-go interfaces talking over 127.0.0.1.

Skipped where wireguard-go, wg, ip, /dev/net/tun or root are missing, except in
CI (CI=true), where that is a failure. Every interface is removed at the end,
whatever happens.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient
from tests.wg_fixture import Tunnel, link, run, wireguard_go

pytestmark = pytest.mark.integration
API = "/api/v1/wireguard"


def wait_for(
    client: TestClient, interface: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"{API}/{interface}", headers=AUTH)
        assert response.status_code == 200, response.text
        last = response.json()
        if check(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"no {what} within 30 s: {last}")


def peer(answer: dict[str, Any], public_key: str) -> dict[str, Any] | None:
    return next((p for p in answer["peers"] if p["public_key"] == public_key), None)


def talking(public_key: str) -> Callable[[dict[str, Any]], bool]:
    def check(answer: dict[str, Any]) -> bool:
        found = peer(answer, public_key)
        return bool(found and found["connected"] and found["rx_bytes"] and found["tx_bytes"])

    return check


def live_peers(interface: str) -> dict[str, list[str]]:
    """``wg show <interface> dump`` peer lines by public key."""
    lines = run("wg", "show", interface, "dump").splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t") for line in lines}


def test_handshake_traffic_and_a_phone_added_and_removed(
    make_client: MakeClient, root: Path, tmp_path: Path, loop_name: str
) -> None:
    # On uvloop (what the service runs) too: `wg set ... preshared-key /dev/stdin`
    # failed there with "fopen: No such device or address" (issue #12).
    third = os.getpid() % 250
    subnet = f"10.213.{third}"
    with wireguard_go(tmp_path / "wg", root) as tunnels:
        server = tunnels.start(f"{subnet}.1/24")
        other: Tunnel = tunnels.start(f"10.214.{third}.2/24")
        link(server, other, f"10.214.{third}.2/32")
        link(other, server, f"{subnet}.0/24")
        config = root / "etc/wireguard" / f"{server.name}.conf"
        config.write_text(
            "# written by the test\n[Interface]\n"
            f"Address = {subnet}.1/24\nListenPort = {server.port}\n"
            f"PrivateKey = {server.private_key}\n\n"
            f"[Peer]\n# Name = the other end\nPublicKey = {other.public_key}\n"
            f"AllowedIPs = 10.214.{third}.2/32\n"
        )
        before = config.read_bytes()
        client = make_client(loop=loop_name)

        # 1. The handshake and the traffic of two real interfaces.
        answer = wait_for(client, server.name, talking(other.public_key), "handshake")
        assert answer["up"] is True
        assert answer["public_key"] == server.public_key
        assert answer["listen_port"] == server.port
        assert answer["address"] == [f"{subnet}.1/24"]
        found = peer(answer, other.public_key)
        assert found is not None
        assert found["name"] == "the other end"
        assert found["endpoint"] == f"127.0.0.1:{other.port}"
        assert found["allowed_ips"] == [f"10.214.{third}.2/32"]
        assert found["persistent_keepalive_seconds"] == 1
        assert found["live"] and found["in_config"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", found["latest_handshake_at"])
        assert 0 <= found["handshake_age_seconds"] <= 180
        listing = client.get(API, headers=AUTH)
        assert server.private_key not in listing.text
        assert other.private_key not in listing.text
        ready = client.get("/ready", headers=AUTH).json()["plugins"]["wireguard"]
        assert ready["state"] == "ok"
        assert ready["details"]["interfaces"][server.name]["connected_peers"] == 1

        # 2. A phone added through the API is on the running interface at once.
        response = client.post(
            f"{API}/{server.name}/peers",
            json={
                "name": "phone",
                "endpoint": "127.0.0.1",
                "client_allowed_ips": [f"{subnet}.0/24"],
            },
            headers=AUTH,
        )
        assert response.status_code == 201, response.text
        added = response.json()
        assert added["applied"] is True
        assert added["address"] == [f"{subnet}.2/32"]
        text = added["client_config"]
        assert f"Endpoint = 127.0.0.1:{server.port}\n" in text
        assert f"PublicKey = {server.public_key}\n" in text
        private = re.search(r"^PrivateKey = (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
        psk = re.search(r"^PresharedKey = (\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
        live = live_peers(server.name)
        assert set(live) == {other.public_key, added["public_key"]}
        assert live[added["public_key"]][1] == psk
        assert live[added["public_key"]][3] == f"{subnet}.2/32"
        assert config.read_bytes().startswith(before)

        # 3. The phone connects with the config it was handed.
        phone = tunnels.start(f"{subnet}.2/32", private_key=private)
        assert phone.public_key == added["public_key"]
        psk_file = tmp_path / "phone.psk"
        psk_file.write_text(psk + "\n")
        psk_file.chmod(0o600)
        run(
            "wg", "set", phone.name, "peer", server.public_key,
            "preshared-key", str(psk_file), "endpoint", f"127.0.0.1:{server.port}",
            "allowed-ips", f"{subnet}.0/24", "persistent-keepalive", "1",
        )  # fmt: skip
        answer = wait_for(client, server.name, talking(phone.public_key), "phone handshake")
        found = peer(answer, phone.public_key)
        assert found is not None and found["name"] == "phone" and found["has_preshared_key"]
        assert private not in client.get(API, headers=AUTH).text

        # 4. Removed again: gone from the interface and the file; the other peer stays.
        response = client.delete(
            f"{API}/{server.name}/peers/{quote(phone.public_key, safe='')}", headers=AUTH
        )
        assert response.status_code == 200, response.text
        assert response.json()["removed_from_interface"] is True
        assert response.json()["removed_from_config"] is True
        assert set(live_peers(server.name)) == {other.public_key}
        assert config.read_bytes() == before
        answer = client.get(f"{API}/{server.name}", headers=AUTH).json()
        assert [p["public_key"] for p in answer["peers"]] == [other.public_key]

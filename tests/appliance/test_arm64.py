"""The installed service on arm64 (64-bit Raspberry Pi OS), emulated with
qemu-user-static: install, /system, /ready and one WireGuard peer."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.appliance.conftest import WG_SUBNET, install
from tests.appliance.machine import Machine

pytestmark = [pytest.mark.appliance, pytest.mark.integration]


def test_arm64_install_system_ready_and_a_wireguard_peer(arm64: tuple[Machine, Path]) -> None:
    m, wheel = arm64
    assert m.run(["dpkg", "--print-architecture"]).stdout.strip() == "arm64"
    install(m, wheel, "--health-timeout", "300")
    state = m.run(["systemctl", "show", "restapi.service", "-p", "ActiveState"]).stdout
    assert state.strip() == "ActiveState=active"
    system = m.api("GET", "/system")
    assert system.status == 200, system.text
    assert system.json()["hostapdStatus"] == 1
    assert system.json()["kernelVersion"] == m.run(["uname", "-r"]).stdout.strip()
    ready = m.api("GET", "/ready", key=None)
    assert ready.status == 200, ready.text
    assert ready.json()["plugins"]["wireguard"]["state"] == "ok"
    added = m.api("POST", "/api/v1/wireguard/wg0/peers", {"name": "phone", "endpoint": "10.0.0.1"})
    assert added.status == 201, added.text
    public = added.json()["public_key"]
    dump = m.run(["wg", "show", "wg0", "dump"]).stdout.splitlines()[1:]
    assert [line.split("\t")[0] for line in dump] == [public]
    assert dump[0].split("\t")[3] == f"{WG_SUBNET}.2/32"
    removed = m.api("DELETE", f"/api/v1/wireguard/wg0/peers/{quote(public, safe='')}")
    assert removed.status == 200, removed.text
    assert m.run(["wg", "show", "wg0", "peers"]).stdout.strip() == ""

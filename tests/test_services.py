"""The services plugin: unit states and start/stop/restart for an allow-list.

usr/bin/systemctl of the fixture is a stand-in that records each call in
fake/systemctl.log and keeps unit states in fake/systemd/units/ (hostapd,
dnsmasq, restapi and wg-quick@wg0 active; openvpn-client@client inactive).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from raspapi.security.auth import Principal
from tests.conftest import AUTH, MakeClient

READ_KEY = "readonlykey0123456789abcdefghijk"
SHOW = (
    "show --no-pager -p LoadState,ActiveState,SubState,UnitFileState,MainPID,"
    "ActiveEnterTimestamp,MemoryCurrent -- "
)
LISTED = [
    ("hostapd", "hostapd.service"),
    ("dnsmasq", "dnsmasq.service"),
    ("openvpn-client@client", "openvpn-client@client.service"),
    ("restapi", "restapi.service"),
    ("wg-quick@wg0", "wg-quick@wg0.service"),
]
OUTSIDE = [
    "sshd",
    "ssh.service",
    "systemd-journald",
    "hostapd.socket",
    "wg-quick@",
    "wg-quick@wg0;reboot",
    "wg-quick@waytoolonginterface",
    "wg-quick@..",
    "openvpn-client@evil",
    "openvpn-server@server",
    "-.mount",
    "--help",
    "..%2F..%2Fetc%2Fpasswd",
    "a%2Fb",
    "%00",
    "hostapd%00",
    "x" * 5000,
    "%20",
]


@pytest.fixture
def client(loop_client: TestClient) -> TestClient:
    """The app once on each event loop: systemctl runs on uvloop in the service."""
    return loop_client


def calls(root: Path) -> list[str]:
    log = root / "fake/systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def unit_state(root: Path, unit: str) -> str:
    return (root / "fake/systemd/units" / unit).read_text().strip()


def no_systemd(root: Path) -> None:
    """systemctl as it answers on a machine (or container) where systemd is not PID 1."""
    fake = root / "usr/bin/systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *is-system-running*) echo offline ;; esac\n'
        'echo "System has not been booted with systemd as init system (PID 1)." >&2\n'
        'echo "Failed to connect to bus: Host is down" >&2\n'
        "exit 1\n"
    )
    fake.chmod(0o755)


def test_lists_the_allowed_services(client: TestClient, root: Path):
    response = client.get("/api/v1/services", headers=AUTH)
    assert response.status_code == 200
    services = response.json()["services"]
    assert [(s["name"], s["unit"]) for s in services] == LISTED
    hostapd = services[0]
    assert hostapd == {
        "name": "hostapd",
        "unit": "hostapd.service",
        "active": True,
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "unit_file_state": "enabled",
        "main_pid": 812,
        "active_since": "Sun 2024-03-10 11:11:11 CET",
        "memory_bytes": 5390336,
        "error": None,
    }
    assert services[2]["active"] is False and services[2]["main_pid"] is None
    shows = [c for c in calls(root) if c.startswith("show")]
    assert sorted(shows) == sorted(SHOW + unit for _, unit in LISTED)


def test_list_is_cached_for_pollers(client: TestClient, root: Path):
    for _ in range(5):
        client.get("/api/v1/services", headers=AUTH)
    assert len([c for c in calls(root) if c.startswith("show")]) == len(LISTED)


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("hostapd", "hostapd.service"),
        ("hostapd.service", "hostapd.service"),
        ("openvpn-client@client", "openvpn-client@client.service"),
        ("wg-quick@wg0.service", "wg-quick@wg0.service"),
        ("restapi", "restapi.service"),
    ],
)
def test_one_service(client: TestClient, root: Path, name: str, unit: str):
    response = client.get(f"/api/v1/services/{name}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["unit"] == unit
    assert calls(root)[-1] == SHOW + unit


def test_other_wireguard_interfaces_by_name(client: TestClient, root: Path):
    body = client.get("/api/v1/services/wg-quick@wg1", headers=AUTH).json()
    assert body["unit"] == "wg-quick@wg1.service"
    assert (body["load_state"], body["active"]) == ("not-found", False)


@pytest.mark.parametrize("name", OUTSIDE, ids=range(len(OUTSIDE)))
def test_names_outside_the_list_are_404(client: TestClient, root: Path, name: str):
    for method, path in (
        ("GET", f"/api/v1/services/{name}"),
        ("POST", f"/api/v1/services/{name}/start"),
        ("POST", f"/api/v1/services/{name}/stop"),
        ("POST", f"/api/v1/services/{name}/restart"),
    ):
        response = client.request(method, path, headers=AUTH)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert len(response.text) < 500
    assert not [c for c in calls(root) if not c.startswith("is-system-running")]


def test_unknown_action_is_404(client: TestClient, root: Path):
    assert client.post("/api/v1/services/hostapd/reboot", headers=AUTH).status_code == 404
    assert client.post("/api/v1/services/hostapd/enable", headers=AUTH).status_code == 404
    assert client.get("/api/v1/services/hostapd/restart", headers=AUTH).status_code == 405
    assert not [c for c in calls(root) if c.split()[0] in ("reboot", "enable", "restart")]


@pytest.mark.parametrize(
    ("action", "unit", "before", "after"),
    [
        ("stop", "hostapd.service", "active", "inactive"),
        ("start", "openvpn-client@client.service", "inactive", "active"),
        ("restart", "dnsmasq.service", "active", "active"),
        ("restart", "wg-quick@wg0.service", "active", "active"),
    ],
)
def test_actions(client: TestClient, root: Path, action: str, unit: str, before: str, after: str):
    assert unit_state(root, unit) == before
    name = unit.removesuffix(".service")
    client.get(f"/api/v1/services/{name}", headers=AUTH)  # fill the cache
    response = client.post(f"/api/v1/services/{name}/{action}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["unit"], body["action"], body["result"]) == (
        name,
        unit,
        action,
        "done",
    )
    assert body["service"]["active_state"] == after  # read again, not from the cache
    assert unit_state(root, unit) == after
    assert f"{action} --no-ask-password -- {unit}" in calls(root)


def test_restarting_ourselves_answers_before_it_happens(client: TestClient, root: Path):
    response = client.post("/api/v1/services/restapi/restart", headers=AUTH)
    assert response.status_code == 202
    assert response.json() == {
        "name": "restapi",
        "unit": "restapi.service",
        "action": "restart",
        "result": "queued",
        "service": None,
    }
    assert "restart --no-block --no-ask-password -- restapi.service" in calls(root)


def test_restarting_ourselves_when_systemd_stops_systemctl_with_us(client: TestClient, root: Path):
    # Under systemd, systemctl runs in our cgroup: the restart it queues can
    # SIGTERM it before it exits. That was a 502 on the installed service.
    fake = root / "usr/bin/systemctl"
    fake.rename(root / "usr/bin/systemctl.real")
    fake.write_text(
        '#!/bin/sh\ncase "$*" in restart*) kill -TERM $$; sleep 5 ;; esac\n'
        f'exec {root / "usr/bin/systemctl.real"} "$@"\n'
    )
    fake.chmod(0o755)
    response = client.post("/api/v1/services/restapi/restart", headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["result"] == "queued"
    # Any other service whose systemctl is killed is still a failure.
    response = client.post("/api/v1/services/hostapd/restart", headers=AUTH)
    assert response.status_code == 502


def test_failed_action_says_why(client: TestClient, root: Path):
    (root / "fake/systemd/fail").mkdir()
    (root / "fake/systemd/fail/hostapd.service").write_text("")
    response = client.post("/api/v1/services/hostapd/restart", headers=AUTH)
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "action_failed"
    assert body["detail"].startswith("systemctl restart hostapd.service failed: ")
    assert "Job for hostapd.service failed" in body["detail"]
    after = client.get("/api/v1/services/hostapd", headers=AUTH).json()
    assert after["active_state"] == "failed"


def test_action_on_a_missing_unit(client: TestClient, root: Path):
    response = client.post("/api/v1/services/wg-quick@wg7/start", headers=AUTH)
    assert response.status_code == 502
    assert "Unit wg-quick@wg7.service not found" in response.json()["detail"]


def test_actions_need_the_control_scope(client: TestClient, root: Path):
    keys = {READ_KEY: Principal("dashboard", frozenset({"read"}))}
    client.app.state.runtime.auth.lookups.append(keys.get)  # type: ignore[attr-defined]
    reader = {"access_token": READ_KEY}
    assert client.get("/api/v1/services", headers=reader).status_code == 200
    for action in ("start", "stop", "restart"):
        response = client.post(f"/api/v1/services/hostapd/{action}", headers=reader)
        assert response.status_code == 403
        assert response.json()["code"] == "missing_scope"
    assert not [c for c in calls(root) if c.split()[0] in ("start", "stop", "restart")]
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    scopes = {r.path: r.scope for r in runtime.routes if r.plugin == "services"}
    assert scopes == {
        "/api/v1/services": "read",
        "/api/v1/services/{name}": "read",
        "/api/v1/services/{name}/start": "control",
        "/api/v1/services/{name}/stop": "control",
        "/api/v1/services/{name}/restart": "control",
    }


def test_status_ok_under_systemd(client: TestClient):
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["services"]
    assert plugin == {
        "source": "builtin",
        "state": "ok",
        "reason": None,
        "details": {"system_state": "running"},
    }


def test_degraded_systemd_still_serves(client: TestClient, root: Path):
    (root / "fake/systemd/system-state").write_text("degraded\n")
    assert client.get("/api/v1/services", headers=AUTH).status_code == 200


def test_unavailable_without_systemd(client: TestClient, root: Path):
    no_systemd(root)
    response = client.get("/api/v1/services", headers=AUTH)
    assert response.status_code == 503
    assert "offline" in response.json()["detail"]
    assert client.post("/api/v1/services/hostapd/restart", headers=AUTH).status_code == 503
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["services"]
    assert plugin["state"] == "unavailable"
    assert plugin["reason"] == (
        "systemd is not running as init (systemctl is-system-running: offline)"
    )


@pytest.mark.skipif(
    Path("/run/systemd/system").exists() or shutil.which("systemctl") is None,
    reason="needs the real systemctl on a machine where systemd is not PID 1",
)
def test_unavailable_with_the_real_systemctl_here(
    make_client: MakeClient, root: Path, loop_name: str
):
    (root / "usr/bin/systemctl").unlink()  # the runner now finds the real one
    client = make_client(loop=loop_name)
    response = client.get("/api/v1/services", headers=AUTH)
    assert response.status_code == 503
    assert "systemctl is-system-running: offline" in response.json()["detail"]


def test_unit_names_are_checked_before_systemctl_runs():
    from raspapi.plugins.services import unit_for

    assert unit_for("wg-quick@wg_0=+.-") == "wg-quick@wg_0=+.-.service"
    assert unit_for("wg-quick@" + "a" * 15) == f"wg-quick@{'a' * 15}.service"
    assert unit_for("wg-quick@" + "a" * 16) is None
    assert unit_for("wg-quick@a b") is None
    assert unit_for("wg-quick@a/b") is None
    assert unit_for("wg-quick@.") is None
    assert unit_for("hostapd.service.service") is None

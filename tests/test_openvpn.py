"""The openvpn plugin: RaspAP's /openvpn routes, /api/v1/openvpn and switching profiles.

The fixture's /etc/openvpn/client/ holds three profiles as RaspAP stores them
(us-east and nl-ams with a login file, de-fra without), client.conf and
login.conf linking to us-east's pair; usr/bin/systemctl is a stand-in that
records its calls in fake/systemctl.log and keeps unit states in fake/systemd/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.security.auth import Principal
from tests.conftest import AUTH


@pytest.fixture
def client(loop_client: TestClient) -> TestClient:
    """The app once on each event loop: the service runs its programs on uvloop."""
    return loop_client


FOLDER = "etc/openvpn/client"
UNIT = "openvpn-client@client.service"
READ_KEY = "readonlykey0123456789abcdefghijk"
CONTROL_KEY = "controlkey0123456789abcdefghijkl"
#: Names that reach the route (the client does not fold them away as dot segments).
ODD_NAMES = [
    "..%2F..%2Fetc%2Fpasswd",
    "..%2Fetc%2Fpasswd",
    "a%2Fb",
    "%00",
    "client.conf%00",
    "%5C..%5Cpasswd",
    "x" * 5000,
    ".client.conf",
    "us-east..conf",
    "%20",
]


def folder(root: Path) -> Path:
    return root / FOLDER


def calls(root: Path) -> list[str]:
    log = root / "fake/systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def with_scoped_keys(client: TestClient) -> TestClient:
    """Add a read-only and a control key (scoped keys arrive with issue 6)."""
    keys = {
        READ_KEY: Principal("dashboard", frozenset({"read"})),
        CONTROL_KEY: Principal("automation", frozenset({"read", "control"})),
    }
    client.app.state.runtime.auth.lookups.append(keys.get)  # type: ignore[attr-defined]
    return client


def resolve(root: Path, link: Path) -> Path:
    """Where a link in the fixture leads (absolute targets live under the root)."""
    target = os.readlink(link)
    return root / target.lstrip("/") if target.startswith("/") else link.parent / target


# -- RaspAP's /openvpn -----------------------------------------------------------


def test_legacy_overview(client: TestClient):
    response = client.get("/openvpn", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "client_configs",
        "client_config_names",
        "client_config_active",
        "client_login_names",
        "client_login_active",
    ]
    assert body == {
        "client_configs": "5",
        "client_config_names": [
            {"config": "de-fra_client.conf"},
            {"config": "nl-ams_client.conf"},
            {"config": "us-east_client.conf"},
        ],
        "client_config_active": "us-east_client.conf",
        "client_login_names": [{"login": "nl-ams_login.conf"}, {"login": "us-east_login.conf"}],
        "client_login_active": "us-east_login.conf",
    }


def test_legacy_missing_links_are_empty_strings(client: TestClient, root: Path):
    (folder(root) / "client.conf").unlink()
    (folder(root) / "login.conf").unlink()
    body = client.get("/openvpn", headers=AUTH).json()
    assert body["client_config_active"] == ""
    assert body["client_login_active"] == ""
    assert body["client_configs"] == "5"


def test_legacy_absolute_links_as_raspap_writes_them(client: TestClient, root: Path):
    (folder(root) / "client.conf").unlink()
    (folder(root) / "client.conf").symlink_to("/etc/openvpn/client/de-fra_client.conf")
    (folder(root) / "login.conf").unlink()
    (folder(root) / "login.conf").symlink_to("/somewhere/else/login.txt")
    body = client.get("/openvpn", headers=AUTH).json()
    assert body["client_config_active"] == "de-fra_client.conf"
    assert body["client_login_active"] == "/somewhere/else/login.txt"


def test_legacy_regular_client_conf_is_the_active_one(client: TestClient, root: Path):
    link = folder(root) / "client.conf"
    link.unlink()
    link.write_text("client\nremote old.example.net\n")
    body = client.get("/openvpn", headers=AUTH).json()
    assert body["client_config_active"] == "client.conf"
    assert body["client_configs"] == "6"
    assert {"config": "client.conf"} not in body["client_config_names"]


def test_legacy_without_the_folder(client: TestClient, root: Path):
    shutil.rmtree(folder(root))
    response = client.get("/openvpn", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "client_configs": "0",
        "client_config_names": [],
        "client_config_active": "",
        "client_login_names": [],
        "client_login_active": "",
    }
    assert client.get("/openvpn/client.conf", headers=AUTH).status_code == 404


def test_legacy_empty_folder(client: TestClient, root: Path):
    shutil.rmtree(folder(root))
    folder(root).mkdir()
    body = client.get("/openvpn", headers=AUTH).json()
    assert body["client_configs"] == "0"
    assert body["client_config_names"] == [] and body["client_config_active"] == ""


def test_legacy_count_is_regular_files_below_the_folder(client: TestClient, root: Path):
    (folder(root) / "keys").mkdir()
    (folder(root) / "keys" / "ta.key").write_text("x")
    (folder(root) / "dangling_client.conf").symlink_to("nowhere")
    body = client.get("/openvpn", headers=AUTH).json()
    assert body["client_configs"] == "6"  # find -type f: the key counts, links don't
    assert {"config": "dangling_client.conf"} in body["client_config_names"]  # ls lists it


def test_legacy_config_lines(client: TestClient, root: Path):
    response = client.get("/openvpn/de-fra_client.conf", headers=AUTH)
    assert response.status_code == 200
    text = (folder(root) / "de-fra_client.conf").read_text()
    assert response.json() == {"client_config": text.strip().split("\n")}
    assert response.json()["client_config"][:2] == ["# filename de-fra", "client"]


def test_legacy_config_follows_the_active_link(client: TestClient, root: Path):
    lines = client.get("/openvpn/client.conf", headers=AUTH).json()["client_config"]
    assert "remote us-east.vpn.example.net 1194" in lines
    # As RaspAP's GUI writes it: an absolute link.
    link = folder(root) / "client.conf"
    link.unlink()
    link.symlink_to("/etc/openvpn/client/nl-ams_client.conf")
    lines = client.get("/openvpn/client.conf", headers=AUTH).json()["client_config"]
    assert "remote nl-ams.vpn.example.net 1194" in lines


def test_legacy_config_empty_file(client: TestClient, root: Path):
    (folder(root) / "empty_client.conf").write_text("")
    body = client.get("/openvpn/empty_client.conf", headers=AUTH).json()
    assert body == {"client_config": [""]}  # RaspAP: "".strip().split("\n")


def test_legacy_config_unknown_is_json_404(client: TestClient):
    response = client.get("/openvpn/nope_client.conf", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["detail"] == "no OpenVPN client config named 'nope_client.conf'"


def test_legacy_config_never_leaves_the_folder(client: TestClient, root: Path):
    (root / "etc/shadow-like").write_text("root:secret\n")
    (folder(root) / "escape_client.conf").symlink_to("../../shadow-like")
    (folder(root) / "abs_client.conf").symlink_to("/etc/shadow-like")
    (folder(root) / "loop_client.conf").symlink_to("loop_client.conf")
    (folder(root) / "sub").mkdir()
    for name in ("escape_client.conf", "abs_client.conf", "loop_client.conf", "sub"):
        response = client.get(f"/openvpn/{name}", headers=AUTH)
        assert response.status_code == 404, name
        assert "secret" not in response.text


def test_legacy_config_too_large_is_413(client: TestClient, root: Path):
    (folder(root) / "huge_client.conf").write_bytes(b"# padding\n" * 200_000)
    response = client.get("/openvpn/huge_client.conf", headers=AUTH)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


@pytest.mark.parametrize("path", ["/openvpn/..", "/openvpn/%2e%2e", "/openvpn/../etc/passwd"])
def test_dot_segments_never_reach_a_config(client: TestClient, path: str):
    response = client.get(path, headers=AUTH)
    assert response.status_code in (200, 404)  # folded to / or /etc/passwd by the client
    assert "client_config" not in response.json()


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_legacy_config_odd_names_never_500(client: TestClient, root: Path, name: str):
    (folder(root) / ".client.conf").write_text("hidden")
    response = client.get(f"/openvpn/{name}", headers=AUTH)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/json"
    assert len(response.text) < 500


def test_config_content_is_admin_only(client: TestClient):
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    scopes = {(r.path, tuple(sorted(r.methods))): r.scope for r in runtime.routes}
    assert scopes[("/openvpn/{config}", ("GET", "HEAD"))] == "admin"
    assert scopes[("/openvpn", ("GET", "HEAD"))] == "read"
    assert scopes[("/api/v1/openvpn/profiles/{name}/activate", ("POST",))] == "control"
    operation = client.get("/openapi.json").json()["paths"]["/openvpn/{config}"]["get"]
    assert operation["security"]
    # Scoped keys come with issue 6; the guard already enforces a route's scope.
    with_scoped_keys(client)
    denied = client.get("/openvpn/client.conf", headers={"access_token": READ_KEY})
    assert denied.status_code == 403
    assert "BEGIN PRIVATE KEY" not in denied.text
    denied = client.get("/openvpn/client.conf", headers={"access_token": CONTROL_KEY})
    assert denied.status_code == 403
    assert client.get("/openvpn", headers={"access_token": READ_KEY}).status_code == 200
    assert client.get("/openvpn/client.conf", headers=AUTH).status_code == 200


# -- /api/v1/openvpn -------------------------------------------------------------


def test_v1_overview(client: TestClient, root: Path):
    body = client.get("/api/v1/openvpn", headers=AUTH).json()
    assert body["profiles"] == [
        {"name": "de-fra", "config": "de-fra_client.conf", "has_login": False, "active": False},
        {"name": "nl-ams", "config": "nl-ams_client.conf", "has_login": True, "active": False},
        {"name": "us-east", "config": "us-east_client.conf", "has_login": True, "active": True},
    ]
    assert body["active_profile"] == "us-east"
    assert body["active_config"] == "us-east_client.conf"
    assert body["active_login"] == "us-east_login.conf"
    assert body["service"]["unit"] == UNIT
    assert body["service"]["active_state"] == "inactive"
    assert body["service_error"] is None
    assert calls(root) == [
        "show --no-pager -p LoadState,ActiveState,SubState,UnitFileState,MainPID,"
        f"ActiveEnterTimestamp,MemoryCurrent -- {UNIT}"
    ]


def test_v1_link_to_something_else_is_no_active_profile(client: TestClient, root: Path):
    link = folder(root) / "client.conf"
    link.unlink()
    link.symlink_to("/home/pi/my.ovpn")
    body = client.get("/api/v1/openvpn", headers=AUTH).json()
    assert body["active_profile"] is None
    assert body["active_config"] == "/home/pi/my.ovpn"
    assert not any(p["active"] for p in body["profiles"])


def test_v1_service_error_when_systemd_cannot_answer(client: TestClient, root: Path):
    no_systemd(root)
    response = client.get("/api/v1/openvpn", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["service"] is None
    assert "Failed to connect to bus" in body["service_error"]
    assert body["active_profile"] == "us-east"


def test_v1_unavailable_without_the_folder(client: TestClient, root: Path):
    shutil.rmtree(folder(root))
    response = client.get("/api/v1/openvpn", headers=AUTH)
    assert response.status_code == 503
    assert "/etc/openvpn/client" in response.json()["detail"]
    assert client.get("/ready", headers=AUTH).json()["plugins"]["openvpn"]["state"] == "unavailable"


def test_status_ok(client: TestClient):
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["openvpn"]
    assert plugin["state"] == "ok"
    assert plugin["details"] == {"profiles": 3, "active": "us-east"}


# -- activation ------------------------------------------------------------------


def test_activate_switches_both_links_and_restarts(client: TestClient, root: Path):
    response = client.post("/api/v1/openvpn/profiles/nl-ams/activate", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active_profile"] == "nl-ams"
    assert body["active_login"] == "nl-ams_login.conf"
    assert body["service"]["active_state"] == "active"
    # The targets RaspAP's GUI writes: absolute paths in the folder.
    assert os.readlink(folder(root) / "client.conf") == "/etc/openvpn/client/nl-ams_client.conf"
    assert os.readlink(folder(root) / "login.conf") == "/etc/openvpn/client/nl-ams_login.conf"
    assert f"restart --no-ask-password -- {UNIT}" in calls(root)
    assert not [p for p in folder(root).iterdir() if p.name.startswith(".")]  # no temp links left
    legacy = client.get("/openvpn", headers=AUTH).json()
    assert legacy["client_config_active"] == "nl-ams_client.conf"
    assert legacy["client_login_active"] == "nl-ams_login.conf"


def test_activate_profile_without_login_keeps_login_link(client: TestClient, root: Path):
    response = client.post("/api/v1/openvpn/profiles/de-fra/activate", headers=AUTH)
    assert response.status_code == 200
    assert os.readlink(folder(root) / "client.conf") == "/etc/openvpn/client/de-fra_client.conf"
    assert os.readlink(folder(root) / "login.conf") == "us-east_login.conf"
    assert response.json()["active_profile"] == "de-fra"


def test_activate_creates_missing_links(client: TestClient, root: Path):
    (folder(root) / "client.conf").unlink()
    (folder(root) / "login.conf").unlink()
    assert client.post("/api/v1/openvpn/profiles/us-east/activate", headers=AUTH).status_code == 200
    assert resolve(root, folder(root) / "client.conf").name == "us-east_client.conf"
    assert resolve(root, folder(root) / "login.conf").name == "us-east_login.conf"


def test_activate_unknown_profile_is_404_and_changes_nothing(client: TestClient, root: Path):
    response = client.post("/api/v1/openvpn/profiles/nope/activate", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_profile"
    assert os.readlink(folder(root) / "client.conf") == "us-east_client.conf"
    assert not any(c.startswith("restart") for c in calls(root))


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_activate_odd_names_never_500(client: TestClient, root: Path, name: str):
    response = client.post(f"/api/v1/openvpn/profiles/{name}/activate", headers=AUTH)
    assert response.status_code in (404, 405), response.text
    assert response.headers["content-type"] == "application/json"
    assert os.readlink(folder(root) / "client.conf") == "us-east_client.conf"


def test_activate_needs_the_control_scope(client: TestClient, root: Path):
    with_scoped_keys(client)
    response = client.post(
        "/api/v1/openvpn/profiles/nl-ams/activate", headers={"access_token": READ_KEY}
    )
    assert response.status_code == 403
    assert os.readlink(folder(root) / "client.conf") == "us-east_client.conf"
    response = client.post(
        "/api/v1/openvpn/profiles/nl-ams/activate", headers={"access_token": CONTROL_KEY}
    )
    assert response.status_code == 200


def test_activate_refuses_to_overwrite_a_regular_client_conf(client: TestClient, root: Path):
    link = folder(root) / "client.conf"
    link.unlink()
    link.write_text("client\nremote precious.example.net\n")
    response = client.post("/api/v1/openvpn/profiles/nl-ams/activate", headers=AUTH)
    assert response.status_code == 409
    assert response.json()["code"] == "not_a_link"
    assert link.read_text() == "client\nremote precious.example.net\n"
    assert os.readlink(folder(root) / "login.conf") == "us-east_login.conf"


def test_activate_when_the_restart_fails(client: TestClient, root: Path):
    (root / "fake/systemd/fail").mkdir()
    (root / "fake/systemd/fail" / UNIT).write_text("")
    response = client.post("/api/v1/openvpn/profiles/nl-ams/activate", headers=AUTH)
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "restart_failed"
    assert "client.conf -> nl-ams_client.conf" in body["detail"]
    assert "login.conf -> nl-ams_login.conf" in body["detail"]
    assert "Job for openvpn-client@client.service failed" in body["detail"]
    assert os.readlink(folder(root) / "client.conf") == "/etc/openvpn/client/nl-ams_client.conf"
    after = client.get("/api/v1/openvpn", headers=AUTH).json()
    assert after["active_profile"] == "nl-ams"
    assert after["service"]["active_state"] == "failed"


def test_activate_without_systemd(client: TestClient, root: Path):
    no_systemd(root)
    response = client.post("/api/v1/openvpn/profiles/de-fra/activate", headers=AUTH)
    assert response.status_code == 502
    assert "links were switched (client.conf -> de-fra_client.conf)" in response.json()["detail"]
    assert "Failed to connect to bus" in response.json()["detail"]


def test_activate_when_the_folder_is_not_writable(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "symlink", refuse)  # as a read-only /etc answers
    response = client.post("/api/v1/openvpn/profiles/nl-ams/activate", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "write_failed"
    assert "Permission denied (nothing was switched)" in response.json()["detail"]
    assert os.readlink(folder(root) / "client.conf") == "us-east_client.conf"
    assert not any(c.startswith("restart") for c in calls(root))


def test_activate_replaces_the_link_by_rename_only(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every filesystem call leaves client.conf in place; it changes by rename alone."""
    link = str(folder(root) / "client.conf")
    log: list[tuple[str, tuple[Any, ...], bool]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return real(*args, **kwargs)
            finally:
                log.append((name, tuple(str(a) for a in args), os.path.lexists(link)))

        return wrapper

    for name in ("symlink", "replace", "rename", "unlink", "remove"):
        monkeypatch.setattr(os, name, spy(name, getattr(os, name)))
    for profile in ("nl-ams", "de-fra", "us-east"):
        response = client.post(f"/api/v1/openvpn/profiles/{profile}/activate", headers=AUTH)
        assert response.status_code == 200
    touching = [entry for entry in log if link in entry[1]]
    assert [entry[0] for entry in touching] == ["replace"] * 3
    assert all(entry[1][1] == link for entry in touching)
    assert all(present for _, _, present in log)


def test_switching_is_atomic_for_a_concurrent_reader(client: TestClient, root: Path):
    link = folder(root) / "client.conf"
    stop = threading.Event()
    seen = {"reads": 0, "missing": 0, "broken": 0}
    targets: set[str] = set()

    def reader() -> None:
        for _ in range(5_000_000):
            if stop.is_set():
                return
            try:
                target = os.readlink(link)
            except FileNotFoundError:
                seen["missing"] += 1
                continue
            seen["reads"] += 1
            targets.add(target)
            path = root / target.lstrip("/") if target.startswith("/") else link.parent / target
            if not path.is_file():
                seen["broken"] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for i in range(30):
            profile = ("nl-ams", "de-fra", "us-east")[i % 3]
            response = client.post(f"/api/v1/openvpn/profiles/{profile}/activate", headers=AUTH)
            assert response.status_code == 200
    finally:
        stop.set()
        thread.join(timeout=10)
    assert seen["reads"] > 100
    assert seen["missing"] == 0
    assert seen["broken"] == 0
    assert {
        f"/etc/openvpn/client/{p}_client.conf" for p in ("nl-ams", "de-fra", "us-east")
    } <= targets


def no_systemd(root: Path) -> None:
    """Make the fixture's systemctl answer as it does on a machine without systemd."""
    fake = root / "usr/bin/systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *is-system-running*) echo offline ;; esac\n'
        'echo "System has not been booted with systemd as init system (PID 1)." >&2\n'
        'echo "Failed to connect to bus: Host is down" >&2\n'
        "exit 1\n"
    )
    fake.chmod(0o755)


def test_activate_route_documents_its_scope_and_schema(client: TestClient):
    operation = client.get("/openapi.json").json()["paths"][
        "/api/v1/openvpn/profiles/{name}/activate"
    ]["post"]
    assert operation["security"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) >= {"profiles", "active_profile", "service"}
    assert re.search(r"atomic", operation.get("description", ""))

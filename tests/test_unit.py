"""systemd/restapi.service: valid for systemd, hardened, and what RaspAP's GUI expects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]
UNIT = PROJECT / "systemd" / "restapi.service"
EXEC = "/opt/raspapi/venv/bin/raspapi-uvicorn"
#: The checks `systemd-analyze security` may still fail, each explained in the
#: unit's comments. Anything else failing is a hardening regression.
ACCEPTED = {
    "User=/DynamicUser=",
    "RootDirectory=/RootImage=",
    "PrivateNetwork=",
    "PrivateUsers=",
    "ProtectProc=",
    "ProcSubset=",
    "ProtectHostname=",
    "IPAddressDeny=",
    "DeviceAllow=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "RestrictAddressFamilies=~AF_NETLINK",
    "CapabilityBoundingSet=~CAP_NET_ADMIN",
    "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
    "CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)",
    "SystemCallFilter=~@privileged",
}

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze is not installed",
)


def settings_of(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out.setdefault(key, []).append(value)
    return out


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


def runnable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at a program that exists here."""
    unit = tmp_path / "restapi.service"
    unit.write_text((text or UNIT.read_text()).replace(EXEC, sys.executable))
    return unit


@needs_systemd_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path):
    result = analyze("verify", str(runnable_copy(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@needs_systemd_analyze
def test_verify_would_catch_a_mistake(tmp_path: Path):
    text = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    result = analyze("verify", str(runnable_copy(tmp_path, text)))
    assert "Unknown key" in result.stderr and "NoNewPrivilege" in result.stderr


@needs_systemd_analyze
def test_exposure_is_at_most_3_and_documented():
    result = analyze("security", "--offline=true", str(UNIT))
    match = re.search(r"Overall exposure level for restapi\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    assert score <= 3.0
    # The comments and the README say what the score is.
    assert f"Exposure (`systemd-analyze security restapi.service`): {score}" in UNIT.read_text()
    assert f"exposure {score}" in (PROJECT / "README.md").read_text()


@needs_systemd_analyze
def test_only_explained_exposures_remain():
    result = analyze("security", "--offline=true", "--json=short", str(UNIT))
    checks = json.loads(result.stdout)
    failing = {c["name"] for c in checks if c["set"] is False and c["exposure"]}
    assert failing <= ACCEPTED, f"new exposures: {failing - ACCEPTED}"
    for must in ("NoNewPrivileges=", "ProtectSystem=", "PrivateTmp=", "ProtectHome="):
        assert any(c["name"] == must and c["set"] for c in checks), must


def test_service_type_watchdog_and_restart():
    unit = settings_of(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["Restart"] == ["on-failure"]
    watchdog = unit["WatchdogSec"][0]
    assert watchdog.endswith("s") and 10 <= int(watchdog[:-1]) <= 60
    assert unit["WantedBy"] == ["multi-user.target"]


def test_what_raspap_relies_on():
    unit = settings_of(UNIT.read_text())
    assert UNIT.name == "restapi.service"
    assert unit["WorkingDirectory"] == ["/etc/raspap/api"]
    assert unit["ReadWritePaths"][0].split()[0] == "/etc/raspap/api"
    # `ps aux | grep uvicorn` must find the process: the program's name says uvicorn.
    program = unit["ExecStart"][0].split()[0]
    assert program == EXEC and "uvicorn" in Path(program).name


def test_execstart_is_a_console_script_of_the_package():
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[Path(EXEC).name] == scripts["raspapi"] == "raspapi.cli:main"


def test_runtime_directory_for_control_sockets():
    # PrivateTmp is on: hostapd and wpa_supplicant answer to a client socket
    # they can reach, which the core's wpa_ctrl client (used by the hostapd and
    # wifi plugins) binds under $RUNTIME_DIRECTORY.
    unit = settings_of(UNIT.read_text())
    assert unit["PrivateTmp"] == ["yes"]
    assert unit["RuntimeDirectory"] == ["raspapi"]
    assert "RUNTIME_DIRECTORY" in (PROJECT / "raspapi" / "host" / "wpactrl.py").read_text()
    for name in ("hostapd", "wifi"):
        plugin = PROJECT / "plugins" / name
        if plugin.is_dir():
            # the core client, through the public plugin API
            assert any("ControlSocket" in f.read_text() for f in plugin.rglob("*.py"))
    assert unit["StateDirectory"] == ["raspapi"]  # /var/lib/raspapi, the default state folder

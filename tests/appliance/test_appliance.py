"""raspapi as a user gets it: installed by installer.sh on Debian bookworm booted
with systemd, on a RaspAP-like machine, tested on its real port.

The tests share one machine and run in file order: install first, then what
the installed service does, then faults, then the installer's lifecycle.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.appliance.conftest import LEASES, WG_SUBNET, install
from tests.appliance.machine import Machine

pytestmark = [pytest.mark.appliance, pytest.mark.integration]
UNIT = "restapi.service"
MISSPELT = "from raspapi import hookimpl\n\n@hookimpl\ndef raspapi_rotues(ctx):\n    return []\n"


@pytest.fixture(scope="module")
def machine(appliance: tuple[Machine, Path]) -> Machine:
    return appliance[0]


@pytest.fixture(scope="module")
def wheel(appliance: tuple[Machine, Path]) -> Path:
    return appliance[1]


def main_pid(m: Machine) -> int:
    return int(m.show(UNIT, "MainPID")["MainPID"])


def wait_active(m: Machine, timeout: float = 90) -> None:
    m.wait_for(
        "active restapi.service answering /health",
        lambda: (
            m.show(UNIT, "ActiveState")["ActiveState"] == "active"
            and m.api("GET", "/health", key=None, timeout=5).status == 200
        ),
        timeout,
    )


def warnings_since(m: Machine, since: str) -> str:
    """What the service itself logged at warning or worse (journalctl -u also
    shows PID 1's lines about the unit; in a container systemd warns that it
    cannot kill the cgroup with cgroup.kill, which is not the daemon's)."""
    return m.run(
        ["journalctl", f"_SYSTEMD_UNIT={UNIT}", "-p", "warning", "--since", since,
         "--no-pager", "-q", "-o", "cat"]
    ).stdout  # fmt: skip


def now(m: Machine) -> str:
    return m.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()


# ---- install -----------------------------------------------------------------------


def test_install_ready_and_check(machine: Machine, wheel: Path) -> None:
    m = machine
    out = install(m, wheel)
    assert "is running as restapi.service on port 8081" in out
    assert m.key() not in out
    state = m.show(UNIT, "ActiveState", "SubState", "Type", "StatusText", "UnitFileState")
    # Type=notify: "active" means the daemon sent READY=1.
    assert state["Type"] == "notify"
    assert (state["ActiveState"], state["SubState"]) == ("active", "running")
    assert state["UnitFileState"] == "enabled"
    assert "listening on 0.0.0.0:8081" in state["StatusText"]
    check = m.run(["/opt/raspapi/venv/bin/raspapi", "check"], check=False)
    assert check.returncode == 0, check.stdout
    assert "all good" in check.stdout
    env = m.path("/etc/raspap/api/.env").stat()
    assert (env.st_mode & 0o777, env.st_uid) == (0o600, 0)


def test_a_clean_start_logs_no_warning(machine: Machine) -> None:
    # Needs issue #19 (syslog priority prefixes on stderr under journald).
    m = machine
    since = now(m)
    time.sleep(1)
    m.run(["systemctl", "restart", UNIT])
    wait_active(m)
    assert warnings_since(m, since) == ""


# ---- RaspAP's routes on a RaspAP-like machine ---------------------------------------


def test_raspap_routes_answer_with_the_machines_values(machine: Machine) -> None:
    m = machine
    system = m.api("GET", "/system")
    assert system.status == 200, system.text
    body = system.json()
    assert list(body)[:2] == ["hostname", "uptime"]
    assert body["hostname"] == m.run(["hostname"]).stdout.strip()
    assert body["hostapdStatus"] == 1
    assert body["operatingSystem"].startswith("Debian GNU/Linux 12")
    assert body["kernelVersion"] == m.run(["uname", "-r"]).stdout.strip()

    ap = m.api("GET", "/ap").json()
    assert (ap["driver"], ap["ssid"], ap["channel"], ap["interface"]) == (
        "none",
        "raspi-webgui",
        "1",
        "wlan0",
    )
    assert ap["wpa_passphrase"] == "ChangeMe"  # the admin key sees secrets

    # No Wi-Fi station with driver=none; the laptop's lease, seen on eth1, is wired.
    clients = m.api("GET", "/clients").json()
    assert clients["active_clients_amount"] == 1
    assert clients["active_ethernet_clients_amount"] == 1
    (laptop,) = clients["active_clients"]
    assert laptop["mac_address"] == LEASES.splitlines()[1].split()[1]
    assert (laptop["ip_address"], laptop["hostname"]) == ("10.3.141.62", "laptop")
    assert laptop["connection_type"] == "ethernet"

    dhcp = m.api("GET", "/dhcp").json()
    assert dhcp["range_start"] == "10.3.141.50" and dhcp["range_end"] == "10.3.141.254"
    assert dhcp["range_gateway"] == "10.3.141.1"
    assert dhcp["range_nameservers"] == ["1.1.1.1", "8.8.8.8"]

    wireguard = m.api("GET", "/wireguard").json()
    assert wireguard["client_config_active"] == "wg0.conf"

    openvpn = m.api("GET", "/openvpn").json()
    assert openvpn["client_config_active"].endswith("us-east_client.conf")
    assert {c["config"] for c in openvpn["client_config_names"]} >= {
        "de-fra_client.conf",
        "nl-ams_client.conf",
        "us-east_client.conf",
    }

    networking = m.api("GET", "/networking").json()
    assert "wg0" in networking["interfaces"]
    assert networking["interfaces"]["wg0"]["IP_address"] == f"{WG_SUBNET}.1"

    for path in ("/dns/upstream", "/dns/domains", "/dns/hostnames", "/dns/logs", "/ddns"):
        answer = m.api("GET", path)
        assert answer.status == 200, (path, answer.text)
    assert m.api("GET", "/system", key="wrong").text == '{"detail":"403: Unauthorized"}'


# ---- WireGuard: the headline bug -----------------------------------------------------


def live_peers(m: Machine) -> dict[str, list[str]]:
    lines = m.run(["wg", "show", "wg0", "dump"]).stdout.splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t") for line in lines}


def test_wireguard_peer_added_and_removed(machine: Machine, tmp_path: Path) -> None:
    m = machine
    conf = m.path("/etc/wireguard/wg0.conf")
    before = conf.read_bytes()
    added = m.api("POST", "/api/v1/wireguard/wg0/peers", {"name": "phone", "endpoint": "10.0.0.1"})
    assert added.status == 201, added.text
    body = added.json()
    assert body["applied"] is True
    public = body["public_key"]
    psk = re.search(r"^PresharedKey = (\S+)$", body["client_config"], re.M)
    assert psk is not None
    live = live_peers(m)
    assert live[public][1] == psk.group(1)
    assert live[public][3] == f"{WG_SUBNET}.2/32"
    assert f"PublicKey = {public}" in conf.read_text()

    # The QR code decodes back to the client config a phone needs.
    png = m.path("/root/.appliance-qr.png")
    done = m.run(
        ["sh", "-ec", 'curl -sS -K - -o /root/.appliance-qr.png -X POST -H "Content-Type: '
         'application/json" --data-binary \'{"name": "tablet", "endpoint": "10.0.0.1"}\' '
         '"http://127.0.0.1:8081/api/v1/wireguard/wg0/peers?format=png" -w "%{http_code}"'],
        input=f'header = "access_token: {m.key()}"\n',
    )  # fmt: skip
    assert done.stdout == "201"
    local = tmp_path / "qr.png"
    local.write_bytes(png.read_bytes())
    png.unlink()
    decoded = subprocess.run(
        ["zbarimg", "-q", "--raw", str(local)], capture_output=True, text=True, timeout=30
    )
    assert decoded.returncode == 0, decoded.stderr
    text = decoded.stdout
    assert text.startswith("[Interface]")
    assert f"Address = {WG_SUBNET}.3/32" in text
    private = re.search(r"^PrivateKey = (\S+)$", text, re.M)
    assert private is not None
    tablet = m.run(["wg", "pubkey"], input=private.group(1) + "\n").stdout.strip()
    assert tablet in live_peers(m)

    for key in (public, tablet):
        removed = m.api("DELETE", f"/api/v1/wireguard/wg0/peers/{quote(key, safe='')}")
        assert removed.status == 200, removed.text
        assert removed.json()["removed_from_interface"] is True
    assert live_peers(m) == {}
    assert conf.read_bytes() == before


def test_wireguard_down_and_up(machine: Machine) -> None:
    m = machine
    down = m.api("POST", "/api/v1/wireguard/wg0/down")
    assert down.status == 200, down.text
    assert m.run(["ip", "link", "show", "wg0"], check=False).returncode != 0
    assert m.run(["systemctl", "is-active", "wg-quick@wg0"], check=False).stdout.strip() != "active"
    up = m.api("POST", "/api/v1/wireguard/wg0/up")
    assert up.status == 200, up.text
    assert m.run(["systemctl", "is-active", "wg-quick@wg0"]).stdout.strip() == "active"
    assert "wg0" in m.run(["wg", "show", "interfaces"]).stdout


# ---- hostapd and its clients ---------------------------------------------------------


def hostapd_status(m: Machine) -> list[str]:
    return m.run(["hostapd_cli", "-i", "wlan0", "status"]).stdout.splitlines()


def test_hostapd_patch_confirm_and_rollback(machine: Machine) -> None:
    m = machine
    conf = m.path("/etc/hostapd/hostapd.conf")
    before = conf.read_bytes()
    m.sh("echo RASPAPI_HOSTAPD_CONFIRM_SECONDS=3 >> /etc/raspap/api/.env")
    m.run(["systemctl", "restart", UNIT])
    wait_active(m)
    # Unconfirmed: the file and the running hostapd both roll back.
    patched = m.api("PATCH", "/api/v1/hostapd/config", {"ssid": "unconfirmed", "channel": 6})
    assert patched.status == 200, patched.text
    assert "ssid[0]=unconfirmed" in hostapd_status(m)
    m.wait_for("the rollback", lambda: conf.read_bytes() == before, 30)
    m.wait_for("hostapd back", lambda: "ssid[0]=raspi-webgui" in hostapd_status(m), 30)
    assert "channel=1" in hostapd_status(m)
    # Confirmed: it stays.
    patched = m.api("PATCH", "/api/v1/hostapd/config", {"ssid": "confirmed"})
    assert patched.status == 200, patched.text
    assert m.api("POST", "/api/v1/hostapd/config/confirm").status == 200
    time.sleep(4)
    assert "ssid=confirmed" in conf.read_text().splitlines()
    assert "ssid[0]=confirmed" in hostapd_status(m)
    assert m.api("PATCH", "/api/v1/hostapd/config", {"ssid": "raspi-webgui"}).status == 200
    assert m.api("POST", "/api/v1/hostapd/config/confirm").status == 200
    assert conf.read_bytes() == before
    assert "ssid[0]=raspi-webgui" in hostapd_status(m)


def test_hostapd_enable_disable_reload_restart(machine: Machine) -> None:
    m = machine
    assert m.api("POST", "/api/v1/hostapd/disable").json()["state"] == "disabled"
    assert "state=DISABLED" in hostapd_status(m)
    enabled = m.api("POST", "/api/v1/hostapd/enable")
    assert enabled.status == 200, enabled.text
    assert enabled.json()["changed"] is True
    # Here hostapd passes through COUNTRY_UPDATE (country_code=GB) first.
    m.wait_for("hostapd enabled", lambda: "state=ENABLED" in hostapd_status(m), 30)
    assert m.api("POST", "/api/v1/hostapd/reload").status == 200
    pid = m.show("hostapd.service", "MainPID")["MainPID"]
    restarted = m.api("POST", "/api/v1/hostapd/restart")
    assert restarted.status == 200, restarted.text
    m.wait_for(
        "hostapd restarted",
        lambda: m.show("hostapd.service", "MainPID")["MainPID"] not in ("0", pid),
        30,
    )
    m.wait_for("hostapd enabled", lambda: "state=ENABLED" in hostapd_status(m), 30)


def test_kick_and_ban_reach_the_deny_list(machine: Machine) -> None:
    m = machine
    mac = "02:00:5e:10:00:01"
    kicked = m.api("POST", f"/api/v1/clients/{mac}/kick", {"ban_seconds": 600})
    assert kicked.status == 200, kicked.text
    deny = m.run(["hostapd_cli", "-i", "wlan0", "deny_acl", "SHOW"]).stdout
    assert mac in deny
    assert m.api("DELETE", f"/api/v1/clients/bans/{mac}").status == 200
    assert mac not in m.run(["hostapd_cli", "-i", "wlan0", "deny_acl", "SHOW"]).stdout


# ---- services --------------------------------------------------------------------------


def test_services_follow_systemd(machine: Machine) -> None:
    m = machine
    for action, state in (("stop", "inactive"), ("start", "active"), ("restart", "active")):
        answer = m.api("POST", f"/api/v1/services/dnsmasq/{action}")
        assert answer.status == 200, answer.text
        assert m.run(["systemctl", "is-active", "dnsmasq"], check=False).stdout.strip() == state
        listed = m.api("GET", "/api/v1/services/dnsmasq").json()
        assert listed["active_state"] == state


def test_a_failed_action_logs_one_warning(machine: Machine) -> None:
    # Needs issue #19: one WARNING line per failed control action.
    m = machine
    since = now(m)
    time.sleep(1)
    m.path("/etc/dnsmasq.d/099_broken.conf").write_text("no-such-option-at-all\n")
    try:
        failed = m.api("POST", "/api/v1/services/dnsmasq/restart")
        assert failed.status == 502, failed.text
        logged = warnings_since(m, since)
        assert "dnsmasq" in logged, logged
        assert len(logged.strip().splitlines()) == 1, logged
    finally:
        m.path("/etc/dnsmasq.d/099_broken.conf").unlink()
        m.run(["systemctl", "restart", "dnsmasq"])


def test_restapi_restarts_itself(machine: Machine) -> None:
    m = machine
    pid = main_pid(m)
    answer = m.api("POST", "/api/v1/services/restapi/restart")
    assert answer.status == 202, answer.text
    m.wait_for("a new restapi process", lambda: main_pid(m) not in (0, pid), 60)
    wait_active(m)


# ---- OpenVPN ---------------------------------------------------------------------------


def test_openvpn_activation_switches_the_link_and_restarts_the_unit(machine: Machine) -> None:
    m = machine
    unit = "openvpn-client@client.service"
    before = m.show(unit, "InvocationID")["InvocationID"]
    answer = m.api("POST", "/api/v1/openvpn/profiles/nl-ams/activate", timeout=120)
    # The profiles point at servers that do not exist: the restart is asked
    # for (a new invocation), whether or not the client then connects.
    assert answer.status in (200, 502, 504), answer.text
    link = m.path("/etc/openvpn/client/client.conf")
    assert link.is_symlink() and Path(str(link.readlink())).name == "nl-ams_client.conf"
    assert m.show(unit, "InvocationID")["InvocationID"] != before
    m.run(["systemctl", "stop", unit], check=False)


# ---- keys -----------------------------------------------------------------------------


def test_scoped_keys_created_and_revoked(machine: Machine) -> None:
    m = machine
    created = m.api("POST", "/api/v1/keys", {"name": "dashboard", "scopes": ["read"]})
    assert created.status == 201, created.text
    key, ident = created.json()["key"], created.json()["id"]
    assert m.api("GET", "/system", key=key).status == 200
    assert m.api("POST", "/api/v1/hostapd/reload", key=key).status == 403
    assert m.api("DELETE", f"/api/v1/keys/{ident}").status == 200
    assert m.api("GET", "/system", key=key).status == 403


def test_admin_page_in_chromium_generates_a_new_key(machine: Machine, tmp_path: Path) -> None:
    # Debian's chromium on the host, in the container's network namespace.
    from tests.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    m = machine
    old = m.key()
    wrapper = tmp_path / "chromium-in-container"
    wrapper.write_text(f'#!/bin/sh\nexec nsenter -t {m.pid1} -n -- {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(wrapper), headless=True,
            args=CHROMIUM_ARGS,
        )  # fmt: skip
        try:
            page = context.new_page()
            page.goto("http://127.0.0.1:8081/admin")
            page.fill("#key", old)
            with page.expect_navigation():
                page.click("button[type=submit]")
            with page.expect_navigation():
                page.click("nav >> text=API key")
            with page.expect_navigation():
                page.click("#generate")
            new = page.input_value("#revealed")
        finally:
            context.close()
    assert re.fullmatch(r"[0-9a-z]{32}", new) and new != old
    assert m.key() == new
    assert m.api("GET", "/system", key=old).status == 403
    assert m.api("GET", "/system", key=new).status == 200


# ---- a broken drop-in ------------------------------------------------------------------


def test_a_misspelt_dropin_is_failed_and_the_service_stays_up(machine: Machine) -> None:
    m = machine
    dropin = m.path("/etc/raspap/api/plugins.d/typo.py")
    dropin.parent.mkdir(exist_ok=True)
    dropin.write_text(MISSPELT)
    try:
        m.run(["systemctl", "restart", UNIT])
        wait_active(m)
        time.sleep(3)
        assert m.show(UNIT, "ActiveState")["ActiveState"] == "active"
        # Without a key /ready shows states only; with one, the reason too.
        assert m.api("GET", "/ready", key=None).json()["plugins"]["typo"]["state"] == "failed"
        typo = m.api("GET", "/ready").json()["plugins"]["typo"]
        assert typo["state"] == "failed"
        assert "raspapi_rotues" in typo["reason"]
        assert m.api("GET", "/system").status == 200
    finally:
        dropin.unlink()
        m.run(["systemctl", "restart", UNIT])
        wait_active(m)


# ---- faults -----------------------------------------------------------------------------


def test_sigstop_the_watchdog_restarts_it(machine: Machine) -> None:
    m = machine
    pid = main_pid(m)
    m.run(["kill", "-STOP", str(pid)])
    # WatchdogSec=30s, then RestartSec=2s.
    m.wait_for("the watchdog's restart", lambda: main_pid(m) not in (0, pid), 90)
    wait_active(m)
    result = m.show(UNIT, "NRestarts")
    assert int(result["NRestarts"]) >= 1


def test_kill_9_systemd_restarts_it_with_its_keys(machine: Machine) -> None:
    m = machine
    created = m.api("POST", "/api/v1/keys", {"name": "survivor", "scopes": ["read"]})
    assert created.status == 201, created.text
    key = created.json()["key"]
    admin = m.key()
    # A sensor batch acknowledged (201: on disk) just before the kill.
    device = m.api("POST", "/api/v1/keys", {"name": "esp32", "scopes": ["ingest"]}).json()["key"]
    series = m.api("POST", "/api/v1/sensors/series", {"description": "greenhouse"}, key=device)
    assert series.status == 201, series.text
    points = f"/api/v1/sensors/series/{series.json()['id']}/points"
    batch = {"points": [{"fields": {"temperature": 20 + i / 10}} for i in range(50)]}
    stored = m.api("POST", points, batch, key=device)
    assert stored.status == 201, stored.text
    pid = main_pid(m)
    m.run(["kill", "-KILL", str(pid)])
    m.wait_for("systemd's restart", lambda: main_pid(m) not in (0, pid), 60)
    wait_active(m)
    assert m.api("GET", "/system", key=key).status == 200
    assert m.api("GET", "/system", key=admin).status == 200
    back = m.api("GET", points)
    assert back.status == 200, back.text
    assert len(back.json()["points"]) == 50


def test_the_machine_restarts_with_the_service_enabled(machine: Machine) -> None:
    m = machine
    admin = m.key()
    m.restart()
    wait_active(m, 120)
    assert m.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    assert m.api("GET", "/system", key=admin).status == 200


# ---- the installer's lifecycle --------------------------------------------------------


def snapshot(m: Machine) -> dict[str, tuple[int, int]]:
    out = m.run(
        ["find", "/opt/raspapi", "/etc/systemd/system", "/etc/raspap", "-printf", "%p %T@ %m\\n"]
    ).stdout
    return {
        line.rsplit(" ", 2)[0]: (int(float(line.rsplit(" ", 2)[1])), int(line.rsplit(" ", 2)[2]))
        for line in out.splitlines()
    }


def test_a_second_run_changes_nothing(machine: Machine, wheel: Path) -> None:
    m = machine
    before, pid = snapshot(m), main_pid(m)
    out = install(m, wheel)
    assert "nothing to change" in out
    assert snapshot(m) == before
    assert main_pid(m) == pid


def test_upgrade_keeps_keys_and_state(machine: Machine, wheel: Path) -> None:
    m = machine
    created = m.api("POST", "/api/v1/keys", {"name": "kept", "scopes": ["read"]})
    key, admin = created.json()["key"], m.key()
    pid = main_pid(m)
    install(m, wheel, "--upgrade")
    wait_active(m)
    assert main_pid(m) != pid
    assert m.key() == admin
    assert m.api("GET", "/system", key=key).status == 200


def test_key_file_for_raspaps_gui(machine: Machine, wheel: Path) -> None:
    # RaspAP's GUI installed: /etc/raspap is www-data's; its RestAPI page reads .env.
    m = machine
    m.run(["chown", "www-data:www-data", "/etc/raspap"])
    try:
        install(m, wheel, "--upgrade")
        st = m.path("/etc/raspap/api/.env").stat()
        gid = int(m.run(["getent", "group", "www-data"]).stdout.split(":")[2])
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid)
        m.run(["runuser", "-u", "www-data", "--", "cat", "/etc/raspap/api/.env"])
        check = m.run(["/opt/raspapi/venv/bin/raspapi", "check"], check=False)
        assert check.returncode == 0, check.stdout
        assert "group www-data" in check.stdout
    finally:
        m.run(["chown", "root:root", "/etc/raspap"])
        install(m, wheel, "--upgrade")
    assert m.path("/etc/raspap/api/.env").stat().st_mode & 0o777 == 0o600


def test_uninstall_then_purge(machine: Machine, wheel: Path) -> None:
    m = machine
    admin = m.key()
    m.run(["/root/raspapi/installer.sh", "--yes", "--uninstall"])
    assert m.run(["systemctl", "is-active", UNIT], check=False).stdout.strip() != "active"
    assert not m.path("/opt/raspapi").exists()
    assert not m.path(f"/etc/systemd/system/{UNIT}").exists()
    assert m.key() == admin  # kept
    assert m.path("/var/lib/raspapi").exists()
    m.run(["/root/raspapi/installer.sh", "--yes", "--purge"])
    assert not m.path("/etc/raspap/api/.env").exists()
    assert not m.path("/var/lib/raspapi").exists()
    assert not m.path("/etc/raspap/api/plugins.d").exists()


RASPAP_UNIT = """[Unit]
Description=raspap-restapi
After=network.target

[Service]
WorkingDirectory=/etc/raspap/api
ExecStart=/usr/bin/python3 -m http.server --bind 0.0.0.0 8081
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def test_install_over_raspaps_own_keeps_its_key(machine: Machine, wheel: Path) -> None:
    # Simulates RaspAP's RestAPI: its unit, main.py and .env in /etc/raspap/api.
    m = machine
    key = "raspapownkey0123456789abcdefghij"
    folder = m.path("/etc/raspap/api")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text("app = FastAPI()\n")
    (folder / ".env").write_text(f"RASPAP_API_KEY={key}\n")
    m.path(f"/lib/systemd/system/{UNIT}").write_text(RASPAP_UNIT)
    m.sh(f"systemctl daemon-reload && systemctl enable --now {UNIT}")
    out = install(m, wheel)
    assert "Replacing another program's restapi.service" in out or "RaspAP" in out
    assert m.key() == key
    assert (folder / "main.py").read_text() == "app = FastAPI()\n"
    assert m.api("GET", "/system", key=key).status == 200
    assert m.path(f"/var/backups/raspapi/{UNIT}.before-raspapi").read_text() == RASPAP_UNIT

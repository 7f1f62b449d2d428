"""installer.sh run for real in a throwaway root, and `raspapi check` on what it installed.

systemctl and apt-get are stand-ins (tests/installer_stubs.py) that record
their calls; the stand-in systemctl really starts the installed venv's daemon,
so these tests prove the installed service runs.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raspapi import __version__
from raspapi.daemon import installation
from raspapi.settings import Settings
from tests.installer_stubs import alive, calls, changes, daemon_pid, kill_all, write_stubs
from tests.test_cli import free_port, get

PROJECT = Path(__file__).parents[1]
UNIT = "restapi.service"
KEY_LINE = re.compile(r"^RASPAP_API_KEY=([0-9a-z]{32})$", re.M)
RASPAP_KEY = "raspapkey0123456789abcdefghijklm"
RASPAP_UNIT = """[Unit]
Description=raspap-restapi
After=network.target

[Service]
User=pi
WorkingDirectory=/etc/raspap/api
LimitNOFILE=4096
ExecStart=/usr/bin/python3 -m uvicorn main:app --host 0.0.0.0 --port 8081
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target
"""
RASPAP_CONFIG_PHP = "<?php\ndefine('RASPI_RESTAPI_ENABLED', false);\ndefine('RASPI_X', true);\n"


# ---- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the checkout: what installer.sh installs from."""
    out = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("raspapi", "plugins", "webui", "systemd"):
        shutil.copytree(PROJECT / name, out / name, ignore=ignore)
    for name in ("installer.sh", "pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, out / name)
    return out


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(source, build / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(build), build / "src"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = build.glob("raspapi-*.whl")
    return path


@dataclass
class Machine:
    """A throwaway root, stubs first on PATH, and installer.sh to run against it."""

    root: Path
    state: Path
    bin: Path
    source: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, stdin: int | None = subprocess.DEVNULL, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.source / "installer.sh"), "--root", str(self.root), *args],
            env={**self.env, **env},
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            start_new_session=True,  # no controlling terminal: /dev/tty cannot be opened
        )

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def env_file(self) -> Path:
        return self.path("/etc/raspap/api/.env")

    def key(self) -> str:
        match = KEY_LINE.search(self.env_file.read_text())
        assert match, "no RASPAP_API_KEY line"
        return match.group(1)

    def starts(self) -> int:
        path = self.state / "starts"
        return int(path.read_text()) if path.exists() else 0

    def check(self) -> subprocess.CompletedProcess[str]:
        """`raspapi check` of the installed venv, looking at this root."""
        env = {
            "PATH": "/usr/bin:/bin",
            "RASPAPI_ROOT": str(self.root),
            "RASPAPI_ENV_FILE": str(self.env_file),
            "RASPAPI_STATE_DIR": str(self.path("/var/lib/raspapi")),
            "RASPAPI_PLUGINS_DIR": str(self.path("/etc/raspap/api/plugins.d")),
        }
        return subprocess.run(
            [str(self.path("/opt/raspapi/venv/bin/raspapi")), "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def make_machine(tmp_path: Path, source: Path, **stub_options: bool) -> Machine:
    machine = Machine(tmp_path / "root", tmp_path / "state", tmp_path / "bin", source)
    machine.root.mkdir()
    machine.state.mkdir()
    write_stubs(machine.bin, **stub_options)
    machine.env = {
        "PATH": f"{machine.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "STUB_ROOT": str(machine.root),
        "STUB_STATE": str(machine.state),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    return machine


@pytest.fixture
def machine(tmp_path: Path, source: Path) -> Iterator[Machine]:
    m = make_machine(tmp_path, source)
    yield m
    kill_all(m.state)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, object]]:
    """Every path under root (but the daemon's state and runtime folders) with
    its type, mode, times and content."""
    out: dict[str, tuple[int, int, int, object]] = {}
    skip = {root / "var/lib/raspapi", root / "run"}
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        dirs[:] = [d for d in dirs if base / d not in skip]
        for name in dirs + files:
            path = base / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                detail: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                detail = None
            out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, st.st_uid, detail)
    return out


def leftovers(m: Machine) -> list[str]:
    """What is left under the root but folders (systemctl leaves *.wants folders)."""
    return sorted(k for k, v in snapshot(m.root).items() if not stat.S_ISDIR(v[0]))


def venvs(m: Machine) -> list[str]:
    return sorted(p.name for p in m.path("/opt/raspapi").glob("venv-*"))


def assert_serving(m: Machine, port: int, key: str) -> int:
    pid = daemon_pid(m.state)
    assert pid is not None, (m.state / f"{UNIT}.log").read_text()
    # RaspAP's GUI shows the service as up when `ps aux | grep uvicorn` finds it.
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "uvicorn" in cmdline and str(m.path("/opt/raspapi/venv")) in cmdline
    status, body = get(port, "/health")
    assert status == 200 and json.loads(body)["version"] == __version__
    assert get(port, "/", {"access_token": key})[0] == 200
    assert get(port, "/", {"access_token": "wrong"})[0] in (401, 403)
    return pid


# ---- the script itself -------------------------------------------------------------


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed (.ci/run installs it)")
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        ["shellcheck", "installer.sh"], cwd=PROJECT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_help_and_bad_options(machine: Machine):
    result = machine.run("--help")
    assert result.returncode == 0
    for option in ("--yes", "--port", "--upgrade", "--uninstall", "--purge", "--root", "--wheel"):
        assert option in result.stdout
    assert "--wheelhouse DIR" in result.stdout
    result = machine.run("--yes", "--wheelhouse", str(machine.root / "nowhere"))
    assert result.returncode == 2 and "is not a folder" in result.stderr
    result = machine.run("--yes", "--port", "80")
    assert result.returncode == 2 and "--port 80" in result.stderr
    result = machine.run("--frobnicate")
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr
    assert list(machine.root.iterdir()) == []


def test_upgrade_needs_an_install(machine: Machine):
    result = machine.run("--yes", "--upgrade")
    assert result.returncode == 1
    assert "raspapi is not installed here; run installer.sh without --upgrade" in result.stderr
    assert leftovers(machine) == [] and changes(machine.state) == []


def test_refuses_without_a_terminal_or_yes(machine: Machine):
    result = machine.run()
    assert result.returncode == 2
    assert 'no terminal to ask "Install and enable RestAPI? [Y/n]"' in result.stderr
    assert "--yes" in result.stderr
    assert list(machine.root.iterdir()) == [] and calls(machine.state) == []


def test_answer_no_changes_nothing(machine: Machine):
    master, slave = os.openpty()
    try:
        os.write(master, b"n\n")
        result = machine.run(stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 1
    assert result.stdout.startswith("Install and enable RestAPI? [Y/n] ")
    assert "Aborted; nothing was changed." in result.stdout
    assert list(machine.root.iterdir()) == [] and calls(machine.state) == []


def test_port_in_use_by_another_program(machine: Machine):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = machine.run("--yes", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} is in use by another program" in result.stderr
    assert not machine.path("/opt/raspapi").exists() and changes(machine.state) == []


def test_python3_venv_comes_from_apt_and_a_failed_pip_leaves_nothing(tmp_path: Path, source: Path):
    m = make_machine(tmp_path, source, python3_without_venv=True)
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    with (broken / "pyproject.toml").open("a") as fh:
        fh.write("\n[[[ not toml\n")
    master, slave = os.openpty()
    try:
        os.write(master, b"y\n")
        result = m.run("--source", str(broken), stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 1
    assert "Installing python3-venv with apt-get" in result.stdout
    assert "pip could not install raspapi" in result.stderr
    assert calls(m.state, "apt-calls") == [
        ["install", "-y", "-q", "--no-install-recommends", "python3-venv"]
    ]
    # The half-made venv is gone, and so is every folder the run made.
    assert sorted(p.name for p in m.root.iterdir()) == ["run"]
    assert leftovers(m) == []
    assert changes(m.state) == []


def test_wheelhouse_never_reaches_the_network(machine: Machine, wheel: Path, tmp_path: Path):
    # Offline (--wheelhouse): pip looks in the folder only; a missing dependency
    # is a clear failure that leaves nothing behind, not a download.
    house = tmp_path / "wheelhouse"
    house.mkdir()
    shutil.copy2(wheel, house)
    result = machine.run("--yes", "--wheel", str(house / wheel.name), "--wheelhouse", str(house))
    assert result.returncode == 1
    assert f"offline from {house}" in result.stdout
    assert f"a wheel missing from {house}?" in result.stderr
    assert sorted(p.name for p in machine.root.iterdir()) == ["run"]
    assert leftovers(machine) == []


def test_apt_failure_is_clear(tmp_path: Path, source: Path):
    m = make_machine(tmp_path, source, python3_without_venv=True)
    result = m.run("--yes", STUB_APT_FAIL="1")
    assert result.returncode == 1
    assert "apt-get could not install python3-venv" in result.stderr
    assert [c[0] for c in calls(m.state, "apt-calls")] == ["install", "update", "install"]
    result = m.run("--yes", "--no-apt")
    assert result.returncode == 1 and "python3-venv is missing" in result.stderr
    assert not m.path("/opt").exists()


# ---- install, again, upgrade, uninstall, purge -----------------------------------


@pytest.mark.integration
def test_install_lifecycle(machine: Machine, wheel: Path):
    m = machine
    port = free_port()

    # A start that never becomes healthy: everything made by the run is taken away.
    result = m.run("--yes", "--port", str(port), "--health-timeout", "3", STUB_BROKEN_STARTS="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"did not answer http://127.0.0.1:{port}/health within 3s" in result.stderr
    assert "rolling back" in result.stderr
    assert leftovers(m) == []
    assert ["disable", "--now", UNIT] in changes(m.state)
    assert daemon_pid(m.state) is None

    # Install.
    (m.state / "calls").unlink()
    result = m.run("--yes", "--port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(m.state) == [["daemon-reload"], ["enable", UNIT], ["restart", UNIT]]
    unit = m.path(f"/etc/systemd/system/{UNIT}")
    assert unit.read_bytes() == (m.source / "systemd" / UNIT).read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    link = m.path(f"/etc/systemd/system/multi-user.target.wants/{UNIT}")
    assert os.readlink(link) == f"/etc/systemd/system/{UNIT}"
    (first_venv,) = venvs(m)
    assert os.readlink(m.path("/opt/raspapi/venv")) == first_venv
    key = m.key()
    env_text = m.env_file.read_text()
    assert env_text == f"RASPAP_API_KEY={key}\nRASPAPI_HOST=0.0.0.0\nRASPAPI_PORT={port}\n"
    assert stat.S_IMODE(m.env_file.stat().st_mode) == 0o600
    assert key not in result.stdout + result.stderr
    assert f"API key: RASPAP_API_KEY in {m.env_file}" in result.stdout
    assert f"http://127.0.0.1:{port}/system" in result.stdout and "curl -H" in result.stdout
    pid = assert_serving(m, port, key)
    check = m.check().stdout.splitlines()
    for line in (
        f"ok    unit {unit}",
        "ok    enabled at boot (multi-user.target)",
        f"ok    venv {m.path('/opt/raspapi/venv')} intact (raspapi {__version__})",
        f"ok    port {port}: raspapi {__version__} answers",
    ):
        assert line in check, "\n".join(check)

    # A second run changes nothing: no file, no systemctl call but questions.
    before = snapshot(m.root)
    (m.state / "calls").unlink()
    result = m.run("--yes", "--port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to change" in result.stdout
    assert changes(m.state) == []
    assert snapshot(m.root) == before
    assert daemon_pid(m.state) == pid

    # Upgrade (here to a wheel of the same code): a new venv, same key and config.
    (m.state / "calls").unlink()
    result = m.run("--yes", "--upgrade", "--wheel", str(wheel))
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(m.state) == [["restart", UNIT]]
    (second_venv,) = venvs(m)
    assert second_venv != first_venv
    assert os.readlink(m.path("/opt/raspapi/venv")) == second_venv
    assert m.env_file.read_text() == env_text
    assert assert_serving(m, port, key) != pid

    # An upgrade whose service never gets healthy goes back to the previous venv.
    (m.state / "calls").unlink()
    result = m.run(
        "--yes",
        "--upgrade",
        "--wheel",
        str(wheel),
        "--health-timeout",
        "3",
        STUB_BROKEN_STARTS=str(m.starts() + 1),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolling back" in result.stderr
    assert venvs(m) == [second_venv]
    assert os.readlink(m.path("/opt/raspapi/venv")) == second_venv
    assert changes(m.state) == [["restart", UNIT], ["restart", UNIT]]
    assert m.env_file.read_text() == env_text
    assert_serving(m, port, key)

    # Uninstall: service, unit and venv go; the key and state stay.
    (m.state / "calls").unlink()
    result = m.run("--yes", "--uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(m.state) == [
        ["disable", "--now", UNIT],
        ["daemon-reload"],
        ["reset-failed", UNIT],
    ]
    assert daemon_pid(m.state) is None
    assert not unit.exists() and not os.path.lexists(link)
    assert not m.path("/opt/raspapi").exists()
    assert m.env_file.read_text() == env_text
    assert m.path("/var/lib/raspapi").is_dir()
    assert f"Kept {m.env_file}" in result.stdout

    # Again: nothing to do.
    (m.state / "calls").unlink()
    result = m.run("--yes", "--uninstall")
    assert result.returncode == 0 and "not installed" in result.stdout
    assert changes(m.state) == []

    # Purge: configuration, key and state go too.
    result = m.run("--yes", "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not m.env_file.exists() and not m.path("/var/lib/raspapi").exists()
    assert not m.path("/etc/raspap/api").exists()


@pytest.mark.integration
def test_replaces_raspap_restapi_in_place(machine: Machine, wheel: Path):
    m = machine
    port = free_port()
    old_unit = m.path(f"/lib/systemd/system/{UNIT}")
    old_unit.parent.mkdir(parents=True)
    old_unit.write_text(RASPAP_UNIT)
    wants = m.path(f"/etc/systemd/system/multi-user.target.wants/{UNIT}")
    wants.parent.mkdir(parents=True)
    wants.symlink_to(f"/lib/systemd/system/{UNIT}")
    m.env_file.parent.mkdir(parents=True)
    m.env_file.write_text(f"RASPAP_API_KEY={RASPAP_KEY}\n")
    m.env_file.chmod(0o644)
    m.path("/etc/raspap/api/main.py").write_text("app = FastAPI()\n")
    php = m.path("/var/www/html/includes/config.php")
    php.parent.mkdir(parents=True)
    php.write_text(RASPAP_CONFIG_PHP)
    subprocess.run([str(m.bin / "systemctl"), "start", UNIT], env=m.env, check=True, timeout=60)
    raspap_pid = daemon_pid(m.state)
    assert raspap_pid is not None
    (m.state / "calls").unlink()
    before = snapshot(m.root)

    # A failed attempt puts RaspAP's RestAPI back as it was, running.
    result = m.run(
        "--yes",
        "--wheel",
        str(wheel),
        "--port",
        str(port),
        "--health-timeout",
        "3",
        STUB_BROKEN_STARTS=str(m.starts() + 1),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RaspAP's RestAPI" in result.stdout
    after = snapshot(m.root)
    # Only the moved-and-restored unit and re-made link differ in their times.
    assert {k: v[3] for k, v in after.items()} == {k: v[3] for k, v in before.items()}
    assert old_unit.read_text() == RASPAP_UNIT
    assert stat.S_IMODE(m.env_file.stat().st_mode) == 0o644
    assert daemon_pid(m.state) is not None
    assert changes(m.state)[-1] == ["start", UNIT]

    # The real thing.
    (m.state / "calls").unlink()
    raspap_pid = daemon_pid(m.state)
    result = m.run("--yes", "--wheel", str(wheel), "--port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Replacing RaspAP's RestAPI" in result.stdout
    assert changes(m.state)[:2] == [["stop", UNIT], ["disable", UNIT]]
    assert changes(m.state)[2:] == [["daemon-reload"], ["enable", UNIT], ["restart", UNIT]]
    assert raspap_pid is not None and not alive(raspap_pid)
    saved = m.path(f"/var/backups/raspapi/{UNIT}.before-raspapi")
    assert saved.read_text() == RASPAP_UNIT and not old_unit.exists()
    assert f"saved as {saved}" in result.stdout
    assert os.readlink(wants) == f"/etc/systemd/system/{UNIT}"
    # RaspAP's key is kept, and the file is readable by root only.
    assert m.env_file.read_text() == (
        f"RASPAP_API_KEY={RASPAP_KEY}\nRASPAPI_HOST=0.0.0.0\nRASPAPI_PORT={port}\n"
    )
    assert stat.S_IMODE(m.env_file.stat().st_mode) == 0o600
    assert m.path("/etc/raspap/api/main.py").read_text() == "app = FastAPI()\n"
    assert "'RASPI_RESTAPI_ENABLED', true" in php.read_text()
    assert RASPAP_KEY not in result.stdout + result.stderr
    assert_serving(m, port, RASPAP_KEY)

    # Uninstall says how to go back to RaspAP's own unit.
    result = m.run("--yes", "--uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sudo cp {saved} /lib/systemd/system/{UNIT}" in result.stdout
    assert php.read_text() == RASPAP_CONFIG_PHP
    assert m.key() == RASPAP_KEY


def test_key_file_readable_by_raspaps_gui(machine: Machine, wheel: Path):
    # RaspAP's RestAPI page reads .env as www-data to show the key: where its GUI
    # is installed (/etc/raspap is www-data's), the file is root:www-data 0640.
    from tests.test_keys import raspap_gui

    m = machine
    port = free_port()
    m.env_file.parent.mkdir(parents=True)
    gid = raspap_gui(m.path("/etc/raspap"))
    m.env_file.write_text(f"RASPAP_API_KEY={RASPAP_KEY}\n")
    os.chown(m.env_file, 33, gid)  # as RaspAP's GUI leaves it after saving a key
    m.env_file.chmod(0o644)
    result = m.run("--yes", "--wheel", str(wheel), "--port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    st = m.env_file.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)
    assert "readable by root and RaspAP's GUI only" in result.stdout
    assert m.key() == RASPAP_KEY
    check = m.check()
    assert "key file mode 0640, group www-data" in check.stdout, check.stdout
    # A second run leaves it as it is.
    again = m.run("--yes", "--wheel", str(wheel), "--port", str(port))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Giving" not in again.stdout and "Making" not in again.stdout
    assert m.env_file.stat().st_mtime_ns == st.st_mtime_ns


# ---- raspapi check's install section -------------------------------------------------


def fake_install(root: Path, *, enabled: bool = True, python: str = sys.executable) -> None:
    """The files installer.sh leaves, made by hand."""
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    (unit_dir / UNIT).write_text((PROJECT / "systemd" / UNIT).read_text())
    if enabled:
        (unit_dir / "multi-user.target.wants").mkdir()
        (unit_dir / "multi-user.target.wants" / UNIT).symlink_to(f"/etc/systemd/system/{UNIT}")
    venv = root / "opt/raspapi/venv-1"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin/python").symlink_to(python)
    script = venv / "bin/raspapi-uvicorn"
    script.write_text(f"#!{venv}/bin/python\nfrom raspapi.cli import main\n")
    script.chmod(0o755)
    site = venv / "lib/python3.11/site-packages"
    (site / "raspapi").mkdir(parents=True)
    (site / "raspapi/__init__.py").write_text("")
    (site / f"raspapi-{__version__}.dist-info").mkdir()
    (root / "opt/raspapi/venv").symlink_to("venv-1")


def settings_for(root: Path, port: int) -> Settings:
    return Settings(env_file=root / ".env", root=root, port=port, host="0.0.0.0")


class Peer(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[int, type[Peer]]]:
    handler = type("Handler", (Peer,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def texts(findings: list[installation.Finding]) -> list[str]:
    return [("ok " if f.ok else "FAIL ") + f.text for f in findings]


def test_check_without_an_install_is_one_ok_line(tmp_path: Path):
    assert texts(installation.check(settings_for(tmp_path, free_port()))) == [
        "ok service: not installed as a service (installer.sh installs it)"
    ]
    unit = tmp_path / "lib/systemd/system" / UNIT
    unit.parent.mkdir(parents=True)
    unit.write_text(RASPAP_UNIT)
    (finding,) = installation.check(settings_for(tmp_path, free_port()))
    assert finding.ok and "belongs to another program" in finding.text


def test_check_a_good_install_with_the_service_stopped(tmp_path: Path):
    fake_install(tmp_path)
    port = free_port()
    assert texts(installation.check(settings_for(tmp_path, port))) == [
        f"ok unit {tmp_path}/etc/systemd/system/{UNIT}",
        "ok enabled at boot (multi-user.target)",
        f"ok venv {tmp_path}/opt/raspapi/venv intact (raspapi {__version__})",
        f"ok port {port} is free ({UNIT} is not running)",
    ]


def test_check_names_install_problems_and_fixes(tmp_path: Path):
    fake_install(tmp_path, enabled=False, python=str(tmp_path / "gone/python3"))
    findings = installation.check(settings_for(tmp_path, free_port()))
    failed = {f.text: f.fix for f in findings if not f.ok}
    assert failed == {
        f"{UNIT} is not enabled: it will not start at boot": f"systemctl enable --now {UNIT}",
        f"venv {tmp_path}/opt/raspapi/venv: its Python is gone "
        "(the system's Python was upgraded or removed)": "run installer.sh --upgrade",
    }
    (tmp_path / "etc/systemd/system" / UNIT).unlink()
    failed = {f.text: f.fix for f in installation.check(settings_for(tmp_path, 1)) if not f.ok}
    assert failed[f"{tmp_path}/opt/raspapi/venv exists but no raspapi {UNIT} runs it"] == (
        "run installer.sh again: it puts the unit back"
    )


def test_check_port_taken_by_another_program(tmp_path: Path, peer):
    port, handler = peer
    fake_install(tmp_path)
    handler.status, handler.body = 404, b'{"detail":"Not Found"}'
    finding = installation.check(settings_for(tmp_path, port))[-1]
    assert not finding.ok
    assert finding.text == (
        f"port {port} is taken by another program: GET /health answers 404, not raspapi's health"
    )
    assert f"ss -ltnp 'sport = :{port}'" in finding.fix


def test_check_port_ours_and_up_to_date_or_not(tmp_path: Path, peer):
    port, handler = peer
    fake_install(tmp_path)
    handler.body = json.dumps({"status": "ok", "version": __version__}).encode()
    finding = installation.check(settings_for(tmp_path, port))[-1]
    assert finding.ok and finding.text == f"port {port}: raspapi {__version__} answers"
    handler.body = b'{"status": "ok", "version": "0.0.1"}'
    finding = installation.check(settings_for(tmp_path, port))[-1]
    assert not finding.ok and finding.fix == f"systemctl restart {UNIT}"


def test_check_command_in_a_dev_run_passes_with_the_install_skipped(settings: Settings):
    from tests.test_cli import cli

    result = cli(settings, "check")
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok    service: not installed as a service") for line in lines)
    assert not any(re.match(r"FAIL  (unit|venv|port|.* is not enabled)", line) for line in lines)


def test_health_answer_is_http(tmp_path: Path):
    # Something that accepts connections but does not speak HTTP is "another program".
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        def talk() -> None:
            conn, _ = sock.accept()
            conn.sendall(b"SSH-2.0-OpenSSH\r\n")
            conn.close()

        thread = threading.Thread(target=talk, daemon=True)
        thread.start()
        fake_install(tmp_path)
        finding = installation.check(settings_for(tmp_path, port), timeout=2)[-1]
        thread.join(5)
    assert not finding.ok and "taken by another program" in finding.text

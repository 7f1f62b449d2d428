"""The raspapi command, run as a real process."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from raspapi.settings import Settings
from tests.conftest import KEY
from tests.test_plugins import HEALTHY

CLI = [sys.executable, "-m", "raspapi"]


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RASPAPI_", "RASPAP_"))}
    env.update(
        RASPAPI_ENV_FILE=str(settings.env_file),
        RASPAPI_ROOT=str(settings.root),
        RASPAPI_STATE_DIR=str(settings.state_dir),
        RASPAPI_PLUGINS_DIR=str(settings.plugins_dir),
        **extra,
    )
    return env


def cli(settings: Settings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env_for(settings, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keygen_prints_a_key_and_saves_only_when_asked(settings: Settings):
    result = cli(settings, "keygen")
    assert result.returncode == 0
    assert re.fullmatch(r"[0-9a-z]{32}\n", result.stdout)
    assert settings.env_file.read_text() == f"RASPAP_API_KEY={KEY}\n"
    saved = cli(settings, "keygen", "--save")
    key = saved.stdout.strip()
    assert settings.env_file.read_text() == f"RASPAP_API_KEY={key}\n"
    assert oct(settings.env_file.stat().st_mode & 0o777) == "0o600"
    assert str(settings.env_file) in saved.stderr


def test_plugins_lists_name_source_status_routes(settings: Settings):
    settings.plugins_dir.mkdir()
    (settings.plugins_dir / "greeter.py").write_text(HEALTHY)
    (settings.plugins_dir / "broken.py").write_text("raise RuntimeError('boom')\n")
    result = cli(settings, "plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "STATUS", "ROUTES"]
    greeter = next(line for line in lines if line.startswith("greeter "))
    assert "ok" in greeter and greeter.endswith("/api/v1/greeter")
    broken = next(line for line in lines if line.startswith("broken "))
    assert "failed: cannot load: RuntimeError: boom" in broken


def test_check_passes_on_a_good_install(settings: Settings):
    result = cli(settings, "check")
    assert result.returncode == 0, result.stdout
    assert "all good" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_check_accepts_a_key_file_raspaps_gui_can_read(settings: Settings):
    from tests.test_keys import raspap_gui

    gid = raspap_gui(settings.env_file.parent.parent)
    saved = cli(settings, "keygen", "--save")
    assert saved.returncode == 0, saved.stderr
    st = settings.env_file.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, gid)
    result = cli(settings, "check")
    assert result.returncode == 0, result.stdout
    assert "key file mode 0640, group www-data" in result.stdout
    # Group-readable by any other group, or by others, is still flagged.
    os.chown(settings.env_file, 0, 0)
    result = cli(settings, "check")
    assert result.returncode == 1
    assert "has mode 0640; others can read the key" in result.stdout
    os.chown(settings.env_file, 0, gid)
    settings.env_file.chmod(0o644)
    result = cli(settings, "check")
    assert "has mode 0644; others can read the key" in result.stdout
    assert "chgrp www-data and chmod 640" in result.stdout


def test_check_names_each_problem_and_its_fix(settings: Settings):
    settings.env_file.chmod(0o644)
    settings.plugins_dir.mkdir()
    (settings.plugins_dir / "broken.py").write_text("raise RuntimeError('boom')\n")
    result = cli(settings, "check")
    assert result.returncode == 1
    assert "has mode 0644" in result.stdout
    assert f"fix: chmod 600 {settings.env_file}" in result.stdout
    assert "fix: fix the plugin, or disable it with RASPAPI_DISABLE=broken" in result.stdout
    assert "2 problem(s)" in result.stdout


def test_check_without_a_key_file(settings: Settings):
    settings.env_file.unlink()
    result = cli(settings, "check")
    assert result.returncode == 1
    assert "fix: run `raspapi keygen --save`" in result.stdout


def test_bad_configuration_is_reported_not_raised(settings: Settings):
    result = cli(settings, "check", RASPAPI_PORT="eighty")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "raspapi: configuration error: RASPAPI_PORT='eighty' is not a whole number"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM the daemon, wait for it (SIGKILL after 15 s); its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return str(stderr)


@pytest.mark.integration
def test_serve_runs_the_daemon_and_stops_cleanly(settings: Settings):
    settings.env_file.unlink()  # first start: the daemon makes a key
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env_for(settings, RASPAPI_LOG_LEVEL="info"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = get(port, "/health")
                break
            except OSError:
                time.sleep(0.05)
        assert status == 200, "the daemon did not answer /health"
        key = settings.env_file.read_text().strip().split("=", 1)[1]
        assert get(port, "/", {"access_token": key})[0] == 200
        assert get(port, "/", {"access_token": "wrong"})[0] == 401
    finally:
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert str(settings.env_file) in stderr
    assert key not in stderr
    assert re.search(r"raspapi\.access: 127\.0\.0\.1 GET / 200 \d+\.\dms", stderr)
    assert all("Traceback" not in line for line in stderr.splitlines())

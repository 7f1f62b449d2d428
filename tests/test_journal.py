"""journalctl explains every failure: refusals with reasons (never a key),
failed actions with what failed, changes, the start-up summary, and floods
summarised. Through the app on uvloop, as the installed service runs."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from raspapi import __version__
from raspapi.app import announce_start, create_app
from raspapi.daemon.logs import Summary, describe_command_failure
from raspapi.host.runner import CommandFailed, CommandRunner
from raspapi.http.ratelimit import parse_rate_limits
from raspapi.settings import Settings
from tests.conftest import AUTH, KEY, MakeClient, loop_factory, run_on
from tests.test_cli import CLI, env_for, free_port
from tests.test_plugins import HEALTHY, dropin
from tests.test_wireguard import Keys, live_dump
from tests.wg_fixture import install_fake_wg

WRONG = "zyxwvutsrqponmlkjihgfedcba987654"


def started(settings: Settings, **changes: object) -> TestClient:
    """An app on uvloop, to use as a context manager: leaving it stops the app."""
    app = create_app(settings.with_(**changes))
    options = {"loop_factory": loop_factory("uvloop")}
    return TestClient(app, raise_server_exceptions=False, backend_options=options)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def access(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "raspapi.access"]


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for level, m in access(caplog) if level >= logging.WARNING]


def only_line(caplog: pytest.LogCaptureFixture, needle: str) -> tuple[int, str]:
    found = [(level, m) for level, m in access(caplog) if needle in m]
    assert len(found) == 1, (needle, access(caplog))
    return found[0]


def assert_no_secret(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in caplog.records:
        text = record.getMessage()
        for secret in secrets:
            assert secret not in text, f"a key reached the log: {text}"


def test_each_refusal_names_its_reason_and_never_the_key(
    make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    client = make_client(loop="uvloop", rate_limits=parse_rate_limits("auth=off"))
    created = client.post(
        "/api/v1/keys", json={"name": "grafana", "scopes": ["read"]}, headers=AUTH
    )
    grafana = created.json()["key"]
    other = client.post("/api/v1/keys", json={"name": "old", "scopes": ["read"]}, headers=AUTH)
    old = other.json()["key"]

    assert client.get("/system").status_code == 403
    assert client.get("/system", headers={"access_token": WRONG}).status_code == 403
    assert client.get("/api/v1/system", headers={"X-API-Key": WRONG}).status_code == 401
    bearer = {"Authorization": f"Bearer {WRONG}"}
    assert client.get("/api/v1/system", headers=bearer).status_code == 401
    reader = {"access_token": grafana}
    assert client.post("/api/v1/services/hostapd/restart", headers=reader).status_code == 403
    # Expired: the key's time runs out (its record is what lookup consults).
    record = client.app.state.runtime.keys.get(other.json()["id"])  # type: ignore[attr-defined]
    record.expires_at = time.time() - 1
    assert client.get("/system", headers={"access_token": old}).status_code == 403
    client.delete(f"/api/v1/keys/{created.json()['id']}", headers=AUTH)
    assert client.get("/system", headers=reader).status_code == 403

    expected = [
        ("GET /system 403", "refused: no key"),
        ("GET /system 403", "refused: unknown key (access_token)"),
        ("GET /api/v1/system 401", "refused: unknown key (X-API-Key)"),
        ("GET /api/v1/system 401", "refused: unknown key (Bearer)"),
        (
            "POST /api/v1/services/hostapd/restart 403",
            "refused: key 'grafana' lacks scope 'control'",
        ),
        ("GET /system 403", "refused: key 'old' expired"),
        ("GET /system 403", "refused: key 'grafana' revoked"),
    ]
    lines = problems(logged)
    for start, reason in expected:
        level, line = only_line(logged, reason)
        assert level == logging.WARNING
        assert re.fullmatch(rf"testclient {re.escape(start)} [\d.]+ms: {re.escape(reason)}", line)
    assert len(lines) == len(expected), lines
    assert_no_secret(logged, KEY, WRONG, grafana, old)


def test_rate_limits_and_auth_throttling_say_so(
    make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    client = make_client(
        loop="uvloop", rate_limits=parse_rate_limits("read=2/minute;auth=2/minute")
    )
    for _ in range(3):
        client.get("/system", headers=AUTH)
    assert client.get("/system", headers=AUTH).status_code == 429
    level, line = only_line(logged, "refused: rate limited: read 2/minute")
    assert level == logging.WARNING and " 429 " in line
    for _ in range(2):
        client.get("/api/v1/system", headers={"access_token": WRONG})
    assert client.get("/api/v1/system", headers=AUTH).status_code == 429
    assert only_line(logged, "refused: auth throttled")[0] == logging.WARNING
    assert_no_secret(logged, KEY, WRONG)


def test_a_flood_of_wrong_keys_makes_a_few_lines(
    settings: Settings, logged: pytest.LogCaptureFixture
):
    with started(settings) as client:  # default limits: auth 10/minute
        for _ in range(1000):
            client.get("/system", headers={"access_token": WRONG})
        assert client.get("/system", headers=AUTH).status_code == 429
        during = problems(logged)
        assert len(during) == 2, during  # the first of each reason
    # Stopping reports what the windows counted.
    lines = problems(logged)
    assert len(lines) <= 4, lines
    assert "refused: unknown key (access_token)" in lines[0]
    assert "refused: auth throttled" in lines[1]
    counts = [int(m.group(1)) for line in lines if (m := re.search(r": (\d+) more ", line))]
    assert sum(counts) + 2 == 1001, lines
    assert any(
        re.fullmatch(r"testclient: \d+ more refused requests in \d+ s: auth throttled", line)
        for line in lines
    ), lines
    assert_no_secret(logged, KEY, WRONG)


def test_failed_action_names_plugin_target_reason_exit_status_and_stderr(
    make_client: MakeClient, root: Path, logged: pytest.LogCaptureFixture
):
    (root / "fake/systemd/fail").mkdir()
    (root / "fake/systemd/fail/hostapd.service").write_text("")
    client = make_client(loop="uvloop")
    assert client.post("/api/v1/services/hostapd/restart", headers=AUTH).status_code == 502
    level, line = only_line(logged, "POST /api/v1/services/hostapd/restart 502")
    assert level == logging.ERROR
    assert "failed: plugin services; route POST /api/v1/services/{name}/restart" in line
    assert "target name=hostapd; key 'admin'" in line
    assert "answered action_failed: systemctl restart hostapd.service failed" in line
    assert "journalctl -xeu hostapd.service" in line  # stderr, told in the answer already
    assert line.endswith("; systemctl exited with status 1")

    # A control action that works: one INFO line saying what was done.
    assert client.post("/api/v1/services/dnsmasq/restart", headers=AUTH).status_code == 200
    level, line = only_line(logged, "POST /api/v1/services/dnsmasq/restart 200")
    assert level == logging.INFO
    assert "route POST /api/v1/services/{name}/restart; target name=dnsmasq; key 'admin'" in line
    assert_no_secret(logged, KEY)


def test_a_wireguard_peer_that_could_not_be_added_says_why(
    make_client: MakeClient, root: Path, tmp_path: Path, logged: pytest.LogCaptureFixture
):
    """The issue's case: `wg set` fails; the journal says which interface and why."""
    fake_wg = install_fake_wg(root, tmp_path / "fake")
    fake_wg.set_dump(live_dump(Keys(root)))
    fake_wg.fail()
    client = make_client(loop="uvloop")
    response = client.post("/api/v1/wireguard/wg0/peers", json={"name": "phone"}, headers=AUTH)
    assert response.status_code == 502
    level, line = only_line(logged, "POST /api/v1/wireguard/wg0/peers 502")
    assert level == logging.ERROR
    assert (
        "failed: plugin wireguard; route POST /api/v1/wireguard/{interface}/peers; "
        "target interface=wg0; key 'admin'; answered apply_failed: wg set wg0 failed "
        "(exited with status 1: Unable to modify interface: Operation not permitted); "
        "the config was left unchanged; wg exited with status 1"
    ) in line
    assert_no_secret(logged, KEY, *fake_wg.stdin_log.read_text().split())


def test_change_lines_carry_the_audit_detail_and_conflicts_warn(
    make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    client = make_client(loop="uvloop")
    body = {"name": "grafana", "scopes": ["read"]}
    created = client.post("/api/v1/keys", json=body, headers=AUTH)
    assert created.status_code == 201
    level, line = only_line(logged, "POST /api/v1/keys 201")
    assert level == logging.INFO
    assert line.endswith(f"created key 'grafana' ({created.json()['id']}) with scopes read")
    assert client.post("/api/v1/keys", json=body, headers=AUTH).status_code == 409
    level, line = only_line(logged, "POST /api/v1/keys 409")
    assert level == logging.WARNING
    assert "answered name_taken: an active key is already named 'grafana'" in line
    assert_no_secret(logged, KEY, created.json()["key"])


def test_5xx_on_a_read_route_warns_once_a_minute(
    settings: Settings, logged: pytest.LogCaptureFixture
):
    with started(settings) as client:
        for _ in range(5):
            assert client.get("/api/v1/hostapd", headers=AUTH).status_code == 503
        level, line = only_line(logged, "GET /api/v1/hostapd 503")
        assert level == logging.WARNING
        assert "plugin hostapd; route GET /api/v1/hostapd; key 'admin'" in line
        assert (
            "answered unavailable: plugin 'hostapd' is unavailable: hostapd is not running" in line
        )
    assert problems(logged)[-1].startswith("testclient: 4 more failed GET /api/v1/hostapd in "), (
        problems(logged)
    )


def test_a_500_is_logged_once_with_its_traceback(
    settings: Settings, make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    dropin(
        settings,
        "buggy",
        """
        from raspapi import hookimpl
        from raspapi.http.routing import ApiRoute

        async def boom(request):
            return {}["missing"]

        @hookimpl
        def raspapi_routes(ctx):
            return [ApiRoute("/", boom)]
        """,
    )
    client = make_client(loop="uvloop")
    assert client.get("/api/v1/buggy", headers=AUTH).status_code == 500
    errors = [r for r in logged.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "plugin 'buggy' raised on GET /api/v1/buggy" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_ordinary_lines_follow_the_access_log_setting(
    make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    quiet = make_client(loop="uvloop", access_log=False)
    assert quiet.get("/system", headers=AUTH).status_code == 200
    assert quiet.get("/nowhere").status_code == 404
    assert access(logged) == []
    assert quiet.get("/system").status_code == 403  # a refusal is logged either way
    assert len(access(logged)) == 1
    logged.clear()
    loud = make_client(loop="uvloop", access_log=True)
    assert loud.get("/system", headers=AUTH).status_code == 200
    ((level, line),) = access(logged)
    assert level == logging.INFO
    assert re.fullmatch(r"testclient GET /system 200 [\d.]+ms", line)


def test_the_daemon_starts_with_a_summary_and_no_warning(settings: Settings, tmp_path: Path):
    """The real ``raspapi serve``: once it listens, one line says what runs, and a
    clean start logs nothing at WARNING or above (``journalctl -p warning`` is empty)."""
    port = free_port()
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            env=env_for(settings, RASPAPI_LOG_LEVEL="info"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if f" on 127.0.0.1:{port}; " in stderr_path.read_text():
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"no start-up summary: {stderr_path.read_text()}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lines = stderr_path.read_text().splitlines()
    (line,) = [line for line in lines if f" on 127.0.0.1:{port}; " in line]
    assert f" INFO raspapi: raspapi {__version__} on 127.0.0.1:{port}; " in line
    assert f"; key file {settings.env_file} (mode 0600); " in line
    assert re.search(r"; plugins: \d+ ok, 2 unavailable \(hostapd, wifi\)$", line), line
    assert not [line for line in lines if re.search(r" (WARNING|ERROR|CRITICAL) ", line)]
    assert proc.returncode == 0


def test_start_up_summary_names_failed_plugins_and_a_loose_key_file(
    settings: Settings, make_client: MakeClient, logged: pytest.LogCaptureFixture
):
    dropin(settings, "greeter", HEALTHY)
    dropin(settings, "broken", "raise RuntimeError('no coffee')\n")
    settings.env_file.chmod(0o644)
    client = make_client(loop="uvloop")
    assert client.portal is not None
    client.portal.call(announce_start, client.app.state.runtime)  # type: ignore[attr-defined]
    (line,) = [r.getMessage() for r in logged.records if r.getMessage().startswith("raspapi 0")]
    assert line.startswith(f"raspapi {__version__} on 127.0.0.1:8081; ")
    assert "(mode 0644)" in line
    assert re.search(
        r"; plugins: \d+ ok, 1 failed \(broken\), 2 unavailable \(hostapd, wifi\)$", line
    )
    assert any(
        r.levelno == logging.WARNING and "is readable by others (mode 0644)" in r.getMessage()
        for r in logged.records
    )


def test_a_program_failure_adds_its_status_and_the_stderr_the_answer_left_out(
    loop_name: str,
):
    async def fail() -> CommandFailed:
        runner = CommandRunner()
        script = "echo 'wg: Unable to modify interface' >&2; echo 'try again' >&2; exit 3"
        with pytest.raises(CommandFailed) as caught:
            await runner.run(["sh", "-c", script])
        return caught.value

    exc = run_on(loop_name, fail())
    told = "wg set wg0 failed (sh: exited with status 3: wg: Unable to modify interface)"
    assert describe_command_failure(exc, told) == "sh exited with status 3; stderr: 'try again'"
    assert describe_command_failure(exc) == (
        "sh exited with status 3; stderr: 'wg: Unable to modify interface | try again'"
    )
    exc.stderr = b"x" * 10_000 + b"\x1b[31mend"
    text = describe_command_failure(exc)
    assert text.endswith("%1B[31mend'") and len(text) < 400


# -- the summary on its own ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_summary_counts_per_caller_and_reports_when_the_window_ends(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    clock = Clock()
    summary = Summary(logging.getLogger("test.summary"), window=60, clock=clock)
    assert summary.admit("10.0.0.5", "refused requests", "no key")
    assert summary.admit("10.0.0.6", "refused requests", "no key")
    assert summary.admit("10.0.0.5", "refused requests", "auth throttled")
    for _ in range(5):
        assert not summary.admit("10.0.0.5", "refused requests", "no key")
    clock.now += 61
    assert summary.admit("10.0.0.5", "refused requests", "no key")  # a new window
    assert caplog.messages == ["10.0.0.5: 5 more refused requests in 60 s: no key"]
    summary.flush(clock.now)
    assert len(caplog.messages) == 1  # nothing else was repeated
    summary.close()
    assert len(summary) == 0


def test_summary_table_is_bounded(caplog: pytest.LogCaptureFixture):
    clock = Clock()
    summary = Summary(logging.getLogger("test.summary"), window=60, max_windows=3, clock=clock)
    admitted = [summary.admit(f"10.0.0.{i}", "refused requests", "no key") for i in range(50)]
    assert admitted[:4] == [True, True, True, True]  # the 4th opens "other callers"
    assert not any(admitted[4:])
    assert len(summary) == 4
    summary.close()
    assert caplog.messages[-1] == "other callers: 46 more refused requests in 0 s: no key"


def test_summary_reports_by_itself_when_the_window_ends(
    loop_name: str, caplog: pytest.LogCaptureFixture
):
    """No later request is needed: a timer on the event loop closes the window."""
    caplog.set_level(logging.INFO)
    summary = Summary(logging.getLogger("test.summary"), window=0.2)

    async def flood() -> None:
        for _ in range(10):
            summary.admit("10.0.0.5", "refused requests", "no key")
        await asyncio.sleep(0.1)
        assert caplog.messages == []
        for _ in range(50):  # bounded: 5 s at most
            await asyncio.sleep(0.1)
            if caplog.messages:
                break

    run_on(loop_name, flood())
    assert caplog.messages == ["10.0.0.5: 9 more refused requests in 0 s: no key"]
    assert len(summary) == 0
    summary.close()

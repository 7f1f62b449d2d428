"""An idle daemon stays idle (issue 16): no program without a reason, no tick
without a client, no parse of output that did not change."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from raspapi.app import create_app
from raspapi.daemon.server import SUMMARY_DELAY
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient
from tests.test_cli import CLI, env_for, free_port, get, stop
from tests.wg_fixture import FakeWg, install_fake_wg

WG = "/api/v1/wireguard"


@pytest.fixture
def quiet_wg(root: Path, tmp_path: Path) -> FakeWg:
    """The recording ``wg``, on a machine where no WireGuard interface exists."""
    fake = install_fake_wg(root, tmp_path / "fake")
    (root / "var/run/wireguard/wgfake.sock").unlink()
    return fake


DUMP = "wg0\tcHJpdmF0ZQ==\tcHVibGlj\t51820\toff\n"


def test_wg_runs_only_when_an_interface_exists(
    make_client: MakeClient, loop_name: str, root: Path, quiet_wg: FakeWg
) -> None:
    quiet_wg.set_dump(DUMP)
    client = make_client(loop=loop_name, cache_ttl=0)
    for _ in range(3):
        assert client.get(WG, headers=AUTH).status_code in (200, 503)
        assert client.get("/wireguard", headers=AUTH).status_code == 200
    assert quiet_wg.calls().count("show all dump") == 0

    # A kernel interface: sysfs says so.
    wg0 = root / "sys/class/net/wg0"
    wg0.mkdir(parents=True)
    (wg0 / "uevent").write_text("DEVTYPE=wireguard\nINTERFACE=wg0\nIFINDEX=9\n")
    deadline = time.monotonic() + 10
    names: list[str] = []
    while time.monotonic() < deadline and "wg0" not in names:
        body = client.get(WG, headers=AUTH).json()
        names = [i["name"] for i in body.get("interfaces", [])]
        time.sleep(0.05)
    assert "wg0" in names
    assert quiet_wg.calls().count("show all dump") >= 1


def test_a_userspace_socket_or_a_kernel_uevent_means_an_interface(
    settings: Settings, root: Path, quiet_wg: FakeWg
) -> None:
    from raspapi.plugins.wireguard.service import WireGuard

    manager = create_app(settings).state.runtime.manager
    service = WireGuard(manager.plugins["wireguard"].ctx)
    assert service.interfaces_exist() is False
    # A regular file named like a socket is not one; nor is another device type.
    folder = root / "var/run/wireguard"
    (folder / "wg1.sock").write_text("")
    eth = root / "sys/class/net/eth0/uevent"
    eth.write_text("DEVTYPE=wireguardish\nINTERFACE=eth0\n")
    assert service.interfaces_exist() is False
    (folder / "wg1.sock").unlink()
    os.mknod(folder / "wg1.sock", 0o140600)
    assert service.interfaces_exist() is True


def test_unchanged_wg_output_is_not_parsed_again(
    make_client: MakeClient, loop_name: str, root: Path, tmp_path: Path, monkeypatch
) -> None:
    import raspapi.plugins.wireguard.service as service

    fake = install_fake_wg(root, tmp_path / "fake")
    fake.set_dump(DUMP)
    parsed: list[str] = []
    real = service.parse_dump

    def counting(text: str):
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(service, "parse_dump", counting)
    client = make_client(loop=loop_name, cache_ttl=0)
    deadline = time.monotonic() + 10
    while fake.calls().count("show all dump") < 4 and time.monotonic() < deadline:
        assert client.get(WG, headers=AUTH).status_code == 200
        time.sleep(0.02)
    assert fake.calls().count("show all dump") >= 4
    assert len(parsed) == 1
    fake.set_dump(DUMP.replace("51820", "51821"))
    port = 51820
    while port != 51821 and time.monotonic() < deadline:
        port = client.get(f"{WG}/wg0", headers=AUTH).json()["listen_port"]
        time.sleep(0.02)
    assert port == 51821
    assert len(parsed) == 2


# -- the daemon, as systemd runs it ---------------------------------------------------


def _strace() -> str:
    found = shutil.which("strace")
    if found is None:
        message = "strace is needed to count the daemon's wake-ups (apt-get install strace)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _trace(strace: str, pid: int, seconds: float, *args: str) -> str:
    proc = subprocess.Popen(
        [strace, "-f", "-qq", *args, "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    return err


def _serve(settings: Settings, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env_for(settings, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    status = 0
    while time.monotonic() < deadline and proc.poll() is None and status != 200:
        try:
            status, _ = get(port, "/system", AUTH)
        except OSError:
            time.sleep(0.05)
    if status != 200:
        _stop(proc)
        pytest.fail("the daemon did not answer /system")
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> None:
    stderr = stop(proc)
    assert proc.returncode == 0, stderr


@pytest.mark.integration
def test_an_idle_daemon_does_not_wake(settings: Settings) -> None:
    """No client and no sample due: the event loop sleeps (uvicorn alone would
    wake ten times a second)."""
    strace = _strace()
    proc, _ = _serve(settings, RASPAPI_HISTORY_INTERVAL="3600")
    try:
        # The client's connection closes; start-up work (the summary's
        # self-checks, SUMMARY_DELAY after listening) settles.
        time.sleep(SUMMARY_DELAY + 1.0)
        calls = _trace(strace, proc.pid, 3.0, "-c", "-e", "trace=epoll_wait,epoll_pwait")
        epoll = sum(
            int(line.split()[3])
            for line in calls.splitlines()
            if line.split() and line.split()[-1] in ("epoll_wait", "epoll_pwait")
        )
        assert epoll <= 3, calls
    finally:
        _stop(proc)


@pytest.mark.integration
def test_samples_start_no_program_without_wireguard(settings: Settings) -> None:
    """The sampler (every 0.5 s here) starts no program on a machine without a
    WireGuard interface (the fixture machine has configs, no interface)."""
    strace = _strace()
    proc, port = _serve(settings, RASPAPI_HISTORY_INTERVAL="0.5")
    try:
        # Once per config and then remembered: the public key of a config
        # whose interface is down (`wg pubkey`).
        assert get(port, "/api/v1/wireguard", AUTH)[0] in (200, 503)
        # The start-up summary's self-checks (systemctl, SUMMARY_DELAY after
        # listening) are over before the trace starts.
        time.sleep(SUMMARY_DELAY + 1.0)
        execs = _trace(strace, proc.pid, 3.0, "-e", "trace=execve", "-e", "signal=none")
        assert "execve(" not in execs, execs
        # ... while samples were being taken.
        status, body = get(port, "/api/v1/history/metrics", AUTH)
        assert status == 200, body
        assert b"disk.root.percent" in body, body
    finally:
        _stop(proc)


@pytest.mark.integration
def test_the_date_header_is_fresh_after_a_quiet_spell(settings: Settings) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                get(port, "/health")
                break
            except OSError:
                time.sleep(0.05)
        for pause in (0.0, 2.5):
            time.sleep(pause)
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            conn.close()
            date = parsedate_to_datetime(response.headers["date"]).timestamp()
            assert abs(date - time.time()) < 2.0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_a_failed_vcgencmd_is_remembered(
    make_client: MakeClient, loop_name: str, root: Path, tmp_path: Path
) -> None:
    log = tmp_path / "vcgencmd.log"
    script = root / "usr/bin/vcgencmd"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f'#!/bin/sh\necho "$*" >> "{log}"\necho "VCHI initialization failed" >&2\nexit 255\n'
    )
    script.chmod(0o755)
    client = make_client(loop=loop_name, cache_ttl=0)
    for _ in range(3):
        body = client.get("/api/v1/thermal", headers=AUTH).json()
        assert body["throttling"]["source"] == "sysfs"
    assert log.read_text().splitlines() == ["get_throttled"]


def test_the_key_flusher_sleeps_until_a_key_is_used(tmp_path: Path, loop_name: str) -> None:
    import asyncio
    import contextlib

    from raspapi.security.keystore import KeyStore
    from raspapi.state.coredb import MIGRATIONS
    from raspapi.state.storage import Store
    from tests.conftest import run_on

    store = Store(tmp_path / "raspapi.db", MIGRATIONS)
    keys = KeyStore(store, flush_interval=0.05)
    flushes: list[int] = []
    real_flush = keys.flush

    async def counting_flush() -> None:
        flushes.append(len(keys._dirty))
        await real_flush()

    keys.flush = counting_flush  # type: ignore[method-assign]

    async def scenario() -> tuple[list[int], list[int], float | None]:
        await keys.load()
        record, key = await keys.create("poller", ["read"])
        task = asyncio.create_task(keys.run_flusher())
        await asyncio.sleep(0.4)  # eight intervals with no key used
        idle = list(flushes)
        assert keys.lookup(key) is not None
        for _ in range(40):
            if flushes:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # and it goes back to sleep
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stored = await store.run(
            lambda conn: conn.execute(
                "SELECT last_used_at FROM api_keys WHERE id = ?", (record.id,)
            ).fetchone()[0]
        )
        return idle, list(flushes), stored

    try:
        idle, after, stored = run_on(loop_name, scenario())
    finally:
        store.close()
    assert idle == []
    assert after == [1]
    assert stored is not None


# -- psutil ---------------------------------------------------------------------------


def test_psutil_lists_the_addresses_ip_lists() -> None:
    """On the machine itself the networking plugin reads addresses through psutil
    (getifaddrs): the same as ``ip -j address show`` prints, scope included."""
    from raspapi.plugins.networking.service import parse_ip_addresses, psutil_addresses

    if shutil.which("ip") is None:
        pytest.fail("ip (iproute2) is needed to compare with")
    mismatch: dict[str, object] = {}
    for _ in range(5):  # other tests may add or remove interfaces meanwhile
        ours = psutil_addresses()
        shown = subprocess.run(
            ["ip", "-j", "address", "show"], capture_output=True, text=True, timeout=10
        ).stdout
        theirs = parse_ip_addresses(shown)
        mismatch = {
            name: (ours[name], theirs[name])
            for name in set(ours) & set(theirs)
            if ours[name] != theirs[name]
        }
        if not mismatch and "lo" in ours:
            break
        time.sleep(0.2)
    assert not mismatch
    assert [(a.family, a.address, a.prefix_length, a.scope) for a in ours["lo"]][:1] == [
        ("inet", "127.0.0.1", 8, "host")
    ]


def test_addresses_of_the_machine_itself_start_no_program(
    settings: Settings, loop_name: str
) -> None:
    from raspapi.plugins.networking.service import read_addresses

    from tests.conftest import run_on

    ctx = create_app(settings.with_(root=Path("/"))).state.runtime.manager.plugins["networking"].ctx

    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a program was started: {args}")

    ctx.runner.run = refuse
    addresses, error = run_on(loop_name, read_addresses(ctx))
    assert error is None
    assert any(a.address == "127.0.0.1" for a in addresses["lo"])


def test_history_and_usage_samplers_wake_together(make_client: MakeClient) -> None:
    import asyncio

    client = make_client(history_interval=0.2)
    plugins = client.app.state.runtime.manager.plugins  # type: ignore[attr-defined]
    samplers = {
        "history": plugins["history"].ctx.state["__service__"],
        "usage": plugins["usage"].ctx.state["__service__"],
    }
    ticks: dict[str, list[float]] = {name: [] for name in samplers}

    def recorder(name: str) -> object:
        async def tick() -> None:
            ticks[name].append(asyncio.get_running_loop().time())

        return tick

    for name, sampler in samplers.items():
        sampler.tick = recorder(name)
    for _ in range(100):  # at most 5 s
        if all(len(times) >= 3 for times in ticks.values()):
            break
        time.sleep(0.05)
    history, usage = ticks["history"][:3], ticks["usage"][:3]
    assert len(history) == len(usage) == 3
    for moment in history + usage:  # on the loop clock's multiples of the interval
        assert abs(moment - round(moment / 0.2) * 0.2) < 0.05
    # one wake-up serves both: each usage tick is one of history's
    assert any(abs(usage[0] - h) < 0.05 for h in history)

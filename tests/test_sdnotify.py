"""sd_notify against a real datagram socket, as systemd listens; no-op without it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from raspapi.daemon.sdnotify import Notifier, next_ping
from raspapi.settings import Settings
from tests.test_cli import CLI, env_for, free_port, get


@pytest.fixture
def listener(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_seconds is None


def test_messages_reach_the_socket(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.ready("serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_watchdog_pings_from_the_event_loop(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "300000"})
    assert notifier.watchdog_seconds == 0.3

    async def main() -> None:
        task = asyncio.ensure_future(notifier.watchdog())
        await asyncio.sleep(0.35)
        task.cancel()

    asyncio.run(main())
    pings = []
    sock.settimeout(0.1)
    for _ in range(10):
        try:
            pings.append(sock.recv(4096))
        except TimeoutError:
            break
    # One ping at once, then one on each multiple of 0.1 s on the loop clock (the
    # first of them may come just after the first ping): 2 to 5 in 0.35 s.
    assert 2 <= len(pings) <= 5 and set(pings) == {b"WATCHDOG=1"}


def test_watchdog_pings_land_on_the_samplers_clock_grid():
    # Every 10 s on the loop clock's multiples of 10, as the samplers wake.
    assert next_ping(None, 1234.5, 10.0) == 1240.0
    assert next_ping(1240.0, 1239.999, 10.0) == 1250.0  # woke a little early: no double ping
    assert next_ping(1240.0, 1240.002, 10.0) == 1250.0
    assert next_ping(1240.0, 1253.0, 10.0) == 1260.0  # fell behind (suspended): realign
    assert next_ping(None, 20.0, 10.0) == 30.0


def test_watchdog_for_another_pid_is_not_ours():
    notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_seconds is None or os.getpid() == 1


@pytest.mark.integration
def test_daemon_reports_ready_after_listening_and_stopping(listener, settings: Settings):
    path, sock = listener
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env_for(settings, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="2000000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = sock.recv(4096)
        assert ready.startswith(b"READY=1")
        # READY means the port already accepts connections.
        assert get(port, "/health")[0] == 200
        assert sock.recv(4096) == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        messages = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"STOPPING=1" not in messages:
            messages.append(sock.recv(4096))
        assert b"STOPPING=1" in messages
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)

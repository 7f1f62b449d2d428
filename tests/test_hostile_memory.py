"""The daemon's memory under hostile load (issue 13), as a process: its RSS
stays within a bound over shuffled-field ingest batches, random WireGuard
interface names, random client addresses and oversized request heads.

Prints one line per attack (RSS before and after, and the bound): the figures
BENCHMARKS.md quotes come from `pytest -s tests/test_hostile_memory.py`.
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from raspapi.settings import Settings
from tests.conftest import KEY
from tests.test_cli import CLI, env_for, free_port
from tests.wg_fixture import install_fake_wg

pytestmark = pytest.mark.integration

#: Requests per attack: enough to show growth (the old statement cache grew
#: about 12 kB a batch), bounded in time on a 2-core machine.
N = 1200
#: MB an attack may add to the daemon's RSS (allocator slack, caches filling).
BOUND_MB = 12.0


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port)],
            env=env_for(
                settings,
                RASPAPI_RATE_LIMITS="read=1000000/minute;ingest=1000000/minute;"
                "control=1000000/minute;admin=1000000/minute;open=1000000/minute",
                RASPAPI_ACCESS_LOG="off",
                RASPAPI_LOG_LEVEL="warning",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the daemon did not answer /health within 30 s")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = KEY,
        source: str = "127.0.0.1",
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(source, 0)
        )
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"}
            if key:
                headers["access_token"] = key
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _big_head(port: int, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # refused and closed: what should happen


def test_rss_stays_bounded_under_hostile_load(settings: Settings, root: Path, tmp_path: Path):
    install_fake_wg(root, tmp_path / "fake").set_dump("")
    daemon = Daemon(settings)
    try:
        status, made = daemon.request(
            "POST", "/api/v1/keys", {"name": "esp", "scopes": ["ingest", "read"]}
        )
        assert status == 201
        token = made["key"]
        status, series = daemon.request(
            "PUT", "/series/new", {"token": token, "device_id": "d", "device_desc": "e"}, key=None
        )
        assert status == 201
        names = [f"f{i}" for i in range(16)]
        rng = random.Random(13)

        def shuffled(i: int) -> None:
            rng.shuffle(names)
            point = {"fields": {n: float(i) for n in names}}
            code, _ = daemon.request(
                "POST", f"/api/v1/sensors/series/{series}/points", {"points": [point]}, key=token
            )
            assert code == 201

        def lock_names(i: int) -> None:
            name = "x" + secrets.token_hex(6)
            code, _ = daemon.request("POST", f"/api/v1/wireguard/{name}/peers", {"name": "p"})
            assert code in (404, 503), code

        def addresses(i: int) -> None:
            source = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            code, _ = daemon.request("GET", "/health", key=None, source=source)
            assert code == 200

        def big_heads(i: int) -> None:
            if i < 40:
                _big_head(daemon.port, 4 << 20)

        # Warm up every path once (imports, first statements, caches).
        for attack in (shuffled, lock_names, addresses):
            for i in range(50):
                attack(i)
        figures = []
        for name, attack in (
            ("shuffled-field batches", shuffled),
            ("random WireGuard names", lock_names),
            ("random client addresses", addresses),
            ("4 MB request heads (40)", big_heads),
        ):
            before = daemon.rss_mb()
            for i in range(N):
                attack(i)
            after = daemon.rss_mb()
            figures.append((name, before, after))
            print(
                f"\n{name}: RSS {before:.1f} -> {after:.1f} MB "
                f"(+{after - before:.1f}; bound +{BOUND_MB:g})"
            )
        assert daemon.request("GET", "/health")[0] == 200
        for name, before, after in figures:
            assert after - before <= BOUND_MB, (name, before, after)
        print(f"peak RSS at the end: {daemon.rss_mb():.1f} MB")
    finally:
        daemon.stop()

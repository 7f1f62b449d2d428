"""kill -9 of the real daemon while devices push batches: the store stays consistent."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from raspapi.settings import Settings
from tests.conftest import KEY
from tests.test_cli import CLI, env_for, free_port

BATCH = 500
ROUNDS = 3


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port)],
            env=env_for(
                settings,
                RASPAPI_RATE_LIMITS="off",
                RASPAPI_ACCESS_LOG="off",
                RASPAPI_LOG_LEVEL="warning",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the daemon did not answer /health within 30 s")

    def request(self, method: str, path: str, body: Any = None, key: str = KEY) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"access_token": key, "Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()


def check_store(path: Path, series: int) -> dict[int, int]:
    """The store's own consistency; returns the points stored per batch id."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        fields = json.loads(
            conn.execute("SELECT fields FROM series WHERE id = ?", (series,)).fetchone()[0]
        )
        slot = fields.index("batch")
        counts = dict(
            conn.execute(
                f"SELECT CAST(v{slot} AS INTEGER), count(*) FROM points WHERE series_id = ? "
                f"GROUP BY v{slot}",
                (series,),
            ).fetchall()
        )
        total = conn.execute(
            "SELECT count(*) FROM points WHERE series_id = ?", (series,)
        ).fetchone()[0]
        # What each batch's transaction also wrote agrees with the points.
        assert conn.execute(
            "SELECT point_count FROM series WHERE id = ?", (series,)
        ).fetchone() == (total,)
        for level in (1, 2):
            rolled = conn.execute(
                f"SELECT coalesce(sum(n{slot}), 0) FROM rollups WHERE series_id = ? AND level = ?",
                (series, level),
            ).fetchone()[0]
            assert rolled == total, f"level {level} rollups count {rolled} of {total} points"
        next_id = conn.execute("SELECT value FROM meta WHERE key = 'next_point_id'").fetchone()[0]
        assert next_id > (conn.execute("SELECT max(id) FROM points").fetchone()[0] or 0)
        return counts
    finally:
        conn.close()


@pytest.mark.integration
def test_kill_9_during_ingest_keeps_every_batch_whole(settings: Settings):
    daemon = Daemon(settings)
    status, created = daemon.request(
        "POST", "/api/v1/keys", {"name": "crash-device", "scopes": ["ingest"]}
    )
    assert status == 201
    device = created["key"]
    status, series_body = daemon.request("POST", "/api/v1/sensors/series", {}, key=device)
    assert status == 201
    series = series_body["id"]
    db = settings.state_dir / "sensors.db"
    numbers = itertools.count(1)
    acknowledged: set[int] = set()
    attempted: set[int] = set()
    base = time.time() - 86400

    lock = threading.Lock()

    def pusher(d: Daemon, stop: threading.Event) -> None:
        for _ in range(100_000):  # bounded; stops at the kill
            if stop.is_set():
                return
            with lock:
                batch = next(numbers)
                attempted.add(batch)
            points = [
                {"at": base + batch + i / 1000, "fields": {"batch": batch, "v": i * 0.5}}
                for i in range(BATCH)
            ]
            try:
                status, _ = d.request(
                    "POST",
                    f"/api/v1/sensors/series/{series}/points",
                    {"points": points},
                    device,
                )
            except (OSError, http.client.HTTPException):
                return  # the daemon is gone
            if status == 201:
                with lock:
                    acknowledged.add(batch)

    for round_ in range(ROUNDS):
        stop = threading.Event()
        threads = [threading.Thread(target=pusher, args=(daemon, stop)) for _ in range(3)]
        for thread in threads:
            thread.start()
        target = len(acknowledged) + 20
        deadline = time.monotonic() + 30
        while len(acknowledged) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acknowledged) >= target, "the daemon stored too few batches"
        time.sleep(0.013 * (round_ + 1))  # somewhere inside a batch, not on a boundary
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        stop.set()
        for thread in threads:
            thread.join(15)
            assert not thread.is_alive()

        counts = check_store(db, series)
        # Every batch is whole or absent; every acknowledged batch is there.
        assert {n for n, c in counts.items() if c != BATCH} == set()
        assert acknowledged <= set(counts) <= attempted
        # The daemon starts again on that store, and goes on storing.
        daemon = Daemon(settings)
        status, info = daemon.request("GET", f"/api/v1/sensors/series/{series}")
        assert status == 200 and info["point_count"] == BATCH * len(counts)

    status, _ = daemon.request(
        "POST",
        f"/api/v1/sensors/series/{series}/points",
        {"points": [{"at": base, "fields": {"batch": 0, "v": 0}}]},
        device,
    )
    assert status == 201
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    counts = check_store(db, series)
    assert counts[0] == 1

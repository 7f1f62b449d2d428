"""GET /api/v1/events: snapshot, events, heartbeats, watches, slow consumers, shutdown."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.daemon.runtime import Runtime
from raspapi.events.bus import QUEUE_SIZE, Event, EventBus, Subscription
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient
from tests.test_cli import CLI, env_for, free_port, get

WAIT = 10.0  # every wait in this file is bounded by this many seconds


class Stream:
    """An open event stream read by a thread into a queue, so every read has a timeout."""

    def __init__(self, client: TestClient, headers: dict[str, str] | None = None) -> None:
        self._cm = client.stream(
            "GET", "/api/v1/events", headers=AUTH if headers is None else headers
        )
        self.response = self._cm.__enter__()
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> Stream:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                self.lines.put(line)
        except Exception:  # closed under us
            pass
        finally:
            self.lines.put(None)

    def next(self) -> tuple[str, Any]:
        """The next event as (type, data); a comment as ("comment", text); ("end", None)."""
        fields: dict[str, str] = {}
        deadline = time.monotonic() + WAIT
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                return ("end", None)
            if line.startswith(":"):
                return ("comment", line[1:].strip())
            if line == "":
                if "event" in fields:
                    data: Any = json.loads(fields["data"]) if "data" in fields else None
                    if "id" in fields:
                        data["_id"] = int(fields["id"])
                    return (fields["event"], data)
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

    def until(self, wanted: Callable[[str, Any], bool]) -> tuple[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            kind, data = self.next()
            if wanted(kind, data):
                return kind, data
            assert kind != "end", "the stream ended first"
        raise AssertionError("no such event in time")

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        if self._thread is not None:
            self._thread.join(WAIT)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def runtime_of(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_snapshot_then_a_published_event(client: TestClient, streams: list[Stream]):
    stream = Stream(client).start()
    streams.append(stream)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.response.headers["cache-control"] == "no-store"
    kind, snapshot = stream.next()
    assert kind == "snapshot"
    ready = client.get("/ready", headers=AUTH).json()["plugins"]
    assert snapshot["plugins"] == {
        name: {"state": p["state"], "reason": p["reason"]} for name, p in ready.items()
    }
    assert snapshot["station_count"] == len(snapshot["stations"])
    assert snapshot["at"].endswith("Z")

    bus = runtime_of(client).events
    bus.publish("test.hello", {"n": 1})  # from this thread: handed to the app's loop
    kind, data = stream.next()
    assert kind == "test.hello"
    assert data["n"] == 1 and data["at"].endswith("Z") and data["_id"] >= 1
    bus.publish("test.hello", {"n": 2})
    assert stream.next()[1]["n"] == 2


def test_every_stream_gets_every_event(client: TestClient, streams: list[Stream]):
    first, second = Stream(client).start(), Stream(client).start()
    streams += [first, second]
    assert first.next()[0] == second.next()[0] == "snapshot"
    wait_for(lambda: runtime_of(client).events.subscribers == 2)
    runtime_of(client).events.publish("test.both", {"x": True})
    assert first.next()[0] == second.next()[0] == "test.both"


def test_heartbeat_when_nothing_happens(make_client: MakeClient, streams: list[Stream]):
    stream = Stream(make_client(events_heartbeat=0.05)).start()
    streams.append(stream)
    assert stream.next()[0] == "snapshot"
    assert stream.next() == ("comment", "heartbeat")
    assert stream.next() == ("comment", "heartbeat")


def test_needs_a_key_with_the_read_scope(client: TestClient):
    assert client.get("/api/v1/events").status_code == 401


def test_slow_consumer_is_dropped_and_memory_stays_bounded(
    client: TestClient, streams: list[Stream]
):
    # Not read: the app's first write (the snapshot) waits for the client,
    # so every event published now can only queue.
    stream = Stream(client)
    streams.append(stream)
    bus = runtime_of(client).events
    wait_for(lambda: bus.subscribers == 1)
    (sub,) = bus._subscribers
    for n in range(QUEUE_SIZE):
        bus.publish("test.flood", {"n": n})
    wait_for(lambda: sub.queue.qsize() == QUEUE_SIZE)
    assert bus.subscribers == 1 and bus.dropped == 0
    for n in range(5 * QUEUE_SIZE):
        bus.publish("test.flood", {"n": n})
    wait_for(lambda: bus.dropped == 1)
    assert sub.dropped and bus.subscribers == 0
    assert sub.queue.qsize() == 0, "a dropped subscriber holds nothing"

    # None of the flood reaches it; the last word is "dropped". The snapshot
    # usually waits for the client, but on a busy machine the transport may
    # already have taken it before the flood began: then it comes first.
    stream.start()
    kind, data = stream.next()
    if kind == "snapshot":
        kind, data = stream.next()
    assert kind == "dropped"
    assert "256 events behind" in data["reason"]
    assert stream.next() == ("end", None)


def test_too_many_streams_is_503(make_client: MakeClient, streams: list[Stream]):
    client = make_client()
    runtime_of(client).events.max_subscribers = 1
    stream = Stream(client).start()
    streams.append(stream)
    assert stream.next()[0] == "snapshot"
    response = client.get("/api/v1/events", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "too_many_streams"
    assert response.headers["retry-after"] == "30"


def test_key_created_and_revoked(client: TestClient, streams: list[Stream]):
    stream = Stream(client).start()
    streams.append(stream)
    assert stream.next()[0] == "snapshot"
    created = client.post(
        "/api/v1/keys", headers=AUTH, json={"name": "grafana", "scopes": ["read"]}
    ).json()
    kind, data = stream.until(lambda k, d: k.startswith("key."))
    assert kind == "key.created"
    assert {k: data[k] for k in ("id", "name", "scopes")} == {
        "id": created["id"],
        "name": "grafana",
        "scopes": ["read"],
    }
    assert created["key"] not in json.dumps(data), "never the key itself"
    client.delete(f"/api/v1/keys/{created['id']}", headers=AUTH)
    kind, data = stream.until(lambda k, d: k.startswith("key."))
    assert (kind, data["id"]) == ("key.revoked", created["id"])


STATIONS_PLUGIN = """
import json
from raspapi import hookimpl
from raspapi.context import Status


@hookimpl
def raspapi_stations(ctx):
    return json.loads(ctx.read_text("/run/test-stations.json") or "[]")


@hookimpl
def raspapi_status(ctx):
    down = ctx.read_text("/run/test-down")
    return Status.unavailable(down.strip()) if down else Status.ok()
"""


def test_stations_and_plugin_states_are_watched(
    root: Path, settings: Settings, make_client: MakeClient, streams: list[Stream]
):
    settings.plugins_dir.mkdir()
    (settings.plugins_dir / "fakeap.py").write_text(STATIONS_PLUGIN)
    stations = root / "run" / "test-stations.json"
    stations.parent.mkdir(exist_ok=True)
    a = {"mac": "02:00:00:00:00:0a", "interface": "wlan0", "signal_dbm": -50}
    b = {"mac": "02:00:00:00:00:0b", "interface": "wlan0", "signal_dbm": -61}
    stations.write_text(json.dumps([a]))
    client = make_client(events_interval=0.05)
    stream = Stream(client).start()
    streams.append(stream)

    kind, snapshot = stream.next()
    assert kind == "snapshot"
    assert {"mac": a["mac"], "interface": "wlan0"} in snapshot["stations"]
    assert snapshot["plugins"]["fakeap"] == {"state": "ok", "reason": None}

    stations.write_text(json.dumps([b]))
    seen: dict[str, Any] = {}
    while len(seen) < 2:
        kind, data = stream.until(lambda k, d: k.startswith("station."))
        seen[kind] = data
    assert {k: seen["station.joined"][k] for k in ("mac", "interface", "signal_dbm")} == b
    assert seen["station.left"]["mac"] == a["mac"]

    (root / "run" / "test-down").write_text("radio unplugged")
    kind, data = stream.until(lambda k, d: k == "plugin.status" and d["plugin"] == "fakeap")
    assert data["state"] == "unavailable" and data["reason"] == "radio unplugged"
    assert data["previous_state"] == "ok"


def test_throttling_changes_are_published_and_retained(
    root: Path, make_client: MakeClient, streams: list[Stream]
):
    flags = root / "sys/devices/platform/soc/soc:firmware/get_throttled"
    flags.write_text("0\n")
    client = make_client(events_interval=0.05, cache_ttl=0)
    stream = Stream(client).start()
    streams.append(stream)
    kind, snapshot = stream.next()
    assert kind == "snapshot"
    assert snapshot["latest"]["thermal.throttling"]["now"]["throttled"] is False

    flags.write_text("0x50005\n")
    _, data = stream.until(lambda k, d: k == "thermal.throttling")
    assert data["now"]["throttled"] is True and data["now"]["under_voltage"] is True
    assert data["raw"] == "0x50005"

    later = Stream(client).start()
    streams.append(later)
    assert later.next()[1]["latest"]["thermal.throttling"]["raw"] == "0x50005"


def test_no_watch_runs_without_a_stream(make_client: MakeClient):
    client = make_client(events_interval=0.01)
    bus = runtime_of(client).events
    calls: list[float] = []
    bus.watch(lambda: calls.append(time.monotonic()), "counter")
    time.sleep(0.2)
    assert calls == []


def test_bus_rejects_bad_type_names():
    bus = EventBus()
    for bad in ("Station.Joined", "station joined", "snapshot", "dropped", "a\nb", ""):
        with pytest.raises(ValueError):
            bus.publish(bad, {})


def test_a_watch_that_raises_is_logged_once_and_the_rest_run(caplog: pytest.LogCaptureFixture):
    bus = EventBus()
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    bus.watch(broken, "broken")
    bus.watch(lambda: ran.append(1), "fine")

    async def main() -> None:
        await bus.tick()
        await bus.tick()

    asyncio.run(main())
    assert ran == [1, 1]
    assert sum("event watch broken raised" in r.getMessage() for r in caplog.records) == 1


def test_subscription_drops_itself_when_full():
    async def main() -> Subscription:
        sub = Subscription(4)
        for n in range(4):
            assert sub.offer(Event(n, "x.y", {}, 0.0, b""))
        assert not sub.dropped and sub.queue.qsize() == 4
        assert not sub.offer(Event(5, "x.y", {}, 0.0, b""))
        return sub

    sub = asyncio.run(main())
    assert sub.dropped and sub.queue.qsize() == 0


# -- a real server: a client that reads nothing at all ------------------------------


@pytest.mark.integration
def test_a_stuck_client_is_cut_off_quietly(settings: Settings, caplog: pytest.LogCaptureFixture):
    """Over a real socket: a client that stops reading is dropped, the final
    write is abandoned after a bounded wait, and the connection is closed
    without an error line in the log."""
    app = create_app(settings.with_(events_heartbeat=0.3))
    runtime: Runtime = app.state.runtime
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        with closing(socket.socket()) as sock:
            # A small window (set before connecting), so the server's writes
            # soon wait for this client.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(WAIT)
            sock.connect(("127.0.0.1", port))
            sock.sendall(
                f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\naccess_token: {AUTH['access_token']}"
                "\r\n\r\n".encode()
            )
            wait_for(lambda: runtime.events.subscribers == 1)
            big = "x" * 32768
            deadline = time.monotonic() + WAIT
            while runtime.events.dropped == 0:
                assert time.monotonic() < deadline, "never dropped"
                for _ in range(50):
                    runtime.events.publish("test.big", {"pad": big})
                time.sleep(0.01)
            assert runtime.events.subscribers == 0
            # Nothing read yet; after the bounded final write the server hangs up.
            time.sleep(1.0)
            received = 0
            sock.settimeout(WAIT)
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
            assert received > 0  # what the kernel had buffered, then EOF
        messages = [r.getMessage() for r in caplog.records]
        assert any("stopped reading" in m for m in messages)
        assert not any("without completing response" in m for m in messages), messages
    finally:
        server.should_exit = True
        thread.join(WAIT)
    assert not thread.is_alive()


@pytest.mark.integration
def test_stopping_the_daemon_ends_open_streams(settings: Settings):
    """``raspapi serve`` closes event streams first when stopping, instead of
    waiting for its graceful-shutdown timeout (5 s) to cut them."""
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
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "no /health"
            try:
                if get(port, "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        with closing(socket.create_connection(("127.0.0.1", port), timeout=WAIT)) as sock:
            sock.sendall(
                f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\naccess_token: {AUTH['access_token']}"
                "\r\n\r\n".encode()
            )
            data = b""
            while b"event: snapshot" not in data:
                chunk = sock.recv(65536)
                assert chunk, "closed before the snapshot"
                data += chunk
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
            assert time.monotonic() - started < 3, "waited for the graceful timeout"
            while chunk := sock.recv(65536):
                data += chunk
        assert data.endswith(b"0\r\n\r\n"), "the stream was ended, not cut"
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

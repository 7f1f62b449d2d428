"""The raspapi_samples contract: plain implementations in one worker-thread visit per
interval, async ones on the loop, each isolated and timed; the history's write in
that same visit."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi import manager as manager_module
from raspapi.settings import Settings
from tests.conftest import MakeClient
from tests.test_history import BUILTIN, dropin

#: A plain implementation recording the thread it ran in.
PLAIN = """
import threading
import time
from raspapi import hookimpl

THREADS = []

@hookimpl
def raspapi_samples(ctx):
    THREADS.append(threading.get_ident())
    return {"{name}.value": {value}}
"""
ASYNC = """
import threading
import time
from raspapi import hookimpl

THREADS = []

@hookimpl
async def raspapi_samples(ctx):
    THREADS.append(threading.get_ident())
    return {"coro.value": 3.0}
"""
RAISING = """
from raspapi import hookimpl

@hookimpl
def raspapi_samples(ctx):
    raise RuntimeError("sensor unplugged")
"""
#: Plain, but needs the loop: it returns a coroutine, awaited there.
DEFERRING = """
import asyncio
import threading
import time
from raspapi import hookimpl

THREADS = []

async def later():
    await asyncio.sleep(0)
    THREADS.append(threading.get_ident())
    return {"later.value": 4.0}

@hookimpl
def raspapi_samples(ctx):
    return later()
"""
SLOW = """
import time
from raspapi import hookimpl

@hookimpl
def raspapi_samples(ctx):
    time.sleep(1.0)
    return {"slow.value": 5.0}
"""


def plain(name: str, value: float) -> str:
    return PLAIN.replace("{name}", name).replace("{value}", repr(value))


def module(name: str) -> Any:
    return sys.modules[f"_raspapi_dropin_{name}"]


def client_with(settings: Settings, make_client: MakeClient, **plugins: str) -> TestClient:
    """Only the given drop-ins (every built-in plugin disabled, the history too)."""
    for name, source in plugins.items():
        dropin(settings, name, source)
    return make_client(disable={n for n in BUILTIN if not n.startswith("_")})


def collect(
    client: TestClient, then: Callable[[dict[str, float]], object] | None = None
) -> tuple[dict[str, float], int, int]:
    """``manager.samples(then)`` on the app's loop: the merged samples, the loop's
    thread, and how many times the loop handed work to its default executor."""
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]

    async def run() -> tuple[dict[str, float], int, int]:
        loop = asyncio.get_running_loop()
        handed = 0
        original = loop.run_in_executor

        def counting(executor: Any, func: Any, *args: Any) -> Any:
            nonlocal handed
            handed += 1
            return original(executor, func, *args)

        loop.run_in_executor = counting  # type: ignore[method-assign,assignment]
        try:
            values: dict[str, float] = await manager.samples(then=then)
        finally:
            del loop.run_in_executor
        return values, threading.get_ident(), handed

    assert client.portal is not None
    result: tuple[dict[str, float], int, int] = client.portal.call(run)
    return result


def test_plain_implementations_share_one_thread_visit_with_then(
    settings: Settings, make_client: MakeClient
):
    client = client_with(
        settings, make_client, first=plain("first", 1.0), second=plain("second", 2.0)
    )
    written: list[tuple[int, dict[str, float]]] = []
    values, loop_thread, handed = collect(
        client, then=lambda merged: written.append((threading.get_ident(), dict(merged)))
    )
    assert values == {"first.value": 1.0, "second.value": 2.0}
    # One hand-off for both plugins and the write, in a thread that is not the loop's.
    assert handed == 1
    (first,), (second,) = module("first").THREADS, module("second").THREADS
    assert first == second == written[0][0] != loop_thread
    assert written[0][1] == values
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    assert {("samples", "first"), ("samples", "second")} <= manager.collections.keys()
    assert all(manager.collections[("samples", n)].ok for n in ("first", "second"))


def test_plain_and_async_together(settings: Settings, make_client: MakeClient):
    client = client_with(
        settings, make_client, first=plain("first", 1.0), coro=ASYNC, later=DEFERRING
    )
    written: list[tuple[int, dict[str, float]]] = []
    values, loop_thread, handed = collect(
        client, then=lambda merged: written.append((threading.get_ident(), dict(merged)))
    )
    assert values == {"first.value": 1.0, "coro.value": 3.0, "later.value": 4.0}
    coro_threads, later_threads = module("coro").THREADS, module("later").THREADS
    assert coro_threads == [loop_thread]  # async: on the loop
    assert later_threads == [loop_thread]  # the awaitable a plain one left
    assert module("first").THREADS[0] != loop_thread
    # Something needed the loop: the write came after it, in a visit of its own.
    assert handed == 2
    assert written[0][1] == values and written[0][0] != loop_thread
    # gather() calls the hook the same way (plain ones never on the loop).
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    assert client.portal is not None
    gathered = client.portal.call(manager.gather, "raspapi_samples")
    assert gathered == {
        "first": {"first.value": 1.0},
        "coro": {"coro.value": 3.0},
        "later": {"later.value": 4.0},
    }
    assert module("first").THREADS[-1] != loop_thread


def test_a_raising_plain_implementation_is_isolated_and_logged_once(
    settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    client = client_with(
        settings,
        make_client,
        broken=RAISING,
        first=plain("first", 1.0),
        second=plain("second", 2.0),
    )
    for _ in range(2):
        values, _, handed = collect(client, then=lambda merged: None)
        assert values == {"first.value": 1.0, "second.value": 2.0}
        assert handed == 1
    logged = [r for r in caplog.records if "sensor unplugged" in r.getMessage()]
    assert len(logged) == 1
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    assert not manager.collections[("samples", "broken")].ok
    assert manager.collections[("samples", "first")].ok


def test_a_slow_plain_implementation_is_cut_off(
    settings: Settings,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setattr(manager_module, "COLLECT_TIMEOUT", 0.3)
    client = client_with(
        settings, make_client, a_first=plain("first", 1.0), b_slow=SLOW, c_last=plain("last", 2.0)
    )
    written: list[dict[str, float]] = []
    values, _, _ = collect(client, then=lambda merged: written.append(dict(merged)))
    # What came in time is kept and written; the slow one and the ones after it add nothing.
    assert values == {"first.value": 1.0}
    assert written == [values]
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    assert manager.collections[("samples", "a_first")].ok
    assert not manager.collections[("samples", "b_slow")].ok
    assert not manager.collections[("samples", "c_last")].ok
    assert "no samples in time" in caplog.text
    assert module("c_last").THREADS == []  # the thread stopped after the slow one


def test_then_raising_is_raised(settings: Settings, make_client: MakeClient):
    client = client_with(settings, make_client, first=plain("first", 1.0))

    def failing(merged: dict[str, float]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        collect(client, then=failing)


def test_cancelling_the_sampler_cancels_and_skips_then(settings: Settings, make_client: MakeClient):
    # At shutdown the sampler task is cancelled mid-visit: the cancellation is not
    # swallowed, and the write never happens (the store may be closing).
    client = client_with(settings, make_client, a_slow=SLOW, b_last=plain("last", 2.0))
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    written: list[dict[str, float]] = []

    async def run() -> bool:
        task = asyncio.ensure_future(manager.samples(then=written.append))
        await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert client.portal is not None
    assert client.portal.call(run)
    time.sleep(1.2)  # the slow plugin has returned; the thread stopped after it
    assert written == []
    assert module("b_last").THREADS == []


def test_the_builtin_samples_read_each_file_afresh(root: Path, make_client: MakeClient):
    # ctx.path keeps the paths the samples read every interval resolved under the
    # root, never what the files held: each interval reads them again (issue 16).
    client = make_client()
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    assert client.portal is not None
    first = client.portal.call(manager.samples)
    assert first["load.avg_1m"] == 0.42
    assert first["temperature.thermal_zone0.celsius"] != 71.5
    (root / "proc/loadavg").write_text("1.25 0.35 0.30 2/213 1842\n")
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("71500\n")
    meminfo = root / "proc/meminfo"
    meminfo.write_text(meminfo.read_text().replace("MemTotal:        3882924", "MemTotal: 4882924"))
    again = client.portal.call(manager.samples)
    assert again["load.avg_1m"] == 1.25
    assert again["temperature.thermal_zone0.celsius"] == 71.5
    assert again["memory.used_bytes"] == first["memory.used_bytes"] + 1_000_000 * 1024
    assert again.keys() == first.keys()

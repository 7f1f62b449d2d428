"""Shared fixtures: a fixture machine (a root folder) and clients of the real app."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings

#: The admin key of every test app (32 characters of [0-9a-z], as RaspAP makes them).
KEY = "0123456789abcdefghijklmnopqrstuv"
AUTH = {"access_token": KEY}
#: A Raspberry Pi 4 laid out like a RaspAP install: /etc, /proc, /sys, /var files.
FIXTURE_ROOT = Path(__file__).parent / "fixtures" / "root"
#: The event loops the daemon can meet: asyncio's default one (what most tests
#: use) and uvloop (what the installed service runs). They differ where it
#: matters: uvloop hands a child process a socket, not a pipe, as stdin.
LOOPS = ("asyncio", "uvloop")
T = TypeVar("T")


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop factory for ``loop`` ("asyncio" or "uvloop")."""
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if loop == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"unknown event loop {loop!r}")


def run_on(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on the named event loop."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    """Runs the test once per event loop: "asyncio", then "uvloop"."""
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A private copy of the fixture machine, free to change."""
    target = tmp_path / "root"
    shutil.copytree(FIXTURE_ROOT, target, symlinks=True)
    return target


@pytest.fixture
def settings(root: Path, tmp_path: Path) -> Settings:
    env_file = tmp_path / "api" / ".env"
    env_file.parent.mkdir()
    env_file.write_text(f"RASPAP_API_KEY={KEY}\n")
    env_file.chmod(0o600)
    return Settings(
        env_file=env_file,
        root=root,
        state_dir=tmp_path / "state",
        plugins_dir=tmp_path / "plugins.d",
        access_log=False,
        entry_points=False,
    )


MakeClient = Callable[..., TestClient]


def http_scope(method: str, path: str, **changes: Any) -> dict[str, Any]:
    """An ASGI HTTP scope for ``method`` and ``path``, as uvicorn makes one,
    with ``changes`` (``headers``, ``client``, ``app``...) on top."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8081),
        **changes,
    }


@pytest.fixture
def make_client(settings: Settings) -> Iterator[MakeClient]:
    """``make_client(loop="asyncio", deferred=False, **setting_changes)``: a
    started app behind a TestClient, served on the named event loop (see
    LOOPS); ``deferred``: plugins load as ``raspapi serve`` loads them."""
    with ExitStack() as stack:

        def make(loop: str = "asyncio", *, deferred: bool = False, **changes: Any) -> TestClient:
            app = create_app(settings.with_(**changes), deferred=deferred)
            options = {"loop_factory": loop_factory(loop)}
            return stack.enter_context(
                TestClient(app, raise_server_exceptions=False, backend_options=options)
            )

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture
def loop_client(make_client: MakeClient, loop_name: str) -> TestClient:
    """The app once on each event loop: use it for routes that run programs or
    open sockets, so what uvloop does differently is tested too."""
    return make_client(loop=loop_name)


class _KeyWatch(logging.Handler):
    """Remembers every log line (traceback included) that holds the test admin key."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad format string is not this check's business
            text = f"{record.msg} {record.args}"
        if KEY in text and len(self.leaks) < 5:
            self.leaks.append(text[:300])


@pytest.fixture(autouse=True)
def no_key_in_any_log_line() -> Iterator[None]:
    """Over the whole run, no log line at INFO or above (the daemon's default
    level) holds the admin key. Attached to every test anew: some tests
    reconfigure logging as the CLI does."""
    watch = _KeyWatch()
    root = logging.getLogger()
    level = root.level
    if level == logging.NOTSET or level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(watch)
    try:
        yield
    finally:
        root.removeHandler(watch)
        root.setLevel(level)
    assert not watch.leaks, f"the admin key reached the log: {watch.leaks}"

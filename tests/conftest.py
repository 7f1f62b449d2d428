"""Shared fixtures: a fixture machine (a root folder) and clients of the real app."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings

#: The admin key of every test app (32 characters of [0-9a-z], as RaspAP makes them).
KEY = "0123456789abcdefghijklmnopqrstuv"
AUTH = {"access_token": KEY}
#: A Raspberry Pi 4 laid out like a RaspAP install: /etc, /proc, /sys, /var files.
FIXTURE_ROOT = Path(__file__).parent / "fixtures" / "root"


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


@pytest.fixture
def make_client(settings: Settings) -> Iterator[MakeClient]:
    """``make_client(**setting_changes)``: a started app behind a TestClient."""
    with ExitStack() as stack:

        def make(**changes: Any) -> TestClient:
            app = create_app(settings.with_(**changes))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()

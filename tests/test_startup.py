"""Start-up: what the daemon imports and does before its first answer (issue 16).

Every module imported at start costs about ten times as much on a Pi; these
tests keep out of the start what no first request needs.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import pluggy
import pytest
import raspapi.plugins

from raspapi import hookspecs
from raspapi.daemon import server
from raspapi.daemon.sdnotify import Notifier
from raspapi.daemon.uvicornopts import uvicorn_config
from raspapi.manager import _Pluggy, may_declare_entry_points
from raspapi.settings import Settings
from tests.test_cli import env_for

#: Imported on first use, never by building the app: the admin page's
#: templates, /metrics, QR codes, psutil, ctypes, node_exporter's families of
#: the system plugin, and the service modules of plugins that import them
#: lazily. Nor ``packaging`` (which the ``limits`` library imported, before
#: the rate limiter counted by itself).
NOT_AT_START = (
    "packaging",
    "jinja2",
    "prometheus_client",
    "segno",
    "psutil",
    "raspapi.plugins.dhcp.service",
    "raspapi.plugins.openvpn.service",
    "raspapi.plugins.networking.service",
    "raspapi.plugins.dns.service",
    "raspapi.plugins.networking.telemetry",
    "raspapi.plugins.system.node",
    "ctypes",
)

_LOADED = """
import json, sys
from raspapi.app import create_app
from raspapi.settings import Settings
app = create_app(Settings.from_env())
assert app.state.runtime.limiter is not None
print(json.dumps(sorted(set(sys.argv[1:]) & set(sys.modules))))
"""


def test_with_entry_points_on_and_none_declared_importlib_metadata_is_not_imported(
    settings: Settings,
):
    """The default (entry-point plugins on), in this venv where no package
    declares a raspapi plugin."""
    assert not may_declare_entry_points("raspapi")
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, "importlib.metadata", "raspapi.plugins.system"],
        env=env_for(settings, RASPAPI_ENTRY_POINTS="true", RASPAPI_LOG_LEVEL="critical"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == ["raspapi.plugins.system"]


def test_entry_points_are_looked_for_in_every_kind_of_distribution_folder(tmp_path: Path):
    site = tmp_path / "site"
    (site / "other-1.0.dist-info").mkdir(parents=True)
    (site / "other-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nx = y\n")
    (site / "plain").mkdir()
    assert not may_declare_entry_points("raspapi", [str(site), str(tmp_path / "absent")])
    (site / "old-1.0.egg-info").mkdir()
    (site / "old-1.0.egg-info" / "entry_points.txt").write_text("[raspapi]\nold = old\n")
    assert may_declare_entry_points("raspapi", [str(site)])
    # What it cannot read, it leaves to importlib.metadata: a zip on the path, an egg.
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    assert may_declare_entry_points("other", [str(archive)])
    (tmp_path / "egg" / "thing-1.0.egg").mkdir(parents=True)
    assert may_declare_entry_points("other", [str(tmp_path / "egg")])


def test_building_the_app_leaves_heavy_modules_for_later(settings: Settings):
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, *NOT_AT_START],
        env=env_for(settings, RASPAPI_ENTRY_POINTS="false", RASPAPI_LOG_LEVEL="critical"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == []
    # The check sees an imported module: the rate limiter's is always loaded.
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, "raspapi.http.ratelimit"],
        env=env_for(settings, RASPAPI_ENTRY_POINTS="false", RASPAPI_LOG_LEVEL="critical"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == ["raspapi.http.ratelimit"]


def test_the_start_up_summary_waits_until_the_first_requests_are_answered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """The summary runs every plugin's self-check (programs among them): it
    starts :data:`SUMMARY_DELAY` after the daemon listens, not at once."""
    monkeypatch.setattr(server, "SUMMARY_DELAY", 0.3)

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    async def run() -> float:
        config = uvicorn_config(app, "127.0.0.1", 0)
        config.lifespan = "off"
        config.load()
        srv = server._Server(config, Notifier())
        srv.lifespan = config.lifespan_class(config)  # as uvicorn's Server._serve does
        called: list[float] = []

        async def summary() -> None:
            called.append(time.monotonic())

        srv.after_startup = summary
        await srv.startup()
        listening = time.monotonic()
        try:
            await asyncio.sleep(0.1)
            assert not called  # not at once
            await asyncio.sleep(0.5)
            assert called
            return called[0] - listening
        finally:
            await srv.shutdown()

    waited = asyncio.run(run())
    assert 0.25 <= waited < 2.0


def test_the_quick_registration_finds_what_pluggy_finds():
    """The manager skips names that cannot be hooks before pluggy's look-up;
    every built-in plugin gets the same hook implementations as with pluggy's own."""

    def impls(pm: pluggy.PluginManager, module: object) -> list[tuple[str, str]]:
        pm.add_hookspecs(hookspecs)
        pm.register(module)
        return sorted(
            (caller.name, impl.function.__qualname__)
            for caller in pm.get_hookcallers(module) or []
            for impl in caller.get_hookimpls()
        )

    checked = 0
    for info in pkgutil.iter_modules(raspapi.plugins.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"raspapi.plugins.{info.name}")
        expected = impls(pluggy.PluginManager("raspapi"), module)
        assert expected
        assert impls(_Pluggy("raspapi"), module) == expected
        checked += 1
    assert checked >= 15

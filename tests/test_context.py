"""What a plugin gets: paths under the root, safe small reads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from raspapi.cache import Cache
from raspapi.context import PluginContext
from raspapi.runner import CommandRunner
from raspapi.settings import Settings


def test_read_text_never_hangs_on_a_fifo(root: Path):
    os.mkfifo(root / "etc" / "fifo")
    settings = Settings(env_file=root / ".env", root=root)
    ctx = PluginContext(
        "t",
        settings,
        CommandRunner(root),
        Cache(),
        logging.getLogger("t"),
        hooks=None,
    )  # type: ignore[arg-type]
    assert ctx.read_text("/etc/fifo") is None
    assert ctx.read_text("/etc/nothing-here") is None
    assert ctx.read_text("/etc/os-release", limit=4) == "PRET"


def test_paths_resolve_under_the_root(root: Path):
    settings = Settings(env_file=root / ".env", root=root)
    ctx = PluginContext(
        "t", settings, CommandRunner(root), Cache(), logging.getLogger("t"), hooks=None
    )  # type: ignore[arg-type]
    assert ctx.path("/etc/hostapd/hostapd.conf") == root / "etc" / "hostapd" / "hostapd.conf"
    try:
        ctx.path("etc/passwd")
    except ValueError as exc:
        assert "absolute" in str(exc)
    else:
        raise AssertionError("relative paths are refused")

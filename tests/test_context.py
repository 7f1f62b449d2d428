"""What a plugin gets: paths under the root, safe small reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raspapi.app import create_app
from raspapi.context import PluginContext
from raspapi.settings import Settings


def context(settings: Settings) -> PluginContext:
    manager = create_app(settings).state.runtime.manager
    ctx = manager.plugins["system"].ctx
    assert isinstance(ctx, PluginContext)
    return ctx


def test_read_text_never_hangs_on_a_fifo(settings: Settings, root: Path):
    os.mkfifo(root / "etc" / "fifo")
    ctx = context(settings)
    assert ctx.read_text("/etc/fifo") is None
    assert ctx.read_text("/etc/nothing-here") is None
    assert ctx.read_text("/etc/os-release", limit=4) == "PRET"


def test_paths_resolve_under_the_root(settings: Settings, root: Path):
    ctx = context(settings)
    assert ctx.path("/etc/hostapd/hostapd.conf") == root / "etc" / "hostapd" / "hostapd.conf"
    with pytest.raises(ValueError, match="absolute"):
        ctx.path("etc/passwd")

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


def test_resolved_paths_are_kept_bounded_and_follow_the_root(
    settings: Settings, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Each interval's samples resolve the same paths: the answer is kept.
    ctx = context(settings)
    first = ctx.path("/proc/meminfo")
    assert ctx.path("/proc/meminfo") is first
    assert ctx.path(Path("/proc/meminfo")) is first
    with pytest.raises(ValueError, match="absolute"):
        ctx.path("proc/meminfo")  # a bad path is never kept
    with pytest.raises(ValueError, match="absolute"):
        ctx.path("proc/meminfo")
    # Another root (a context given new settings) resolves afresh.
    ctx.settings = settings.with_(root=tmp_path / "other")
    assert ctx.path("/proc/meminfo") == tmp_path / "other" / "proc" / "meminfo"
    # Bounded: a plugin resolving endless distinct paths does not grow it.
    monkeypatch.setattr("raspapi.context.MAX_RESOLVED_PATHS", 8)
    for n in range(50):
        assert ctx.path(f"/sys/class/net/if{n}") == tmp_path / "other" / "sys/class/net" / f"if{n}"
    assert len(ctx._resolved) <= 8

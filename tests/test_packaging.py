"""The wheel carries the built-in plugins and web files inside the raspapi package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(PROJECT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("raspapi-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_has_every_builtin_plugin_inside_the_package(wheel: zipfile.ZipFile):
    names = set(wheel.namelist())
    for source in (PROJECT / "plugins").rglob("*.py"):
        relative = source.relative_to(PROJECT / "plugins")
        assert f"raspapi/plugins/{relative}" in names, relative


def test_wheel_has_the_web_files(wheel: zipfile.ZipFile):
    names = set(wheel.namelist())
    for source in (PROJECT / "webui").rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            relative = source.relative_to(PROJECT / "webui")
            assert f"raspapi/webui/{relative}" in names, relative


def test_no_top_level_plugins_or_webui(wheel: zipfile.ZipFile):
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert tops == {"raspapi", *(t for t in tops if t.endswith(".dist-info"))}


def test_installed_package_exposes_no_plugins_or_webui_module(tmp_path: Path):
    # Run from an empty folder so the checkout itself is not on sys.path.
    code = (
        "import importlib.util, raspapi.plugins, raspapi.webui;"
        "print(importlib.util.find_spec('plugins'), importlib.util.find_spec('webui'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["None", "None"]

"""The public plugin API (raspapi.plugin) and the built-in plugins' use of it."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

import raspapi.plugin
from raspapi.context import OptionError
from raspapi.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "plugins"

#: Import names of the distributions pyproject.toml declares (where they differ).
IMPORT_NAMES = {"python-dotenv": "dotenv", "prometheus-client": "prometheus_client"}


def declared_imports() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        dist = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            dist = dist.split(stop)[0]
        names.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    return names


def forbidden_imports(path: Path, allowed: set[str]) -> list[str]:
    """The imports in ``path`` that reach past the public API."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: the plugin's own modules, or a private shared module
                # of plugins/ (plugins/_dnsmasq.py), never another plugin.
                top_level = path.parent == PLUGINS
                reaches_up = node.level > 1
                target = node.module or ""
                names = [alias.name for alias in node.names]
                if (top_level or reaches_up) and not (
                    target.startswith("_") or (not target and all(n.startswith("_") for n in names))
                ):
                    bad.append(f"{'.' * node.level}{target} import {', '.join(names)}")
                continue
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            if module == "raspapi.plugin":
                continue
            root = module.split(".")[0]
            if root == "raspapi" or root not in allowed:
                bad.append(module)
    return bad


def test_built_in_plugins_import_only_the_public_api():
    allowed = set(sys.stdlib_module_names) | declared_imports()
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 20
    problems = {
        str(f.relative_to(REPO)): bad for f in files if (bad := forbidden_imports(f, allowed))
    }
    assert problems == {}


def test_the_checker_catches_what_it_must(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PLUGINS", tmp_path)
    allowed = set(sys.stdlib_module_names) | declared_imports()
    single = tmp_path / "thing.py"
    single.write_text(
        "import os\nfrom starlette.responses import Response\n"
        "from raspapi.plugin import hookimpl\nfrom . import _shared\n"
    )
    assert forbidden_imports(single, allowed) == []
    single.write_text(
        "from raspapi.context import PluginContext\nimport raspapi.settings\n"
        "import requests\nfrom . import dhcp\nfrom .dns import x\n"
    )
    assert forbidden_imports(single, allowed) == [
        "raspapi.context",
        "raspapi.settings",
        "requests",
        ". import dhcp",
        ".dns import x",
    ]
    package = tmp_path / "pkg"
    package.mkdir()
    inner = package / "service.py"
    inner.write_text("from .schema import X\nfrom . import telemetry\nfrom .._dnsmasq import f\n")
    assert forbidden_imports(inner, allowed) == []
    inner.write_text("from ..dhcp import leases\n")
    assert forbidden_imports(inner, allowed) == ["..dhcp import leases"]


def test_the_public_api_exports_what_it_lists():
    for name in raspapi.plugin.__all__:
        assert getattr(raspapi.plugin, name) is not None
    assert {"hookimpl", "PluginContext", "ApiRoute", "Query", "Status", "Panel", "Store"} <= set(
        raspapi.plugin.__all__
    )
    assert {"atomic_write", "rfc3339", "note", "is_admin", "OptionError"} <= set(
        raspapi.plugin.__all__
    )


def test_the_readme_documents_the_public_api():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in raspapi.plugin.__all__ if f"`{name}" not in section]
    assert missing == []


def make_ctx(tmp_path, monkeypatch, env):
    for name in ("RASPAPI_DEMO_LIMIT", "RASPAPI_DEMO_RATIO", "RASPAPI_DEMO_ON"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    settings = Settings.from_env({"RASPAPI_ENV_FILE": str(env_file)}, cwd=tmp_path)
    return raspapi.plugin.PluginContext(
        name="demo",
        settings=settings,
        runner=None,  # type: ignore[arg-type]
        cache=None,  # type: ignore[arg-type]
        logger=None,  # type: ignore[arg-type]
        hooks=None,  # type: ignore[arg-type]
    )


def test_option_reads_typed_values(tmp_path, monkeypatch):
    ctx = make_ctx(
        tmp_path,
        monkeypatch,
        {"RASPAPI_DEMO_LIMIT": "12", "RASPAPI_DEMO_RATIO": " 0.5 ", "RASPAPI_DEMO_ON": "yes"},
    )
    assert ctx.option("limit", int, 3, min=1, max=100) == 12
    assert ctx.option("ratio", float, 1.0, min=0, max=1) == 0.5
    assert ctx.option("on", bool, False) is True
    assert ctx.option("absent", int, 7, min=1, max=10) == 7
    assert ctx.option("limit", str, "x") == "12"
    monkeypatch.setenv("RASPAPI_DEMO_LIMIT", "40")  # the environment wins over .env
    assert ctx.option("limit", int, 3) == 40


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("soon", int, "RASPAPI_DEMO_LIMIT='soon' is not a whole number from 1 to 100"),
        ("1.5", int, "is not a whole number from 1 to 100"),
        ("101", int, "RASPAPI_DEMO_LIMIT='101' is not a whole number from 1 to 100"),
        ("nan", float, "is not a number from 1 to 100"),
        ("inf", float, "is not a number from 1 to 100"),
        ("0.5", float, "is not a number from 1 to 100"),
        ("maybe", bool, "is not one of yes/no"),
        ("x" * 5000, str, "longer than 4096 characters"),
    ],
)
def test_option_names_the_variable_when_wrong(tmp_path, monkeypatch, value, kind, message):
    ctx = make_ctx(tmp_path, monkeypatch, {})
    monkeypatch.setenv("RASPAPI_DEMO_LIMIT", value)
    with pytest.raises(OptionError, match="RASPAPI_DEMO_LIMIT") as caught:
        ctx.option("limit", kind, None, min=1, max=100)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200  # a huge value is not echoed whole


def test_option_bounds_a_strings_length(tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, monkeypatch, {})
    monkeypatch.setenv("RASPAPI_DEMO_LIMIT", "abcdef")
    assert ctx.option("limit", str, "", max=6) == "abcdef"
    with pytest.raises(OptionError, match="at most 5 characters"):
        ctx.option("limit", str, "", max=5)

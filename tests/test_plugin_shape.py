"""Every built-in plugin follows the one template (README, "The plugin template")."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
#: The largest single-module plugin; past it, a plugin becomes a package.
MAX_MODULE_LINES = 400


def plugins() -> list[Path]:
    return sorted(p for p in PLUGINS.iterdir() if not p.name.startswith(("_", ".")))


def names(path: Path) -> str:
    return path.stem if path.suffix == ".py" else path.name


def hook_functions(tree: ast.Module) -> list[str]:
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(ast.unparse(d) in ("hookimpl", "raspapi.hookimpl") for d in node.decorator_list)
    ]


def imports_starlette(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("starlette"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("starlette") for a in node.names):
            return True
    return False


def defines_a_class(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ClassDef) for node in tree.body)


def test_package_plugins_keep_hooks_in_init_and_starlette_out_of_their_service():
    found = []
    for plugin in plugins():
        if not plugin.is_dir():
            continue
        for module in plugin.glob("*.py"):
            tree = ast.parse(module.read_text())
            if module.name == "__init__.py" and defines_a_class(tree):
                found.append(f"{module}: a class in __init__.py (the service goes to service.py)")
            if module.name != "__init__.py" and hook_functions(tree):
                found.append(f"{module}: hooks outside __init__.py")
            if module.name == "service.py" and imports_starlette(tree):
                found.append(f"{module}: the service imports Starlette")
            if module.name == "api.py" and defines_a_class(tree):
                found.append(f"{module}: a handler class (use functions bound with bind)")
    assert found == []


def test_single_module_plugins_are_short_and_have_no_handlers_class():
    found = []
    for plugin in plugins():
        if plugin.is_dir() or plugin.suffix != ".py":
            continue
        text = plugin.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{plugin}: over {MAX_MODULE_LINES} lines (make it a package)")
        tree = ast.parse(text)
        if any(isinstance(n, ast.ClassDef) and n.name == "Handlers" for n in tree.body):
            found.append(f"{plugin}: a Handlers class (use thin handler functions)")
    assert found == []


def test_the_checks_see_a_hook_and_a_starlette_import():
    tree = ast.parse(
        "from starlette.requests import Request\n"
        "from raspapi.plugin import hookimpl\n"
        "@hookimpl\ndef raspapi_routes(ctx):\n    return []\n"
    )
    assert hook_functions(tree) == ["raspapi_routes"]
    assert imports_starlette(tree)

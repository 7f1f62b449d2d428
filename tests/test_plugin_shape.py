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


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def nested_functions(tree: ast.Module) -> list[str]:
    """Functions defined inside another function (a closure: a handler built in
    a routes function instead of bound with ``bind``)."""
    return [
        f"{outer.name}.{inner.name}"
        for outer in ast.walk(tree)
        if isinstance(outer, FUNCTIONS)
        for body in outer.body
        for inner in ast.walk(body)
        if isinstance(inner, FUNCTIONS)
    ]


def route_builders(tree: ast.Module) -> list[str]:
    """Module-level ``routes``/``legacy_routes`` functions (the hooks build routes)."""
    return [
        node.name
        for node in tree.body
        if isinstance(node, FUNCTIONS) and node.name in ("routes", "legacy_routes")
    ]


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
            if module.name == "api.py" and nested_functions(tree):
                found.append(
                    f"{module}: nested functions {nested_functions(tree)} "
                    "(module-level handlers, bound with bind in __init__.py)"
                )
            if module.name == "api.py" and route_builders(tree):
                found.append(
                    f"{module}: {route_builders(tree)} (routes are built in __init__.py's hooks)"
                )
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


def test_the_checks_see_closures_and_route_builders_in_an_api_module():
    tree = ast.parse(
        "def routes(service):\n"
        "    async def overview(request):\n        return service\n"
        "    return [overview]\n"
        "def legacy_routes(service):\n"
        "    if service:\n"
        "        def inner():\n            pass\n"
        "    return []\n"
        "async def handler(service, request):\n"
        "    for item in service:\n"
        "        async def deep(request):\n            pass\n"
        "    return [lambda: 1]\n"
    )
    assert nested_functions(tree) == ["routes.overview", "legacy_routes.inner", "handler.deep"]
    assert route_builders(tree) == ["routes", "legacy_routes"]
    flat = ast.parse("async def overview(service, request):\n    return [lambda: 1]\n")
    assert nested_functions(flat) == [] and route_builders(flat) == []

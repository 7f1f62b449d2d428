"""The core's layout: no import cycle between raspapi's modules.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside
functions: a cycle hidden from the interpreter still ties two modules together
for a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "raspapi"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in CORE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The core modules ``name`` imports (a package counts as its __init__)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # "from raspapi.http import errors" imports raspapi.http.errors.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = core_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_core_has_no_import_cycle():
    edges = graph()
    # Packages only re-export; an __init__ importing its children is not a cycle.
    for name in list(edges):
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_type_checking_and_relative_imports(tmp_path):
    pkg = tmp_path / "raspapi" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import other\n"
        "if TYPE_CHECKING:\n    from raspapi.top import Thing\n"
    )
    known = {"raspapi.sub.mod", "raspapi.sub.other", "raspapi.top", "raspapi.sub", "raspapi"}
    assert imports_of("raspapi.sub.mod", pkg / "mod.py", known) >= {
        "raspapi.sub.other",
        "raspapi.top",
    }


def test_the_top_level_stays_small():
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert top == sorted(
        [
            "__init__.py",
            "__main__.py",
            "app.py",
            "cli.py",
            "context.py",
            "plugin.py",
            "testing.py",
            "hookspecs.py",
            "manager.py",
            "settings.py",
        ]
    )

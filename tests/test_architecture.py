"""The shape of the tree: no import cycles, and a core that runs without Flask, Celery or
kombu (the edges, web/ and workers/, are where those live)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zapa_bridge", "workers")
# Outside the core: the web edge (Flask), the entry point that composes the edges, the
# developer tools, and the zapw simulator (a program of its own).
NOT_CORE = ("zapa_bridge.web", "zapa_bridge.cli", "zapa_bridge.devtools",
            "zapa_bridge.simulator", "zapa_bridge.__main__")
EDGE_LIBRARIES = ("celery", "kombu", "flask", "redbeat", "workers")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {module_name(path): path
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def is_core(name: str) -> bool:
    return name.startswith("zapa_bridge") and not any(
        name == edge or name.startswith(edge + ".") for edge in NOT_CORE)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules of ours that `path` imports at run time, anywhere in it (in functions
    too: a lazy import is still a dependency)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_module_of_ours_imports_itself_round_a_cycle():
    modules = our_modules()
    known = set(modules)
    # A package's __init__ is imported with each of its modules; it is not an edge of ours.
    graph = {name: {target for target in imports_of(path, known)
                    if not name.startswith(target + ".")}
             for name, path in modules.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_names_no_edge_library():
    modules = our_modules()
    offenders = {
        name: sorted(target for target in imports_of(path, set(modules) | set(EDGE_LIBRARIES))
                     if target.split(".")[0] in EDGE_LIBRARIES)
        for name, path in modules.items() if is_core(name)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_core_imports_without_flask_celery_or_kombu():
    """Imported for real, in a fresh interpreter: no library pulls them in either."""
    core = sorted(name for name in our_modules() if is_core(name))
    assert "zapa_bridge.services" in core and "zapa_bridge.outbound.delivery" in core
    script = (
        "import importlib, json, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        f"edges = {set(EDGE_LIBRARIES)!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & edges)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

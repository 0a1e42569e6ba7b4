"""The package's shape: no import circles (type-only imports counted), and the loop and the config
never reach the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vqclip"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The vqclip modules `path` imports anywhere: in functions and in TYPE_CHECKING blocks too
    (a type-only import is still a dependency between the two modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqclip"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name if name in modules else node.module for name in names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vqclip"))
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) - {module_name(path)} for path in paths}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in graph[todo.pop()] - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    circles = sorted(name for name in graph if name in reachable(graph, name))
    assert circles == []


@pytest.mark.parametrize("module", ["vqclip.run.engine", "vqclip.run.config", "vqclip.run.prepare",
                                    "vqclip.run.build", "vqclip.library"])
def test_the_library_never_reaches_the_command_line(module) -> None:
    assert not {name for name in reachable(import_graph(), module) if name.startswith("vqclip.cli")}


@pytest.mark.parametrize("package", ["vqclip.steer", "vqclip.models"])
def test_components_and_models_never_reach_the_run_stages(package) -> None:
    graph = import_graph()
    reached = {name: sorted(n for n in reachable(graph, name) if n.startswith("vqclip.run"))
               for name in graph if name.startswith(package)}
    assert {name: runs for name, runs in reached.items() if runs} == {}

"""The package's shape: the import-linter contracts in .importlinter hold, and no import
cycle exists anywhere (runtime imports, lazy ones inside functions included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
grimp = pytest.importorskip("grimp")


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's algorithm over the module graph; components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    graph = grimp.build_graph("c3llm", exclude_type_checking_imports=True)
    assert strongly_connected(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_core_stays_small_and_files_stay_readable():
    package = ROOT / "src" / "c3llm"
    core_lines = sum(len(p.read_text().splitlines()) for p in (package / "core").rglob("*.py"))
    assert core_lines <= 2500, f"c3llm.core has {core_lines} lines; it holds only what a plugin author needs"
    long = {str(p.relative_to(package)): n for p in package.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"files over 450 lines: {long}"


def test_every_plugin_entry_point_is_in_the_independence_contract():
    """A new built-in plugin cannot slip past the contract that keeps plugins apart."""
    import configparser
    import tomllib

    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["c3llm"]
    contracts = configparser.ConfigParser()
    contracts.read(ROOT / ".importlinter")
    listed = contracts["importlinter:contract:plugins-independent"]["modules"].split()
    assert sorted(listed) == sorted(set(entry_points.values()))

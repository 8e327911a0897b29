"""Imports flow one way: the layers of scintilab.layers, no cycles, no private names across modules.

Every ``import`` and ``from ... import`` of the package is read from the source (function-level
ones included; those under ``if TYPE_CHECKING:`` never run and are left out).
"""

from __future__ import annotations

import ast
import importlib.util
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from scintilab.layers import ANALYSIS_LAYERS, LAYERS, layer_index, layer_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"scintilab": ROOT / "scintilab", "scintilab_widgets": ROOT / "widgets"}


@dataclass(frozen=True)
class Edge:
    """One import of a package module by another."""

    source: str
    target: str
    name: str | None  # the name taken from the target (None for a plain import)
    line: int


def _modules() -> dict[str, Path]:
    mods = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _edges(source: str, path: Path, mods: dict[str, Path]) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package_parts = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]

    def known(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    edges = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    edges.append(Edge(source, known(alias.name), None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in mods:  # a submodule
                    edges.append(Edge(source, full, None, node.lineno))
                else:
                    edges.append(Edge(source, known(target), alias.name, node.lineno))
    return [e for e in edges if e.target != e.source]


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Edge]]:
    mods = _modules()
    return mods, [e for m, p in mods.items() for e in _edges(m, p, mods)]


def _where(e: Edge) -> str:
    return f"{e.source} line {e.line} imports {e.target}" + (f".{e.name}" if e.name else "")


def test_every_module_has_a_layer(graph) -> None:
    mods, _ = graph
    unplaced = sorted(m for m in mods if layer_of(m) is None)
    assert not unplaced, f"place these modules in scintilab/layers.py LAYERS: {unplaced}"


def test_no_module_imports_from_a_higher_layer(graph) -> None:
    _, edges = graph
    upward = [
        f"{_where(e)} ({layer_of(e.source)} -> {layer_of(e.target)})"
        for e in edges
        if layer_of(e.source)
        and layer_of(e.target)
        and layer_index(layer_of(e.target)) > layer_index(layer_of(e.source))
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_analysis_never_imports_the_generator(graph) -> None:
    _, edges = graph
    bad = [_where(e) for e in edges if layer_of(e.source) in ANALYSIS_LAYERS and layer_of(e.target) == "synth"]
    assert not bad, "analysis modules importing synth:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_module(graph) -> None:
    _, edges = graph
    bad = [
        _where(e)
        for e in edges
        if e.name and e.name.startswith("_") and not (e.name.startswith("__") and e.name.endswith("__"))
    ]
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)


def _cycles(nodes: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(succ[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycles(graph) -> None:
    mods, edges = graph
    succ: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        succ[e.source].add(e.target)
    cycles = _cycles(sorted(mods), succ)
    detail = [
        " <-> ".join(c) + ": " + "; ".join(_where(e) for e in edges if e.source in c and e.target in c) for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_the_checks_catch_what_they_are_for() -> None:
    """The cycle finder and the layer table on made-up graphs (so a silent check cannot pass)."""
    succ = defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert _cycles(["a", "b", "c", "d"], succ) == [["a", "b", "c"]]
    assert _cycles(["a", "d"], defaultdict(set, {"d": {"a"}})) == []
    assert layer_of("scintilab.audit.core") == "audit" and layer_of("scintilab.synth.validate") == "synth"
    assert layer_of("scintilab") == "core" and layer_of("scintilab.not_a_module") is None
    assert layer_index(LAYERS[0][0]) == 0


def test_edges_read_function_level_relative_and_type_only_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "scintilab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("X = 1\n_Y = 2\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from scintilab.high import Thing\n"
        "def f():\n    from ..low import _Y\n    import scintilab.low\n"
    )
    (pkg / "high.py").write_text("")
    mods = {
        "scintilab": pkg / "__init__.py",
        "scintilab.low": pkg / "low.py",
        "scintilab.high": pkg / "high.py",
        "scintilab.sub": pkg / "sub" / "__init__.py",
        "scintilab.sub.mod": pkg / "sub" / "mod.py",
    }
    edges = _edges("scintilab.sub.mod", mods["scintilab.sub.mod"], mods)
    assert {(e.target, e.name) for e in edges} == {("scintilab.low", "_Y"), ("scintilab.low", None)}


def test_the_committed_picture_matches_the_table() -> None:
    spec = importlib.util.spec_from_file_location("draw_layers", ROOT / "docs" / "draw_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "layers.svg").read_text(encoding="utf-8") == module.svg(), (
        "docs/layers.svg is out of date: run .venv/bin/python docs/draw_layers.py"
    )

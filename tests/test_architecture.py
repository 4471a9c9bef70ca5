"""The import rule of docs/architecture.md, checked on the source: ``passes -> lower -> ir`` and
``backend -> lower -> ir``; passes and backend never import each other; ``lower`` is pure Python (no
llvmlite) and imports neither; no private name crosses a module boundary inside the compiler; passes edit a
graph only through its methods (no writes to ``graph.nodes``, no ``Node(...)`` of their own, no users map
rebuilt: ``Node.users`` is kept current)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "spago"
COMPILER = ("ir", "lower", "passes", "backend")  # packages whose private names stay private


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list:
    """(imported module, [names]) for every import statement of a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [alias.name for alias in node.names]
            if node.module is None:  # ``from . import x``: each name is a module
                found.extend((f"{target}.{n}", []) for n in names)
            else:
                found.append((target, names))
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "spago" else None


def violations(package_dir: Path = PACKAGE) -> list:
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        here = module_name(path)
        mine = layer(here)
        for target, names in imports(path):
            theirs = layer(target)
            if mine == "passes" and theirs == "backend" or mine == "backend" and theirs == "passes":
                bad.append(f"{here} imports {target}")
            if mine == "lower" and (theirs in ("backend", "passes") or target.split(".")[0] == "llvmlite"):
                bad.append(f"{here} imports {target}")
            if mine in COMPILER and target.startswith("spago.") and target != here:
                bad.extend(f"{here} imports the private {target}.{n}" for n in names
                           if n.startswith("_") and not n.startswith("__"))
    return bad


def test_layers_import_one_way_and_keep_private_names_private():
    assert violations() == []


def test_the_check_catches_each_kind_of_violation(tmp_path):
    """A planted package with one violation of each kind: the check names all of them."""
    root = tmp_path / "spago"
    for sub in ("passes", "backend", "lower"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "passes" / "p.py").write_text("from ..backend import codegen\n")
    (root / "backend" / "b.py").write_text("from spago.passes.p import thing\nfrom ..lower.m import _hidden\n")
    (root / "lower" / "m.py").write_text("import llvmlite.ir\nfrom ..passes import p\n")
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        found = violations(root)
    finally:
        SRC = saved
    assert found == ["spago.backend.b imports spago.passes.p",
                     "spago.backend.b imports the private spago.lower.m._hidden",
                     "spago.lower.m imports llvmlite.ir", "spago.lower.m imports spago.passes",
                     "spago.passes.p imports spago.backend"]


MUTATORS = {"append", "insert", "extend", "remove", "pop", "clear", "sort", "reverse"}


def graph_edits(path: Path) -> list:
    """Places where a module edits a graph behind its back: writes to ``<x>.nodes`` (assignment, item
    assignment or a mutating list method), constructs ``Node(...)``, or calls ``<x>.users()``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def nodes_attr(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript):
            node = node.value
        return isinstance(node, ast.Attribute) and node.attr == "nodes"

    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(nodes_attr(t) for t in targets):
            found.append(f"{path.name}:{node.lineno} writes .nodes")
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in MUTATORS and nodes_attr(f.value):
                found.append(f"{path.name}:{node.lineno} calls .nodes.{f.attr}")
            if isinstance(f, ast.Attribute) and f.attr == "users":
                found.append(f"{path.name}:{node.lineno} rebuilds users()")
            if isinstance(f, ast.Name) and f.id == "Node":
                found.append(f"{path.name}:{node.lineno} constructs Node")
    return found


def test_passes_edit_graphs_only_through_the_graph_api():
    assert [e for p in sorted((PACKAGE / "passes").glob("*.py")) for e in graph_edits(p)] == []


def test_the_graph_edit_check_catches_each_kind(tmp_path):
    bad = tmp_path / "bad_pass.py"
    bad.write_text("def p(graph):\n    graph.nodes = []\n    graph.nodes[0:0] = [1]\n    graph.nodes.insert(0, 1)\n"
                   "    users = graph.users()\n    n = Node('op', None, 'x')\n")
    assert graph_edits(bad) == ["bad_pass.py:2 writes .nodes", "bad_pass.py:3 writes .nodes",
                                "bad_pass.py:4 calls .nodes.insert", "bad_pass.py:5 rebuilds users()",
                                "bad_pass.py:6 constructs Node"]


@pytest.mark.parametrize("module", ["spago.lower.memory", "spago.lower.matmul", "spago.lower.families",
                                    "spago.lower.gemm", "spago.passes.pack_weights"])
def test_lower_imports_without_llvmlite(module):
    """`spago.lower` is pure Python: importing it loads no llvmlite (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = f"import sys, {module}; assert 'llvmlite' not in sys.modules, [m for m in sys.modules if 'backend' in m]"
    run = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC), "PATH": ""},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

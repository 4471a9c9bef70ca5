"""Flatten nested tuples, lists and dicts into leaves and back, so traced functions keep their structure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TreeDef:
    """The shape of a nested container: ``kind`` is "leaf", "tuple", "list", "dict" or "none"."""

    kind: str
    children: tuple = ()
    keys: tuple = ()
    container: type = dict  # the dict class to rebuild (a model's ModelOutput comes back as one)

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = [str(c) for c in self.children]
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, inner)) + "}"
        if self.kind == "list":
            return "[" + ", ".join(inner) + "]"
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None, path: str = "") -> tuple[list, list, TreeDef]:
    """Leaves, their dotted paths, and the structure. ``None`` is kept as structure, not a leaf."""
    leaves: list = []
    paths: list = []

    def walk(node, where) -> TreeDef:
        if is_leaf is not None and is_leaf(node):
            leaves.append(node)
            paths.append(where)
            return TreeDef("leaf")
        if node is None:
            return TreeDef("none")
        if isinstance(node, (tuple, list)) and not hasattr(node, "_fields"):
            kids = tuple(walk(v, f"{where}.{i}" if where else str(i)) for i, v in enumerate(node))
            return TreeDef("tuple" if isinstance(node, tuple) else "list", kids)
        if isinstance(node, dict):
            keys = tuple(node)
            kids = tuple(walk(node[k], f"{where}.{k}" if where else str(k)) for k in keys)
            return TreeDef("dict", kids, keys, type(node))
        leaves.append(node)
        paths.append(where)
        return TreeDef("leaf")

    treedef = walk(tree, path)
    del walk  # a recursive closure is a reference cycle: it would keep the leaves alive until gc runs
    return leaves, paths, treedef


def unflatten(treedef: TreeDef, leaves: list) -> Any:
    it = iter(leaves)

    def build(td: TreeDef):
        if td.kind == "leaf":
            return next(it)
        if td.kind == "none":
            return None
        kids = [build(c) for c in td.children]
        if td.kind == "dict":
            return td.container(zip(td.keys, kids))
        return tuple(kids) if td.kind == "tuple" else kids

    tree = build(treedef)
    del build  # break the closure's reference cycle, which would hold the leaves until gc runs
    return tree

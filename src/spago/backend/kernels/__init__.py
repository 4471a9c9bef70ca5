"""Kernel families: each emits the body of one LLVM function for one kernel node.

A kernel function has the signature ``void k(ptr out, ptr in0, ptr in1, ...)``: the output buffer
first, then one pointer per input of the node, all contiguous row-major. Emitters receive those
pointers as ``args``.
"""
from __future__ import annotations

from typing import Callable

from ...errors import SpagoError
from ...ir.graph import Node

FAMILIES: dict[str, Callable] = {}
PARALLEL: dict[str, Callable] = {}  # family -> outer loop extent of a node, for families that can split it


def family(*names: str, parallel: Callable | None = None):
    """Register an emitter ``emit(b, args, node)``; with ``parallel``, the emitter also takes
    ``outer=(start, end)`` and ``parallel(node)`` gives the outer extent that threads divide."""
    def deco(fn):
        for n in names:
            FAMILIES[n] = fn
            if parallel is not None:
                PARALLEL[n] = parallel
        return fn

    return deco


def family_of(node: Node) -> str:
    if node.op.name == "fused":
        return node.attrs["pattern"]
    if node.op.kind == "elementwise":
        return "elementwise"
    return node.op.name


def emitter_for(node: Node) -> Callable:
    _load_families()
    name = family_of(node)
    fn = FAMILIES.get(name)
    if fn is None:
        raise SpagoError(f"the native backend cannot lower {node.format()}: no kernel family {name!r}")
    return fn


def _load_families() -> None:
    from . import attention, elementwise, indexing, matmul, misc, mlp, reduce, rowwise, shape  # noqa: F401

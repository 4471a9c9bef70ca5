"""Kernel families: each emits the body of one LLVM function for one kernel node.

A kernel function has the signature ``void k(ptr out, ptr in0, ptr in1, ...)``: the output buffer
first, then one pointer per input of the node, all contiguous row-major. Emitters receive those
pointers as ``args``.
"""
from __future__ import annotations

from typing import Callable

from ...errors import SpagoError
from ...ir.graph import Node
from ...lower.families import family_of

FAMILIES: dict[str, Callable] = {}


def family(*names: str):
    """Register an emitter ``emit(b, args, node)``; a family listed in `spago.lower.families.EXTENTS` also
    takes ``outer=(start, end)``, the part of its outer loop one thread runs."""
    def deco(fn):
        for n in names:
            FAMILIES[n] = fn
        return fn

    return deco


def emitter_for(node: Node) -> Callable:
    _load_families()
    name = family_of(node)
    fn = FAMILIES.get(name)
    if fn is None:
        raise SpagoError(f"the native backend cannot lower {node.format()}: no kernel family {name!r}")
    return fn


def _load_families() -> None:
    from . import attention, elementwise, indexing, matmul, misc, mlp, reduce, rowwise, shape  # noqa: F401

"""Kernel families as the backend lowers them, and how far each can split its outer loop across threads.

`family_of` names the family of a kernel node; `EXTENTS` is the static table of families that run their
outer loop in chunks on the thread pool, each with the function giving that loop's extent. The passes read
`parallel_extent` to estimate what a kernel costs; the backend reads it to emit the split."""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Node
from . import parallel
from .attention import attention_chunk, attention_extent
from .matmul import matmul_extent
from .mlp import mlp_extent
from .views import broadcast_strides, contiguous as contiguous_strides, is_view, outer_extent, view_of

def family_of(node: Node) -> str:
    if node.op.name == "fused":
        return node.attrs["pattern"]
    if node.op.elementwise:
        return "elementwise"
    return node.op.name


def leaves_of(node: Node) -> list:
    """What the loop loads: (IR node, input index, shape, strides, offset) for every operand of the
    elementwise work — a kernel input read contiguously, or a view of one read through its strides."""
    if node.op.name != "fused":
        return [(i, k, i.shape, contiguous_strides(i.shape), 0) for k, i in enumerate(node.inputs)]
    body = node.attrs["body"]
    views = {n for n in body.nodes if is_view(n)}
    leaves: dict = {}
    for n in body.nodes:
        if n in views:
            continue
        for i in n.inputs:
            if i in leaves or (i.kind == "op" and i not in views):  # computed in the loop, not loaded
                continue
            if i in views:
                root, shape, strides, offset = view_of(i, stop=views)
                leaves[i] = (i, body.inputs.index(root), shape, strides, offset)
            else:
                leaves[i] = (i, body.inputs.index(i), i.shape, contiguous_strides(i.shape), 0)
    return list(leaves.values())


def element_strides(node: Node) -> list:
    return [contiguous_strides(node.shape)] + [broadcast_strides(shape, node.shape, strides)
                                              for _, _, shape, strides, _ in leaves_of(node)]


def elementwise_extent(node: Node) -> int:
    return outer_extent(node.shape, element_strides(node))


def row_shape_and_strides(node: Node) -> tuple:
    body = node.attrs["body"]
    full_shape = next(n for n in body.nodes if n.op.reduction).inputs[0].shape
    strides = [broadcast_strides(body.outputs[0].shape, full_shape)[:-1]] + \
        [broadcast_strides(i.shape, full_shape)[:-1] for i in body.inputs]
    return full_shape[:-1], strides


def rowwise_extent(node: Node) -> int:
    return outer_extent(*row_shape_and_strides(node))


EXTENTS: dict[str, Callable[[Node], int]] = {
    "elementwise": elementwise_extent,
    "rowwise": rowwise_extent,
    "matmul": matmul_extent,
    "attention": attention_extent,
    "mlp": mlp_extent,
}


PRODUCTS = ("matmul", "attention", "mlp")


def parallel_extent(node: Node) -> int:
    """The outer loop extent to split across threads, or 0 to run the kernel on one thread."""
    family = family_of(node)
    extent_of = EXTENTS.get(family)
    if extent_of is None or parallel.threads_for(node) < 2:
        return 0  # no pool, or the kernel runs inside a branch of a parallel region: on its branch's thread
    if family not in PRODUCTS and node.spec.size < parallel.MIN_ELEMENTS:
        return 0  # kernels of matrix products judge their own work (multiply-adds, not output size)
    return extent_of(node)


def parallel_chunk(node: Node, extent: int) -> int:
    """Items per chunk threads claim: a few chunks per thread (a thread the OS preempts holds up little),
    except attention over whole sequences (`attention_chunk`)."""
    threads = min(parallel.threads(), extent)
    if family_of(node) == "attention":
        return attention_chunk(node, extent, threads)
    return max(1, extent // (threads * 4))

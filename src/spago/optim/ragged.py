"""A ragged last batch without a recompile: pad it to the batch size the step was compiled for and weigh
the padded rows out of the loss (`spago.losses.row_weights`).

That is exact only when nothing mixes batch rows on the way to the loss and every reduction of the batch
axis goes through the weights, so `padding_is_exact` proves it on the traced step: it follows each value
from the batch inputs to the loss, knowing which ops keep rows apart (elementwise ops, products by a
weight, reductions over other axes, row-preserving views, embedding lookups), and accepts only a loss
whose every dependence on a batch row passes through a multiplication by that row's weight (0 for a
padded row) before the batch axis is summed. Padded rows repeat the last real row, so they stay finite
and 0·(their terms) is exactly 0 — in the loss and in every gradient.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.pytree import flatten, unflatten
from ..tensor import Tensor

CLEAN, ROWS, ZEROED, MIXED = "clean", "rows", "zeroed", "mixed"  # how a value depends on the batch rows


def pad_batch(batch: tuple, size: int) -> tuple:
    """``batch`` with every array's leading axis grown to ``size`` by repeating its last row."""
    leaves, _, tree = flatten((tuple(batch), {}))
    padded = []
    for a in leaves:
        a = a.numpy() if isinstance(a, Tensor) else a
        if isinstance(a, np.ndarray) and a.ndim and a.shape[0] < size:
            a = np.concatenate([a, np.repeat(a[-1:], size - a.shape[0], axis=0)])
        padded.append(a)
    return unflatten(tree, padded)[0]


def _axes(n: Node, ndim: int) -> set:
    axes = n.attrs.get("axes", n.attrs.get("axis"))
    if axes is None:
        return set(range(ndim))
    return {a % max(ndim, 1) for a in (axes if isinstance(axes, (tuple, list)) else (axes,))}


def padding_is_exact(graph: Graph, rows: Node, batch: list, loss: Node) -> tuple[bool, str]:
    """Whether padded batch rows (``batch`` input nodes; ``rows`` the row-weight input) leave ``loss``
    untouched; if not, the first op that mixes rows, in words."""
    size, needed = rows.shape[0], _ancestors(loss)
    state: dict = {n: ROWS for n in batch}
    weights = {rows}  # the row weights and their casts and reshapes
    for n in graph.nodes:
        if n not in needed:
            continue
        got = [state.get(i, CLEAN) for i in n.inputs]
        if all(g == CLEAN for g in got):
            if any(i in weights for i in n.inputs) and n.op.name in ("cast", "reshape") and n.shape[:1] == (size,):
                weights.add(n)
            continue
        state[n] = _step(n, got, weights, size)
        if state[n] == MIXED:
            where = f" in {n.scope}" if n.scope else ""
            return False, f"{n.op.name}{where} mixes batch rows before the loss is weighed by them"
    if state.get(loss, CLEAN) != CLEAN:
        return False, "the loss reduces the batch axis outside spago.losses (which weigh padded rows out)"
    return True, ""


def _step(n: Node, got: list, weights: set, size: int) -> str:
    """The state of ``n`` from its inputs' states (at least one of them not clean)."""
    name, kind, out = n.op.name, n.op.kind, n.spec
    aligned = all(g == CLEAN or (len(i.shape) == len(out.shape) and i.shape[:1] == (size,)) for i, g in zip(n.inputs, got))
    if kind == "elementwise":
        if not aligned or out.shape[:1] != (size,):
            return MIXED
        if name == "mul" and (ZEROED in got or any(i in weights for i in n.inputs)):
            return ZEROED
        if name in ("neg", "cast") and got == [ZEROED]:
            return ZEROED
        return ROWS
    if kind == "reduction":
        reduced = _axes(n, len(n.inputs[0].shape))
        if 0 not in reduced:
            return got[0]
        return CLEAN if name == "sum" and got[0] == ZEROED else MIXED
    if name == "transpose":
        return got[0] if tuple(n.attrs["axes"])[:1] == (0,) else MIXED
    if name == "reshape":
        return got[0] if out.shape[:1] == n.inputs[0].shape[:1] == (size,) else MIXED
    if name == "getitem":
        index = n.attrs["index"]
        return got[0] if index and index[0] == ("slice", None, None, None) else MIXED
    if name == "one_hot":
        return ROWS
    if name == "concat":
        return ROWS if n.attrs["axis"] % len(out.shape) != 0 and aligned else MIXED
    if name == "take":
        table, index = got
        if table == CLEAN and n.attrs.get("axis", 0) == 0 and out.shape[:1] == (size,):
            return ROWS  # an embedding lookup: row r reads the ids of row r
        return ROWS if index == CLEAN and n.attrs.get("axis", 0) % len(n.inputs[0].shape) != 0 else MIXED
    if name == "matmul":
        a, b = n.inputs
        if got[1] == CLEAN and len(a.shape) >= 2:
            return ROWS if aligned else MIXED
        return ROWS if len(a.shape) >= 3 and len(b.shape) >= 3 and aligned else MIXED
    return MIXED


def _ancestors(node: Node) -> set:
    """``node`` and every node it depends on."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(n.inputs)
    return seen


def batch_rows(batch: tuple) -> Any:
    """The one batch size all of ``batch``'s arrays share on their leading axis, or None."""
    sizes = {a.shape[0] for a in flatten((tuple(batch), {}))[0] if isinstance(a, (np.ndarray, Tensor)) and a.ndim}
    return sizes.pop() if len(sizes) == 1 else None

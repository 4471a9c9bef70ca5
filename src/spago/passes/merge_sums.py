"""Merge sums of many similar terms into one op — what reverse mode leaves behind an unrolled loop.

The gradient of a tensor read slice by slice (``p[t]`` at every step of an RNN, the gates split off one
pre-activation) is a chain of adds over ``unindex`` terms, each a zero-filled tensor of full size; the
gradient of a weight used at every step is a chain of adds over small products. Both cost time and memory
traffic quadratic in the number of steps. Two rewrites work on the leaves of each tree of adds, two more
on the single products that weight gradients leave in an awkward shape:

* **slices** — ``unindex(g_i, index_i)`` terms whose indices are unit-step boxes that differ along one
  axis and do not overlap become ``concat(g_1, [zeros], g_2, ...)`` along that axis (terms with the same box
  are added first; gaps are zero-filled). Along the leading axis the pieces are joined on the merged
  first two axes and reshaped, so a time-major gradient is one ``concat`` of the per-step gradients.
* **products** — 2-D products ``A_i @ B_i`` (or their transposes) become one product
  ``[A_1 … A_n] @ [B_1; …; B_n]`` over the concatenated operands, when copying the operands moves less
  data than accumulating the n outputs. The operands are ordered like the slices rewrite orders the
  same tensors, so the two rewrites share one ``concat`` (the per-step gate gradients of an LSTM are
  both its input-projection gradient and the right operand of its recurrent weight gradient).
* **batched products** — ``sum`` over the batch axes of a batched product ``A_b @ B_b`` (the gradient of
  a weight applied to every entry of a batch, e.g. a Linear on (batch, time, features)) becomes one 2-D
  product of the entries side by side, read through reshapes instead of many small products.
* **transposed products** — ``(A @ B)ᵀ`` becomes ``Bᵀ @ Aᵀ`` read through views, so the product writes the
  layout its reader wants instead of a transpose copying it afterwards.

Only terms read by nothing else are rewritten, and new nodes go right before the node they replace, so
the graph stays in topological order.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.rewrite import Rewriter


def _is(node: Node, name: str) -> bool:
    return node.kind == "op" and node.op.name == name


def _box(index: tuple, shape: tuple) -> list | None:
    """(start, stop) per axis if ``index`` picks a unit-step box of ``shape`` (ints, slices, ellipsis), else None."""
    if any(e[0] in ("array", "newaxis") for e in index):
        return None
    explicit = sum(e[0] in ("int", "slice") for e in index)
    full = ("slice", None, None, None)
    entries = []
    for e in index:
        entries.extend([full] * (len(shape) - explicit) if e[0] == "ellipsis" else [e])
    entries.extend([full] * (len(shape) - len(entries)))
    box = []
    for e, d in zip(entries, shape):
        if e[0] == "int":
            i = e[1] + d if e[1] < 0 else e[1]
            box.append((i, i + 1))
        else:
            start, stop, step = slice(*e[1:]).indices(d)
            if step != 1 or stop <= start:
                return None
            box.append((start, stop))
    return box


def _slice_term(leaf: Node) -> tuple | None:
    """(axis, (start, stop)) for an ``unindex`` whose box differs from the full shape along exactly one axis."""
    if not _is(leaf, "unindex"):
        return None
    shape = leaf.attrs["shape"]
    box = _box(leaf.attrs["index"], shape)
    if box is None:
        return None
    varying = [a for a, (s, e) in enumerate(box) if (s, e) != (0, shape[a])]
    return (varying[0], box[varying[0]]) if len(varying) == 1 else None


class _SumRewriter(Rewriter):
    """The rewrites of the module docstring, in graph order; new nodes go before the node they replace."""

    def emit(self, op: str, inputs: list, attrs: dict | None = None, scope: str = "", share: bool = False) -> Node:
        # one concat per set of pieces: the slices and products rewrites read the same one in place
        return super().emit(op, inputs, attrs, scope, share=share or op == "concat")

    def concat(self, parts: list, axis: int, scope: str) -> Node:
        return parts[0] if len(parts) == 1 else self.emit("concat", parts, {"axis": axis}, scope)

    # -- trees of adds ---------------------------------------------------------------------------
    def tree(self, root: Node) -> tuple[list, set]:
        """(leaves, interior adds) of the tree of adds under ``root``; a leaf repeats as often as it is added."""
        leaves, interior, stack = [], {root}, [root]
        while stack:
            n = stack.pop()
            for i in reversed(n.inputs):
                if _is(i, "add") and i.spec == root.spec and self.only_read_by(i, n):
                    interior.add(i)
                    stack.append(i)
                else:
                    leaves.append(i)
        return leaves, interior

    def is_root(self, node: Node) -> bool:
        if not _is(node, "add"):
            return False
        if node.uses() != 1 or self.is_output(node):
            return True
        reader = next(iter(node.users))
        return not (_is(reader, "add") and reader.spec == node.spec)

    def rewrite(self, root: Node) -> None:
        leaves, interior = self.tree(root)
        slices: dict = {}
        products, rest = [], []
        for leaf in leaves:
            term = _slice_term(leaf) if leaf.spec == root.spec and self.only_read_by(leaf, interior) else None
            pair = self.product_term(leaf, interior, root)
            if term is not None:
                slices.setdefault(term[0], []).append((term[1], leaf))
            elif pair is not None:
                products.append(pair)
            else:
                rest.append(leaf)
        self.before(root)
        merged = []
        for axis, terms in slices.items():
            value = self.merge_slices(root, axis, terms)
            if value is None:
                rest.extend(leaf for _, leaf in terms)
            else:
                merged.append(value)
        if len(products) >= 2 and self.products_pay(products):
            merged.append(self.merge_products(root, products))
        else:
            rest.extend(pair[2] for pair in products)
        if not merged:
            return
        total = merged[0]
        for term in merged[1:] + rest:
            total = self.emit("add", [total, term], {}, root.scope)
        if total.spec != root.spec:  # a broadcast term would change the type: leave the tree alone
            return
        self.replace(root, total)

    # -- slices ------------------------------------------------------------------------------------
    def merge_slices(self, root: Node, axis: int, terms: list) -> Node | None:
        shape, dtype, scope = root.shape, root.dtype, root.scope
        ranges = sorted({r for r, _ in terms})
        if any(a[1] > b[0] for a, b in zip(ranges, ranges[1:])):
            return None  # overlapping boxes
        if len(ranges) == 1 and ranges[0] != (0, shape[axis]):
            return None  # a single box inside zeros: nothing to merge
        fold = axis == 0 and len(shape) >= 2  # join on the merged leading axes, then reshape

        def piece_shape(size: int) -> tuple:
            if fold:
                return (size * shape[1],) + shape[2:]
            return shape[:axis] + (size,) + shape[axis + 1:]

        parts, at = [], 0
        for r in ranges:
            if r[0] > at:
                parts.append(self.zeros(piece_shape(r[0] - at), dtype, scope))
            want = piece_shape(r[1] - r[0])
            same = [leaf.inputs[0] for box, leaf in terms if box == r]
            same = [g if g.shape == want else self.emit("reshape", [g], {"shape": want}, scope) for g in same]
            value = same[0]
            for g in same[1:]:
                value = self.emit("add", [value, g], {}, scope)
            parts.append(value)
            at = r[1]
        if at < shape[axis]:
            parts.append(self.zeros(piece_shape(shape[axis] - at), dtype, scope))
        joined = self.concat(parts, 0 if fold else axis, scope)
        return joined if joined.shape == shape else self.emit("reshape", [joined], {"shape": shape}, scope)

    # -- products ----------------------------------------------------------------------------------
    def product_term(self, leaf: Node, interior: set, root: Node) -> tuple | None:
        """(left, right, leaf) with leaf = left @ right; each operand a (node, transposed) pair."""
        if leaf.spec != root.spec or leaf.spec.ndim != 2 or not self.only_read_by(leaf, interior):
            return None
        flipped = _is(leaf, "transpose") and leaf.attrs["axes"] == (1, 0)
        product = leaf.inputs[0] if flipped else leaf
        if not _is(product, "matmul") or (flipped and not self.only_read_by(product, leaf)):
            return None
        a, b = product.inputs
        if a.spec.ndim != 2 or b.spec.ndim != 2 or a.dtype != root.dtype or b.dtype != root.dtype:
            return None
        a, b = _peel(a), _peel(b)
        if flipped:  # (A B)ᵀ = Bᵀ Aᵀ
            a, b = (b[0], not b[1]), (a[0], not a[1])
        return a, b, leaf

    def products_pay(self, products: list) -> bool:
        """Copying the operands once must cost less than writing and adding the n products."""
        m, n = products[0][2].shape
        copied = sum(_value_shape(a)[1] * (m + n) for a, _, _ in products)
        return copied <= len(products) * m * n

    def merge_products(self, root: Node, products: list) -> Node:
        scope = root.scope
        products = sorted(products, key=lambda p: (p[0][1] and self.slot(p[0][0])) or
                          (not p[1][1] and self.slot(p[1][0])) or ())
        # the left operands joined along their columns, the right ones along their rows
        left = self.join([a for a, _, _ in products], 1, scope)
        right = self.join([b for _, b, _ in products], 0, scope)
        return self.emit("matmul", [left, right], {}, scope)

    def join(self, operands: list, axis: int, scope: str) -> Node:
        """The operands' values concatenated along ``axis``; transposed ones as the transpose of a concat."""
        if all(t for _, t in operands):
            return self.emit("transpose", [self.concat([x for x, _ in operands], 1 - axis, scope)],
                             {"axes": (1, 0)}, scope)
        values = [self.emit("transpose", [x], {"axes": (1, 0)}, scope) if t else x for x, t in operands]
        return self.concat(values, axis, scope)

    def batched_sum(self, node: Node) -> None:
        """``sum`` over the batch axes of a batched product (a weight's gradient when the weight multiplied
        every entry of a batch): Σ_b A_b·B_b is one product of the entries side by side and stacked."""
        product = node.inputs[0]
        if not _is(product, "matmul") or not self.only_read_by(product, node):
            return
        a, b = product.inputs
        nb = product.spec.ndim - 2
        if nb < 1 or node.attrs["axes"] != tuple(range(nb)) or a.spec.ndim != nb + 2 or b.spec.ndim != nb + 2 \
                or a.shape[:nb] != b.shape[:nb]:
            return
        (m, k), n = a.shape[nb:], b.shape[-1]
        rows = int(np.prod(a.shape[:nb], dtype=np.int64)) * k
        scope = node.scope
        self.before(node)
        swap = tuple(range(nb)) + (nb + 1, nb)
        if _is(a, "transpose") and a.attrs["axes"] == swap:  # A = Xᵀ per entry: read X's rows as one matrix
            left = self.emit("transpose", [self.emit("reshape", [a.inputs[0]], {"shape": (rows, m)}, scope)],
                             {"axes": (1, 0)}, scope)
        else:
            moved = self.emit("transpose", [a], {"axes": (nb,) + tuple(range(nb)) + (nb + 1,)}, scope)
            left = self.emit("reshape", [moved], {"shape": (m, rows)}, scope)
        right = self.emit("reshape", [b], {"shape": (rows, n)}, scope)
        total = self.emit("matmul", [left, right], {}, scope)
        if total.shape != node.shape:
            total = self.emit("reshape", [total], {"shape": node.shape}, scope)
        self.replace(node, total)

    def transposed_product(self, node: Node) -> None:
        """(A·B)ᵀ = Bᵀ·Aᵀ: the product writes the transposed result itself instead of a copy after it (the
        gradient of a weight used as ``x @ W.T``), its operands read as transposed views."""
        product = node.inputs[0]
        if node.attrs["axes"] != (1, 0) or not _is(product, "matmul") or product.spec.ndim != 2 \
                or any(i.spec.ndim != 2 for i in product.inputs) or not self.only_read_by(product, node):
            return
        a, b = (_peel(i) for i in product.inputs)
        self.before(node)
        left, right = (self.join([(x, not t)], 0, node.scope) for x, t in (b, a))
        self.replace(node, self.emit("matmul", [left, right], {}, node.scope))

    def slot(self, node: Node) -> tuple:
        """Where ``node`` goes in a leading-axis gradient (an ``unindex`` reading it), so that products
        order their operands as the slices rewrite does; () if nothing says."""
        for u in node.users:
            term = _slice_term(u)
            if term is not None and term[0] == 0:
                return term[1]
        return ()


def _peel(node: Node) -> tuple:
    """(x, transposed) with node = xᵀ if transposed, looking through 2-D transposes."""
    transposed = False
    while _is(node, "transpose") and node.attrs["axes"] == (1, 0):
        node, transposed = node.inputs[0], not transposed
    return node, transposed


def _value_shape(operand: tuple) -> tuple:
    node, transposed = operand
    return node.shape[::-1] if transposed else node.shape


def merge_sums(graph: Graph) -> Graph:
    rewriter = _SumRewriter(graph)
    for node in list(graph.nodes):
        if rewriter.is_root(node):
            rewriter.rewrite(node)
        elif _is(node, "sum"):
            rewriter.batched_sum(node)
        elif _is(node, "transpose"):
            rewriter.transposed_product(node)
    graph.remove_unused()
    return graph

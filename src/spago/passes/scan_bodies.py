"""Optimise scan loops: inside their bodies, and across them.

For every ``scan`` node, in order:

0. **residuals shared** — a backward loop (a gradient's reverse scan) replays each forward step from the
   carries the forward loop stacked; the values of that replay which the backward work reads and which
   cost something to recompute (a product, a sigmoid — and everything computed from them) are stacked by
   the forward loop, which computes them anyway, and read back instead (a BiLSTM training step against
   its unrolled form: sharing nothing 1.20–1.27x, only the products 1.08–1.19x, these values 1.00–1.11x);
1. **dead results** — a stacked ``y`` nothing reads (say, the carries a gradient would have needed) is no
   longer computed;
2. **constants in** — a captured operand that is a constant (a frozen weight) becomes a constant of the
   body, so folding and fusion inside see it;
3. **loop-invariant code out** — body work that depends only on captured operands and constants (a
   transposed weight, a broadcast bias) is moved before the loop and computed once;
4. **per-step work out** — a product ``x_t @ W`` of each step's input by an invariant matrix, and the
   elementwise work on it with invariants, become ONE product over all steps before the loop
   (``X @ W`` on the (T·B, I) rows), which the loop then reads row block by row block;
5. **sums out** — a carry that only accumulates, ``acc' = acc + v_t`` (a gradient summed over the steps),
   stops being a carry: the body returns ``v_t`` (or, for a product ``a_tᵀ·b_t``, its operands) stacked,
   and one sum — one (M, T·B) × (T·B, N) product — after the loop adds them all (``merge_sums`` for loops);
6. **the body's own pipeline** — simplification, folding, CSE, fusion, and this pass for nested loops.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ops.registry import Spec
from ..ops.scan import layout, part_specs, scan_op

LOOPS = frozenset({"scan", "scan_part"})  # with effectful ops, these stay where the loop puts them


def _keep_inside(n: Node) -> bool:
    return n.op.name in LOOPS or n.op.effectful


def _insert_early(graph: Graph, anchor: Node, new: list) -> None:
    """Place ``new`` (in dependency order) before ``anchor``, each as early as its inputs allow, so work
    moved out of a loop can be batched with other early work (see ``batch_matmul``)."""
    for n in new:
        graph.insert_before(anchor, n, early=True)


def _add_op(graph: Graph, op_name: str, inputs: list, attrs: dict, scope: str, made: list) -> Node:
    """A new node, not yet placed: the caller places ``made`` once it knows the rewrite pays."""
    node = graph.create_node(op_name, inputs, attrs, scope)
    made.append(node)
    return node


def _refresh(node: Node, users: list) -> None:
    """Re-derive the scan's packed type and its ``scan_part`` views after the body's results changed."""
    body, length, ncar = node.attrs["body"], node.attrs["length"], node.attrs["num_carry"]
    node.spec = scan_op.shape_rule(*[i.spec for i in node.inputs], **node.attrs)
    offsets = layout(body, length, ncar)[0]
    for u in users:
        u.attrs["offset"] = offsets[u.attrs["index"]]


def prune_results(node: Node, users: list) -> None:
    body, ncar = node.attrs["body"], node.attrs["num_carry"]
    used = {u.attrs["index"] for u in users}
    keep = [k for k in range(len(body.outputs)) if k < ncar or k in used]
    if len(keep) == len(body.outputs):
        return
    body.outputs = [body.outputs[k] for k in keep]
    renumber = {old: new for new, old in enumerate(keep)}
    for u in users:
        u.attrs["index"] = renumber[u.attrs["index"]]
    node.attrs["saved"] = None
    body.remove_unused()
    _refresh(node, users)


def inline_constants(node: Node) -> None:
    body, nc = node.attrs["body"], node.attrs["num_consts"]
    keep = []
    for k in range(nc):
        outer, inner = node.inputs[k], body.inputs[k]
        if outer.kind == "const":
            body.replace_uses(inner, body.add_const(outer.data, outer.name))
        else:
            keep.append(k)
    if len(keep) == nc:
        return
    rest = list(range(nc, len(node.inputs)))
    node.inputs = [node.inputs[k] for k in keep + rest]
    body.inputs = [body.inputs[k] for k in keep + rest]
    node.attrs["num_consts"] = len(keep)


def _capture(node: Node, body: Graph, outer: Node, inner: Node, where: int) -> None:
    """Make ``inner`` (a body value) read a new operand ``outer`` of the scan, at position ``where``."""
    new = body.add_input(inner.spec, f"hoisted.{inner.name}")
    body.inputs.remove(new)
    body.inputs.insert(where, new)
    node.inputs = node.inputs[:where] + (outer,) + node.inputs[where:]
    body.replace_uses(inner, new)


def hoist_invariants(graph: Graph, node: Node) -> None:
    body, nc = node.attrs["body"], node.attrs["num_consts"]
    outer_of: dict = {body.inputs[k]: node.inputs[k] for k in range(nc)}
    invariant = set(body.inputs[:nc]) | set(body.consts) | set(body.params)
    for n in body.nodes:
        if not _keep_inside(n) and all(i in invariant for i in n.inputs):
            invariant.add(n)
    outputs = set(body.outputs)
    frontier = [n for n in body.nodes if n in invariant
                and (n in outputs or any(u not in invariant for u in n.users))]
    if not frontier:
        return
    made: list = []

    def outer(n: Node) -> Node:
        if n not in outer_of:
            if n.kind in ("const", "param"):
                outer_of[n] = graph.add_const(n.data, n.name)
            else:
                outer_of[n] = _add_op(graph, n.op.name, [outer(i) for i in n.inputs], n.attrs, node.scope, made)
        return outer_of[n]

    frontier = [(f, outer(f)) for f in frontier if f.kind == "op"]
    for f, o in frontier:
        _capture(node, body, o, f, node.attrs["num_consts"])
        node.attrs["num_consts"] += 1
    _insert_early(graph, node, made)
    body.remove_unused()


def _stepwise(n: Node, step: dict, invariant: set) -> bool:
    """Whether ``n`` can run on all steps at once: a product of a step value by an invariant matrix, or
    elementwise work on step values and invariants no wider than them."""
    if n.op.name == "matmul":
        a, w = n.inputs
        return a in step and w in invariant and w.spec.ndim == 2
    if not n.op.elementwise or not any(i in step for i in n.inputs):
        return False
    if not all(i in step or i in invariant for i in n.inputs):
        return False
    return all(n.spec.shape == i.spec.shape for i in n.inputs if i in step) and \
        all(i.spec.ndim <= n.spec.ndim for i in n.inputs if i in invariant)


def hoist_step_products(graph: Graph, node: Node) -> None:
    body, nc, ncar, length = (node.attrs["body"], node.attrs["num_consts"], node.attrs["num_carry"],
                              node.attrs["length"])
    invariant = set(body.inputs[:nc]) | set(body.consts)
    step: dict = {body.inputs[k]: node.inputs[k] for k in range(nc + ncar, len(body.inputs))}
    made: list = []
    hoisted = []
    for n in body.nodes:
        if n.op.name == "matmul" and _stepwise(n, step, invariant) and n.inputs[0].spec.ndim >= 2:
            a, w = n.inputs
            lead = int(np.prod(a.spec.shape[:-1], dtype=np.int64)) * length
            rows = _add_op(graph, "reshape", [step[a]], {"shape": (lead, a.spec.shape[-1])}, node.scope, made)
            w_out = _outer_invariant(graph, node, body, w)
            if w_out is None:
                continue
            prod = _add_op(graph, "matmul", [rows, w_out], {}, node.scope, made)
            step[n] = _add_op(graph, "reshape", [prod], {"shape": (length,) + n.spec.shape}, node.scope, made)
            hoisted.append(n)
        elif _stepwise(n, step, invariant) and any(i in hoisted for i in n.inputs):  # work on a product
            ins = [step[i] if i in step else _outer_invariant(graph, node, body, i) for i in n.inputs]
            if any(i is None for i in ins):
                continue
            made_node = _add_op(graph, n.op.name, ins, n.attrs, node.scope, made)
            if made_node.spec.shape != (length,) + n.spec.shape:
                made.remove(made_node)
                continue
            step[n] = made_node
            hoisted.append(n)
    frontier = [n for n in hoisted if n in body.outputs or any(u not in step for u in n.users)]
    if not frontier:
        return
    _insert_early(graph, node, made)
    for f in frontier:
        new = body.add_input(f.spec, f"step.{f.name}")
        node.inputs += (step[f],)
        body.replace_uses(f, new)
    body.remove_unused()
    graph.remove_unused()


def _outer_invariant(graph: Graph, node: Node, body: Graph, n: Node) -> Node | None:
    """The outer node for an invariant body input or constant (None for other invariants)."""
    nc = node.attrs["num_consts"]
    if n in body.inputs[:nc]:
        return node.inputs[body.inputs.index(n)]
    if n.kind == "const":
        return graph.add_const(n.data, n.name)
    return None


def _is_transpose2d(n: Node) -> bool:
    return n.kind == "op" and n.op.name == "transpose" and n.spec.ndim == 2 and tuple(n.attrs["axes"]) == (1, 0)


def _accumulator(body: Graph, nc: int, k: int) -> Node | None:
    """The summand ``v`` if carry ``k`` only accumulates (out_k = in_k + v, neither read otherwise)."""
    c, o = body.inputs[nc + k], body.outputs[k]
    if o.kind != "op" or o.op.name != "add" or body.outputs.count(o) != 1 or o.users \
            or c in body.outputs or list(c.users) != [o] or c.uses() != 1:
        return None
    v = o.inputs[1] if o.inputs[0] is c else o.inputs[0] if o.inputs[1] is c else None
    return v if v is not None and v is not c and v.spec == o.spec else None


def _row_sum(v: Node) -> Node | None:
    """``a`` if ``v`` is the sum of the rows of a 2-D ``a`` (a bias gradient), maybe reshaped, else None."""
    if v.kind == "op" and v.op.name == "reshape":
        v = v.inputs[0]
    if v.kind == "op" and v.op.name == "sum" and tuple(v.attrs["axes"]) == (0,) and v.inputs[0].spec.ndim == 2:
        return v.inputs[0]
    return None


def hoist_accumulators(graph: Graph, node: Node, parts: list) -> None:
    body, nc, length = node.attrs["body"], node.attrs["num_consts"], node.attrs["length"]
    found = [(k, v) for k in range(node.attrs["num_carry"]) if (v := _accumulator(body, nc, k)) is not None]
    if not found:
        return
    xs_outer = {body.inputs[j]: node.inputs[j] for j in range(nc + node.attrs["num_carry"], len(body.inputs))}
    finals = {}  # carry index -> (init operand, the summand)
    for k, v in reversed(found):  # drop the carries, last first, so earlier indices stay put
        finals[k] = (node.inputs[nc + k], v)
        body.inputs.pop(nc + k)
        body.outputs.pop(k)
        node.inputs = node.inputs[:nc + k] + node.inputs[nc + k + 1:]
        node.attrs["num_carry"] -= 1
    old = {u: u.attrs["index"] for u in parts}
    for u in parts:
        u.attrs["index"] -= sum(1 for k in finals if k < old[u])
    node.attrs["saved"] = None
    made: list = []

    def stacked(x: Node) -> Node:
        """All steps of body value ``x`` outside the loop, (length, *x.shape)."""
        if x in xs_outer:
            return xs_outer[x]
        ncar = node.attrs["num_carry"]
        if x in body.outputs[ncar:]:  # already a stacked result: one more view of it (placed right here)
            xs_outer[x] = _part_of(graph, node, body.outputs.index(x, ncar), made)
            parts.append(xs_outer[x])
            return xs_outer[x]
        body.outputs.append(x)
        spec = Spec((length,) + x.spec.shape, x.spec.dtype)
        part = graph.create_node("scan_part", [node],  # the offset is set by `_refresh`
                                 dict(index=len(body.outputs) - 1, offset=0, shape=spec.shape, dtype=spec.dtype),
                                 node.scope, spec=spec)
        parts.append(part)
        made.append(part)
        xs_outer[x] = part
        return part

    def rows(x: Node) -> Node:  # (length, B, M) -> (length·B, M)
        s = stacked(x)
        return _add_op(graph, "reshape", [s], {"shape": (length * x.spec.shape[0], x.spec.shape[1])}, node.scope,
                       made)

    for k in sorted(finals):
        init, v = finals[k]
        flip = _is_transpose2d(v)
        m = v.inputs[0] if flip else v
        if m.kind == "op" and m.op.name == "matmul" and m.spec.ndim == 2 and all(i.spec.ndim == 2 for i in m.inputs):
            a, b = m.inputs
            if _is_transpose2d(a):  # Σ p_tᵀ·b_t = Pᵀ·B over the stacked rows
                left = _add_op(graph, "transpose", [rows(a.inputs[0])], {"axes": (1, 0)}, node.scope, made)
            else:
                spread = _add_op(graph, "transpose", [stacked(a)], {"axes": (1, 0, 2)}, node.scope, made)
                left = _add_op(graph, "reshape", [spread], {"shape": (a.spec.shape[0], length * a.spec.shape[1])},
                               node.scope, made)
            total = _add_op(graph, "matmul", [left, rows(b)], {}, node.scope, made)
            if flip:
                total = _add_op(graph, "transpose", [total], {"axes": (1, 0)}, node.scope, made)
        elif _row_sum(v) is not None:  # Σ_t Σ_rows a_t: one sum over the stacked rows
            a = _row_sum(v)
            total = _add_op(graph, "sum", [rows(a)], {"axes": (0,), "keepdims": False}, node.scope, made)
            total = _add_op(graph, "reshape", [total], {"shape": v.spec.shape}, node.scope, made)
        else:
            total = _add_op(graph, "sum", [stacked(v)], {"axes": (0,), "keepdims": False}, node.scope, made)
        final = _add_op(graph, "add", [init, total], {}, node.scope, made)
        for u in [u for u in parts if u not in made and old.get(u) == k]:
            graph.replace_uses(u, final)
            parts.remove(u)
    body.remove_unused()
    _refresh(node, parts)
    graph.insert_all(graph.nodes.index(node) + 1, made)


def drop_unused_operands(node: Node) -> None:
    """Captured operands and step inputs the body no longer reads stop being operands."""
    body, nc, ncar = node.attrs["body"], node.attrs["num_consts"], node.attrs["num_carry"]
    read = {i for n in body.nodes for i in n.inputs} | set(body.outputs)
    keep = [k for k in range(len(body.inputs)) if nc <= k < nc + ncar or body.inputs[k] in read]
    node.inputs = [node.inputs[k] for k in keep]
    body.inputs = [body.inputs[k] for k in keep]
    node.attrs["num_consts"] = sum(1 for k in keep if k < nc)


def optimize_body(node: Node) -> None:
    from . import body_passes, optimize

    node.attrs["body"] = optimize(node.attrs["body"], body_passes(), verify=False)[0]


COSTLY = frozenset({"matmul", "exp", "log", "tanh", "sigmoid", "sin", "cos", "erf", "log1p", "sqrt", "rsqrt",
                    "pow", "div", "sum", "max", "min", "logsumexp"})


def _part_of(graph: Graph, node: Node, index: int, made: list) -> Node:
    """A ``scan_part`` reading result ``index`` of ``node`` (offsets are set by `_refresh`)."""
    spec = part_specs(node.attrs["body"], node.attrs["length"], node.attrs["num_carry"])[index]
    part = graph.create_node("scan_part", [node], dict(index=index, offset=0, shape=spec.shape, dtype=spec.dtype),
                             node.scope, spec=spec)
    made.append(part)
    return part


def share_residuals(graph: Graph, forward: Node, backward: Node) -> None:
    """Rewrite ``backward``'s body to read, from ``forward``'s stacked results, the costly values it
    recomputes from ``forward``'s stacked carries (see step 0 of the module docstring)."""
    fbody, bbody = forward.attrs["body"], backward.attrs["body"]
    fnc, fncar, saved = forward.attrs["num_consts"], forward.attrs["num_carry"], forward.attrs["saved"]
    bnc, bncar = backward.attrs["num_consts"], backward.attrs["num_carry"]
    from .cse import hashable

    canon: dict = {}  # forward body value -> canonical key
    for k, n in enumerate(fbody.inputs):
        outer = forward.inputs[k]
        canon[n] = ("captured", id(outer)) if k < fnc else ("carry", k - fnc) if k < fnc + fncar else ("x", id(outer))
    for n in fbody.consts:
        canon[n] = ("const", id(n.data))
    by_key: dict = {}
    for n in fbody.nodes:
        if _keep_inside(n) or any(i not in canon for i in n.inputs):
            continue
        canon[n] = (n.op.name, hashable(n.attrs), n.spec, tuple(canon[i] for i in n.inputs))
        by_key.setdefault(canon[n], n)
    mapped: dict = {}  # backward body value -> canonical key
    for k, n in enumerate(bbody.inputs):
        outer = backward.inputs[k]
        if k < bnc:
            mapped[n] = ("captured", id(outer))
        elif k >= bnc + bncar:
            if outer.op is not None and outer.op.name == "scan_part" and outer.inputs[0] is forward:
                j = outer.attrs["index"] - saved
                if 0 <= j < fncar:
                    mapped[n] = ("carry", j)
            elif outer in forward.inputs[fnc + fncar:]:
                mapped[n] = ("x", id(outer))
    for n in bbody.consts:
        mapped[n] = ("const", id(n.data))
    same: dict = {}  # backward body node -> forward body node computing the same value
    for n in bbody.nodes:
        if _keep_inside(n) or any(i not in mapped for i in n.inputs):
            continue
        key = (n.op.name, hashable(n.attrs), n.spec, tuple(mapped[i] for i in n.inputs))
        if key in by_key:
            mapped[n], same[n] = key, by_key[key]
    costly: dict = {}
    for n in bbody.nodes:
        if n in same:
            costly[n] = n.op.name in COSTLY or any(costly.get(i, False) for i in n.inputs)
    frontier = [n for n in same if costly[n] and (n in bbody.outputs or any(u not in same for u in n.users))]
    if not frontier:
        return
    made: list = []
    for n in frontier:
        fbody.outputs.append(same[n])
        part = _part_of(graph, forward, len(fbody.outputs) - 1, made)
        new = bbody.add_input(n.spec, f"residual.{n.name}")
        backward.inputs += (part,)
        bbody.replace_uses(n, new)
    bbody.remove_unused()
    forward.spec = scan_op.shape_rule(*[i.spec for i in forward.inputs], **forward.attrs)
    graph.insert_all(graph.nodes.index(forward) + 1, made)


def _pair_loops(graph: Graph, scans: list) -> None:
    """Share residuals between each forward loop and the backward loops that read its stacked carries."""
    for forward in scans:
        if forward.attrs.get("saved") is None:
            continue
        readers = {u for p in forward.users if p.op.name == "scan_part" for u in p.users}
        for backward in scans:
            if backward is not forward and backward in readers:
                share_residuals(graph, forward, backward)


def scan_bodies(graph: Graph) -> Graph:
    """Apply the rewrites of the module docstring to every scan node of ``graph``."""
    scans = [n for n in graph.nodes if n.op is scan_op]
    for node in scans:
        node.attrs["body"] = node.attrs["body"].copy()  # the body may be shared with the unoptimised graph
        inline_constants(node)
    _pair_loops(graph, scans)
    graph.remove_unused()  # stacked carries no backward loop reads any more are then dropped from the loops
    for node in scans:
        parts = [u for u in node.users if u.op.name == "scan_part"]
        prune_results(node, parts)
        hoist_invariants(graph, node)
        hoist_step_products(graph, node)
        hoist_accumulators(graph, node, parts)
        optimize_body(node)
        drop_unused_operands(node)
        _refresh(node, parts)
    graph.remove_unused()
    return graph

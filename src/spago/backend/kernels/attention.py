"""The attention family: scores, their epilogue (scale, mask), softmax and context in one kernel.

Per work item — one head's block of query rows, as the scores product's `MatmulPlan` cuts them —
BLAS writes the scores block into a buffer on the stack (``rows x keys`` floats, in L1/L2), each row is
finished in place (epilogue, max, exp, sum, divide: the softmax body's own ops, so results match the
unfused kernels), and BLAS multiplies the block by V straight into the output's layout.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ...passes.fuse_attention import attention_parts
from .. import scalar
from ..loops import accumulate, for_range
from ..types import F32, I32, I64, element_ptr, load
from . import family
from .matmul import _constant_slot, call_gemm, item_offsets, matmul_plan
from .reduce import combine, identity


def attention_extent(node: Node) -> int:
    scores, _, _ = attention_parts(node)
    plan = matmul_plan(scores)
    return plan.items if plan.items >= 2 else 0


@family("attention", parallel=attention_extent)
def emit_attention(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    body = node.attrs["body"]
    scores, softmax, context = attention_parts(node)
    first, second = matmul_plan(scores), matmul_plan(context)
    out_ptr, in_ptrs = args[0], list(args[1:])
    dtype = scores.dtype
    keys = first.n

    def pointer(owner: Node, plan, k: int, offsets: list) -> ir.Value:
        """Operand ``k`` of a product's plan at this item (its input index is into ``owner.inputs``)."""
        index = plan.operands[k][0]
        node_dtype = dtype if k < 3 else plan.leaves[k - 3].dtype
        if index < 0:
            return element_ptr(b, out_ptr, offsets[k], node_dtype)
        return element_ptr(b, in_ptrs[body.inputs.index(owner.inputs[index])], offsets[k], node_dtype)

    with b.goto_entry_block():
        tile = b.alloca(F32, size=ir.Constant(I64, first.block_rows * keys), name="scores")
        tile.align = 64
    m_slot = _constant_slot(b, I32, 0)
    start, end = outer if outer is not None else (ir.Constant(I64, 0), ir.Constant(I64, first.items))
    with for_range(b, end, "item", start=start) as item:
        offsets, count, _ = item_offsets(b, first, item)
        b.store(b.trunc(count, I32), m_slot)
        call_gemm(b, dtype, first.block_rows, keys, first.k, pointer(scores, first, 0, offsets),
                  (first.operands[0][3], first.a_cols), pointer(scores, first, 1, offsets), first.b_strides,
                  tile, keys, m_slot=m_slot)
        leaves = [pointer(scores, first, k, offsets) for k in range(3, len(first.operands))]
        with for_range(b, count, "row") as r:
            _softmax_row(b, first, softmax, leaves, element_ptr(b, tile, b.mul(r, ir.Constant(I64, keys)), dtype), r)
        ctx_offsets, _, _ = item_offsets(b, second, item)
        call_gemm(b, dtype, second.block_rows, second.n, keys, tile, (keys, 1),
                  pointer(context, second, 1, ctx_offsets), second.b_strides,
                  pointer(context, second, 2, ctx_offsets), second.operands[2][3], m_slot=m_slot)


def _softmax_row(b: ir.IRBuilder, plan, softmax: Node, leaves: list, row: ir.Value, r: ir.Value) -> None:
    """One row of scores, in place: the scores epilogue, then the softmax body's ops in its order."""
    dtype = plan.mm.dtype
    _, sub_node, exp_node, _, div_node = softmax.attrs["body"].nodes
    strides = [(op[3], op[4]) for op in plan.operands[3:]]

    def emit(n: Node, values: list) -> ir.Value:
        return scalar.emit(b, n.op.name, values, n.attrs, [i.dtype for i in n.inputs], n.dtype)

    with accumulate(b, plan.n, identity("max", dtype), "j") as loop:
        p = element_ptr(b, row, loop.index, dtype)
        env = {plan.mm: load(b, p, dtype)}
        for leaf, base, (rs, cs) in zip(plan.leaves, leaves, strides):
            off = b.add(b.mul(r, ir.Constant(I64, rs)), b.mul(loop.index, ir.Constant(I64, cs)))
            env[leaf] = load(b, element_ptr(b, base, off, leaf.dtype), leaf.dtype)
        for e in plan.epilogue:
            env[e] = emit(e, [env[i] for i in e.inputs])
        value = env[plan.epilogue[-1]] if plan.epilogue else env[plan.mm]
        b.store(value, p)
        loop.carry(combine(b, "max", loop.acc, value, dtype))
    row_max = loop.acc
    with accumulate(b, plan.n, identity("sum", dtype), "j") as loop:
        p = element_ptr(b, row, loop.index, dtype)
        e = emit(exp_node, [emit(sub_node, [load(b, p, dtype), row_max])])
        b.store(e, p)
        loop.carry(combine(b, "sum", loop.acc, e, dtype))
    total = loop.acc
    with for_range(b, plan.n, "j") as j:
        p = element_ptr(b, row, j, dtype)
        b.store(emit(div_node, [load(b, p, dtype), total]), p)

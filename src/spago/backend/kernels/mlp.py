"""The mlp family: two chained products (a feed-forward block) in one kernel.

Per work item — a block of ``BLOCK_ROWS`` rows — BLAS writes the block's slice of the wide intermediate
into a buffer on the stack, the first product's epilogue (bias, activation) runs over it while it is in
cache, BLAS multiplies it by the second weight straight into the output, and the second epilogue (bias,
residual) finishes the block.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ...layout import ALIGNMENT
from ...lower.mlp import mlp_parts, mlp_plans
from ..loops import for_range
from ..types import F32, I32, I64, PTR, element_ptr
from . import family
from .matmul import block_epilogue, call_gemm, constant_slot, item_offsets


@family("mlp")
def emit_mlp(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    body = node.attrs["body"]
    first_node, second_node = mlp_parts(node)
    p1, p2 = mlp_plans(node)
    out_ptr, in_ptrs = args[0], list(args[1:])
    dtype = p1.mm.dtype
    wide = p1.n

    def pointer(owner: Node, plan, k: int, offsets: list) -> ir.Value:
        index = plan.operands[k][0]
        node_dtype = dtype if k < 3 else plan.leaves[k - 3].dtype
        if k == 2 and owner is second_node:
            return element_ptr(b, out_ptr, offsets[k], node_dtype)
        return element_ptr(b, in_ptrs[body.inputs.index(owner.inputs[index])], offsets[k], node_dtype)

    with b.goto_entry_block():
        scratch = b.alloca(F32, size=ir.Constant(I64, p1.block_rows * wide), name="intermediate")
        scratch.align = ALIGNMENT
        scratch.type = PTR  # as LLVM sees it (opaque)
    m_slot, n1_slot, n2_slot = constant_slot(b, I32, 0), constant_slot(b, I32, p1.n), constant_slot(b, I32, p2.n)
    start, end = outer if outer is not None else (ir.Constant(I64, 0), ir.Constant(I64, p1.items))
    with for_range(b, end, "item", start=start) as item:
        o1, count, _ = item_offsets(b, p1, item)
        o2, _, _ = item_offsets(b, p2, item)
        b.store(b.trunc(count, I32), m_slot)
        call_gemm(b, dtype, p1.block_rows, p1.n, p1.k, pointer(first_node, p1, 0, o1), (p1.operands[0][3], p1.a_cols),
                  pointer(first_node, p1, 1, o1), p1.b_strides, scratch, wide, m_slot=m_slot, n_slot=n1_slot)
        if p1.epilogue:
            leaves = [pointer(first_node, p1, k, o1) for k in range(3, len(p1.operands))]
            block_epilogue(b, p1, [scratch] + leaves, count, ir.Constant(I64, p1.n), out_row=wide)
        out = pointer(second_node, p2, 2, o2)
        call_gemm(b, dtype, p2.block_rows, p2.n, p2.k, scratch, (wide, 1), pointer(second_node, p2, 1, o2),
                  p2.b_strides, out, p2.operands[2][3], m_slot=m_slot, n_slot=n2_slot)
        if p2.epilogue:
            leaves = [pointer(second_node, p2, k, o2) for k in range(3, len(p2.operands))]
            block_epilogue(b, p2, [out] + leaves, count, ir.Constant(I64, p2.n))

"""The attention family: scores, their epilogue (scale, mask), softmax and context in one kernel.

Per work item — one head's block of query rows, as the scores product's `MatmulPlan` cuts them — the
scores block goes into a buffer on the stack (``rows x keys`` floats, in L1/L2), each row is finished in
place (epilogue, max, exp, sum: the softmax body's own ops), and the block times V goes straight into the
output's layout. Both products are small (a head's width is 32–128), too small for BLAS to pay for its
packing and call: when the sizes are multiples of the vector width they are register-tiled loops instead
(the keys transposed and the values' rows copied once per item into stack buffers, so that both products
read contiguous rows: a head's value rows lie a whole QKV row apart, and at that stride they fell into a
few L1 sets and were re-read from L2 by every strip), and the division by each row's sum is then one
multiply per output element as the context is stored, instead of one per score; otherwise BLAS.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ...layout import ALIGNMENT
from ...lower.attention import attention_parts, attention_plans
from ...lower.gemm import choose_isa
from .. import scalar
from ..loops import accumulate, for_range
from ..types import F32, I32, I64, PTR, element_ptr, load
from . import family
from ...lower.matmul import LANES
from .matmul import constant_slot, call_gemm, item_offsets, register_tiled_product
from .reduce import combine, identity


REGISTER_TILES = True  # False: both products through BLAS (for comparison)


@family("attention")
def emit_attention(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    body = node.attrs["body"]
    scores, softmax, context = attention_parts(node)
    first, second = attention_plans(scores, context)
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

    in_registers = REGISTER_TILES and _tile_vectors(keys) and _tile_vectors(second.n) and second.b_strides[1] == 1
    with b.goto_entry_block():
        tile = _stack_floats(b, first.block_rows * keys, "scores")
        if in_registers:  # the keys, transposed so that the scores product reads rows; the values' rows
            packed = _stack_floats(b, first.k * keys, "keys")
            inverses = _stack_floats(b, first.block_rows, "inverses")  # 1 / each row's sum
            copy_values = second.b_strides[0] != second.n
            values = _stack_floats(b, keys * second.n, "values") if copy_values else None
    m_slot = constant_slot(b, I32, 0)
    start, end = outer if outer is not None else (ir.Constant(I64, 0), ir.Constant(I64, first.items))
    with for_range(b, end, "item", start=start) as item:
        offsets, count, _ = item_offsets(b, first, item)
        q_ptr, q_str = pointer(scores, first, 0, offsets), (first.operands[0][3], first.a_cols)
        k_ptr = pointer(scores, first, 1, offsets)
        ctx_offsets, _, _ = item_offsets(b, second, item)
        v_ptr, out = pointer(context, second, 1, ctx_offsets), pointer(context, second, 2, ctx_offsets)
        if in_registers:
            _pack_rows(b, k_ptr, first.b_strides, first.k, keys, packed)
            register_tiled_product(b, count, keys, first.k, q_ptr, q_str, packed, keys, tile, keys,
                                   rows=4, vectors=_tile_vectors(keys))
        else:
            b.store(b.trunc(count, I32), m_slot)
            call_gemm(b, dtype, first.block_rows, keys, first.k, q_ptr, q_str, k_ptr, first.b_strides, tile, keys,
                      m_slot=m_slot)
        leaves = [pointer(scores, first, k, offsets) for k in range(3, len(first.operands))]
        with for_range(b, count, "row") as r:
            row = element_ptr(b, tile, b.mul(r, ir.Constant(I64, keys)), dtype)
            _softmax_row(b, first, softmax, leaves, row, r,
                         element_ptr(b, inverses, r, dtype) if in_registers else None)
        if in_registers:
            v_row = second.b_strides[0]
            if copy_values:
                _pack_rows(b, v_ptr, (v_row, 1), keys, second.n, values)
                v_ptr, v_row = values, second.n
            register_tiled_product(b, count, second.n, keys, tile, (keys, 1), v_ptr, v_row, out,
                                   second.operands[2][3], rows=_context_rows(second.n),
                                   vectors=min(_tile_vectors(second.n), 2), row_scale=inverses)
        else:
            call_gemm(b, dtype, second.block_rows, second.n, keys, tile, (keys, 1), v_ptr, second.b_strides, out,
                      second.operands[2][3], m_slot=m_slot)


def _tile_vectors(n: int) -> int:
    """Vector registers per tile row for ``n`` columns (0: not a multiple of the vector width)."""
    return next((v for v in (4, 2, 1) if n % (LANES * v) == 0), 0)


def _context_rows(n: int) -> int:
    """Rows per tile of the context product: with AVX-512's 32 registers, 8 rows x 2 vectors (16
    accumulators, 128 query rows in whole tiles); 6 where vectors are split in halves (AVX2)."""
    if _tile_vectors(n) > 2:
        return 4
    isa = choose_isa()
    return 8 if isa is not None and isa.name == "avx512" else 6


def _stack_floats(b: ir.IRBuilder, count: int, name: str) -> ir.Value:
    """An aligned buffer of ``count`` floats on the kernel's stack (call in the entry block)."""
    buffer = b.alloca(F32, size=ir.Constant(I64, count), name=name)
    buffer.align = ALIGNMENT
    buffer.type = PTR  # as LLVM sees it (opaque): llvmlite would refuse vector stores through a float*
    return buffer


def _pack_rows(b: ir.IRBuilder, src, strides: tuple, rows: int, cols: int, dst) -> None:
    """dst[r, c] = src[r·strides[0] + c·strides[1]]: a strided (k x n) operand as contiguous rows. The
    inner loop runs along the source's rows when they are contiguous (a copy LLVM vectorises), else
    along its columns (the keys, transposed)."""
    along_rows = strides[1] == 1
    outer, inner = (rows, cols) if along_rows else (cols, rows)
    with for_range(b, outer, "po") as i:
        with for_range(b, inner, "pi") as j:
            r, c = (i, j) if along_rows else (j, i)
            at = b.add(b.mul(r, ir.Constant(I64, strides[0])), b.mul(c, ir.Constant(I64, strides[1])))
            value = b.load(element_ptr(b, src, at, "float32"), typ=F32)
            b.store(value, element_ptr(b, dst, b.add(b.mul(r, ir.Constant(I64, cols)), c), "float32"))


def _softmax_row(b: ir.IRBuilder, plan, softmax: Node, leaves: list, row: ir.Value, r: ir.Value,
                 inverse=None) -> None:
    """One row of scores, in place: the scores epilogue, then the softmax body's ops in its order. The
    row's maximum needs no NaN test (a NaN score makes its exponential, the sum and so the whole row NaN
    in any case), so it is one vector max per step. With ``inverse`` (a pointer), 1 / the row's sum is
    stored there for the context product to apply, and the scores keep their exponentials."""
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
        bigger = b.fcmp_ordered(">", value, loop.acc, flags=("nnan", "nsz"))
        loop.carry(b.select(bigger, value, loop.acc, flags=("nnan", "nsz")))
    row_max = loop.acc
    with accumulate(b, plan.n, identity("sum", dtype), "j") as loop:
        p = element_ptr(b, row, loop.index, dtype)
        e = emit(exp_node, [emit(sub_node, [load(b, p, dtype), row_max])])
        b.store(e, p)
        loop.carry(combine(b, "sum", loop.acc, e, dtype))
    total = loop.acc
    if inverse is not None:
        b.store(b.fdiv(ir.Constant(total.type, 1.0), total), inverse)
        return
    with for_range(b, plan.n, "j") as j:
        p = element_ptr(b, row, j, dtype)
        b.store(emit(div_node, [load(b, p, dtype), total]), p)

"""The matmul family: a matrix product read through strided operand views, then its epilogue.

Operands are the fused node's inputs seen through the absorbed transposes and reshapes (see
``spago.lower.views``), so ``q @ k.T`` or a head permutation never materialises a copy. Floating
products call BLAS ``gemm`` once per batch entry (row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ); the
elementwise epilogue (bias, activation, residual, scaling) then runs over the output in place. Small
products (an RNN step's matrix-vector product) are a generated loop instead: cheaper than a BLAS call.
"""
from __future__ import annotations

import hashlib

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...lower.gemm import ISAS, plan_blocks
from ...lower.matmul import (LANES, PACKED, MatmulPlan, as_matrix, epilogue_leaves, matmul_plan,
                             operand_views, simple_path)
from ...lower import parallel
from ...lower.views import blas_layout, broadcast_strides
from .. import scalar
from ..loops import accumulate, for_range, strided_nest
from ..types import F32, F64, I8, I32, I64, PTR, VOID, element_ptr, load, store
from . import family
from .elementwise import eval_graph
from .gemm import Epilogue, broadcast, gemm_function
from .reduce import identity


def _gemm(module: ir.Module, dtype) -> ir.Function:
    name = "spago_sgemm" if np.dtype(dtype) == np.float32 else "spago_dgemm"
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(VOID, [PTR] * 13), name)


def constant_slot(b: ir.IRBuilder, typ: ir.Type, value) -> ir.Value:
    with b.goto_entry_block():
        slot = b.alloca(typ)
        b.store(ir.Constant(typ, value), slot)
    return slot


@family("matmul")
def emit_matmul(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    plan = matmul_plan(node)
    if plan is not None:
        _emit_blocks(b, args, plan, outer)
        return
    mm, epilogue, views, out_strides = operand_views(node)
    out_ptr, in_ptrs = args[0], list(args[1:])
    (ia, a_shape, a_strides, a_start), (ib, b_shape, b_strides, b_start) = views
    a_batch, a_bstr, (m, k), (ars, acs) = as_matrix(a_shape, a_strides, True)
    b_batch, b_bstr, (_, n), (brs, bcs) = as_matrix(b_shape, b_strides, False)
    batch = tuple(np.broadcast_shapes(a_batch, b_batch))
    a_bs = broadcast_strides(a_batch, batch, a_bstr)
    b_bs = broadcast_strides(b_batch, batch, b_bstr)
    c_full = _matrix_strides(mm.shape, out_strides, batch, n)
    c_bs, ldc = c_full[:len(batch)], c_full[len(batch)]
    dtype = mm.dtype
    if m and n:
        with strided_nest(b, batch, [a_bs, b_bs, c_bs], "batch") as (a_off, b_off, c_off):
            a_ptr = element_ptr(b, in_ptrs[ia], b.add(a_off, ir.Constant(I64, a_start)), dtype)
            b_ptr = element_ptr(b, in_ptrs[ib], b.add(b_off, ir.Constant(I64, b_start)), dtype)
            c_ptr = element_ptr(b, out_ptr, c_off, dtype)
            kind = simple_path(dtype, m, n, k, (brs, bcs), parallel.threads_for(node))
            if kind == "register-tiles":
                register_tiled_product(b, ir.Constant(I64, m), n, k, a_ptr, (ars, acs), b_ptr, brs, c_ptr, ldc,
                                       rows=4, vectors=4 if n % (4 * LANES) == 0 else 2)
            elif kind == "openblas":
                call_gemm(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
            else:
                _loop_product(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
    if epilogue:
        _emit_epilogue(b, args, node, mm, epilogue, out_strides)


def _emit_blocks(b: ir.IRBuilder, args: list, plan: MatmulPlan, outer: tuple | None) -> None:
    """For each work item in ``outer`` (default: all): one GEMM on a block of rows, then its epilogue
    (which the packed GEMM applies to each tile as it finishes it)."""
    out_ptr, in_ptrs = args[0], list(args[1:])
    dtype = plan.mm.dtype
    start, end = outer if outer is not None else (ir.Constant(I64, 0), ir.Constant(I64, plan.items))
    m_slot, n_slot = constant_slot(b, I32, 0), constant_slot(b, I32, 0)
    with for_range(b, end, "item", start=start) as item:
        offsets, count, cols = item_offsets(b, plan, item)

        def base(k: int) -> ir.Value:
            index = plan.operands[k][0]
            ptr = out_ptr if index < 0 else in_ptrs[index]
            node_dtype = dtype if k < 3 else plan.leaves[k - 3].dtype
            return element_ptr(b, ptr, offsets[k], node_dtype)

        packed = plan.mm_node.meta.get(PACKED)
        if packed:
            isa = ISAS[packed]
            epilogue = tile_epilogue(plan) if plan.epilogue else None
            gemm = gemm_function(b.module, isa, plan_blocks(isa, plan.k), plan.a_cols, epilogue)
            b.call(gemm, [count, cols, ir.Constant(I64, plan.k), base(0), ir.Constant(I64, plan.operands[0][3]),
                          base(1), base(2), ir.Constant(I64, plan.operands[2][3])]
                   + [base(k) for k in range(3, len(plan.operands))])
        else:
            b.store(b.trunc(count, I32), m_slot)
            b.store(b.trunc(cols, I32), n_slot)
            call_gemm(b, dtype, plan.block_rows, plan.block_cols, plan.k, base(0), (plan.operands[0][3], plan.a_cols),
                      base(1), plan.b_strides, base(2), plan.operands[2][3], m_slot=m_slot, n_slot=n_slot)
        if plan.epilogue and not packed:  # (the packed GEMM applies it tile by tile)
            block_epilogue(b, plan, [base(k) for k in range(2, len(plan.operands))], count, cols)


def tile_epilogue(plan: MatmulPlan) -> Epilogue:
    """The plan's elementwise chain as the packed GEMM's per-tile epilogue, keyed by what it computes (op
    names, attributes, wiring, dtypes and strides), so the layers of a model share one GEMM function."""
    names = {plan.mm: "mm", **{leaf: f"l{i}" for i, leaf in enumerate(plan.leaves)},
             **{e: f"e{i}" for i, e in enumerate(plan.epilogue)}}
    parts = [f"{e.op.name}({','.join(names[i] for i in e.inputs)}){sorted(e.attrs.items())!r}{e.dtype}"
             for e in plan.epilogue]
    operands = tuple((op[3], op[4], leaf.dtype) for op, leaf in zip(plan.operands[3:], plan.leaves))
    parts += [repr((plan.operands[2][3], [(rs, cs, str(dt)) for rs, cs, dt in operands]))]
    key = hashlib.sha1(";".join(parts).encode()).hexdigest()[:12]

    return Epilogue(key, operands, lambda b, ptrs, rows, cols: block_epilogue(b, plan, ptrs, rows, cols))


def item_offsets(b: ir.IRBuilder, plan: MatmulPlan, item: ir.Value) -> tuple:
    """(element offset of each operand at the item's first row and column, its row count, column count)."""
    def clamp(start, size, limit):
        end = b.add(start, ir.Constant(I64, size))
        end = b.select(b.icmp_signed(">", end, ir.Constant(I64, limit)), ir.Constant(I64, limit), end)
        return b.sub(end, start)

    col0 = b.mul(b.urem(item, ir.Constant(I64, plan.col_blocks)), ir.Constant(I64, plan.block_cols))
    item = b.udiv(item, ir.Constant(I64, plan.col_blocks))
    group = b.udiv(item, ir.Constant(I64, plan.blocks))
    row0 = b.mul(b.urem(item, ir.Constant(I64, plan.blocks)), ir.Constant(I64, plan.block_rows))
    offsets = []
    for _, first, gstrides, rstride, cstride in plan.operands:
        off, rest = ir.Constant(I64, first), group
        for size, stride in reversed(list(zip(plan.groups, gstrides))):
            if stride:
                off = b.add(off, b.mul(b.urem(rest, ir.Constant(I64, size)), ir.Constant(I64, stride)))
            rest = b.udiv(rest, ir.Constant(I64, size))
        if rstride:
            off = b.add(off, b.mul(row0, ir.Constant(I64, rstride)))
        if cstride and plan.col_blocks > 1:
            off = b.add(off, b.mul(col0, ir.Constant(I64, cstride)))
        offsets.append(off)
    return offsets, clamp(row0, plan.block_rows, plan.rows), clamp(col0, plan.block_cols, plan.n)


def block_epilogue(b: ir.IRBuilder, plan: MatmulPlan, ptrs: list, count: ir.Value, cols: ir.Value,
                    out_row: int | None = None) -> None:
    """The elementwise chain over the ``count`` x ``cols`` block just written (``ptrs``: the output, then
    the leaves, at the block's corner; ``out_row``: the output's row stride when it is not the plan's)."""
    dtype = plan.mm.dtype
    strides = [(op[3], op[4]) for op in plan.operands[2:]]
    if out_row is not None:
        strides[0] = (out_row, 1)
    with for_range(b, count, "er") as r:
        rows = [b.mul(r, ir.Constant(I64, rs)) if rs else ir.Constant(I64, 0) for rs, _ in strides]
        with for_range(b, cols, "ec") as c:
            offs = [row if cs == 0 else b.add(row, b.mul(c, ir.Constant(I64, cs)) if cs != 1 else c)
                    for row, (_, cs) in zip(rows, strides)]
            p = element_ptr(b, ptrs[0], offs[0], dtype)
            env = {plan.mm: load(b, p, dtype)}
            for leaf, ptr, off in zip(plan.leaves, ptrs[1:], offs[1:]):
                env[leaf] = load(b, element_ptr(b, ptr, off, leaf.dtype), leaf.dtype)
            body = None
            for e in plan.epilogue:
                env[e] = scalar.emit(b, e.op.name, [env[i] for i in e.inputs], e.attrs,
                                     [i.dtype for i in e.inputs], e.dtype)
                body = e
            store(b, env[body], p, body.dtype)


def _matrix_strides(shape: tuple, strides: tuple, batch: tuple, n: int) -> tuple:
    """Batch strides and the row stride of the output, whatever the product's vector/matrix form."""
    if len(shape) == len(batch) + 2:
        return tuple(strides[:len(batch)]) + (strides[-2],)
    # A vector result is one column (matrix @ vector: rows are one element apart) or one row.
    return tuple(strides[:len(batch)]) + (1 if n == 1 else n,)


def call_gemm(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc: int, m_slot=None, n_slot=None) -> None:
    """C = A·B through BLAS; ``m_slot``/``n_slot`` hold row/column counts known only at run time (a block
    of at most ``m`` rows, ``n`` columns)."""
    trans_a, lda = blas_layout(m, k, *a_str)
    trans_b, ldb = blas_layout(k, n, *b_str)
    real = F32 if np.dtype(dtype) == np.float32 else F64
    args = [
        constant_slot(b, I8, ord("T" if trans_b else "N")), constant_slot(b, I8, ord("T" if trans_a else "N")),
        n_slot if n_slot is not None else constant_slot(b, I32, n),
        m_slot if m_slot is not None else constant_slot(b, I32, m),
        constant_slot(b, I32, k),
        constant_slot(b, real, 1.0), b_ptr, constant_slot(b, I32, ldb), a_ptr, constant_slot(b, I32, lda),
        constant_slot(b, real, 0.0), c_ptr, constant_slot(b, I32, max(ldc, n, 1)),
    ]
    b.call(_gemm(b.module, dtype), args)


BLOCK = 4        # vector accumulators per column block: 64 float32 columns stay in registers


def _blocked_product(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc: int, block: int = BLOCK) -> int:
    """Columns in blocks of LANES*block, accumulated in vector registers over the whole k loop (B's rows
    must be contiguous); returns how many columns it covered, the rest being left to the scalar loop."""
    lanes = LANES if np.dtype(dtype) == np.float32 else LANES // 2
    width = lanes * block
    blocks = n // width
    if not blocks or b_str[1] != 1:
        return 0
    scalar_t = F32 if np.dtype(dtype) == np.float32 else F64
    vec_t = ir.VectorType(scalar_t, lanes)
    fma_name = f"llvm.fma.v{lanes}{'f32' if scalar_t == F32 else 'f64'}"
    fma = b.module.globals.get(fma_name) or ir.Function(b.module, ir.FunctionType(vec_t, [vec_t] * 3), fma_name)
    zero = ir.Constant(vec_t, [0.0] * lanes)
    row = ir.Constant(I64, max(ldc, n))
    with for_range(b, m, "vi") as i:
        c_row = element_ptr(b, c_ptr, b.mul(i, row), dtype)
        a_row = b.mul(i, ir.Constant(I64, a_str[0]))
        with for_range(b, blocks, "vb") as jb:
            col = b.mul(jb, ir.Constant(I64, width))
            pre = b.block
            header = b.append_basic_block("vk.header")
            body = b.append_basic_block("vk.body")
            done = b.append_basic_block("vk.exit")
            b.branch(header)
            b.position_at_end(header)
            kk = b.phi(I64, name="vk")
            kk.add_incoming(ir.Constant(I64, 0), pre)
            accs = [b.phi(vec_t, name=f"acc{q}") for q in range(block)]
            for acc in accs:
                acc.add_incoming(zero, pre)
            b.cbranch(b.icmp_signed("<", kk, ir.Constant(I64, k)), body, done)
            b.position_at_end(body)
            a_val = load(b, element_ptr(b, a_ptr, b.add(a_row, b.mul(kk, ir.Constant(I64, a_str[1]))), dtype), dtype)
            splat = b.insert_element(ir.Constant(vec_t, ir.Undefined), a_val, ir.Constant(I32, 0))
            splat = b.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))
            b_row = b.add(b.mul(kk, ir.Constant(I64, b_str[0])), col)
            new = []
            for q, acc in enumerate(accs):
                ptr = element_ptr(b, b_ptr, b.add(b_row, ir.Constant(I64, q * lanes)), dtype)
                vals = b.load(ptr, typ=vec_t, align=4)
                new.append(b.call(fma, [splat, vals, acc]))
            kk.add_incoming(b.add(kk, ir.Constant(I64, 1)), b.block)
            for acc, v in zip(accs, new):
                acc.add_incoming(v, b.block)
            b.branch(header)
            b.position_at_end(done)
            for q, acc in enumerate(accs):
                ptr = element_ptr(b, c_row, b.add(col, ir.Constant(I64, q * lanes)), dtype)
                b.store(acc, ptr, align=4)
    return blocks * width


def _loop_product(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc: int) -> None:
    """C = A·B for integer products and products too small to be worth a BLAS call. Floats: columns in
    register-accumulated vector blocks (`_blocked_product`: 4 vectors wide, then 1), the last few columns
    as dot products in a register; integers: i-k-j loops whose inner AXPY over a row of B vectorises."""
    float_ = np.dtype(dtype).kind == "f"
    zero = identity("sum", dtype)

    def at(ptr, i, j, strides):
        off = b.add(b.mul(i, ir.Constant(I64, strides[0])), b.mul(j, ir.Constant(I64, strides[1])))
        return load(b, element_ptr(b, ptr, off, dtype), dtype)

    done = _blocked_product(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc) if float_ else 0
    row = max(ldc, n)
    if float_ and done < n:  # what the wide blocks leave (36 of a gate block's 100 columns): one vector each
        done += _blocked_product(b, dtype, m, n - done, k, a_ptr, a_str,
                                 element_ptr(b, b_ptr, ir.Constant(I64, done * b_str[1]), dtype), b_str,
                                 element_ptr(b, c_ptr, ir.Constant(I64, done), dtype), row, block=1)
    if done == n:
        return
    c_ptr = element_ptr(b, c_ptr, ir.Constant(I64, done), dtype)  # the remaining columns
    b_ptr = element_ptr(b, b_ptr, ir.Constant(I64, done * b_str[1]), dtype)
    n_left = n - done
    row = ir.Constant(I64, row)
    if float_:  # fewer columns than a vector: one dot product each, summed in a register
        with for_range(b, m, "mi") as i:
            c_row = element_ptr(b, c_ptr, b.mul(i, row), dtype)
            with for_range(b, n_left, "nj") as j:
                with accumulate(b, k, zero, "kk") as loop:
                    prod = b.fmul(at(a_ptr, i, loop.index, a_str), at(b_ptr, loop.index, j, b_str))
                    total = b.fadd(loop.acc, prod)
                    prod.flags.append("contract")
                    total.flags.append("contract")
                    loop.carry(total)
                store(b, loop.acc, element_ptr(b, c_row, j, dtype), dtype)
        return
    with for_range(b, m, "mi") as i:
        c_row = element_ptr(b, c_ptr, b.mul(i, row), dtype)
        with for_range(b, n_left, "nz") as j:
            store(b, zero, element_ptr(b, c_row, j, dtype), dtype)
        with for_range(b, k, "kk") as kk:
            a_ik = at(a_ptr, i, kk, a_str)
            with for_range(b, n_left, "nj") as j:
                p = element_ptr(b, c_row, j, dtype)
                store(b, b.add(load(b, p, dtype), b.mul(a_ik, at(b_ptr, kk, j, b_str))), p, dtype)


def _emit_epilogue(b: ir.IRBuilder, args: list, node: Node, mm: Node, epilogue: list,
                   out_strides: tuple) -> None:
    """Apply the elementwise chain after the product, reading the product from the output buffer."""
    body = node.attrs["body"]
    out_ptr, in_ptrs = args[0], list(args[1:])
    shape = mm.shape
    leaves = epilogue_leaves(body, mm, epilogue)
    strides = [out_strides] + [broadcast_strides(s, shape, st) for _, s, st, _ in leaves.values()]
    with strided_nest(b, shape, strides, "ep") as offsets:
        p = element_ptr(b, out_ptr, offsets[0], mm.dtype)
        env = {mm: load(b, p, mm.dtype)}
        for (leaf, (k, _, _, start)), off in zip(leaves.items(), offsets[1:]):
            off = b.add(off, ir.Constant(I64, start)) if start else off
            env[leaf] = load(b, element_ptr(b, in_ptrs[k], off, leaf.dtype), leaf.dtype)
        env = eval_graph(b, body, [], env=env, nodes=epilogue)
        last = epilogue[-1]
        store(b, env[last], p, last.dtype)


def register_tiled_product(b: ir.IRBuilder, m: ir.Value, n: int, k: int, a_ptr, a_str: tuple, b_ptr, b_row: int,
                           c_ptr, ldc: int, rows: int, vectors: int, row_scale=None) -> None:
    """float32 C[m x n] = A[m x k]·B[k x n] for the small products inside a kernel (attention's per-head
    scores and context), with no call into BLAS: tiles of ``rows`` x ``vectors``·LANES columns are
    accumulated in registers over the whole k loop, so each B vector loaded serves ``rows`` FMAs.
    B's rows must be contiguous (``b_row`` apart) and ``n`` a multiple of the tile width; ``m`` may
    be known only at run time (left-over rows run as tiles of one row). ``row_scale`` (m floats), if
    given, multiplies each row of C as it is stored."""
    width = LANES * vectors
    assert n % width == 0
    vec_t = ir.VectorType(F32, LANES)
    fma_name = f"llvm.fma.v{LANES}f32"
    fma = b.module.globals.get(fma_name) or ir.Function(b.module, ir.FunctionType(vec_t, [vec_t] * 3), fma_name)
    zero = ir.Constant(vec_t, [0.0] * LANES)
    full = b.mul(b.udiv(m, ir.Constant(I64, rows)), ir.Constant(I64, rows))

    def tiles(first_row, tile_rows: int):
        a_rows = [b.mul(b.add(first_row, ir.Constant(I64, r)), ir.Constant(I64, a_str[0])) for r in range(tile_rows)]
        c_rows = [b.mul(b.add(first_row, ir.Constant(I64, r)), ir.Constant(I64, ldc)) for r in range(tile_rows)]
        with for_range(b, n // width, "tj") as jb:
            col = b.mul(jb, ir.Constant(I64, width))
            with accumulate(b, k, [zero] * (tile_rows * vectors), "tk") as loop:
                kk = loop.index
                row = b.add(b.mul(kk, ir.Constant(I64, b_row)), col)
                bvecs = [b.load(element_ptr(b, b_ptr, b.add(row, ir.Constant(I64, v * LANES)), np.float32), typ=vec_t,
                                align=4) for v in range(vectors)]
                a_col = b.mul(kk, ir.Constant(I64, a_str[1]))
                new = []
                for r in range(tile_rows):
                    a_val = b.load(element_ptr(b, a_ptr, b.add(a_rows[r], a_col), np.float32), typ=F32)
                    splat = broadcast(b, a_val, vec_t)
                    for v in range(vectors):
                        new.append(b.call(fma, [splat, bvecs[v], loop.accs[r * vectors + v]]))
                loop.carry(new)
            for r in range(tile_rows):
                scale = None
                if row_scale is not None:
                    value = b.load(element_ptr(b, row_scale, b.add(first_row, ir.Constant(I64, r)), np.float32), typ=F32)
                    scale = broadcast(b, value, vec_t)
                for v in range(vectors):
                    off = b.add(c_rows[r], b.add(col, ir.Constant(I64, v * LANES)))
                    acc = loop.accs[r * vectors + v]
                    b.store(acc if scale is None else b.fmul(acc, scale), element_ptr(b, c_ptr, off, np.float32),
                            align=4)

    with for_range(b, full, "ti", step=rows) as i:
        tiles(i, rows)
    with for_range(b, m, "tr", start=full) as i:
        tiles(i, 1)



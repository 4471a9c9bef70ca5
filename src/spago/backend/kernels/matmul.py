"""The matmul family: a matrix product read through strided operand views, then its epilogue.

Operands are the fused node's inputs seen through the absorbed transposes and reshapes (see
``spago.passes.views``), so ``q @ k.T`` or a head permutation never materialises a copy. Floating
products call BLAS ``gemm`` once per batch entry (row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ); the
elementwise epilogue (bias, activation, residual, scaling) then runs over the output in place. Small
products (an RNN step's matrix-vector product) are a generated loop instead: cheaper than a BLAS call.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...passes.views import blas_layout, is_view, view_of
from ..loops import broadcast_strides, contiguous_strides, for_range, strided_nest
from ..types import F32, F64, I8, I32, I64, PTR, VOID, element_ptr, load, store
from . import family
from .elementwise import eval_graph
from .reduce import identity


SMALL_PRODUCT = 1 << 17  # multiply-adds below which a generated loop beats the cost of a BLAS call


def _as_matrix(shape: tuple, strides: tuple, is_left: bool) -> tuple[tuple, tuple, tuple, tuple]:
    """(batch shape, batch strides, (rows, cols), (row stride, col stride)) of an operand."""
    if len(shape) == 1:
        if is_left:
            return (), (), (1, shape[0]), (0, strides[0])
        return (), (), (shape[0], 1), (strides[0], 0)
    return shape[:-2], strides[:-2], shape[-2:], strides[-2:]


def operand_views(node: Node) -> tuple:
    """(matmul node, epilogue nodes, [(input index, shape, strides) for A and B], output strides) of a
    matmul kernel; the output strides are in the product's index space (a final transpose permutes them)."""
    if node.op.name == "matmul":
        views = [(k, i.shape, contiguous_strides(i.shape), 0) for k, i in enumerate(node.inputs)]
        return node, [], views, contiguous_strides(node.shape)
    body = node.attrs["body"]
    mm = next(n for n in body.nodes if n.op.name == "matmul")
    position = body.nodes.index(mm)
    prologue = set(body.nodes[:position])
    views = []
    for operand in mm.inputs:
        root, shape, strides, offset = view_of(operand, stop=prologue)
        views.append((body.inputs.index(root), shape, strides, offset))
    epilogue = [n for n in body.nodes[position + 1:] if not is_view(n) or n.op.name == "transpose"]
    out_strides = contiguous_strides(mm.shape)
    if epilogue and epilogue[-1].op.name == "transpose":
        axes = epilogue[-1].attrs["axes"]
        final = contiguous_strides(epilogue[-1].shape)
        out_strides = tuple(final[axes.index(a)] for a in range(len(axes)))
        epilogue = epilogue[:-1]
    return mm, epilogue, views, out_strides


def blas_ok(a_shape, a_strides, b_shape, b_strides) -> bool:
    """Whether both operand views can be handed to BLAS (used by the fusion pass too)."""
    _, _, (m, k), (ars, acs) = _as_matrix(a_shape, a_strides, True)
    _, _, (_, n), (brs, bcs) = _as_matrix(b_shape, b_strides, False)
    return blas_layout(m, k, ars, acs) is not None and blas_layout(k, n, brs, bcs) is not None


def _gemm(module: ir.Module, dtype) -> ir.Function:
    name = "spago_sgemm" if np.dtype(dtype) == np.float32 else "spago_dgemm"
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(VOID, [PTR] * 13), name)


def _constant_slot(b: ir.IRBuilder, typ: ir.Type, value) -> ir.Value:
    with b.goto_entry_block():
        slot = b.alloca(typ)
        b.store(ir.Constant(typ, value), slot)
    return slot


@family("matmul")
def emit_matmul(b: ir.IRBuilder, args: list, node: Node) -> None:
    mm, epilogue, views, out_strides = operand_views(node)
    out_ptr, in_ptrs = args[0], list(args[1:])
    (ia, a_shape, a_strides, a_start), (ib, b_shape, b_strides, b_start) = views
    a_batch, a_bstr, (m, k), (ars, acs) = _as_matrix(a_shape, a_strides, True)
    b_batch, b_bstr, (_, n), (brs, bcs) = _as_matrix(b_shape, b_strides, False)
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
            if np.dtype(dtype).kind == "f" and m * n * k > SMALL_PRODUCT:
                _call_gemm(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
            else:
                _loop_product(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
    if epilogue:
        _emit_epilogue(b, args, node, mm, epilogue, out_strides)


def _matrix_strides(shape: tuple, strides: tuple, batch: tuple, n: int) -> tuple:
    """Batch strides and the row stride of the output, whatever the product's vector/matrix form."""
    if len(shape) == len(batch) + 2:
        return tuple(strides[:len(batch)]) + (strides[-2],)
    # A vector result is one column (matrix @ vector: rows are one element apart) or one row.
    return tuple(strides[:len(batch)]) + (1 if n == 1 else n,)


def _call_gemm(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc: int) -> None:
    trans_a, lda = blas_layout(m, k, *a_str)
    trans_b, ldb = blas_layout(k, n, *b_str)
    real = F32 if np.dtype(dtype) == np.float32 else F64
    args = [
        _constant_slot(b, I8, ord("T" if trans_b else "N")), _constant_slot(b, I8, ord("T" if trans_a else "N")),
        _constant_slot(b, I32, n), _constant_slot(b, I32, m), _constant_slot(b, I32, k),
        _constant_slot(b, real, 1.0), b_ptr, _constant_slot(b, I32, ldb), a_ptr, _constant_slot(b, I32, lda),
        _constant_slot(b, real, 0.0), c_ptr, _constant_slot(b, I32, max(ldc, n, 1)),
    ]
    b.call(_gemm(b.module, dtype), args)


LANES = 16       # floats per vector register (AVX-512); LLVM splits wider vectors on smaller machines
BLOCK = 4        # vector accumulators per column block: 64 float32 columns stay in registers


def _blocked_product(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc: int) -> int:
    """Columns in blocks of LANES*BLOCK, accumulated in vector registers over the whole k loop (B's rows
    must be contiguous); returns how many columns it covered, the rest being left to the scalar loop."""
    lanes = LANES if np.dtype(dtype) == np.float32 else LANES // 2
    width = lanes * BLOCK
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
            accs = [b.phi(vec_t, name=f"acc{q}") for q in range(BLOCK)]
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
    """C = A·B as i-k-j loops: the inner loop is an AXPY over a row of B, which vectorises. Used for
    integer products and for products too small to be worth a BLAS call."""
    float_ = np.dtype(dtype).kind == "f"
    zero = identity("sum", dtype)

    def at(ptr, i, j, strides):
        off = b.add(b.mul(i, ir.Constant(I64, strides[0])), b.mul(j, ir.Constant(I64, strides[1])))
        return load(b, element_ptr(b, ptr, off, dtype), dtype)

    done = _blocked_product(b, dtype, m, n, k, a_ptr, a_str, b_ptr, b_str, c_ptr, ldc) if float_ else 0
    if done == n:
        return
    c_ptr = element_ptr(b, c_ptr, ir.Constant(I64, done), dtype)  # the remaining columns
    b_ptr = element_ptr(b, b_ptr, ir.Constant(I64, done * b_str[1]), dtype)
    n_left = n - done
    row = ir.Constant(I64, max(ldc, n))
    with for_range(b, m, "mi") as i:
        c_row = element_ptr(b, c_ptr, b.mul(i, row), dtype)
        with for_range(b, n_left, "nz") as j:
            store(b, zero, element_ptr(b, c_row, j, dtype), dtype)
        with for_range(b, k, "kk") as kk:
            a_ik = at(a_ptr, i, kk, a_str)
            with for_range(b, n_left, "nj") as j:
                p = element_ptr(b, c_row, j, dtype)
                prod = b.fmul(a_ik, at(b_ptr, kk, j, b_str)) if float_ else b.mul(a_ik, at(b_ptr, kk, j, b_str))
                if float_:
                    prod.flags.append("contract")
                    total = b.fadd(load(b, p, dtype), prod)
                    total.flags.append("contract")
                else:
                    total = b.add(load(b, p, dtype), prod)
                store(b, total, p, dtype)


def _emit_epilogue(b: ir.IRBuilder, args: list, node: Node, mm: Node, epilogue: list,
                   out_strides: tuple) -> None:
    """Apply the elementwise chain after the product, reading the product from the output buffer."""
    body = node.attrs["body"]
    out_ptr, in_ptrs = args[0], list(args[1:])
    shape = mm.shape
    views = {n for n in body.nodes if is_view(n)}
    leaves: dict = {}  # operand of the epilogue -> (input index, shape, strides, offset)
    for e in epilogue:
        for i in e.inputs:
            if i in leaves or i is mm or i in epilogue:
                continue
            if i in views:
                root, vshape, vstrides, offset = view_of(i, stop=views)
                leaves[i] = (body.inputs.index(root), vshape, vstrides, offset)
            else:
                leaves[i] = (body.inputs.index(i), i.shape, contiguous_strides(i.shape), 0)
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

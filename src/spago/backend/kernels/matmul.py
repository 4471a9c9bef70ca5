"""The matmul family: a matrix product read through strided operand views, then its epilogue.

Operands are the fused node's inputs seen through the absorbed transposes and reshapes (see
``spago.passes.views``), so ``q @ k.T`` or a head permutation never materialises a copy. Floating
products call BLAS ``gemm`` once per batch entry (row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ); the
elementwise epilogue (bias, activation, residual, scaling) then runs over the output in place. Small
products (an RNN step's matrix-vector product) are a generated loop instead: cheaper than a BLAS call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...passes.views import blas_layout, is_view, view_of
from ..loops import accumulate, broadcast_strides, contiguous_strides, for_range, strided_nest
from ..types import F32, F64, I8, I32, I64, PTR, VOID, element_ptr, load, store
from .. import parallel, scalar
from . import family
from .elementwise import eval_graph
from .gemm import ISAS, broadcast, gemm_function, plan_blocks
from .reduce import identity


PACKED = "packed_b"       # kernel meta: the right operand is a constant packed for this ISA's GEMM
SMALL_PRODUCT = 1 << 17  # multiply-adds below which a generated loop beats the cost of a BLAS call
TILED_PRODUCT = 1 << 22  # float32 products up to this with few rows run register tiles, not BLAS
TILED_ROWS = 64          # "few rows": an RNN step's batch
PIECES = 2               # column blocks per thread a short product is cut into


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


def matmul_extent(node: Node) -> int:
    """Work items threads can share, or 0 when the product is too small to be worth a second thread."""
    plan = matmul_plan(node)
    if plan is None or plan.items < 2:
        return 0
    work = int(np.prod(plan.groups, dtype=np.int64)) * plan.rows * plan.n * plan.k
    return plan.items if work >= parallel.MIN_PRODUCT else 0


@family("matmul", parallel=matmul_extent)
def emit_matmul(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    plan = matmul_plan(node)
    if plan is not None:
        _emit_blocks(b, args, plan, outer)
        return
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
            kind = _simple_path(dtype, m, n, k, (brs, bcs), parallel.threads_for(node))
            if kind == "register-tiles":
                register_tiled_product(b, ir.Constant(I64, m), n, k, a_ptr, (ars, acs), b_ptr, brs, c_ptr, ldc,
                                       rows=4, vectors=4 if n % (4 * LANES) == 0 else 2)
            elif kind == "openblas":
                call_gemm(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
            else:
                _loop_product(b, dtype, m, n, k, a_ptr, (ars, acs), b_ptr, (brs, bcs), c_ptr, ldc)
    if epilogue:
        _emit_epilogue(b, args, node, mm, epilogue, out_strides)


@dataclass
class MatmulPlan:
    """A float matrix-matrix product (with its epilogue) cut into work items: ``groups`` (what is left
    of the batch axes once those that merely stack rows are folded into the rows) times ``blocks`` row
    blocks of ``block_rows`` rows times ``col_blocks`` column blocks of ``block_cols`` columns. Each item
    is one BLAS call plus the epilogue over the block it wrote, while it is still in cache; threads
    share the items. Few tall rows split by rows; a short, wide product (one sentence) splits by
    columns, so each thread packs only its own part of the weight."""

    mm: Node
    epilogue: list
    groups: tuple          # remaining batch shape
    rows: int              # rows per group (m, times any folded batch axes)
    n: int
    k: int
    block_rows: int
    blocks: int
    operands: list         # (input index or -1 for the output, start, group strides, row stride, col stride)
    a_cols: int            # A's column stride (its row stride is operands[0]'s)
    b_strides: tuple       # B's (row, col) strides
    leaves: list           # epilogue operands: body node per operands[3:]
    col_blocks: int = 1
    block_cols: int = 0
    mm_node: Node | None = None  # the kernel node (its meta says whether the weight is packed)

    @property
    def items(self) -> int:
        return int(np.prod(self.groups, dtype=np.int64)) * self.blocks * self.col_blocks


def matmul_plan(node: Node) -> MatmulPlan | None:
    """The blocked plan of a float matrix-matrix product worth a BLAS call, or None (vector products,
    integer and small products keep the simple loop nest)."""
    if node.op.name != "fused" and node.op.name != "matmul":
        return None
    mm, epilogue, views, out_strides = operand_views(node)
    (ia, a_shape, a_strides, a_start), (ib, b_shape, b_strides, b_start) = views
    if len(a_shape) < 2 or len(b_shape) < 2 or np.dtype(mm.dtype).kind != "f":
        return None
    a_batch, a_bstr, (m, k), (ars, acs) = _as_matrix(a_shape, a_strides, True)
    b_batch, b_bstr, (_, n), (brs, bcs) = _as_matrix(b_shape, b_strides, False)
    packed = node.meta.get(PACKED)
    if not m or not n or (not packed and _tiled(mm.dtype, m, n, k, (brs, bcs), parallel.threads_for(node))):
        return None
    batch = tuple(np.broadcast_shapes(a_batch, b_batch))
    nb = len(batch)
    shape = mm.shape
    a_bs = broadcast_strides(a_batch, batch, a_bstr)
    b_bs = broadcast_strides(b_batch, batch, b_bstr)
    body = node.attrs.get("body")
    leaves = _epilogue_leaves(body, mm, epilogue) if epilogue else {}
    # (input index, start offset, strides over batch + (rows,), column stride of the output's columns)
    ops = [(ia, a_start, tuple(a_bs) + (ars,), 0), (ib, b_start, tuple(b_bs) + (0,), bcs),
           (-1, 0, tuple(out_strides[:nb]) + (out_strides[-2],), out_strides[-1])]
    if packed:  # panels of the packed weight: a block of columns from col0 starts at col0 * k
        ops[1] = (ib, b_start, (0,) * (nb + 1), k)
    for leaf, (k_in, vshape, vstrides, offset) in leaves.items():
        st = broadcast_strides(vshape, shape, vstrides)
        ops.append((k_in, offset, tuple(st[:nb + 1]), st[-1]))
    if out_strides[-1] != 1:
        return None
    rows, groups = m, list(batch)
    while groups and all(o[2][len(groups) - 1] == o[2][-1] * rows for o in ops):
        rows *= groups.pop()
    # judged after folding: (32, 30, 256) @ (256, 9) is one product of 960 rows, not 32 small ones
    if not packed and (rows * n * k <= SMALL_PRODUCT or blas_layout(rows, k, ars, acs) is None):
        return None
    ng = len(groups)
    operands = [(i, start, tuple(st[:ng]), st[-1], cs) for i, start, st, cs in ops]
    count = int(np.prod(groups, dtype=np.int64))
    threads = parallel.threads_for(node)
    # Tall products: one block of rows per thread (each block repacks all of B inside BLAS, so no more
    # blocks than needed). Short ones (a sentence): a few column blocks per thread, each repacking only
    # the small A, so that a thread the OS preempts holds up only a small piece. Row blocks pay an extra
    # packing of B (k x n) per thread, column blocks one of A (rows x k) per block: a product is "tall"
    # when the column blocks would copy more (measured on all-MiniLM: batch 1's 128 rows run ~8% faster
    # in column blocks, batch 8's 1024 rows ~12% faster in row blocks).
    blocks, col_blocks = 1, 1
    per_thread = -(-threads // count)
    if count < threads and rows >= 64 * per_thread and PIECES * rows > n:
        blocks = per_thread
    elif count < threads:
        col_blocks = max(1, min(-(-PIECES * threads // count), n // 64))
    block_rows = -(-rows // blocks)
    blocks = -(-rows // block_rows)
    unit = ISAS[packed].nr if packed else 16
    block_cols = -(-n // col_blocks // unit) * unit if col_blocks > 1 else n
    col_blocks = -(-n // block_cols)
    return MatmulPlan(mm, epilogue, tuple(groups), rows, n, k, block_rows, blocks, operands, acs,
                      (brs, bcs), list(leaves), col_blocks, block_cols, node)


def _simple_path(dtype, m: int, n: int, k: int, b_strides: tuple, threads: int) -> str:
    """How a product without a blocked plan runs: "register-tiles", "openblas" or "loop"."""
    if _tiled(dtype, m, n, k, b_strides, threads):
        return "register-tiles"
    return "openblas" if np.dtype(dtype).kind == "f" and m * n * k > SMALL_PRODUCT else "loop"


def product_path(node: Node) -> str:
    """Which code computes a matmul kernel's product: "spago-gemm-<isa>" (the packed GEMM),
    "openblas", "register-tiles" or "loop" (what `CompiledFunction.report` lists)."""
    packed = node.meta.get(PACKED)
    if packed:
        return f"spago-gemm-{packed}"
    if matmul_plan(node) is not None:
        return "openblas"
    mm, _, views, _ = operand_views(node)
    (_, a_shape, a_strides, _), (_, b_shape, b_strides, _) = views
    _, _, (m, k), _ = _as_matrix(a_shape, a_strides, True)
    _, _, (_, n), b_str = _as_matrix(b_shape, b_strides, False)
    return _simple_path(mm.dtype, m, n, k, b_str, parallel.threads_for(node))


def product_flops(node: Node) -> int:
    """Floating-point operations of a matmul kernel's product (2 per multiply-add)."""
    mm = operand_views(node)[0]
    k = mm.inputs[0].shape[-1]
    return 2 * int(np.prod(mm.shape, dtype=np.int64)) * int(k)


def packable_weight(node: Node, isa) -> tuple | None:
    """(input index, (k, n), (row, col) strides, start) of a float32 product's right operand when the
    packed GEMM can compute it (a matrix read through a 2-d view, columns in whole ``isa.nr`` panels,
    contiguous output rows), else None. The caller decides whether that input is a constant to pack."""
    if node.op.name not in ("matmul", "fused"):
        return None
    mm, _, views, out_strides = operand_views(node)
    (_, a_shape, _, _), (ib, b_shape, b_strides, b_start) = views
    if np.dtype(mm.dtype) != np.float32 or len(a_shape) < 2 or len(b_shape) != 2 or out_strides[-1] != 1:
        return None
    k, n = b_shape
    if not k or not n or n % isa.nr or not mm.shape[-2]:
        return None
    return ib, (k, n), tuple(b_strides), b_start


def _tiled(dtype, m: int, n: int, k: int, b_strides: tuple, threads: int) -> bool:
    """Whether a product runs `register_tiled_product`: on one thread, float32 with B's rows contiguous, a
    few rows (an RNN step: 32 x 128 by 128 x 512) and columns in whole tiles. It keeps its accumulators in
    registers and reads the weight where it lies, where BLAS would first repack all of it — at these sizes
    ~25% faster (40 µs against 50–56 µs for the step above). With threads to spare, BLAS on blocks split
    across them is faster still (a one-direction LSTM: 1.7 against 2.1 ms)."""
    return (threads == 1 and np.dtype(dtype) == np.float32 and b_strides[1] == 1 and m <= TILED_ROWS
            and n % (2 * LANES) == 0 and SMALL_PRODUCT < m * n * k <= TILED_PRODUCT)


def _epilogue_leaves(body, mm: Node, epilogue: list) -> dict:
    """Operands the epilogue reads besides the product: node -> (input index, shape, strides, offset)."""
    views = {n for n in body.nodes if is_view(n)}
    leaves: dict = {}
    for e in epilogue:
        for i in e.inputs:
            if i in leaves or i is mm or i in epilogue:
                continue
            if i in views:
                root, vshape, vstrides, offset = view_of(i, stop=views)
                leaves[i] = (body.inputs.index(root), vshape, vstrides, offset)
            else:
                leaves[i] = (body.inputs.index(i), i.shape, contiguous_strides(i.shape), 0)
    return leaves


def _emit_blocks(b: ir.IRBuilder, args: list, plan: MatmulPlan, outer: tuple | None) -> None:
    """For each work item in ``outer`` (default: all): one GEMM on a block of rows, then its epilogue."""
    out_ptr, in_ptrs = args[0], list(args[1:])
    dtype = plan.mm.dtype
    start, end = outer if outer is not None else (ir.Constant(I64, 0), ir.Constant(I64, plan.items))
    m_slot, n_slot = _constant_slot(b, I32, 0), _constant_slot(b, I32, 0)
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
            gemm = gemm_function(b.module, isa, plan_blocks(isa, plan.k), plan.a_cols)
            b.call(gemm, [count, cols, ir.Constant(I64, plan.k), base(0), ir.Constant(I64, plan.operands[0][3]),
                          base(1), base(2), ir.Constant(I64, plan.operands[2][3])])
        else:
            b.store(b.trunc(count, I32), m_slot)
            b.store(b.trunc(cols, I32), n_slot)
            call_gemm(b, dtype, plan.block_rows, plan.block_cols, plan.k, base(0), (plan.operands[0][3], plan.a_cols),
                      base(1), plan.b_strides, base(2), plan.operands[2][3], m_slot=m_slot, n_slot=n_slot)
        if plan.epilogue:
            block_epilogue(b, plan, [base(k) for k in range(2, len(plan.operands))], count, cols)


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
        _constant_slot(b, I8, ord("T" if trans_b else "N")), _constant_slot(b, I8, ord("T" if trans_a else "N")),
        n_slot if n_slot is not None else _constant_slot(b, I32, n),
        m_slot if m_slot is not None else _constant_slot(b, I32, m),
        _constant_slot(b, I32, k),
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
    leaves = _epilogue_leaves(body, mm, epilogue)
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
                           c_ptr, ldc: int, rows: int, vectors: int) -> None:
    """float32 C[m x n] = A[m x k]·B[k x n] for the small products inside a kernel (attention's per-head
    scores and context), with no call into BLAS: tiles of ``rows`` x ``vectors``·LANES columns are
    accumulated in registers over the whole k loop, so each B vector loaded serves ``rows`` FMAs.
    B's rows must be contiguous (``b_row`` apart) and ``n`` a multiple of the tile width; ``m`` may
    be known only at run time (left-over rows run as tiles of one row)."""
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
                for v in range(vectors):
                    off = b.add(c_rows[r], b.add(col, ir.Constant(I64, v * LANES)))
                    b.store(loop.accs[r * vectors + v], element_ptr(b, c_ptr, off, np.float32), align=4)

    with for_range(b, full, "ti", step=rows) as i:
        tiles(i, rows)
    with for_range(b, m, "tr", start=full) as i:
        tiles(i, 1)



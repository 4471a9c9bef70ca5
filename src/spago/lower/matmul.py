"""The plan of a matrix product: its operands seen through views, how its rows and columns are cut into
work items for threads (a `MatmulPlan`), and which path runs it. The backend's matmul family emits what
the plan says; the fusion passes consult it to decide what one kernel can hold."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Node
from . import parallel
from .gemm import ISAS
from .views import blas_layout, broadcast_strides, contiguous as contiguous_strides, is_view, view_of

PACKED = "packed_b"       # kernel meta: the right operand is a constant packed for this ISA's GEMM
SMALL_PRODUCT = 1 << 17  # multiply-adds below which a generated loop beats the cost of a BLAS call
TILED_PRODUCT = 1 << 22  # float32 products up to this with few rows run register tiles, not BLAS
TILED_ROWS = 64          # "few rows": an RNN step's batch
PIECES = 2               # column blocks per thread a short product is cut into (BLAS; packed weights: 1)


LANES = 16       # floats per vector register (AVX-512); LLVM splits wider vectors on smaller machines


def as_matrix(shape: tuple, strides: tuple, is_left: bool) -> tuple[tuple, tuple, tuple, tuple]:
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


def matmul_extent(node: Node) -> int:
    """Work items threads can share, or 0 when the product is too small to be worth a second thread."""
    plan = matmul_plan(node)
    return 0 if plan is None else shared_items(plan)


def shared_items(*plans: MatmulPlan) -> int:
    """The work items of products cut alike (a matmul kernel's one, attention's or an mlp's two) that
    threads share, or 0 when there are fewer than two or the multiply-adds are too few to pay a second
    thread: what counts is the products' work, not the size of the kernel's output."""
    work = sum(int(np.prod(p.groups, dtype=np.int64)) * p.rows * p.n * p.k for p in plans)
    items = plans[0].items
    return items if items >= 2 and work >= parallel.MIN_PRODUCT else 0


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
    a_batch, a_bstr, (m, k), (ars, acs) = as_matrix(a_shape, a_strides, True)
    b_batch, b_bstr, (_, n), (brs, bcs) = as_matrix(b_shape, b_strides, False)
    packed = node.meta.get(PACKED)
    if not m or not n or (not packed and tiled(mm.dtype, m, n, k, (brs, bcs), parallel.threads_for(node))):
        return None
    batch = tuple(np.broadcast_shapes(a_batch, b_batch))
    nb = len(batch)
    shape = mm.shape
    a_bs = broadcast_strides(a_batch, batch, a_bstr)
    b_bs = broadcast_strides(b_batch, batch, b_bstr)
    body = node.attrs.get("body")
    leaves = epilogue_leaves(body, mm, epilogue) if epilogue else {}
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
    elif count < threads:  # a packed weight: one block per thread, each block packs all of A once more
        pieces = 1 if packed else PIECES
        col_blocks = max(1, min(-(-pieces * threads // count), n // 64))
    block_rows = -(-rows // blocks)
    blocks = -(-rows // block_rows)
    unit = ISAS[packed].nr if packed else 16
    block_cols = -(-n // col_blocks // unit) * unit if col_blocks > 1 else n
    col_blocks = -(-n // block_cols)
    return MatmulPlan(mm, epilogue, tuple(groups), rows, n, k, block_rows, blocks, operands, acs,
                      (brs, bcs), list(leaves), col_blocks, block_cols, node)


def simple_path(dtype, m: int, n: int, k: int, b_strides: tuple, threads: int) -> str:
    """How a product without a blocked plan runs: "register-tiles", "openblas" or "loop"."""
    if tiled(dtype, m, n, k, b_strides, threads):
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
    _, _, (m, k), _ = as_matrix(a_shape, a_strides, True)
    _, _, (_, n), b_str = as_matrix(b_shape, b_strides, False)
    return simple_path(mm.dtype, m, n, k, b_str, parallel.threads_for(node))


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


def tiled(dtype, m: int, n: int, k: int, b_strides: tuple, threads: int) -> bool:
    """Whether a product runs `register_tiled_product`: on one thread, float32 with B's rows contiguous, a
    few rows (an RNN step: 32 x 128 by 128 x 512) and columns in whole tiles. It keeps its accumulators in
    registers and reads the weight where it lies, where BLAS would first repack all of it — at these sizes
    ~25% faster (40 µs against 50–56 µs for the step above). With threads to spare, BLAS on blocks split
    across them is faster still (a one-direction LSTM: 1.7 against 2.1 ms)."""
    return (threads == 1 and np.dtype(dtype) == np.float32 and b_strides[1] == 1 and m <= TILED_ROWS
            and n % (2 * LANES) == 0 and SMALL_PRODUCT < m * n * k <= TILED_PRODUCT)


def epilogue_leaves(body, mm: Node, epilogue: list) -> dict:
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

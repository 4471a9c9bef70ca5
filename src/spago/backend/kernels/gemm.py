"""spago's own float32 GEMM: a register-tiled micro-kernel over a weight packed into column panels.

A constant weight ``B`` (k x n, any strided view of one constant: ``W`` or ``W.T``) is packed once, at
compile time, into panels of ``nr`` columns: panel ``p`` holds ``B[:, p*nr:(p+1)*nr]`` row after row, so
the micro-kernel reads it with unit stride. The packed array replaces the constant (same element count:
only weights whose columns fill whole panels are packed), so no second copy of the weight is kept.
Activations ``A`` are read in place through their strides (one broadcast load per row and k).

Planning (the ISA variant, tile and block sizes from the host's caches, the packed layout) lives in
`spago.lower.gemm`: `choose_isa` and `plan_blocks` decide there, `emit_gemm` here writes the function.
The loops follow the usual order (MLAS's): k in blocks of ``kc``, rows in blocks of ``mc`` (an ``mc`` x ``kc`` block of A in
L2), ``nc`` panels at a time (in L2), then ``mr``-row strips of A (in L1) each meeting those panels in
turn; a tile's ``mr`` x ``nr`` accumulators live in vector registers for the whole ``kc`` loop, while
it prefetches its weight panel a few k steps ahead. The product's elementwise epilogue, if any, runs on
each strip of C as it is finished (`Epilogue`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
from llvmlite import ir

from ...lower.gemm import (ISA_VARIABLE, ISAS, Blocks, Isa, PackedLayout, cache_sizes, choose_isa,  # noqa: F401
                           host_features, pack_weight, plan_blocks, unpack_weight)
from ..loops import accumulate, for_range
from ..types import F32, I32, I64, PTR, VOID, element_ptr

def remainder_rows(mr: int) -> list:
    """Row counts of the tiles that cover fewer than ``mr`` rows: powers of two, largest first."""
    return [1 << e for e in range((mr - 1).bit_length() - 1, -1, -1)]


def remainder_width(isa: Isa, rows: int) -> int:
    """Panels a tile of ``rows`` < ``mr`` rows covers at once: about as many accumulators as a full tile
    (so that enough independent FMA chains hide the FMA latency), at most 4 panels."""
    return max(1, min(4, isa.mr // rows // 2 * 2 or 1))


def broadcast(b: ir.IRBuilder, value: ir.Value, vec_t: ir.VectorType) -> ir.Value:
    """``value`` in every lane of a ``vec_t`` (one ``vbroadcastss`` from memory)."""
    splat = b.insert_element(ir.Constant(vec_t, ir.Undefined), value, ir.Constant(I32, 0))
    return b.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(I32, vec_t.count), [0] * vec_t.count))


def _intrinsic(module: ir.Module, name: str, typ: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, typ, name)


# k steps ahead that a tile prefetches its weight panels into L1: a panel of ``kc`` x ``nr`` streams from L2
# once per tile, and the hardware prefetchers alone left ~10% of the time waiting on it (measured 8 against
# 0, 4, 6, 12 and 16 on the BERT shapes, AVX-512). Full tiles only: it slowed the short ones.
PREFETCH = 8
# k steps ahead that a full tile also prefetches its weight panel into L2: in a model each weight is read once
# per call, from L3 or memory, and the L2 streamer stops at every 4 KB page of the panel (measured on
# all-MiniLM at one sentence: its products 5–7% faster with 96 than with none; 64 to 256 within 2% of it;
# no change on a product whose weight stays in cache).
FAR_PREFETCH = 96
GEMM_TYPE = ir.FunctionType(VOID, [I64, I64, I64, PTR, I64, PTR, PTR, I64])


@dataclass(frozen=True)
class Epilogue:
    """Elementwise work applied to each finished strip of C (a tile's rows across the panels of an L2
    block) while it is in cache (bias, GELU, residual add), instead of a second pass over the whole product. ``operands``: (row stride, column stride, dtype) of
    each extra operand the GEMM function receives (a pointer at the product's corner); ``emit(b, ptrs, rows,
    cols)`` writes the code for one ``rows`` x ``cols`` tile given C's and the operands' tile corners;
    ``key`` names what ``emit`` writes, so products with equal epilogues share one function."""

    key: str
    operands: tuple
    emit: Callable


def prefer_wide_vectors(fn: ir.Function) -> None:
    """Ask LLVM for 512-bit vectors in ``fn``'s loops when the host's GEMM runs AVX-512: on these CPUs LLVM
    otherwise vectorises at 256 bits, and the exp and erf polynomials of softmax rows and GELU epilogues
    then take twice the instructions. (llvmlite knows no string attributes: it goes into the attribute
    set as it is to be printed.)"""
    isa = choose_isa()
    if isa is not None and isa.name == "avx512":
        set.add(fn.attributes, '"prefer-vector-width"="512"')


def opaque(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """``value`` as a register the optimiser cannot see through (an empty inline-assembly move)."""
    return b.call(ir.InlineAsm(ir.FunctionType(value.type, [value.type]), "", "=r,0"), [value])


def tile_epilogue(module: ir.Module, epilogue: Epilogue) -> ir.Function:
    """``void ep(i64 rows, i64 cols, ptr noalias c, ptr noalias operand...)``: the epilogue over one tile.
    A function of its own, its pointers marked not to alias and its extent a run-time value (`opaque`):
    so LLVM vectorises the loop over a row's columns (with constant counts it unrolled them fully first
    and then vectorised across rows, through the stack)."""
    name = f"spago_tile_ep{epilogue.key}"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(VOID, [I64, I64] + [PTR] * (1 + len(epilogue.operands))), name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        prefer_wide_vectors(fn)
        for arg in fn.args[2:]:
            arg.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        epilogue.emit(b, list(fn.args[2:]), fn.args[0], fn.args[1])
        b.ret_void()
    return fn


def gemm_function(module: ir.Module, isa: Isa, blocks: Blocks, a_col: int,
                  epilogue: Epilogue | None = None) -> ir.Function:
    """``void gemm(i64 m, i64 n, i64 k, ptr a, i64 a_row, ptr packed_b, ptr c, i64 ldc, ptr operand...)``:
    C[m x n] = epilogue(A·B) with B packed (`pack_weight`). Emitted once per module, blocking, A's column
    stride and epilogue (constants, so one function serves every product of a model alike: each costs
    LLVM time at compile)."""
    name = f"spago_gemm_{isa.name}_kc{blocks.kc}_mc{blocks.mc}_nc{blocks.nc}_acol{a_col}"
    if epilogue is not None:
        name += f"_ep{epilogue.key}"
    fn = module.globals.get(name)
    if fn is None:
        extra = len(epilogue.operands) if epilogue is not None else 0
        fn = ir.Function(module, ir.FunctionType(VOID, list(GEMM_TYPE.args) + [PTR] * extra), name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        emit_gemm(fn, isa, blocks, a_col, epilogue)
    return fn


def emit_gemm(fn: ir.Function, isa: Isa, blocks: Blocks, a_col_value: int, epilogue: Epilogue | None = None) -> None:
    """The body of `gemm_function` (``n`` must be a multiple of ``nr``)."""
    m, n, k, a_ptr, a_row, bp_ptr, c_ptr, ldc = fn.args[:8]
    operands = fn.args[8:]
    for arg, nm in zip(fn.args, ("m", "n", "k", "a", "a_row", "bp", "c", "ldc")):
        arg.name = nm
    a_col = ir.Constant(I64, a_col_value)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    lanes, mr, vectors, nr = isa.lanes, isa.mr, isa.vectors, isa.nr
    vec_t = ir.VectorType(F32, lanes)
    fma = _intrinsic(b.module, f"llvm.fma.v{lanes}f32", ir.FunctionType(vec_t, [vec_t] * 3))
    zero = ir.Constant(vec_t, [0.0] * lanes)
    c64 = functools.partial(ir.Constant, I64)
    prefetch = _intrinsic(b.module, "llvm.prefetch.p0", ir.FunctionType(VOID, [PTR, I32, I32, I32]))

    def smin(x, y):
        return b.select(b.icmp_signed("<", x, y), x, y)

    k_blocks = b.udiv(b.add(k, c64(blocks.kc - 1)), c64(blocks.kc))
    m_blocks = b.udiv(b.add(m, c64(blocks.mc - 1)), c64(blocks.mc))
    # row blocks of equal size in whole strips (1024 rows: 516+508, not 672+352)
    some = b.select(b.icmp_signed(">", m_blocks, c64(0)), m_blocks, c64(1))  # (no division by 0 rows)
    m_block = b.udiv(b.add(m, b.sub(some, c64(1))), some)
    m_block = b.mul(b.udiv(b.add(m_block, c64(mr - 1)), c64(mr)), c64(mr))
    with for_range(b, k_blocks, "pc") as pcb:
        pc = b.mul(pcb, c64(blocks.kc))
        kb = smin(c64(blocks.kc), b.sub(k, pc))
        first = b.icmp_signed("==", pc, c64(0))
        with for_range(b, m_blocks, "ic") as icb:
            ic = b.mul(icb, m_block)
            mb = smin(m_block, b.sub(m, ic))
            full = b.add(ic, b.mul(b.udiv(mb, c64(mr)), c64(mr)))
            panels = b.udiv(n, c64(nr))

            def tile(row0, col, rows: int, width: int) -> None:
                """``rows`` x ``width`` panels from (row0, col): accumulators in registers over the k block."""
                # panel p starts at p*k*nr; its k rows from pc on
                b_panels = [element_ptr(b, bp_ptr, b.add(b.mul(b.add(col, c64(q * nr)), k), b.mul(pc, c64(nr))),
                                        np.float32) for q in range(width)]
                a_rows = [element_ptr(b, a_ptr, b.add(b.mul(b.add(row0, c64(r)), a_row), b.mul(pc, a_col)),
                                      np.float32) for r in range(rows)]
                slots = [(q, v) for q in range(width) for v in range(vectors)]
                c_ptrs = [[element_ptr(b, c_ptr, b.add(b.mul(b.add(row0, c64(r)), ldc), b.add(col, c64(q * nr + v * lanes))),
                                       np.float32) for q, v in slots] for r in range(rows)]
                # from zero; added onto C after the first k block (C is not read before it is written)
                init = [zero] * (rows * len(slots))
                with accumulate(b, kb, init, "kk") as loop:
                    kk = loop.index
                    bvecs = [b.load(element_ptr(b, b_panels[q], b.add(b.mul(kk, c64(nr)), c64(v * lanes)), np.float32),
                                    typ=vec_t, align=4) for q, v in slots]
                    if rows == mr:  # (not in short tiles: with it, the 8-row tile of 128 rows ran at half speed)
                        for q in range(width):
                            for line in range(0, nr, 16):  # each 64-byte line of the rows PREFETCH and
                                for steps, level in ((PREFETCH, 3), (FAR_PREFETCH, 2)):  # FAR_PREFETCH steps on
                                    ahead = b.add(b.mul(kk, c64(nr)), c64(steps * nr + line))
                                    b.call(prefetch, [element_ptr(b, b_panels[q], ahead, np.float32),
                                                      ir.Constant(I32, 0), ir.Constant(I32, level), ir.Constant(I32, 1)])
                    a_off = b.mul(kk, a_col)
                    new = []
                    for r in range(rows):
                        a_val = b.load(element_ptr(b, a_rows[r], a_off, np.float32), typ=F32)
                        splat = broadcast(b, a_val, vec_t)
                        for s, bvec in enumerate(bvecs):
                            new.append(b.call(fma, [splat, bvec, loop.accs[r * len(slots) + s]]))
                    loop.carry(new)
                with b.if_else(first) as (assign, add):
                    with assign:
                        for r in range(rows):
                            for s in range(len(slots)):
                                b.store(loop.accs[r * len(slots) + s], c_ptrs[r][s], align=4)
                    with add:
                        for r in range(rows):
                            for s in range(len(slots)):
                                old = b.load(c_ptrs[r][s], typ=vec_t, align=4)
                                b.store(b.fadd(old, loop.accs[r * len(slots) + s]), c_ptrs[r][s], align=4)

            def finish(row0, rows: int, first_panel, last_panel) -> None:
                """After the last k block: the epilogue over the ``rows`` x panels just stored (in L1/L2),
                whole rows of them at once so that the operands it reads stream."""
                if epilogue is None:
                    return
                with b.if_then(b.icmp_signed(">=", b.add(pc, kb), k)):
                    col = b.mul(first_panel, c64(nr))
                    corners = [element_ptr(b, c_ptr, b.add(b.mul(row0, ldc), col), np.float32)] + [
                        element_ptr(b, ptr, b.add(b.mul(row0, c64(rs)), b.mul(col, c64(cs))), dtype)
                        for ptr, (rs, cs, dtype) in zip(operands, epilogue.operands)]
                    cols = b.mul(b.sub(last_panel, first_panel), c64(nr))
                    b.call(tile_epilogue(b.module, epilogue), [opaque(b, c64(rows)), opaque(b, cols)] + corners)

            # rows outer: an mr-row strip of A stays in L1 while it meets nc panels of B (kept in L2); the
            # rows short of a whole strip run as tiles of 8, 4, 2 and 1 rows (the binary digits of what is
            # left), each wide enough in panels to keep as many FMA chains going as a full tile
            left = b.sub(b.add(ic, mb), full)
            # panel blocks of equal size (36 panels: 12+12+12, not 16+16+4)
            panel_blocks = b.udiv(b.add(panels, c64(blocks.nc - 1)), c64(blocks.nc))
            block = b.udiv(b.add(panels, b.sub(panel_blocks, c64(1))), panel_blocks)
            with for_range(b, panel_blocks, "jc") as jb:
                first_panel = b.mul(jb, block)
                last = smin(b.add(first_panel, block), panels)
                with for_range(b, full, "ir", start=ic, step=mr) as row:
                    with for_range(b, last, "jr", start=first_panel) as panel:
                        tile(row, b.mul(panel, c64(nr)), mr, 1)
                    finish(row, mr, first_panel, last)
                for rows in remainder_rows(mr):
                    width = remainder_width(isa, rows)
                    with b.if_then(b.icmp_signed("!=", b.and_(left, c64(rows)), c64(0))):
                        row = b.add(full, b.and_(left, c64(~(2 * rows - 1))))
                        wide = b.add(first_panel, b.mul(b.udiv(b.sub(last, first_panel), c64(width)), c64(width)))
                        with for_range(b, wide, f"jw{rows}", start=first_panel, step=width) as panel:
                            tile(row, b.mul(panel, c64(nr)), rows, width)
                        if width > 1:
                            with for_range(b, last, f"j{rows}", start=wide) as panel:
                                tile(row, b.mul(panel, c64(nr)), rows, 1)
                        finish(row, rows, first_panel, last)
    b.ret_void()

"""spago's own float32 GEMM: a register-tiled micro-kernel over a weight packed into column panels.

A constant weight ``B`` (k x n, any strided view of one constant: ``W`` or ``W.T``) is packed once, at
compile time, into panels of ``nr`` columns: panel ``p`` holds ``B[:, p*nr:(p+1)*nr]`` row after row, so
the micro-kernel reads it with unit stride. The packed array replaces the constant (same element count:
only weights whose columns fill whole panels are packed), so no second copy of the weight is kept.
Activations ``A`` are read in place through their strides (one broadcast load per row and k).

Planning (the ISA variant, tile and block sizes from the host's caches) is kept apart from LLVM
emission: `choose_isa` and `plan_blocks` decide, `emit_gemm` writes the function. The loops follow the
usual order (MLAS's): k in blocks of ``kc``, rows in blocks of ``mc`` (an ``mc`` x ``kc`` block of A in
L2), ``nc`` panels at a time (in L2), then ``mr``-row strips of A (in L1) each meeting those panels in
turn; a tile's ``mr`` x ``nr`` accumulators live in vector registers for the whole ``kc`` loop.
"""
from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...errors import SpagoError
from ..loops import accumulate, for_range
from ..types import F32, I32, I64, PTR, VOID, element_ptr

WIDE = 4  # panels a one-row tile covers at once
ISA_VARIABLE = "SPAGO_GEMM_ISA"  # "avx512", "avx2" (forced variant) or "off" (BLAS and loops only)


@dataclass(frozen=True)
class Isa:
    """A micro-kernel variant: ``lanes`` floats per vector, tiles of ``mr`` rows by ``vectors`` vectors."""

    name: str
    lanes: int
    mr: int
    vectors: int

    @property
    def nr(self) -> int:
        return self.lanes * self.vectors


# AVX-512: 12x32 tile = 24 zmm accumulators + 2 weight vectors + 1 broadcast of 32 registers.
# AVX2+FMA: 6x16 tile = 12 ymm accumulators + 2 + 1 of 16 registers.
ISAS = {"avx512": Isa("avx512", 16, 12, 2), "avx2": Isa("avx2", 8, 6, 2)}


def host_features() -> set:
    from ..target import host_cpu

    return {f[1:] for f in host_cpu()[2].split(",") if f.startswith("+")}


def choose_isa() -> Isa | None:
    """The variant for this host (``SPAGO_GEMM_ISA`` forces one the host supports), or None."""
    features = host_features()
    supported = [name for name, need in (("avx512", {"avx512f", "fma"}), ("avx2", {"avx2", "fma"}))
                 if need <= features]
    forced = os.environ.get(ISA_VARIABLE, "").strip().lower()
    if forced == "off":
        return None
    if forced:
        if forced not in ISAS:
            raise SpagoError(f"{ISA_VARIABLE}={forced!r}: expected one of {', '.join(ISAS)} or off")
        if forced not in supported:
            raise SpagoError(f"{ISA_VARIABLE}={forced}: this CPU lacks it (it has {', '.join(supported) or 'neither'})")
        return ISAS[forced]
    return ISAS[supported[0]] if supported else None


@functools.lru_cache(maxsize=None)
def cache_sizes() -> dict:
    """Data cache bytes per level of CPU 0 from sysfs ({1: L1d, 2: L2, 3: L3}), with common defaults."""
    sizes = {1: 32 << 10, 2: 1 << 20, 3: 8 << 20}
    for folder in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(folder, "level")) as f:
                level = int(f.read())
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(folder, "size")) as f:
                text = f.read().strip().upper()
        except (OSError, ValueError):
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        digits = text.rstrip("KMB")
        if digits.isdigit():
            sizes[level] = int(digits) * scale
    return sizes


@dataclass(frozen=True)
class Blocks:
    """Cache blocking of one product: ``kc`` of k per pass over C, ``mc`` rows of A per L2 block."""

    kc: int
    mc: int
    nc: int      # panels of B per L2 block (an A strip meets them all while it is in L1)


def plan_blocks(isa: Isa, k: int) -> Blocks:
    """``kc``: a ``kc`` x ``nr`` weight panel fills half of L1 (the other half holds the ``mr`` x ``kc``
    strip of A); ``nc``: ``nc`` such panels fill 3/8 of L2, and each strip of A meets all of them before
    the next; ``mc``: an ``mc`` x ``kc`` block of A fills half of L2. Rounded to whole tiles. Measured
    against panels-outer orders and a ``kc`` filling all of L1 (alternating, 1024x384·384x1536 and
    128x384·384x1536): this one was 5–25% faster."""
    sizes = cache_sizes()
    kc = max(16, sizes[1] // 2 // (isa.nr * 4))
    kc = min(kc, k) if k > 0 else kc
    # equal blocks, so the last one is not a sliver
    kc = -(-k // -(-k // kc)) if k > 0 else kc
    mc = max(isa.mr, sizes[2] // 2 // (kc * 4) // isa.mr * isa.mr)
    nc = max(1, sizes[2] * 3 // 8 // (kc * isa.nr * 4))
    return Blocks(kc, mc, nc)


def pack_weight(b: np.ndarray, isa: Isa) -> np.ndarray:
    """``b`` (k x n, n a multiple of ``nr``) in panel order, as a C-contiguous array of shape (k, n):
    element (p, kk, j) of the (n/nr, k, nr) panels is ``b[kk, p*nr + j]``."""
    k, n = b.shape
    nr = isa.nr
    if n % nr:
        raise SpagoError(f"packing a weight of {n} columns: expected a multiple of {nr}")
    panels = np.ascontiguousarray(np.asarray(b, dtype=np.float32).reshape(k, n // nr, nr).transpose(1, 0, 2))
    return panels.reshape(k, n)


def unpack_weight(packed: np.ndarray, isa: Isa) -> np.ndarray:
    """The (k, n) weight back from `pack_weight`'s layout (for checks and exports that want it)."""
    k, n = packed.shape
    return np.ascontiguousarray(packed.reshape(n // isa.nr, k, isa.nr).transpose(1, 0, 2).reshape(k, n))


@dataclass(frozen=True)
class PackedLayout:
    """How a constant's data was packed: ranges ((k, n), (row, col) strides, start) of its flat data,
    each holding `pack_weight` of that view. ``logical`` gives the array back (for the interpreter)."""

    isa: str
    views: tuple

    def logical(self, data: np.ndarray) -> np.ndarray:
        flat = np.array(data, dtype=np.float32, order="C").reshape(-1)
        out = flat.copy()
        item = flat.itemsize
        for (k, n), strides, start in self.views:
            view = unpack_weight(flat[start:start + k * n].reshape(k, n), ISAS[self.isa])
            np.lib.stride_tricks.as_strided(out[start:], (k, n), (strides[0] * item, strides[1] * item))[...] = view
        return out.reshape(data.shape)


def broadcast(b: ir.IRBuilder, value: ir.Value, vec_t: ir.VectorType) -> ir.Value:
    """``value`` in every lane of a ``vec_t`` (one ``vbroadcastss`` from memory)."""
    splat = b.insert_element(ir.Constant(vec_t, ir.Undefined), value, ir.Constant(I32, 0))
    return b.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(I32, vec_t.count), [0] * vec_t.count))


def _intrinsic(module: ir.Module, name: str, typ: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, typ, name)


GEMM_TYPE = ir.FunctionType(VOID, [I64, I64, I64, PTR, I64, PTR, PTR, I64])


def gemm_function(module: ir.Module, isa: Isa, blocks: Blocks, a_col: int) -> ir.Function:
    """``void gemm(i64 m, i64 n, i64 k, ptr a, i64 a_row, ptr packed_b, ptr c, i64 ldc)``: C[m x n] = A·B
    with B packed (`pack_weight`). Emitted once per module, blocking and A's column stride (a constant, so
    one function serves every product of a model: each costs LLVM time at compile)."""
    name = f"spago_gemm_{isa.name}_kc{blocks.kc}_mc{blocks.mc}_nc{blocks.nc}_acol{a_col}"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, GEMM_TYPE, name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        emit_gemm(fn, isa, blocks, a_col)
    return fn


def emit_gemm(fn: ir.Function, isa: Isa, blocks: Blocks, a_col_value: int) -> None:
    """The body of `gemm_function` (``n`` must be a multiple of ``nr``)."""
    m, n, k, a_ptr, a_row, bp_ptr, c_ptr, ldc = fn.args
    for arg, nm in zip(fn.args, ("m", "n", "k", "a", "a_row", "bp", "c", "ldc")):
        arg.name = nm
    a_col = ir.Constant(I64, a_col_value)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    lanes, mr, vectors, nr = isa.lanes, isa.mr, isa.vectors, isa.nr
    vec_t = ir.VectorType(F32, lanes)
    fma = _intrinsic(b.module, f"llvm.fma.v{lanes}f32", ir.FunctionType(vec_t, [vec_t] * 3))
    zero = ir.Constant(vec_t, [0.0] * lanes)
    c64 = functools.partial(ir.Constant, I64)

    def smin(x, y):
        return b.select(b.icmp_signed("<", x, y), x, y)

    k_blocks = b.udiv(b.add(k, c64(blocks.kc - 1)), c64(blocks.kc))
    m_blocks = b.udiv(b.add(m, c64(blocks.mc - 1)), c64(blocks.mc))
    with for_range(b, k_blocks, "pc") as pcb:
        pc = b.mul(pcb, c64(blocks.kc))
        kb = smin(c64(blocks.kc), b.sub(k, pc))
        first = b.icmp_signed("==", pc, c64(0))
        with for_range(b, m_blocks, "ic") as icb:
            ic = b.mul(icb, c64(blocks.mc))
            mb = smin(c64(blocks.mc), b.sub(m, ic))
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

            # rows outer: an mr-row strip of A stays in L1 while it meets nc panels of B (kept in L2)
            with for_range(b, panels, "jc", step=blocks.nc) as first_panel:
                last = smin(b.add(first_panel, c64(blocks.nc)), panels)
                with for_range(b, full, "ir", start=ic, step=mr) as row:
                    with for_range(b, last, "jr", start=first_panel) as panel:
                        tile(row, b.mul(panel, c64(nr)), mr, 1)
            # rows left over (an RNN step's single row): one row by WIDE panels at once, so that WIDE x
            # vectors independent FMA chains hide the FMA latency; then single panels
            wide = b.mul(b.udiv(panels, c64(WIDE)), c64(WIDE))
            with for_range(b, b.add(ic, mb), "rr", start=full) as row:
                with for_range(b, wide, "jw", step=WIDE) as panel:
                    tile(row, b.mul(panel, c64(nr)), 1, WIDE)
                with for_range(b, panels, "j1", start=wide) as panel:
                    tile(row, b.mul(panel, c64(nr)), 1, 1)
    b.ret_void()

"""The planning half of spago's packed float32 GEMM: the ISA variants (`Isa`, with the panel width
``nr`` the planner cuts columns by), the host's choice among them, cache blocking (`plan_blocks`) and
the packed weight layout (`pack_weight`, `PackedLayout`). Pure Python: the `pack_weights` pass and the
matmul planner read it, and `spago.backend.kernels.gemm` emits the micro-kernel it describes.

A constant weight ``B`` (k x n, any strided view of one constant: ``W`` or ``W.T``) is packed once, at
compile time, into panels of ``nr`` columns: panel ``p`` holds ``B[:, p*nr:(p+1)*nr]`` row after row, so
the micro-kernel reads it with unit stride. The packed array replaces the constant (same element count:
only weights whose columns fill whole panels are packed), so no second copy of the weight is kept.
"""
from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass

import numpy as np

from ..errors import SpagoError

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
NEEDS = {"avx512": {"avx512f", "fma"}, "avx2": {"avx2", "fma"}}  # CPU features each variant runs on


@functools.lru_cache(maxsize=None)
def host_features() -> frozenset:
    """The CPU's feature flags as Linux reports them (``/proc/cpuinfo``; the names LLVM uses for these
    ISAs), or none where that file is missing: then no packed GEMM, BLAS and loops only."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def choose_isa() -> Isa | None:
    """The variant for this host (``SPAGO_GEMM_ISA`` forces one the host supports), or None."""
    features = host_features()
    supported = [name for name, need in NEEDS.items() if need <= features]
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
    """``kc``: a ``kc`` x ``nr`` weight panel fills L1 (the micro-kernel prefetches it a few k steps ahead,
    so it streams from L2; fewer k blocks mean fewer passes over C: measured against half of L1, 1–5%
    faster on the BERT shapes); ``nc``: ``nc`` such panels fill 3/8 of L2, and each strip of A meets all
    of them before the next; ``mc``: an ``mc`` x ``kc`` block of A fills half of L2. Rounded to whole
    tiles. Measured against panels-outer orders (1024x384·384x1536 and 128x384·384x1536): this one was
    5–25% faster."""
    sizes = cache_sizes()
    kc = max(16, sizes[1] // (isa.nr * 4))
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

"""Sizes every layer agrees on, named once: the loop packing in `spago.ops.scan`, the memory planner, the
kernels' stack buffers, the runtime's arenas and the exported library all align buffers the same way."""
import numpy as np

ALIGNMENT = 64     # bytes: a cache line, and the widest vector load (AVX-512)
FLOAT32_BYTES = 4  # the itemsize the kernels' stack-buffer budgets are counted in


def aligned_empty(nbytes: int) -> np.ndarray:
    """``nbytes`` uninitialised bytes starting at an ``ALIGNMENT`` boundary (NumPy's own allocations are
    aligned to 16 bytes only, and a 64-byte vector load across two cache lines costs two)."""
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    return raw[start:start + nbytes]

"""Both cores for large kernels: an elementwise or row-wise kernel over enough data runs its outer loop
split across threads with OpenMP's runtime (libgomp's ``GOMP_parallel``), one slice per thread.

Matrix products are threaded by BLAS itself. ``SPAGO_NUM_THREADS=1`` turns kernel threading off; the
thread count otherwise follows ``OMP_NUM_THREADS`` (default: all cores).
"""
from __future__ import annotations

import ctypes.util
import functools
import os

import llvmlite.binding as llvm

MIN_ELEMENTS = 1 << 16  # below this, waking a second thread costs more than it saves


@functools.lru_cache(maxsize=None)
def openmp_library() -> str | None:
    """Load libgomp into the process (once); its path, or None when it is not installed."""
    path = ctypes.util.find_library("gomp")
    if path is None:
        return None
    try:
        llvm.load_library_permanently(path)
    except RuntimeError:
        return None
    return path


def enabled() -> bool:
    if os.environ.get("SPAGO_NUM_THREADS", "").strip() == "1" or (os.cpu_count() or 1) < 2:
        return False
    return openmp_library() is not None


def setting() -> str:
    """What the generated code depends on (part of the disk-cache key)."""
    return f"parallel={enabled()},min={MIN_ELEMENTS}"

"""Both cores for large kernels: an elementwise or row-wise kernel over enough data runs its outer loop
in chunks on spago's thread pool (`spago.backend.threadpool`).

Matrix products split their rows or batch entries across the same threads, each thread calling a
single-threaded BLAS, so one pool of threads does all the work and the cores are never oversubscribed.
``SPAGO_NUM_THREADS`` sets the thread count (1 turns threading off); otherwise it follows
``OMP_NUM_THREADS`` (default: all cores).
"""
from __future__ import annotations

import os

MIN_ELEMENTS = 1 << 16  # below this, waking a second thread costs more than it saves

MIN_PRODUCT = 1 << 18  # multiply-adds below which a matrix product stays on one thread
RULES = 4  # the version of the rules deciding which kernels are threaded (cached code depends on them)


def threads() -> int:
    """How many threads kernels use: ``SPAGO_NUM_THREADS``, else ``OMP_NUM_THREADS``, else all cores."""
    for var in ("SPAGO_NUM_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").strip().split(",")[0]
        if text.isdigit() and int(text) > 0:
            return int(text)
    return os.cpu_count() or 1


def enabled() -> bool:
    return threads() >= 2


def threads_for(node) -> int:
    """The threads a kernel may use: one inside a branch of a parallel region (the branch's thread, the
    pool being busy with the region) or without a pool, else the pool's."""
    return 1 if "branch" in node.meta or not enabled() else threads()


def setting() -> str:
    """What the generated code depends on (part of the disk-cache key)."""
    return f"pool={enabled()},threads={threads()},min={MIN_ELEMENTS},{MIN_PRODUCT},rules={RULES}"

"""External symbols that generated code may call, made known to the linkers once."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def register() -> None:
    """The process's own symbols (libm, libc) resolve by default; BLAS routines are added by name here."""
    from .blas import register_blas

    register_blas()

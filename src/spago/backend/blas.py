"""The BLAS matrix product that generated code calls for large products.

SciPy ships OpenBLAS with 32-bit integers (LP64) and exports ``sgemm``/``dgemm`` through
``scipy.linalg.cython_blas``; their addresses are registered with LLVM as ``spago_sgemm``/``spago_dgemm``.
Fortran conventions: column-major, every argument by pointer.
"""
from __future__ import annotations

import ctypes
import functools

import llvmlite.binding as llvm

from ..errors import SpagoError

INT_BITS = 32  # scipy's OpenBLAS is LP64: integers are 32-bit


def _capsule_address(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.lru_cache(maxsize=None)
def register_blas() -> dict:
    try:
        from scipy.linalg import cython_blas
    except ImportError as exc:  # pragma: no cover - scipy is a dependency
        raise SpagoError("the native backend needs SciPy's BLAS for matrix products") from exc
    found = {}
    for name in ("sgemm", "dgemm"):
        address = _capsule_address(cython_blas.__pyx_capi__[name])
        llvm.add_symbol(f"spago_{name}", address)
        found[name] = address
    return found

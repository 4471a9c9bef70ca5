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


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


@functools.lru_cache(maxsize=None)
def use_one_blas_thread() -> bool:
    """Make the BLAS that compiled code calls single-threaded: threaded kernels split products across
    their own threads, and a BLAS pool spinning beside them would oversubscribe the cores. Returns
    whether the library offered a way to do it (OpenBLAS's ``*_set_num_threads``)."""
    address = register_blas()["sgemm"]
    info = _DlInfo()
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return False
    dladdr.argtypes, dladdr.restype = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)], ctypes.c_int
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return False
    lib = ctypes.CDLL(info.dli_fname.decode())
    for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
        setter = getattr(lib, name, None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            setter(1)
            return True
    return False

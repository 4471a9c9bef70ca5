"""The BLAS matrix product that generated code calls for large products.

SciPy ships OpenBLAS with 32-bit integers (LP64). Its ``sgemm``/``dgemm`` are registered with LLVM as
``spago_sgemm``/``spago_dgemm``. The library is opened directly from the SciPy wheel's ``scipy.libs``
folder when it is there (importing ``scipy.linalg`` would cost ~20 MB of resident memory for nothing);
otherwise the addresses come from ``scipy.linalg.cython_blas``. Fortran conventions: column-major, every
argument by pointer.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os

from ..errors import SpagoError
from . import linker


def _capsule_address(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _wheel_library() -> ctypes.CDLL | None:
    """SciPy's bundled OpenBLAS, opened by path (None if this SciPy does not bundle one)."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.dirname(list(spec.submodule_search_locations)[0])
    for path in sorted(glob.glob(os.path.join(root, "scipy.libs", "libscipy_openblas-*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "scipy_sgemm_") and hasattr(lib, "scipy_dgemm_"):
            return lib
    return None


@functools.lru_cache(maxsize=None)
def _library() -> tuple[dict, ctypes.CDLL | None]:
    """({"sgemm": address, "dgemm": address}, the library when it was opened by path)."""
    lib = _wheel_library()
    if lib is not None:
        return {name: ctypes.cast(getattr(lib, f"scipy_{name}_"), ctypes.c_void_p).value
                for name in ("sgemm", "dgemm")}, lib
    try:
        from scipy.linalg import cython_blas
    except ImportError as exc:  # pragma: no cover - scipy is a dependency
        raise SpagoError("the native backend needs SciPy's BLAS for matrix products") from exc
    return {name: _capsule_address(cython_blas.__pyx_capi__[name]) for name in ("sgemm", "dgemm")}, None


@functools.lru_cache(maxsize=None)
def register_blas() -> dict:
    found, _ = _library()
    for name, address in found.items():
        linker.define(f"spago_{name}", address)
    return found


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _containing_library(address: int) -> ctypes.CDLL | None:
    info = _DlInfo()
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes, dladdr.restype = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)], ctypes.c_int
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return ctypes.CDLL(info.dli_fname.decode())


@functools.lru_cache(maxsize=None)
def use_one_blas_thread() -> bool:
    """Make the BLAS that compiled code calls single-threaded: threaded kernels split products across
    spago's own threads, and a BLAS pool spinning beside them would oversubscribe the cores. Returns
    whether the library offered a way to do it (OpenBLAS's ``*_set_num_threads``)."""
    found, lib = _library()
    lib = lib or _containing_library(found["sgemm"])
    if lib is None:
        return False
    for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
        setter = getattr(lib, name, None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            setter(1)
            return True
    return False

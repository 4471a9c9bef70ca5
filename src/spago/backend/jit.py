"""Turn LLVM IR into callable machine code in this process (via an object file, so the disk cache and
the cold path load code the same way). Objects are linked by spago's own linker (:mod:`.linker`) where it
handles the host, so code from the cache runs without loading LLVM; elsewhere by LLVM's MCJIT."""
from __future__ import annotations

import ctypes
import os
import threading
from typing import Sequence

from . import linker
from .target import emit_object, parse_and_optimize

_lock = threading.Lock()
_engines: list = []  # engines must outlive the functions they hold
LINKER_VARIABLE = "SPAGO_LINKER"  # "llvm" links every object through MCJIT


def compile_ir(ir_text: str) -> tuple[object, bytes]:
    """Optimise IR at O3 and emit an object file; returns (optimised module, object bytes)."""
    module = parse_and_optimize(ir_text)
    return module, emit_object(module)


def native_linking() -> bool:
    """Whether objects are linked by spago's linker (the host is one it handles, and not turned off)."""
    return linker.supported() and os.environ.get(LINKER_VARIABLE, "").strip().lower() != "llvm"


def link(obj: bytes, names: Sequence[str]) -> list:
    """Link an object file into this process; the addresses of ``names`` (functions or globals)."""
    if native_linking():
        try:
            found = linker.load(obj, names)
            return [found[name] for name in names]
        except linker.LinkError:
            pass  # something this linker does not handle: LLVM's does
    return _link_mcjit(obj, names)


def _link_mcjit(obj: bytes, names: Sequence[str]) -> list:
    import llvmlite.binding as llvm

    from .target import initialised, target_machine

    initialised()
    with _lock:
        for name, address in linker.defined().items():
            llvm.add_symbol(name, address)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        found = [engine.get_function_address(name) or engine.get_global_value_address(name) for name in names]
        _engines.append(engine)
    for name, where in zip(names, found):
        if not where:
            from ..errors import SpagoError

            raise SpagoError(f"compiled object has no symbol {name!r}")
    return found


def load_object(obj: bytes, symbol: str, *extra: str) -> int | tuple:
    """Link a kernel object into this process and return the address of ``symbol`` (with ``extra`` symbol
    names: a tuple of all their addresses, in order)."""
    from . import symbols
    from .threadpool import SYMBOL, pool

    symbols.register()
    if SYMBOL.encode() in obj:  # threaded kernels: the pool must exist before linking
        pool()
    found = link(obj, (symbol, *extra))
    return tuple(found) if extra else found[0]


ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

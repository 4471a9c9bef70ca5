"""Turn LLVM IR into callable machine code in this process (via an object file, so the disk cache and
the cold path load code the same way)."""
from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm

from .target import emit_object, initialised, parse_and_optimize, target_machine

_lock = threading.Lock()
_engines: list = []  # engines must outlive the functions they hold


def compile_ir(ir_text: str) -> tuple[object, bytes]:
    """Optimise IR at O3 and emit an object file; returns (optimised module, object bytes)."""
    module = parse_and_optimize(ir_text)
    return module, emit_object(module)


def load_object(obj: bytes, symbol: str, *extra: str) -> int | tuple:
    """Link an object file into this process and return the address of ``symbol`` (with ``extra`` symbol
    names: a tuple of all their addresses, in order)."""
    from . import symbols

    initialised()
    symbols.register()
    from .threadpool import SYMBOL, pool

    if SYMBOL.encode() in obj:  # threaded kernels: the pool must exist before linking
        pool()
    with _lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        address = engine.get_function_address(symbol)
        found = [engine.get_global_value_address(name) for name in extra]
        _engines.append(engine)
    for name, where in zip((symbol, *extra), (address, *found)):
        if not where:
            from ..errors import SpagoError

            raise SpagoError(f"compiled object has no symbol {name!r}")
    return (address, *found) if extra else address


ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

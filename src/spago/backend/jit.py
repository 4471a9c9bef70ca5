"""Turn LLVM IR into callable machine code in this process (via an object file, so the disk cache and
the cold path load code the same way)."""
from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm

from .target import _initialised, emit_object, parse_and_optimize, target_machine

_lock = threading.Lock()
_engines: list = []  # engines must outlive the functions they hold


def compile_ir(ir_text: str) -> tuple[object, bytes]:
    """Optimise IR at O3 and emit an object file; returns (optimised module, object bytes)."""
    module = parse_and_optimize(ir_text)
    return module, emit_object(module)


def load_object(obj: bytes, symbol: str) -> int:
    """Link an object file into this process and return the address of ``symbol``."""
    from . import symbols

    _initialised()
    symbols.register()
    with _lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        address = engine.get_function_address(symbol)
        _engines.append(engine)
    if not address:
        from ..errors import SpagoError

        raise SpagoError(f"compiled object has no symbol {symbol!r}")
    return address


ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

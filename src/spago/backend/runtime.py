"""`CompiledFunction`: native code called like the Python function it came from.

Every argument is checked (structure, shape, dtype, memory layout) before a pointer reaches machine
code, so a wrong call raises a spago error instead of crashing the process. ctypes releases the GIL
for the call; each thread gets its own arena, so calls from several threads run side by side.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

from ..errors import SpagoError
from ..ir.graph import Graph
from ..ir.pytree import flatten, unflatten
from ..tensor import Tensor
from .codegen import Lowered
from .jit import ENTRY_TYPE

ALIGN = 64


def aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


def _pointer_array(arrays: list) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])


class CompiledFunction:
    def __init__(self, graph: Graph, lowered: Lowered, address: int, *, source_graph: Graph | None = None,
                 stages: dict | None = None, manager=None, object_code: bytes | None = None,
                 optimized_ir: str | None = None):
        self.graph = graph
        self.source_graph = source_graph
        self._lowered = lowered
        self._entry = ENTRY_TYPE(address)
        self._consts = [np.ascontiguousarray(n.data) for n in lowered.consts]
        self._const_ptrs = _pointer_array(self._consts)
        self._local = threading.local()
        self._stages = dict(stages or {})
        self._manager = manager
        self._object = object_code
        self._optimized_ir = optimized_ir
        self.__name__ = graph.name

    # -- calling ------------------------------------------------------------------------
    def _arena(self) -> np.ndarray:
        arena = getattr(self._local, "arena", None)
        if arena is None:
            arena = self._local.arena = aligned_empty(max(self._lowered.arena_bytes, 1))
        return arena

    def _check_args(self, args: tuple, kwargs: dict) -> list:
        graph = self.graph
        leaves, paths, tree = flatten((tuple(args), dict(kwargs)))
        if graph.in_tree is not None and tree != graph.in_tree:
            raise SpagoError(f"{graph.name}: arguments have structure {tree}, it was compiled for {graph.in_tree}")
        values = [leaf for leaf, p in zip(leaves, paths) if p not in graph.static_args]
        for p, leaf in zip(paths, leaves):
            if p in graph.static_args and not _same_static(graph.static_args[p], leaf):
                raise SpagoError(f"{graph.name}: argument {p} was {graph.static_args[p]!r} when compiled, "
                                 f"got {leaf!r}; compile again for another value")
        if len(values) != len(graph.inputs):
            raise SpagoError(f"{graph.name}: expected {len(graph.inputs)} array arguments, got {len(values)}")
        return [_check_array(node, value, graph.name) for node, value in zip(graph.inputs, values)]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arrays = self._check_args(args, kwargs)
        outputs = [np.empty(o.shape, o.dtype) for o in self.graph.outputs]
        in_ptrs, out_ptrs = _pointer_array(arrays), _pointer_array(outputs)  # alive for the call
        self._entry(ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs), ctypes.addressof(self._const_ptrs),
                    self._arena().ctypes.data)
        for k, src in enumerate(self._lowered.outputs):
            if src.kind == "input":
                outputs[k] = arrays[src.index].reshape(outputs[k].shape).copy()
            elif src.kind == "const":
                outputs[k] = self._consts[src.index].reshape(outputs[k].shape).copy()
            elif src.kind == "output":
                outputs[k] = outputs[src.index].reshape(outputs[k].shape).copy()
        tree = self.graph.out_tree
        return unflatten(tree, outputs) if tree is not None else outputs

    # -- inspection --------------------------------------------------------------------
    def llvm_ir(self) -> str:
        """The module as generated, before LLVM's optimisation."""
        return self._lowered.ir_text

    def optimized_llvm_ir(self) -> str | None:
        return self._optimized_ir

    def asm(self) -> str:
        """Machine code for this CPU, as assembly text."""
        from .target import emit_assembly, parse_and_optimize

        return emit_assembly(parse_and_optimize(self._lowered.ir_text))

    def memory_plan(self):
        from ..passes.memory import plan_memory

        return plan_memory(self.graph)

    def report(self) -> dict:
        from ..passes.memory import graph_report

        rep = graph_report(self.graph, self._manager.records if self._manager is not None else None)
        rep["compile_seconds"] = dict(self._stages)
        rep["kernel_names"] = [name for name, _ in self._lowered.kernels]
        return rep

    def __repr__(self) -> str:
        ins = ", ".join(f"{n.name}: {n.spec}" for n in self.graph.inputs)
        return f"<CompiledFunction {self.graph.name}({ins}), {len(self._lowered.kernels)} kernels>"


def _same_static(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return a is b


def _check_array(node, value: Any, fname: str) -> np.ndarray:
    """``value`` as a C-contiguous array of the node's dtype and shape, or a spago error naming it."""
    where = f"{fname}: argument {node.name!r}"
    if isinstance(value, Tensor):
        if not value.is_concrete:
            raise SpagoError(f"{where} is a traced tensor; compiled functions take concrete arrays")
        value = value.numpy()
    if value is None:
        raise SpagoError(f"{where} is None, expected an array of {node.spec}")
    if not isinstance(value, np.ndarray):
        if isinstance(value, (int, float, bool, list, tuple, np.generic)):
            value = np.asarray(value)
        else:
            raise SpagoError(f"{where} must be an array of {node.spec}, got {type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise SpagoError(f"{where} has dtype {value.dtype}, expected {node.dtype.name}")
    if tuple(value.shape) != node.shape:
        raise SpagoError(f"{where} has shape {tuple(value.shape)}, expected {node.shape}")
    if value.dtype != node.dtype:
        if not np.can_cast(value.dtype, node.dtype, casting="safe"):
            raise SpagoError(f"{where} has dtype {value.dtype}, expected {node.dtype.name} "
                             "(cast it explicitly; converting would lose precision)")
        value = value.astype(node.dtype)
    return np.ascontiguousarray(value)

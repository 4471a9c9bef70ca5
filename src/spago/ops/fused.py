"""The ``fused`` op: one kernel whose body is a small graph of primitives.

Fusion passes replace a group of nodes by one ``fused`` node; its ``body`` attribute keeps the group as
a `Graph` (inputs = the node's inputs, in order; one output), so the reference interpreter can still run
it and the backend can lower it as one loop nest. ``pattern`` says which kind of loop nest it is:
``elementwise``, ``rowwise`` (reductions over the last axis with their producers and consumers),
``reduce`` (a reduction with its elementwise producers) or ``matmul`` (operand views, a matrix product and
its elementwise epilogue).
"""
from __future__ import annotations

import numpy as np

from ..errors import SpagoError
from .registry import Op, Spec, register


def _fused_spec(*inputs: Spec, body, pattern: str) -> Spec:
    if len(inputs) != len(body.inputs):
        raise SpagoError(f"fused {pattern} kernel takes {len(body.inputs)} inputs, got {len(inputs)}")
    for k, (given, declared) in enumerate(zip(inputs, body.inputs)):
        if given != declared.spec:
            raise SpagoError(f"fused {pattern} kernel input {k} is {given}, its body expects {declared.spec}")
    if len(body.outputs) != 1:
        raise SpagoError(f"fused {pattern} kernel body must have one output, has {len(body.outputs)}")
    return body.outputs[0].spec


def _fused_kernel(*arrays: np.ndarray, body, pattern: str) -> np.ndarray:
    from ..ir.interpreter import Interpreter

    return Interpreter(body).run_flat(list(arrays))[0]


fused_op = register(Op("fused", _fused_spec, _fused_kernel, None, "fused",
                       doc="A group of primitives run as one kernel; its body is a Graph."))

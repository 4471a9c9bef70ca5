"""Loop building blocks for kernels: counted loops and strided loop nests over static shapes."""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
from llvmlite import ir

from ..lower.views import collapse
from .types import I64


@contextlib.contextmanager
def for_range(b: ir.IRBuilder, count, name: str = "i", start=0, step: int = 1):
    """``for i in range(start, count, step)``; the body is emitted inside the ``with`` (positive step)."""
    with _counted_loop(b, count, name, start, step, carried=()) as (index, _):
        yield index


@contextlib.contextmanager
def _counted_loop(b: ir.IRBuilder, count, name: str, start, step: int, carried: Sequence[ir.Value]):
    """The loop scaffolding: header with an index phi and one phi per ``carried`` value, body, exit.
    Yields (index, loop) where ``loop`` is an `Accumulation` whose ``carry`` closes the phis."""
    count = count if isinstance(count, ir.Value) else ir.Constant(I64, int(count))
    start = start if isinstance(start, ir.Value) else ir.Constant(I64, int(start))
    pre = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    exit_ = b.append_basic_block(f"{name}.exit")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, pre)
    accs = [b.phi(v.type, name=f"{name}.acc{q}") for q, v in enumerate(carried)]
    for acc, v in zip(accs, carried):
        acc.add_incoming(v, pre)
    loop = Accumulation(index, accs)
    b.cbranch(b.icmp_signed("<", index, count), body, exit_)
    b.position_at_end(body)
    yield index, loop
    if accs:
        if loop.next is None:
            raise AssertionError("accumulate: the body never called carry()")
        for acc, v in zip(accs, loop.next):
            acc.add_incoming(v, b.block)
    index.add_incoming(b.add(index, ir.Constant(I64, step), name=f"{name}.next"), b.block)
    b.branch(header)
    b.position_at_end(exit_)


@contextlib.contextmanager
def strided_nest(b: ir.IRBuilder, shape: Sequence[int], strides: Sequence[Sequence[int]], name: str = "e",
                 outer: tuple | None = None):
    """Loop over every index of ``shape``; yields one element offset (i64) per operand's strides.

    ``outer`` = (start, end) restricts the outermost (collapsed) loop, so threads can share the work."""
    shape, strides = collapse(shape, strides)
    offsets = [ir.Constant(I64, 0) for _ in strides]
    with contextlib.ExitStack() as stack:
        for axis, n in enumerate(shape):
            if axis == 0 and outer is not None:
                i = stack.enter_context(for_range(b, outer[1], f"{name}{axis}", start=outer[0]))
            else:
                i = stack.enter_context(for_range(b, n, f"{name}{axis}"))
            offsets = [off if s[axis] == 0 else b.add(off, b.mul(i, ir.Constant(I64, s[axis])))
                       for off, s in zip(offsets, strides)]
        yield offsets


def nbytes(shape: Sequence[int], dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class Accumulation:
    """A counted loop carrying values: ``accs`` are their values at the top of each iteration and, after
    the loop, the final ones (``acc`` when there is one); call ``carry`` once in the body with the next."""

    def __init__(self, index: ir.Value, accs: list):
        self.index, self.accs, self.next = index, accs, None

    @property
    def acc(self) -> ir.Value:
        return self.accs[0]

    def carry(self, value) -> None:
        self.next = list(value) if isinstance(value, (list, tuple)) else [value]


@contextlib.contextmanager
def accumulate(b: ir.IRBuilder, count, init, name: str = "j"):
    """A counted loop from 0 carrying ``init`` (one value, or a list of register accumulators)."""
    with _counted_loop(b, count, name, 0, 1, carried=list(init) if isinstance(init, (list, tuple)) else [init]) \
            as (_, loop):
        yield loop

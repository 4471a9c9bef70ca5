"""argmax/argmin, sparsemax, and the dropout mask."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...ops.random import GOLDEN_GAMMA, MIX1, MIX2
from ..loops import accumulate, for_range
from ..types import F64, I64, compute_type, element_ptr, load, store
from . import family
from .indexing import axis_split


def _rows(shape: tuple, axis: int | None) -> tuple[int, int, int]:
    """(outer, n, inner): the reduced axis has n entries ``inner`` apart; rows are (outer, inner) pairs."""
    if axis is None:
        return 1, int(np.prod(shape, dtype=np.int64)), 1
    return axis_split(shape, axis)


ROWS_ON_STACK = 4096  # argmax over a strided axis keeps up to this many rows' best values on the stack


@family("argmax", "argmin")
def emit_arg_extreme(b: ir.IRBuilder, args: list, node: Node) -> None:
    """First index of the extreme value; a NaN counts as the extreme (NumPy's rule). Over a strided axis
    (``inner`` > 1: a CRF's best previous tag per tag) the rows advance together, one reduced index at a
    time over the contiguous ``inner`` axis, so the compares vectorise across rows."""
    x = node.inputs[0]
    outer, n, inner = _rows(x.shape, node.attrs["axis"])
    is_max = node.op.name == "argmax"
    t = compute_type(x.dtype)
    floating = x.dtype.kind == "f"

    def better(v, cur):
        if not floating:
            return b.icmp_signed(">" if is_max else "<", v, cur)
        nan_first = b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", cur, cur))
        return b.or_(b.fcmp_ordered(">" if is_max else "<", v, cur), nan_first)

    def at(offset):
        return load(b, element_ptr(b, args[1], offset, x.dtype), x.dtype)

    def out_ptr(offset):
        return element_ptr(b, args[0], offset, node.dtype)

    if 1 < inner <= ROWS_ON_STACK:
        with b.goto_entry_block():
            best_v = b.alloca(ir.ArrayType(t, inner))
        with for_range(b, outer, "p") as p:
            base, row = b.mul(p, ir.Constant(I64, n * inner)), b.mul(p, ir.Constant(I64, inner))
            with for_range(b, inner, "q") as q:
                b.store(at(b.add(base, q)), b.gep(best_v, [ir.Constant(I64, 0), q], inbounds=True))
                store(b, ir.Constant(I64, 0), out_ptr(b.add(row, q)), node.dtype)
            with for_range(b, n, "j", start=1) as j:
                line = b.add(base, b.mul(j, ir.Constant(I64, inner)))
                with for_range(b, inner, "q") as q:
                    slot, dst = b.gep(best_v, [ir.Constant(I64, 0), q], inbounds=True), out_ptr(b.add(row, q))
                    v, cur = at(b.add(line, q)), b.load(slot, typ=t)
                    take = better(v, cur)
                    b.store(b.select(take, v, cur), slot)
                    store(b, b.select(take, j, load(b, dst, node.dtype)), dst, node.dtype)
        return
    with for_range(b, outer, "p") as p:
        with for_range(b, inner, "q") as q:
            base = b.add(b.mul(p, ir.Constant(I64, n * inner)), q)

            def step(j):
                return at(b.add(base, b.mul(j, ir.Constant(I64, inner))))

            # value and index carried in registers, picked by selects: no stack slot, no branch per element
            with accumulate(b, ir.Constant(I64, n - 1), [step(ir.Constant(I64, 0)), ir.Constant(I64, 0)], "j") as loop:
                j = b.add(loop.index, ir.Constant(I64, 1))
                v, cur, cur_i = step(j), loop.accs[0], loop.accs[1]
                take = better(v, cur)
                loop.carry([b.select(take, v, cur), b.select(take, j, cur_i)])
            store(b, loop.accs[1], out_ptr(b.add(b.mul(p, ir.Constant(I64, inner)), q)), node.dtype)


@family("sparsemax")
def emit_sparsemax(b: ir.IRBuilder, args: list, node: Node) -> None:
    """Per row: bisection finds the threshold τ with Σ max(z − τ, 0) = 1; the support it picks then gives
    τ exactly as (Σ_support z − 1) / |support|, as the sorting algorithm would."""
    x = node.inputs[0]
    outer, n, inner = _rows(x.shape, node.attrs["axis"])
    t = compute_type(x.dtype)
    zero, one = ir.Constant(t, 0.0), ir.Constant(t, 1.0)
    with for_range(b, outer, "p") as p:
        with for_range(b, inner, "q") as q:
            base = b.add(b.mul(p, ir.Constant(I64, n * inner)), q)

            def offset(j):
                return b.add(base, b.mul(j, ir.Constant(I64, inner)))

            def at(j):
                return load(b, element_ptr(b, args[1], offset(j), x.dtype), x.dtype)

            with accumulate(b, n, ir.Constant(t, float("-inf")), "m") as mx:
                v = at(mx.index)
                mx.carry(b.select(b.fcmp_ordered(">", v, mx.acc), v, mx.acc))
            lo, hi = b.alloca(t), b.alloca(t)
            b.store(b.fsub(mx.acc, one), lo)
            b.store(mx.acc, hi)
            with for_range(b, 64, "it"):
                mid = b.fmul(b.fadd(b.load(lo, typ=t), b.load(hi, typ=t)), ir.Constant(t, 0.5))
                with accumulate(b, n, zero, "s") as s:
                    d = b.fsub(at(s.index), mid)
                    s.carry(b.fadd(s.acc, b.select(b.fcmp_ordered(">", d, zero), d, zero)))
                above = b.fcmp_ordered(">", s.acc, one)  # τ too small: the threshold is higher
                b.store(b.select(above, mid, b.load(lo, typ=t)), lo)
                b.store(b.select(above, b.load(hi, typ=t), mid), hi)
            tau0 = b.load(lo, typ=t)
            with accumulate(b, n, zero, "ks") as ks:
                v = at(ks.index)
                ks.carry(b.fadd(ks.acc, b.select(b.fcmp_ordered(">", v, tau0), v, zero)))
            with accumulate(b, n, zero, "kc") as kc:
                kc.carry(b.fadd(kc.acc, b.select(b.fcmp_ordered(">", at(kc.index), tau0), one, zero)))
            tau = b.fdiv(b.fsub(ks.acc, one), kc.acc)
            with for_range(b, n, "o") as j:
                d = b.fsub(at(j), tau)
                store(b, b.select(b.fcmp_ordered(">", d, zero), d, zero),
                      element_ptr(b, args[0], offset(j), node.dtype), node.dtype)


@family("keep_mask")
def emit_keep_mask(b: ir.IRBuilder, args: list, node: Node) -> None:
    """The same counter-based hash as the NumPy kernel (splitmix64 of seed + (i+1)·γ), bit for bit."""
    seed, keep = node.attrs["seed"], node.attrs["keep"]
    c = lambda v: ir.Constant(I64, v & 0xFFFFFFFFFFFFFFFF)  # noqa: E731
    base = c(seed)
    if node.inputs:  # an int64 seed offset read at run time (a compiled training step's per-call seed)
        base = b.add(base, load(b, element_ptr(b, args[1], ir.Constant(I64, 0), node.inputs[0].dtype),
                                node.inputs[0].dtype))
    with for_range(b, node.spec.size, "i") as i:
        z = b.add(base, b.mul(b.add(i, c(1)), c(GOLDEN_GAMMA)))
        z = b.mul(b.xor(z, b.lshr(z, c(30))), c(MIX1))
        z = b.mul(b.xor(z, b.lshr(z, c(27))), c(MIX2))
        z = b.xor(z, b.lshr(z, c(31)))
        u = b.fmul(b.uitofp(b.lshr(z, c(40)), F64), ir.Constant(F64, 2.0 ** -24))
        bit = b.fcmp_ordered("<", u, ir.Constant(F64, keep))
        t = compute_type(node.dtype)
        value = b.uitofp(bit, t) if node.dtype.kind == "f" else b.zext(bit, t) if t.width > 1 else bit
        store(b, value, element_ptr(b, args[0], i, node.dtype), node.dtype)

"""What the cells beyond Elman/LSTM/GRU share: free-form weights, states made of several tensors of any
shape, and a sequence layer that stacks and packs those states.

A cell here still follows `RNNCellBase`'s split: ``project(x)`` is everything that depends on the input
alone (done once for the whole sequence, before the time loop), ``step(p_t, state)`` is the recurrence.
A state is one tensor or a tuple of tensors; ``state_shapes`` says their per-example shapes, so the
layers can check a given initial state and zero-fill a missing one.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import ops
from ...errors import ShapeError, SpagoError
from .. import init
from ..module import Module, Param
from ..recurrent import RNNCellBase, _RNNBase

__all__ = ["Cell", "CellRNN", "ACTIVATIONS", "activation"]

ACTIVATIONS = {"tanh": ops.tanh, "relu": ops.relu, "sigmoid": ops.sigmoid, "identity": lambda x: x,
               "gelu": ops.gelu, "elu": ops.elu, "silu": ops.silu}


def activation(name: str, owner: str):
    """The activation function called ``name``, or a SpagoError listing the choices."""
    if name not in ACTIVATIONS:
        raise SpagoError(f"{owner}: activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class Cell(RNNCellBase):
    """A recurrent cell with its own parameter layout.

    ``in_rows`` rows of input weights ``weight_ih`` (in_rows, I) with bias ``bias_ih`` make the projection;
    ``rec_rows`` rows of recurrent weights ``weight_hh`` (rec_rows, H), if any. Everything else a cell
    declares with `param`. All weights start ~ U(−1/√H, 1/√H), as for the LSTM."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None,
                 *, in_rows: int, rec_rows: int = 0):
        Module.__init__(self)
        if input_size <= 0 or hidden_size <= 0:
            raise SpagoError(f"{type(self).__name__}: sizes must be positive, got input_size={input_size}, "
                             f"hidden_size={hidden_size}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self._dtype, self._generator = dtype, generator
        self.weight_ih = self.param(in_rows, input_size) if in_rows else None
        self.bias_ih = self.param(in_rows) if bias and in_rows else None
        self.weight_hh = self.param(rec_rows, hidden_size) if rec_rows else None
        self.bias_hh = None

    def param(self, *shape: int, low: float | None = None, high: float | None = None) -> Param:
        """A new parameter ~ U(low, high), by default U(−1/√H, 1/√H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        low = -bound if low is None else low
        high = bound if high is None else high
        return init.uniform(Param(np.zeros(shape), self._dtype), low, high, self._generator)

    def project(self, x):
        lead = x.shape[:-1]
        p = ops.reshape(x, (-1, self.input_size)) @ self.weight_ih.T
        if self.bias_ih is not None:
            p = p + self.bias_ih
        return ops.reshape(p, lead + (p.shape[-1],))

    def recurrent(self, h):
        return h @ self.weight_hh.T

    # -- states of any structure ---------------------------------------------------------------------
    def state_shapes(self) -> tuple:
        """The per-example shape of each state tensor (default: one hidden vector)."""
        return ((self.hidden_size,),)

    def initial_state(self, batch: int, dtype):
        parts = tuple(ops.zeros(batch, *s, dtype=dtype) for s in self.state_shapes())
        return parts if len(parts) > 1 else parts[0]

    def check_state(self, state, batch: int, dtype):
        shapes = self.state_shapes()
        parts = state if len(shapes) > 1 else (state,)
        where = self._path or type(self).__name__
        if not isinstance(parts, (tuple, list)) or len(parts) != len(shapes):
            raise ShapeError(f"{where}: expected the state as {len(shapes)} tensors of shapes "
                             f"{[(batch,) + s for s in shapes]}, got {type(state).__name__}")
        out = []
        for p, s in zip(parts, shapes):
            p = ops.elementwise._t(p)
            if p.shape != (batch,) + s:
                raise ShapeError(f"{where}: expected a state tensor of shape {(batch,) + s}, got {p.shape}")
            out.append(ops.cast(p, dtype) if p.dtype != dtype else p)
        return tuple(out) if len(out) > 1 else out[0]


def shift(history: tuple, newest) -> tuple:
    """(h_t, h_{t−1}, …) from the newest state and the previous history (its oldest entry drops out)."""
    return (newest,) + tuple(history[:-1])


class CellRNN(_RNNBase):
    """`_RNNBase` for cells whose state is several tensors of any shape: each state tensor comes back
    stacked as (num_layers·D, B, *shape), in the order of the cell's ``state_shapes``."""

    cell_type: type = Cell

    def _probe(self) -> Cell:
        first = self.stack.layers[0]
        return first.forward_rnn.cell if self.bidirectional else first.cell

    def _state_parts(self) -> int:
        return len(self._probe().state_shapes())

    def _unpack(self, state, batch: int) -> list:
        shapes = self._probe().state_shapes()
        n = len(shapes)
        parts = state if n > 1 else (state,)
        where = self._path or type(self).__name__
        if not isinstance(parts, (tuple, list)) or len(parts) != n:
            raise ShapeError(f"{where}: expected the state as {n} tensors, got {type(state).__name__}")
        lead = (self.num_layers * self.directions, batch)
        parts = [ops.elementwise._t(p) for p in parts]
        for p, s in zip(parts, shapes):
            if p.shape != lead + s:
                raise ShapeError(f"{where}: expected initial state tensors of shape {lead + s} "
                                 f"(num_layers·directions, batch, …), got {p.shape}")
        per = [tuple(p[k] for p in parts) if n > 1 else parts[0][k] for k in range(lead[0])]
        d = self.directions
        return [tuple(per[layer * d:(layer + 1) * d]) if d == 2 else per[layer] for layer in range(self.num_layers)]

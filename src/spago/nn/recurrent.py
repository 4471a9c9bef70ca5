"""Recurrent networks: the Elman, LSTM and GRU cells, a layer that runs a cell over time, a bidirectional
wrapper, stacks of layers, and the PyTorch-shaped `RNN`, `LSTM` and `GRU` layers built from them.

Every cell splits its work in two, so the layers run fast when compiled:

* ``project(x)`` — the input part of every gate, ``x·W_ihᵀ + b_ih``. A layer calls it once for the whole
  sequence, one (T·B, I) × (I, G·H) product before the time loop;
* ``step(p_t, state)`` — the recurrent part for one time step, given the projected input ``p_t``.

Time loops are `spago.scan` loops: eagerly a Python loop, compiled ONE loop node whose body is the
cell's step, so compile time does not grow with the sequence length (``unroll=True`` keeps the unrolled
form). A compiled layer is still specialised to its sequence length (shapes are static).

Padded batches pass a ``mask`` (B, T) that is 1 on real tokens and 0 on padding (a prefix of each row):
on padded steps the state is carried over unchanged and the output is zero, so the last state is the one
at each sequence's true end, in either direction.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import ops
from ..errors import ShapeError, SpagoError
from . import init
from .dropout import Dropout
from .module import Module, ModuleList, Param

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "TimeLayout", "Recurrent", "Bidirectional",
           "StackedRNN", "RNN", "LSTM", "GRU", "MERGE_MODES"]

MERGE_MODES = ("concat", "sum", "prod", "avg")


class RNNCellBase(Module):
    """Weights shared by the cells, laid out as in PyTorch: ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H),
    ``bias_ih`` and ``bias_hh`` (G·H), for G gates stacked in the first axis; all ~ U(−1/√H, 1/√H)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise SpagoError(f"{type(self).__name__}: sizes must be positive, got input_size={input_size}, "
                             f"hidden_size={hidden_size}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        g, h, bound = self.gates * hidden_size, hidden_size, 1.0 / math.sqrt(hidden_size)

        def param(*shape):
            return init.uniform(Param(np.zeros(shape), dtype), -bound, bound, generator)

        self.weight_ih = param(g, input_size)
        self.weight_hh = param(g, h)
        self.bias_ih = param(g) if bias else None
        self.bias_hh = param(g) if bias else None

    # -- the two halves of a step ------------------------------------------------------------------
    def project(self, x):
        """The input part of every gate, for inputs of any leading shape: x·W_ihᵀ + b_ih."""
        lead = x.shape[:-1]
        p = ops.reshape(x, (-1, self.input_size)) @ self.weight_ih.T
        if self.bias_ih is not None:
            p = p + self.bias_ih
        return ops.reshape(p, lead + (self.gates * self.hidden_size,))

    def recurrent(self, h):
        """The hidden part of every gate: h·W_hhᵀ + b_hh."""
        r = h @ self.weight_hh.T
        return r + self.bias_hh if self.bias_hh is not None else r

    def step(self, p, state) -> tuple[Any, Any]:
        """One time step from the projected input ``p`` (B, G·H): returns (output h, new state)."""
        raise SpagoError(f"{type(self).__name__} does not define step()")

    # -- state -----------------------------------------------------------------------------------------
    def initial_state(self, batch: int, dtype) -> Any:
        """Zeros: h (B, H), or (h, c) for the LSTM."""
        return ops.zeros(batch, self.hidden_size, dtype=dtype)

    def check_state(self, state, batch: int, dtype) -> Any:
        """``state`` as tensors of the expected shape, or a ShapeError naming what came."""
        h = ops.elementwise._t(state)
        if h.shape != (batch, self.hidden_size):
            raise ShapeError(f"{self._path or type(self).__name__}: expected a state of shape "
                             f"{(batch, self.hidden_size)}, got {h.shape}")
        return ops.cast(h, dtype) if h.dtype != dtype else h

    def check_input(self, x, rank: int):
        x = ops.elementwise._t(x)
        if x.ndim != rank or x.shape[-1] != self.input_size:
            want = "(batch, input_size)" if rank == 2 else "(batch, time, input_size)"
            raise ShapeError(f"{self._path or type(self).__name__}: expected input of shape {want} with "
                             f"input_size={self.input_size}, got shape {x.shape}")
        if x.dtype.kind != "f":
            raise SpagoError(f"{self._path or type(self).__name__}: expected a floating input, got {x.dtype.name}")
        return x

    def forward(self, x, state=None):
        """One step on x (B, I) (a cell has no time axis); ``state`` (B, H), (h, c) for the LSTM, or None for
        zeros. Returns the new state, as PyTorch's cells do."""
        x = self.check_input(x, 2)
        state = self.initial_state(x.shape[0], x.dtype) if state is None else \
            self.check_state(state, x.shape[0], x.dtype)
        return self.step(self.project(x), state)[1]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(RNNCellBase):
    """Elman (1990) simple recurrent network: h' = φ(W_ih·x + b_ih + W_hh·h + b_hh), φ = tanh or relu."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator)
        if nonlinearity not in ("tanh", "relu"):
            raise SpagoError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def step(self, p, h):
        z = p + self.recurrent(h)
        h = ops.tanh(z) if self.nonlinearity == "tanh" else ops.relu(z)
        return h, h


class LSTMCell(RNNCellBase):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al., 2000):

        i = σ(W_ii·x + b_ii + W_hi·h + b_hi)        input gate
        f = σ(W_if·x + b_if + W_hf·h + b_hf)        forget gate
        g = tanh(W_ig·x + b_ig + W_hg·h + b_hg)     candidate cell
        o = σ(W_io·x + b_io + W_ho·h + b_ho)        output gate
        c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(c')

    The gates are stacked i, f, g, o in the rows of the weights, as in PyTorch. The state is (h, c).

    ``refined_gates`` (Cheng et al., 2020, "Refined Gate: A Simple and Effective Gating Mechanism for Recurrent
    Units", as the Go spaGO has it) multiplies the input and output gates by the input, i ⊙ x and o ⊙ x, which
    needs input_size = hidden_size."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, refined_gates: bool = False,
                 dtype="float32", generator=None):
        if refined_gates and input_size != hidden_size:
            raise SpagoError(f"LSTMCell: refined_gates needs input_size = hidden_size, got {input_size} and "
                             f"{hidden_size}")
        super().__init__(input_size, hidden_size, bias, dtype, generator)
        self.refined_gates = bool(refined_gates)

    def project(self, x):
        p = super().project(x)
        return ops.concat([p, x], axis=-1) if self.refined_gates else p  # the step needs x itself

    def step(self, p, state):
        h, c = state
        if self.refined_gates:
            p, x = ops.split(p, [4 * self.hidden_size], axis=-1)
        i, f, g, o = ops.split(p + self.recurrent(h), 4, axis=-1)
        i, o = ops.sigmoid(i), ops.sigmoid(o)
        if self.refined_gates:
            i, o = i * x, o * x
        c = ops.sigmoid(f) * c + i * ops.tanh(g)
        h = o * ops.tanh(c)
        return h, (h, c)

    def initial_state(self, batch: int, dtype):
        zeros = ops.zeros(batch, self.hidden_size, dtype=dtype)
        return zeros, zeros

    def check_state(self, state, batch: int, dtype):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ShapeError(f"{self._path or 'LSTMCell'}: expected the state as a pair (h, c), "
                             f"got {type(state).__name__}")
        return tuple(RNNCellBase.check_state(self, s, batch, dtype) for s in state)


class GRUCell(RNNCellBase):
    """Gated recurrent unit (Cho et al., 2014), in PyTorch's formulation (reset gate applied after the product):

        r = σ(W_ir·x + b_ir + W_hr·h + b_hr)          reset gate
        z = σ(W_iz·x + b_iz + W_hz·h + b_hz)          update gate
        n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn))  candidate
        h' = (1 − z) ⊙ n + z ⊙ h

    The gates are stacked r, z, n in the rows of the weights."""

    gates = 3

    def step(self, p, h):
        pr, pz, pn = ops.split(p, 3, axis=-1)
        hr, hz, hn = ops.split(self.recurrent(h), 3, axis=-1)
        r = ops.sigmoid(pr + hr)
        z = ops.sigmoid(pz + hz)
        n = ops.tanh(pn + r * hn)
        h = n + z * (h - n)
        return h, h


class TimeLayout(Module):
    """Sequence layers are batch-first: x is (batch, time, features) and outputs (batch, time, features), as
    with PyTorch's ``batch_first=True``. Built with ``batch_first=False`` a layer takes and returns time-first
    tensors (time, batch, features) instead; a ``mask`` is (batch, time) either way, 1 on real steps. The
    layout is converted at the call, around ``forward``."""

    batch_first = True

    def __call__(self, x, *args: Any, **kwargs: Any):
        if self.batch_first:
            return super().__call__(x, *args, **kwargs)
        x = ops.elementwise._t(x)
        if x.ndim != 3:
            raise ShapeError(f"{self._path or type(self).__name__}: expected time-first input (time, batch, "
                             f"features) since batch_first=False, got shape {x.shape}")
        out, state = super().__call__(ops.swapaxes(x, 0, 1), *args, **kwargs)
        return ops.swapaxes(out, 0, 1), state

    def layout_repr(self) -> str:
        return f"batch_first={self.batch_first}"


def _time_mask(mask, batch: int, steps: int, dtype, where: str):
    """The mask as a (T, B, 1) tensor of 0/1 in ``dtype``, checked against the input."""
    m = ops.elementwise._t(mask)
    if m.shape != (batch, steps):
        raise ShapeError(f"{where}: expected a mask of shape {(batch, steps)} (batch, time), got {m.shape}")
    return ops.expand_dims(ops.transpose(ops.cast(m, dtype)), -1)


def _blend(m, new, old):
    """new where m = 1, old where m = 0 (applied to every tensor of a state)."""
    if isinstance(new, tuple):
        return tuple(_blend(m, a, b) for a, b in zip(new, old))
    return old + m * (new - old)


class Recurrent(TimeLayout):
    """Runs a cell over a batch-first sequence x (B, T, I): forward in time, or backward if ``reverse``.

    Returns (outputs (B, T, H), last state). With a ``mask`` the state is carried over padded steps and
    their outputs are zero. ``batch_first=False``: x and outputs are (T, B, ·) (see `TimeLayout`). The time
    loop is a `spago.scan` over the cell's ``step``, so any cell compiles to one loop whatever the length;
    ``unroll=True`` traces the Python loop instead (one kernel group per step: sometimes faster for a
    handful of steps, never for long sequences)."""

    def __init__(self, cell: RNNCellBase, reverse: bool = False, batch_first: bool = True, unroll: bool = False):
        super().__init__()
        self.batch_first = bool(batch_first)
        if not isinstance(cell, RNNCellBase):
            raise SpagoError(f"Recurrent: expected a recurrent cell (RNNCellBase), got {type(cell).__name__}")
        self.cell, self.reverse, self.unroll = cell, bool(reverse), bool(unroll)
        self.input_size, self.output_size = cell.input_size, cell.hidden_size

    def forward(self, x, state=None, mask=None):
        """x (B, T, I) batch-first; ``state`` the cell's state (B, H), or (h, c) for the LSTM; ``mask`` (B, T),
        1 on real steps and 0 on padding (a prefix of each row). Returns (outputs (B, T, H), last state)."""
        cell = self.cell
        x = cell.check_input(x, 3)
        batch, steps, _ = x.shape
        if steps == 0:
            raise ShapeError(f"{self._path or 'Recurrent'}: the sequence is empty (shape {x.shape})")
        state = cell.initial_state(batch, x.dtype) if state is None else cell.check_state(state, batch, x.dtype)
        m = None if mask is None else _time_mask(mask, batch, steps, x.dtype, self._path or "Recurrent")
        # time-major, so that each step reads one contiguous (B, G·H) slab of the projection
        p = cell.project(ops.swapaxes(x, 0, 1))

        def step(state, inputs):
            p_t, m_t = inputs
            h, new = cell.step(p_t, state)
            if m_t is None:
                return new, h
            return _blend(m_t, new, state), h * m_t

        state, outputs = ops.scan(step, state, (p, m), reverse=self.reverse, unroll=self.unroll)
        return ops.swapaxes(outputs, 0, 1), state

    def extra_repr(self) -> str:
        return ", ".join(s for s in ("reverse=True" if self.reverse else "", "unroll=True" if self.unroll else "",
                                     self.layout_repr()) if s)


def _merge(a, b, mode: str):
    if mode == "concat":
        return ops.concat([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "prod":
        return a * b
    return (a + b) * 0.5


def _flip_time(x):
    return None if x is None else ops.elementwise._t(x)[:, ::-1]


class Bidirectional(TimeLayout):
    """Two recurrent networks over one sequence, one reading it forward and one backward (Schuster & Paliwal,
    1997); their outputs are merged step by step by ``merge``: "concat" (2H features), "sum", "prod" or "avg".

    ``factory()`` makes a cell (it runs inside a `Recurrent`) or any layer called as
    ``layer(x, state=None, mask=None) -> (outputs, last state)`` (the backward one then reads the
    sequence flipped in time, so with a mask its padding comes first and is skipped).
    The state is the pair (forward state, backward state). Batch-first: x (B, T, I) -> (B, T, ·), or
    (T, B, ·) with ``batch_first=False`` (see `TimeLayout`). ``unroll`` is handed to the `Recurrent`
    layers made around cells."""

    def __init__(self, factory: Callable[[], Module], merge: str = "concat", batch_first: bool = True,
                 unroll: bool = False):
        super().__init__()
        self.batch_first = bool(batch_first)
        if merge not in MERGE_MODES:
            raise SpagoError(f"Bidirectional: merge must be one of {MERGE_MODES}, got {merge!r}")
        fw, bw = factory(), factory()
        if fw is bw:
            raise SpagoError("Bidirectional: the factory must make a new cell or layer on every call")
        self.merge = merge
        self._cells = isinstance(fw, RNNCellBase)
        self.forward_rnn = Recurrent(fw, unroll=unroll) if self._cells else fw
        self.backward_rnn = Recurrent(bw, reverse=True, unroll=unroll) if self._cells else bw
        inner = getattr(self.forward_rnn, "output_size", None)  # features per step of one direction
        self.output_size = None if inner is None else inner * (2 if merge == "concat" else 1)

    def forward(self, x, state=None, mask=None):
        """x (B, T, I) batch-first; ``state`` the pair (forward state, backward state) or None; ``mask`` (B, T),
        1 on real steps. Returns (merged outputs (B, T, ·), (forward last state, backward last state))."""
        if state is None:
            fw_state = bw_state = None
        elif isinstance(state, (tuple, list)) and len(state) == 2:
            fw_state, bw_state = state
        else:
            raise ShapeError(f"{self._path or 'Bidirectional'}: expected the state as a pair "
                             f"(forward state, backward state), got {type(state).__name__}")
        fw_out, fw_last = self.forward_rnn(x, fw_state, mask)
        if self._cells:
            bw_out, bw_last = self.backward_rnn(x, bw_state, mask)
        else:
            bw_out, bw_last = self.backward_rnn(_flip_time(x), bw_state, _flip_time(mask))
            bw_out = _flip_time(bw_out)
        return _merge(fw_out, bw_out, self.merge), (fw_last, bw_last)

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}, {self.layout_repr()}"


class StackedRNN(TimeLayout):
    """Recurrent layers applied one after another, each reading the previous one's outputs, with dropout
    (Zaremba et al., 2014) between them in training mode. Returns (last outputs, [last state per layer]).
    Batch-first (B, T, ·), or time-first (T, B, ·) with ``batch_first=False`` (see `TimeLayout`)."""

    def __init__(self, layers: list, dropout: float = 0.0, generator=None, batch_first: bool = True):
        super().__init__()
        self.batch_first = bool(batch_first)
        if not layers:
            raise SpagoError("StackedRNN: needs at least one layer")
        self.layers = ModuleList(list(layers))
        self.dropout = Dropout(dropout, generator) if dropout > 0 else None

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x, states=None, mask=None):
        """x (B, T, I) batch-first; ``states`` one initial state per layer, or None; ``mask`` (B, T), 1 on real
        steps. Returns (outputs of the last layer, [last state per layer])."""
        if states is not None and len(states) != len(self.layers):
            raise ShapeError(f"{self._path or 'StackedRNN'}: expected {len(self.layers)} states, one per layer, "
                             f"got {len(states)}")
        last = []
        for k, layer in enumerate(self.layers):
            if k > 0 and self.dropout is not None:
                x = self.dropout(x)
            x, s = layer(x, None if states is None else states[k], mask)
            last.append(s)
        return x, last

    def extra_repr(self) -> str:
        return self.layout_repr()


class _RNNBase(TimeLayout):
    """`num_layers` stacked layers of one cell type, optionally bidirectional, shaped like PyTorch's:
    ``forward(x (B, T, I), state=None, mask=None) -> (outputs (B, T, D·H or H), last state)`` where each
    state tensor is (num_layers·D, B, H), D = 2 if bidirectional, indexed layer·D + direction.

    Batch-first by default (spago's layout, PyTorch's ``batch_first=True``); ``batch_first=False`` takes and
    returns time-first (T, B, ·) tensors as PyTorch's default does. The mask is (B, T) either way.
    ``unroll=True`` traces each layer's time loop step by step instead of as one `spago.scan`."""

    cell_type: type = RNNCellBase

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 bidirectional: bool = False, merge: str = "concat", dropout: float = 0.0, dtype="float32",
                 generator=None, batch_first: bool = True, unroll: bool = False, **cell_options: Any):
        super().__init__()
        self.batch_first = bool(batch_first)
        if num_layers < 1:
            raise SpagoError(f"{type(self).__name__}: num_layers must be at least 1, got {num_layers}")
        if merge not in MERGE_MODES:
            raise SpagoError(f"{type(self).__name__}: merge must be one of {MERGE_MODES}, got {merge!r}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bidirectional, self.merge = bool(bidirectional), merge
        self.directions = 2 if bidirectional else 1
        layers, size = [], input_size
        for _ in range(num_layers):
            def factory(size=size):
                return self.cell_type(size, hidden_size, bias=bias, dtype=dtype, generator=generator, **cell_options)

            layers.append(Bidirectional(factory, merge, unroll=unroll) if bidirectional
                          else Recurrent(factory(), unroll=unroll))
            size = hidden_size * (2 if bidirectional and merge == "concat" else 1)
        self.output_size = size
        self.stack = StackedRNN(layers, dropout, generator)

    def _state_parts(self) -> int:
        return 2 if issubclass(self.cell_type, LSTMCell) else 1

    def _pack(self, last: list) -> Any:
        """Per-layer states -> the state tensors, each (num_layers·D, B, H)."""
        per = []  # one tuple of tensors per (layer, direction)
        for layer in last:
            for s in (layer if self.bidirectional else (layer,)):
                per.append(s if isinstance(s, tuple) else (s,))
        parts = tuple(ops.stack([p[k] for p in per]) for k in range(self._state_parts()))
        return parts if len(parts) > 1 else parts[0]

    def _unpack(self, state, batch: int) -> list:
        """The state tensors -> per-layer states, as the cells and `Bidirectional` take them."""
        n = self._state_parts()
        parts = state if n > 1 else (state,)
        if not isinstance(parts, (tuple, list)) or len(parts) != n:
            raise ShapeError(f"{self._path or type(self).__name__}: expected the state as a pair (h_0, c_0), "
                             f"got {type(state).__name__}")
        want = (self.num_layers * self.directions, batch, self.hidden_size)
        parts = [ops.elementwise._t(p) for p in parts]
        for p in parts:
            if p.shape != want:
                raise ShapeError(f"{self._path or type(self).__name__}: expected initial state tensors of shape "
                                 f"{want} (num_layers·directions, batch, hidden), got {p.shape}")
        per = [tuple(p[k] for p in parts) if n > 1 else parts[0][k] for k in range(want[0])]
        d = self.directions
        return [tuple(per[layer * d:(layer + 1) * d]) if d == 2 else per[layer] for layer in range(self.num_layers)]

    def forward(self, x, state=None, mask=None):
        """x (B, T, I) batch-first (converted from (T, B, I) at the call when ``batch_first=False``); ``state``
        None or the initial state tensors (num_layers·D, B, H) — (h_0, c_0) for the LSTM; ``mask`` (B, T),
        1 on real steps and 0 on padding. Returns (outputs, last state in the same form as ``state``)."""
        x = ops.elementwise._t(x)
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"{self._path or type(self).__name__}: expected input of shape (batch, time, "
                             f"input_size) with input_size={self.input_size}, got shape {x.shape}")
        states = None if state is None else self._unpack(state, x.shape[0])
        out, last = self.stack(x, states, mask)
        return out, self._pack(last)

    def extra_repr(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        if self.bidirectional:
            extra += f", bidirectional=True, merge={self.merge!r}"
        return f"{self.input_size}, {self.hidden_size}{extra}, {self.layout_repr()}"


class RNN(_RNNBase):
    """Stacked Elman RNN layers (see `RNNCell`); ``nonlinearity`` "tanh" or "relu". Batch-first (B, T, I)
    unless ``batch_first=False``."""

    cell_type = RNNCell


class LSTM(_RNNBase):
    """Stacked LSTM layers (see `LSTMCell`); the state is (h_n, c_n), each (num_layers·D, B, H). Batch-first
    (B, T, I) unless ``batch_first=False``."""

    cell_type = LSTMCell


class GRU(_RNNBase):
    """Stacked GRU layers (see `GRUCell`); the state is h_n (num_layers·D, B, H). Batch-first (B, T, I)
    unless ``batch_first=False``."""

    cell_type = GRUCell

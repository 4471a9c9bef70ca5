"""Ungated recurrent cells: SRN, IndRNN, FSMN, HORN, MIST and the shuffling SRNN, with their sequence layers.

Cells that look further back than one step (FSMN, HORN, MIST) keep the last K hidden vectors as their
state, newest first; at the start that history is zeros, which adds nothing to their sums — the same as
the Go spaGO, which sums only over the steps that exist.
"""
from __future__ import annotations

from ... import ops
from ...errors import SpagoError
from ..linear import Linear
from ..module import ModuleList
from ..normalization import LayerNorm
from ..recurrent import RNNCell, _RNNBase
from .base import Cell, CellRNN, activation, shift

__all__ = ["SRNCell", "SRN", "IndRNNCell", "IndRNN", "FSMNCell", "FSMN", "HORNCell", "HORN", "MISTCell", "MIST",
           "SRNNCell", "SRNN"]


class SRNCell(RNNCell):
    """Simple recurrent network (Elman, 1990, "Finding Structure in Time"), as the Go spaGO's ``srn``:

        h' = φ(W·x + b + W_rec·h),   φ = tanh (default) or relu

    The weights are laid out as `RNNCell`'s (``bias_hh`` is a second bias, summed with ``bias_ih``)."""


class SRN(_RNNBase):
    """Stacked SRN layers (see `SRNCell`)."""

    cell_type = SRNCell


class IndRNNCell(Cell):
    """Independently recurrent network (Li et al., 2018, "Independently Recurrent Neural Network (IndRNN):
    Building A Longer and Deeper RNN"): each unit sees only its own past, through one weight.

        h' = φ(W·x + b + u ⊙ h),   φ = relu by default

    ``u`` (H,) starts ~ U(0, 1), inside the paper's range that neither explodes nor vanishes."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "relu",
                 dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=hidden_size)
        self.nonlinearity = nonlinearity
        self._act = activation(nonlinearity, "IndRNNCell")
        self.weight_hh = self.param(hidden_size, low=0.0, high=1.0)

    def step(self, p, h):
        h = self._act(p + self.weight_hh * h)
        return h, h


class IndRNN(CellRNN):
    """Stacked IndRNN layers (see `IndRNNCell`)."""

    cell_type = IndRNNCell


class FSMNCell(Cell):
    """Feedforward sequential memory network (Zhang et al., 2015, "Feedforward Sequential Memory Networks:
    A New Structure to Learn Long-term Dependency"), as the Go spaGO's ``fsmn``: a learned, element-wise
    weighted memory of the last ``order`` outputs is fed back.

        m = Σ_{i=1..N} a_i ⊙ h_{t−i},   h_t = relu(W·x_t + b + u ⊙ m)

    The state is the history (h_{t−1}, …, h_{t−N}). Unlike the Go code, gradients flow through the memory."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, order: int = 3, dtype="float32",
                 generator=None):
        if order < 1:
            raise SpagoError(f"FSMNCell: order must be at least 1, got {order}")
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=hidden_size)
        self.order = int(order)
        self.weight_hh = self.param(hidden_size)
        self.memory = self.param(order, hidden_size)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,),) * self.order

    def step(self, p, history):
        history = history if isinstance(history, tuple) else (history,)
        m = sum(self.memory[i] * history[i] for i in range(self.order))
        h = ops.relu(p + self.weight_hh * m)
        return h, _history(shift(history, h))


def _history(parts: tuple):
    return parts if len(parts) > 1 else parts[0]


class FSMN(CellRNN):
    """Stacked FSMN layers (see `FSMNCell`); the state is the last ``order`` outputs."""

    cell_type = FSMNCell


class HORNCell(Cell):
    """Higher-order recurrent network (Soltani & Jiang, 2016, "Higher Order Recurrent Neural Networks"), as
    the Go spaGO's ``horn``: the last ``order`` states feed back, each through its own matrix, decayed by 0.6^i.

        h_t = tanh(W·x_t + b + Σ_{i=1..N} W_i · (0.6^i · h_{t−i}))

    The W_i are the column blocks of ``weight_hh`` (H, N·H)."""

    decay = 0.6

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, order: int = 3, dtype="float32",
                 generator=None):
        if order < 1:
            raise SpagoError(f"HORNCell: order must be at least 1, got {order}")
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=hidden_size)
        self.order = int(order)
        self.weight_hh = self.param(hidden_size, order * hidden_size)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,),) * self.order

    def step(self, p, history):
        history = history if isinstance(history, tuple) else (history,)
        past = ops.concat([history[i] * self.decay ** (i + 1) for i in range(self.order)], axis=-1)
        h = ops.tanh(p + past @ self.weight_hh.T)
        return h, _history(shift(history, h))


class HORN(CellRNN):
    """Stacked HORN layers (see `HORNCell`); the state is the last ``order`` outputs."""

    cell_type = HORNCell


class MISTCell(Cell):
    """Mixed history RNN (DiPietro, Rupprecht, Navab & Hager, 2017, "Analyzing and Exploiting NARX Recurrent
    Neural Networks for Long-Term Dependencies"): attention over exponentially delayed states.

        a = softmax(W_ax·x + W_ah·h_{t−1} + b_a)               one weight per delay 2⁰, 2¹, …, 2^{D−1}
        r = σ(W_rx·x + W_rh·h_{t−1} + b_r)                      reset gate
        h_t = tanh(W_x·x + b + W_h·(r ⊙ Σ_d a_d · h_{t−2^d}))

    As in the paper, ``a`` has one entry per delay (the Go spaGO takes the first D entries of an H-way
    softmax). The state is the last 2^{D−1} outputs."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, num_delays: int = 3,
                 dtype="float32", generator=None):
        if num_delays < 1:
            raise SpagoError(f"MISTCell: num_delays must be at least 1, got {num_delays}")
        d, h = int(num_delays), hidden_size
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=d + 2 * h, rec_rows=d + h)
        self.num_delays = d
        self.weight_h = self.param(h, h)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,),) * 2 ** (self.num_delays - 1)

    def step(self, p, history):
        history = history if isinstance(history, tuple) else (history,)
        d, h = self.num_delays, self.hidden_size
        px_a, px_r, px = ops.split(p, [d, d + h], axis=-1)
        ph_a, ph_r = ops.split(self.recurrent(history[0]), [d], axis=-1)
        a = ops.softmax(px_a + ph_a, axis=-1)
        r = ops.sigmoid(px_r + ph_r)
        mixed = sum(a[:, k:k + 1] * history[2 ** k - 1] for k in range(d))
        out = ops.tanh(px + (r * mixed) @ self.weight_h.T)
        return out, _history(shift(history, out))


class MIST(CellRNN):
    """Stacked MIST layers (see `MISTCell`); the state is the last 2^{D−1} outputs."""

    cell_type = MISTCell


class SRNNCell(Cell):
    """Shuffling recurrent network (Rotman & Wolf, 2020, "Shuffling Recurrent Neural Networks"), as the Go
    spaGO's ``srnn``: the hidden state is permuted (rotated by one) instead of multiplied by a matrix.

        b_t = f(x_t) [⊙ σ(W_g·x_t) with ``multihead``]    f: (Linear → LayerNorm → ReLU)×L → Linear
        h_t = relu(b_t + rot(h_{t−1})),   rot(h) = (h_H, h_1, …, h_{H−1})
        y_t = W_o·h_t + b_o

    f and the gate depend on the input alone, so they run for the whole sequence before the time loop.
    The state is h; the output is y."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, hyper_size: int | None = None,
                 num_hyper_layers: int = 1, multihead: bool = False, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=0)
        hyper = int(hyper_size or hidden_size)
        self.hyper_size, self.multihead = hyper, bool(multihead)
        layers, size = [], input_size
        for _ in range(max(1, int(num_hyper_layers))):
            layers += [Linear(size, hyper, bias, dtype, generator), LayerNorm(hyper, dtype=dtype)]
            size = hyper
        self.hyper = ModuleList(layers)
        self.hyper_out = Linear(hyper, hidden_size, bias, dtype, generator)
        self.gate = Linear(input_size, hidden_size, bias, dtype, generator) if multihead else None
        self.output = Linear(hidden_size, hidden_size, bias, dtype, generator)

    def project(self, x):
        b = x
        for k in range(0, len(self.hyper), 2):
            b = ops.relu(self.hyper[k + 1](self.hyper[k](b)))
        b = self.hyper_out(b)
        return b * ops.sigmoid(self.gate(x)) if self.gate is not None else b

    def step(self, p, h):
        h = ops.relu(p + ops.concat([h[:, -1:], h[:, :-1]], axis=-1))
        return self.output(h), h


class SRNN(CellRNN):
    """Stacked shuffling-RNN layers (see `SRNNCell`)."""

    cell_type = SRNNCell

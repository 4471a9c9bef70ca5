"""Recurrent cells and layers against NumPy written from the published equations, finite differences,
compiled code, and PyTorch's layout."""
from __future__ import annotations

import numpy as np
import pytest

import spago
from spago.errors import ShapeError, SpagoError
from spago.nn import (GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, Recurrent, RNNCell, StackedRNN)
from spago.testing import assert_compiled_matches_eager, check_module_grad

from .time_loops import time_loops  # noqa: F401  (every test here runs with scan loops and unrolled)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------- NumPy references, from the papers' equations

def np_lstm_step(cell, x, h, c):
    """Hochreiter & Schmidhuber (1997) with a forget gate; PyTorch's gate order i, f, g, o."""
    w_ih, w_hh, b_ih, b_hh = (getattr(cell, n).numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    H = h.shape[-1]
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def np_gru_step(cell, x, h):
    """Cho et al. (2014), PyTorch's formulation: reset gate applied to (W_hn h + b_hn)."""
    w_ih, w_hh, b_ih, b_hh = (getattr(cell, n).numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    H = h.shape[-1]
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def np_rnn_step(cell, x, h):
    w_ih, w_hh, b_ih, b_hh = (getattr(cell, n).numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return np.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def np_run(cell, xs, reverse=False, state=None):
    """Run one cell over (B, T, I) with the reference step; returns outputs (B, T, H) and the last state."""
    B, T, _ = xs.shape
    H = cell.hidden_size
    is_lstm = isinstance(cell, LSTMCell)
    if state is None:
        state = (np.zeros((B, H)), np.zeros((B, H))) if is_lstm else np.zeros((B, H))
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        if is_lstm:
            state = np_lstm_step(cell, xs[:, t], *state)
            outs[t] = state[0]
        else:
            state = (np_gru_step if isinstance(cell, GRUCell) else np_rnn_step)(cell, xs[:, t], state)
            outs[t] = state
    return np.stack(outs, axis=1), state


def cells_of(layer):
    """(forward cell, backward cell or None) for each layer of an RNN/LSTM/GRU."""
    out = []
    for sub in layer.stack.layers:
        if isinstance(sub, Bidirectional):
            out.append((sub.forward_rnn.cell, sub.backward_rnn.cell))
        else:
            out.append((sub.cell, None))
    return out


def np_stacked(layer, xs, merge="concat"):
    """Reference for a stacked, optionally bidirectional layer: outputs and per-(layer, direction) states."""
    states = []
    for fw, bw in cells_of(layer):
        out_f, s_f = np_run(fw, xs)
        states.append(s_f)
        if bw is None:
            xs = out_f
            continue
        out_b, s_b = np_run(bw, xs, reverse=True)
        states.append(s_b)
        xs = {"concat": lambda: np.concatenate([out_f, out_b], -1), "sum": lambda: out_f + out_b,
              "prod": lambda: out_f * out_b, "avg": lambda: (out_f + out_b) / 2}[merge]()
    return xs, states


RNG = np.random.default_rng(7)


def data(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


class Calling(spago.nn.Module):
    """``fn(inner, *inputs)``: lets check_module_grad reach keyword arguments and tuple states."""

    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, *inputs):
        return self.fn(self.inner, *inputs)


def sum_state(state):
    """h·2 + c: both parts of an LSTM state reach the loss with different weights."""
    h, c = state
    return h * 2.0 + c


# ---------------------------------------------------------------------------------------------------- cells

def test_lstm_cell_matches_reference_and_pytorch_layout():
    cell = LSTMCell(3, 5)
    assert cell.weight_ih.shape == (20, 3) and cell.weight_hh.shape == (20, 5) and cell.bias_ih.shape == (20,)
    bound = 1 / np.sqrt(5)
    assert all(np.abs(p.numpy()).max() <= bound for p in cell.parameters())
    x, h, c = data(2, 3), data(2, 5), data(2, 5)
    got_h, got_c = cell(x, (h, c))
    want_h, want_c = np_lstm_step(cell, x, h, c)
    np.testing.assert_allclose(got_h.numpy(), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_c.numpy(), want_c, rtol=1e-5, atol=1e-6)
    zero_h, _ = cell(x)
    np.testing.assert_allclose(zero_h.numpy(), np_lstm_step(cell, x, 0 * h, 0 * c)[0], rtol=1e-5, atol=1e-6)


def test_gru_and_rnn_cells_match_reference():
    gru, rnn = GRUCell(3, 4), RNNCell(3, 4)
    assert gru.weight_ih.shape == (12, 3) and gru.weight_hh.shape == (12, 4)
    x, h = data(2, 3), data(2, 4)
    np.testing.assert_allclose(gru(x, h).numpy(), np_gru_step(gru, x, h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rnn(x, h).numpy(), np_rnn_step(rnn, x, h), rtol=1e-5, atol=1e-6)
    relu = RNNCell(3, 4, nonlinearity="relu", bias=False)
    assert relu.bias_ih is None and len(relu.parameters()) == 2
    want = np.maximum(x @ relu.weight_ih.numpy().T + h @ relu.weight_hh.numpy().T, 0)
    np.testing.assert_allclose(relu(x, h).numpy(), want, rtol=1e-5, atol=1e-6)


def test_cell_gradients():
    x, h, c = data(2, 3), data(2, 2), data(2, 2)
    check_module_grad(Calling(LSTMCell(3, 2), lambda cell, x, h, c: sum_state(cell(x, (h, c)))), x, h, c)
    check_module_grad(GRUCell(3, 2), x, h)
    check_module_grad(RNNCell(3, 2), x, h)


# ---------------------------------------------------------------------------------------------------- layers

@pytest.mark.parametrize("cls", [LSTM, GRU, RNN])
def test_stacked_bidirectional_layers_match_reference(cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True)
    x = data(2, 5, 3)
    out, state = layer(x)
    want, states = np_stacked(layer, x)
    assert out.shape == (2, 5, 8)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    if cls is LSTM:
        h_n, c_n = state
        np.testing.assert_allclose(h_n.numpy(), np.stack([s[0] for s in states]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c_n.numpy(), np.stack([s[1] for s in states]), rtol=1e-5, atol=1e-6)
    else:
        assert state.shape == (4, 2, 4)
        np.testing.assert_allclose(state.numpy(), np.stack(states), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge", ["concat", "sum", "prod", "avg"])
def test_merge_modes(merge):
    layer = GRU(3, 4, num_layers=2, bidirectional=True, merge=merge)
    assert layer.output_size == (8 if merge == "concat" else 4)
    x = data(2, 3, 3)
    out, _ = layer(x)
    np.testing.assert_allclose(out.numpy(), np_stacked(layer, x, merge)[0], rtol=1e-5, atol=1e-6)
    wrapper = Bidirectional(lambda: LSTMCell(2, 2), merge=merge)  # the wrapper on its own, around any cell
    check_module_grad(Calling(wrapper, lambda m, x: m(x)[0]), x[:, :2, :2])
    assert_compiled_matches_eager(lambda x: Bidirectional(lambda: RNNCell(3, 2, generator=spago.ops.Generator(1)),
                                                          merge=merge).eval()(x), x)


def test_initial_state_is_used():
    layer = LSTM(3, 4, num_layers=2)
    x, h0, c0 = data(2, 4, 3), data(2, 2, 4), data(2, 2, 4)
    out, (h_n, c_n) = layer(x, (h0, c0))
    (c1, _), (c2, _) = cells_of(layer)
    mid, s1 = np_run(c1, x, state=(h0[0], c0[0]))
    want, s2 = np_run(c2, mid, state=(h0[1], c0[1]))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n.numpy(), np.stack([s1[1], s2[1]]), rtol=1e-5, atol=1e-6)


def test_gru_initial_state_and_last_state_per_layer_and_direction():
    layer = GRU(3, 4, num_layers=2, bidirectional=True)
    x, h0 = data(2, 5, 3), data(4, 2, 4)  # h0: (num_layers·directions, batch, hidden)
    out, h_n = layer(x, h0)
    ((f1, b1), (f2, b2)) = cells_of(layer)
    out_f, s_f1 = np_run(f1, x, state=h0[0])
    out_b, s_b1 = np_run(b1, x, reverse=True, state=h0[1])
    mid = np.concatenate([out_f, out_b], -1)
    out_f, s_f2 = np_run(f2, mid, state=h0[2])
    out_b, s_b2 = np_run(b2, mid, reverse=True, state=h0[3])
    np.testing.assert_allclose(out.numpy(), np.concatenate([out_f, out_b], -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n.numpy(), np.stack([s_f1, s_b1, s_f2, s_b2]), rtol=1e-5, atol=1e-6)
    # the last state of a forward direction is its last output; of a backward direction, its first
    np.testing.assert_allclose(h_n.numpy()[2], out.numpy()[:, -1, :4], rtol=1e-6)
    np.testing.assert_allclose(h_n.numpy()[3], out.numpy()[:, 0, 4:], rtol=1e-6)
    check_module_grad(Calling(GRU(2, 2), lambda m, x, h: m(x, h)[1]), x[:, :3, :2], data(1, 2, 2))


def test_lstm_last_state_continues_the_sequence():
    """Running two halves with the first half's last state equals running the whole sequence."""
    layer = LSTM(3, 4, num_layers=2)
    x = data(2, 6, 3)
    whole, (h, c) = layer(x)
    first, state = layer(x[:, :4])
    second, (h2, c2) = layer(x[:, 4:], state)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()], 1), whole.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(h2.numpy(), h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c2.numpy(), c.numpy(), rtol=1e-5, atol=1e-6)


def test_mask_equals_running_each_sequence_unpadded():
    layer = LSTM(3, 4, bidirectional=True)
    lengths = [5, 2, 4]
    x = data(3, 5, 3)
    mask = (np.arange(5)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    out, (h_n, _) = layer(x, mask=mask)
    for b, n in enumerate(lengths):
        alone, (h_alone, _) = layer(x[b:b + 1, :n])
        np.testing.assert_allclose(out.numpy()[b, :n], alone.numpy()[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.numpy()[b, n:], 0.0)
        np.testing.assert_allclose(h_n.numpy()[:, b], h_alone.numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_bidirectional_of_layers_equals_bidirectional_of_cells():
    """A layer factory reads the sequence flipped in time; with a mask it must agree with reversed cells."""
    cells = Bidirectional(lambda: GRUCell(3, 4))
    layers = Bidirectional(lambda: GRU(3, 4), merge="concat")
    assert cells.output_size == layers.output_size == 8
    for ours, theirs in ((layers.forward_rnn, cells.forward_rnn), (layers.backward_rnn, cells.backward_rnn)):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours.stack.layers[0].cell, name).assign(getattr(theirs.cell, name))
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    a, (fa, ba) = cells(x, mask=mask)
    b, (fb, bb) = layers(x, mask=mask)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ba.numpy(), bb.numpy()[0], rtol=1e-5, atol=1e-6)


def test_stacked_rnn_of_mixed_layers():
    first, second = Recurrent(LSTMCell(3, 4)), Recurrent(GRUCell(4, 2), reverse=True)
    stack = StackedRNN([first, second])
    x = data(2, 3, 3)
    out, (s1, s2) = stack(x)
    mid, _ = np_run(first.cell, x)
    want, last = np_run(second.cell, mid, reverse=True)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2.numpy(), last, rtol=1e-5, atol=1e-6)
    assert len(stack) == 2 and isinstance(s1, tuple)


def test_dropout_between_layers_only_in_training():
    layer = LSTM(3, 4, num_layers=2, dropout=0.5)
    x = data(2, 3, 3)
    layer.eval()
    want, _ = np_stacked(layer, x)
    np.testing.assert_allclose(layer(x)[0].numpy(), want, rtol=1e-5, atol=1e-6)
    layer.train()
    assert not np.allclose(layer(x)[0].numpy(), want)


def test_layer_gradients():
    x = data(2, 3, 2)
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    check_module_grad(Calling(LSTM(2, 2, bidirectional=True), lambda m, x, mask: m(x, mask=mask)[0]), x, mask)
    stacked = LSTM(2, 2, num_layers=2)
    check_module_grad(Calling(stacked, lambda m, x, h, c: sum_state(m(x, (h, c))[1])), x, data(2, 2, 2), data(2, 2, 2))
    check_module_grad(GRU(2, 1, bidirectional=True, merge="prod"), x[:, :2], output=lambda r: r[1])
    check_module_grad(RNN(2, 2, num_layers=2, nonlinearity="tanh"), x, output=lambda r: r[0])


def test_compiled_matches_eager():
    lstm = LSTM(3, 4, bidirectional=True).eval()
    x = data(2, 4, 3)
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], np.float32)
    assert_compiled_matches_eager(lambda x, m: lstm(x, mask=m), x, mask)
    gru = GRU(3, 4, num_layers=2).eval()
    h0 = data(2, 2, 4)
    assert_compiled_matches_eager(lambda x, h: gru(x, h), x[:, :3], h0)
    stacked = LSTM(3, 4, num_layers=2).eval()
    assert_compiled_matches_eager(lambda x, h, c: stacked(x, (h, c)), x, data(2, 2, 4), data(2, 2, 4))
    rnn = RNN(3, 2, nonlinearity="relu").eval()
    assert_compiled_matches_eager(lambda x: rnn(x), x)


def test_cells_compiled_match_eager():
    lstm, gru, rnn = LSTMCell(3, 4), GRUCell(3, 4), RNNCell(3, 4)
    x, h, c = data(2, 3), data(2, 4), data(2, 4)
    assert_compiled_matches_eager(lambda x, h, c: (lstm(x, (h, c)), gru(x, h), rnn(x, h), lstm(x)), x, h, c)


def test_pytorch_layout_and_numbers():
    """The weights of torch.nn.LSTM load into ours name by name and give the same outputs."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    ours = LSTM(3, 4, num_layers=2, bidirectional=True)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    for k, (fw, bw) in enumerate(cells_of(ours)):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(fw, name).assign(state[f"{name}_l{k}"])
            getattr(bw, name).assign(state[f"{name}_l{k}_reverse"])
    x = data(2, 5, 3)
    with torch.no_grad():
        want, (h_n, c_n) = theirs(torch.from_numpy(x))
    out, (h, c) = ours(x)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), h_n.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), c_n.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors():
    lstm = LSTM(3, 4, num_layers=2)
    with pytest.raises(ShapeError, match="input_size=3"):
        lstm(data(2, 5, 7))
    with pytest.raises(ShapeError, match="batch, time"):
        lstm(data(5, 3))
    with pytest.raises(ShapeError, match=r"\(2, 2, 4\)"):
        lstm(data(2, 5, 3), (data(1, 2, 4), data(1, 2, 4)))
    with pytest.raises(ShapeError, match="pair"):
        lstm(data(2, 5, 3), data(2, 2, 4))
    with pytest.raises(ShapeError, match="mask"):
        lstm(data(2, 5, 3), mask=np.ones((2, 4)))
    cell = LSTMCell(3, 4)
    with pytest.raises(ShapeError, match=r"\(2, 4\)"):
        cell(data(2, 3), (data(2, 5), data(2, 4)))
    with pytest.raises(ShapeError, match="input_size=3"):
        cell(data(2, 4))
    with pytest.raises(ShapeError, match=r"\(2, 4\)"):
        GRUCell(3, 4)(data(2, 3), data(3, 4))
    with pytest.raises(SpagoError, match="merge"):
        GRU(3, 4, bidirectional=True, merge="max")
    with pytest.raises(SpagoError, match="positive"):
        LSTMCell(0, 4)
    with pytest.raises(SpagoError, match="new cell"):
        shared = GRUCell(3, 4)
        Bidirectional(lambda: shared)
    with pytest.raises(SpagoError, match="recurrent cell"):
        Recurrent(spago.nn.Linear(3, 4))

"""The Go spaGO's recurrent cells: NumPy references written from their equations, defaults, masks,
stacking, initial states and bad input. (Gradients and compiled parity: test_zoo.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import ShapeError, SpagoError
from spago.ops import Generator

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 4, 3)).astype(np.float32)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def value(p):
    return None if p is None else p.numpy().astype(np.float64)


def run(cell, step, state, xs=X):
    """Apply a NumPy reference ``step(cell, x_t, state) -> (y, state)`` over the sequence."""
    outs = []
    for t in range(xs.shape[1]):
        y, state = step(cell, xs[:, t].astype(np.float64), state)
        outs.append(y)
    return np.stack(outs, 1), state


def cell_of(layer):
    return layer.stack.layers[0].cell


def zeros(*shape):
    return np.zeros(shape)


def ref_indrnn(c, x, h):
    h = np.maximum(x @ value(c.weight_ih).T + value(c.bias_ih) + value(c.weight_hh) * h, 0)
    return h, h


def ref_cfn(c, x, h):
    p = x @ value(c.weight_ih).T + value(c.bias_ih)
    r = h @ value(c.weight_hh).T
    H = c.hidden_size
    h = sigmoid(p[:, :H] + r[:, :H]) * np.tanh(h) + sigmoid(p[:, H:2 * H] + r[:, H:]) * np.tanh(p[:, 2 * H:])
    return h, h


def ref_ran(c, x, s):
    h, cc = s
    p, r, H = x @ value(c.weight_ih).T + value(c.bias_ih), h @ value(c.weight_hh).T, c.hidden_size
    cc = sigmoid(p[:, :H] + r[:, :H]) * p[:, 2 * H:] + sigmoid(p[:, H:2 * H] + r[:, H:]) * cc
    return np.tanh(cc), (np.tanh(cc), cc)


def ref_delta(c, x, h):
    wx, uh = x @ value(c.weight_ih).T, h @ value(c.weight_hh).T
    z = np.tanh(value(c.beta1) * wx + value(c.beta2) * uh + value(c.alpha) * wx * uh + value(c.bias))
    p = sigmoid(wx + value(c.bias_p))
    h = np.tanh(p * z + (1 - p) * h)
    return h, h


def ref_ltm(c, x, s):
    h, cc = s
    H = c.hidden_size
    l_ = sigmoid(x @ value(c.weight_ih).T + value(c.bias_ih) + h @ value(c.weight_hh).T)
    cc = sigmoid((l_[:, :H] * l_[:, H:2 * H] + cc) @ value(c.weight_cell).T + value(c.bias_cell))
    return cc * l_[:, 2 * H:], (cc * l_[:, 2 * H:], cc)


def ref_fsmn(c, x, hist):
    m = sum(value(c.memory)[i] * hist[i] for i in range(c.order))
    h = np.maximum(x @ value(c.weight_ih).T + value(c.bias_ih) + value(c.weight_hh) * m, 0)
    return h, (h,) + hist[:-1]


def ref_horn(c, x, hist):
    H = c.hidden_size
    w = value(c.weight_hh)
    z = x @ value(c.weight_ih).T + value(c.bias_ih)
    z = z + sum((0.6 ** (i + 1) * hist[i]) @ w[:, i * H:(i + 1) * H].T for i in range(c.order))
    h = np.tanh(z)
    return h, (h,) + hist[:-1]


def ref_mist(c, x, hist):
    d, H = c.num_delays, c.hidden_size
    px = x @ value(c.weight_ih).T + value(c.bias_ih)
    ph = hist[0] @ value(c.weight_hh).T
    a = np.exp(px[:, :d] + ph[:, :d])
    a /= a.sum(-1, keepdims=True)
    r = sigmoid(px[:, d:d + H] + ph[:, d:])
    mixed = sum(a[:, k:k + 1] * hist[2 ** k - 1] for k in range(d))
    h = np.tanh(px[:, d + H:] + (r * mixed) @ value(c.weight_h).T)
    return h, (h,) + hist[:-1]


def ref_tpr(c, x, h):
    a = sigmoid(x @ value(c.weight_ih).T + value(c.bias_ih) + h @ value(c.weight_hh).T)
    s = a[:, :c.n_symbols] @ value(c.symbols).T
    r = a[:, c.n_symbols:] @ value(c.roles).T
    h = np.einsum("bi,bj->bij", s, r).reshape(len(x), -1)
    return h, h


def ref_srnn(c, x, h):
    b = x
    for k in range(0, len(c.hyper), 2):
        lin, ln = c.hyper[k], c.hyper[k + 1]
        b = b @ value(lin.weight).T + value(lin.bias)
        b = (b - b.mean(-1, keepdims=True)) / np.sqrt(b.var(-1, keepdims=True) + ln.eps) * value(ln.weight) \
            + value(ln.bias)
        b = np.maximum(b, 0)
    b = b @ value(c.hyper_out.weight).T + value(c.hyper_out.bias)
    h = np.maximum(b + np.roll(h, 1, axis=-1), 0)
    return h @ value(c.output.weight).T + value(c.output.bias), h


CASES = {
    "IndRNN": (lambda: nn.IndRNN(3, 5), ref_indrnn, lambda: zeros(2, 5)),
    "CFN": (lambda: nn.CFN(3, 5), ref_cfn, lambda: zeros(2, 5)),
    "RAN": (lambda: nn.RAN(3, 5), ref_ran, lambda: (zeros(2, 5), zeros(2, 5))),
    "DeltaRNN": (lambda: nn.DeltaRNN(3, 5), ref_delta, lambda: zeros(2, 5)),
    "LTM": (lambda: nn.LTM(3, 5), ref_ltm, lambda: (zeros(2, 5), zeros(2, 5))),
    "FSMN": (lambda: nn.FSMN(3, 5, order=3), ref_fsmn, lambda: (zeros(2, 5),) * 3),
    "HORN": (lambda: nn.HORN(3, 5, order=2), ref_horn, lambda: (zeros(2, 5),) * 2),
    "MIST": (lambda: nn.MIST(3, 5, num_delays=3), ref_mist, lambda: (zeros(2, 5),) * 4),
    "TPR": (lambda: nn.TPR(3, 6), ref_tpr, lambda: zeros(2, 6)),
    "SRNN": (lambda: nn.SRNN(3, 5, num_hyper_layers=2), ref_srnn, lambda: zeros(2, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cell_matches_its_equations(name):
    make, step, init = CASES[name]
    spago.manual_seed(1)
    layer = make()
    cell = cell_of(layer)
    for _, p in layer.named_parameters():  # non-trivial values everywhere (DeltaRNN's gates start at 1)
        p.assign(RNG.uniform(-0.8, 0.8, p.shape).astype(np.float32))
    want, _ = run(cell, step, init())
    got, _ = layer(X)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


def test_srn_is_elman_and_refined_lstm_multiplies_gates_by_the_input():
    srn, rnn = nn.SRN(3, 4, generator=Generator(0)), nn.RNN(3, 4, generator=Generator(0))
    np.testing.assert_allclose(srn(X)[0].numpy(), rnn(X)[0].numpy(), rtol=1e-6)
    lstm = nn.LSTM(3, 3, refined_gates=True, generator=Generator(2))
    c = cell_of(lstm)
    h = cc = np.zeros((2, 3))
    outs = []
    for t in range(X.shape[1]):
        x = X[:, t].astype(np.float64)
        z = x @ value(c.weight_ih).T + value(c.bias_ih) + h @ value(c.weight_hh).T + value(c.bias_hh)
        i, f, g, o = np.split(z, 4, axis=-1)
        cc = sigmoid(f) * cc + sigmoid(i) * x * np.tanh(g)
        h = sigmoid(o) * x * np.tanh(cc)
        outs.append(h)
    np.testing.assert_allclose(lstm(X)[0].numpy(), np.stack(outs, 1), rtol=1e-4, atol=1e-6)
    with pytest.raises(SpagoError, match="refined_gates needs input_size = hidden_size"):
        nn.LSTMCell(3, 4, refined_gates=True)


def test_rla_is_causal_linear_attention():
    layer = nn.RLA(3, 4, generator=Generator(0))
    c = cell_of(layer)
    p = X.astype(np.float64) @ value(c.weight_ih).T + value(c.bias_ih)
    k, v, q = np.split(p, 3, axis=-1)
    want = nn.linear_attention(q, k, v, causal=True).numpy()
    np.testing.assert_allclose(layer(X)[0].numpy(), want, rtol=1e-4, atol=1e-6)


def test_lstmsc_skips_to_the_state_its_policy_picks():
    layer = nn.LSTMSC(3, 4, skips=3, generator=Generator(0))
    cell = cell_of(layer)
    for _, p in layer.named_parameters():
        p.assign(RNG.uniform(-1, 1, p.shape).astype(np.float32))
    out, state = layer(X)
    assert out.shape == (2, 4, 4) and len(state) == 7
    # the last state part is Σ_t log π(k_t): a REINFORCE loss on it reaches the policy's weights
    log_prob = state[-1]
    assert log_prob.shape == (1, 2, 1) and np.all(log_prob.numpy() < 0)
    (log_prob * -1.0).sum().backward()
    assert np.abs(cell.policy.weight.grad.numpy()).max() > 0
    # λ = 0: the policy's pick is ignored, and the cell is an LSTM (i, f, g, o) on (h_{t−1}, c_{t−1})
    cell.lam = 0.0
    w_ih, b_ih, w_hh = (value(p)[:16] for p in (cell.weight_ih, cell.bias_ih, cell.weight_hh))
    h = c = np.zeros((2, 4))
    for t in range(4):
        i, f, g, o = np.split(X[:, t] @ w_ih.T + b_ih + h @ w_hh.T, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(layer(X)[0].numpy()[:, -1], h, rtol=1e-4, atol=1e-6)


def test_nru_memory_moves_and_needs_a_square():
    layer = nn.NRU(3, 4, memory_size=8, k=2, generator=Generator(0))
    _, (h, m) = layer(X)
    assert h.shape == (1, 2, 4) and m.shape == (1, 2, 8) and np.abs(m.numpy()).max() > 0
    with pytest.raises(SpagoError, match="perfect square"):
        nn.NRUCell(3, 4, memory_size=6, k=2)


ALL = [nn.SRN, nn.IndRNN, nn.FSMN, nn.HORN, nn.MIST, nn.SRNN, nn.CFN, nn.RAN, nn.DeltaRNN, nn.LTM, nn.LSTMSC,
       nn.NRU, nn.TPR, nn.RLA]


@pytest.mark.parametrize("cls", ALL, ids=[c.__name__ for c in ALL])
def test_defaults_stacking_masks_and_states(cls):
    hidden = 4
    layer = cls(3, hidden)  # every option has a default
    out, state = layer(X)
    assert out.shape == (2, 4, hidden)
    # two layers, both directions
    deep = cls(3, hidden, num_layers=2, bidirectional=True)
    out2, state2 = deep(X)
    assert out2.shape == (2, 4, 2 * hidden)
    parts = state2 if isinstance(state2, tuple) else (state2,)
    assert all(p.shape[:2] == (4, 2) for p in parts)
    # the last state goes back in as an initial state
    deep(X, state=state2)
    # padding: the output is zero there and the last state is the one at each sequence's true end
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    masked, last = layer(X, mask=mask)
    short, last_short = layer(X[1:, :2])
    assert np.all(masked.numpy()[1, 2:] == 0)
    np.testing.assert_allclose(masked.numpy()[1, :2], short.numpy()[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(last if isinstance(last, tuple) else (last,), last_short if isinstance(last_short, tuple)
                    else (last_short,)):
        np.testing.assert_allclose(a.numpy()[:, 1], b.numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_bad_states_and_inputs_are_named():
    layer = nn.RAN(3, 4)
    with pytest.raises(ShapeError, match="expected the state as 2 tensors"):
        layer(X, state=np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ShapeError, match=r"expected initial state tensors of shape \(1, 2, 4\)"):
        layer(X, state=(np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 5), np.float32)))
    with pytest.raises(ShapeError, match="input_size=3"):
        layer(np.zeros((2, 4, 5), np.float32))
    cell = nn.HORNCell(3, 4, order=2)
    with pytest.raises(ShapeError, match=r"expected a state tensor of shape \(2, 4\)"):
        cell(X[:, 0], (np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32)))
    with pytest.raises(SpagoError, match="activation must be one of"):
        nn.IndRNNCell(3, 4, nonlinearity="cube")
    with pytest.raises(SpagoError, match="order must be at least 1"):
        nn.FSMNCell(3, 4, order=0)
    with pytest.raises(SpagoError, match="does not divide"):
        nn.TPRCell(3, 6, d_roles=4)


def test_layers_save_and_load_with_their_options(tmp_path):
    layer = nn.NRU(3, 4, memory_size=8, k=2, layer_norm=True, generator=Generator(0))
    spago.save(layer, tmp_path / "nru.safetensors")
    again = spago.load(nn.NRU, tmp_path / "nru.safetensors")
    assert cell_of(again).memory_size == 8 and cell_of(again).norm is not None
    np.testing.assert_array_equal(again(X)[0].numpy(), layer(X)[0].numpy())

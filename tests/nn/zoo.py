"""The registry of the Go spaGO's model zoo: one row per layer — how to build it, an example input, its
equation and paper. `test_zoo.py` runs the float64 finite-difference gradient check and the
compiled-vs-eager parity check for every row; ``tools/gen_layers_table.py`` runs the same checks and
renders docs/layers.md from their results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from spago import nn, ops
from spago.ops import Generator


@dataclass
class Entry:
    name: str                       # the row's name in docs/layers.md
    group: str
    make: Callable[[], Any]         # a fresh module (float32, seeded)
    inputs: Callable[[], list]      # example inputs: float arrays are float64 here (cast for the compile)
    equation: str
    paper: str
    call: Callable | None = None    # (module, *inputs) -> a Tensor or a tuple whose first element is checked
    grad: Callable | None = None    # a custom gradient check (entry) -> None, instead of check_module_grad
    train: bool = False             # compiled parity in training mode (BatchNorm)
    tolerance: dict = field(default_factory=lambda: {"rtol": 1e-4, "atol": 1e-6})

    def run(self, module, *inputs):
        out = self.call(module, *inputs) if self.call is not None else module(*inputs)
        return out[0] if isinstance(out, tuple) else out


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


MASK = np.array([[1, 1, 1], [1, 1, 0]], dtype=np.float32)  # the second sequence has one padded step


def seq(*_):
    return [rand(2, 3, 3), MASK]


def masked(module, x, mask):
    return module(x, mask=mask)


def g(seed=0):
    return Generator(seed)


def rnn(name, cls, equation, paper, hidden=3, **options):
    return Entry(name, "recurrent", lambda: cls(3, hidden, generator=g(), **options), seq, equation, paper,
                 call=masked)


RECURRENT = [
    rnn("SRN", nn.SRN, "h' = tanh(W·x + b + W_rec·h)", "Elman, 1990"),
    rnn("IndRNN", nn.IndRNN, "h' = relu(W·x + b + u ⊙ h)", "Li et al., 2018"),
    rnn("FSMN", nn.FSMN, "h_t = relu(W·x + b + u ⊙ Σᵢ aᵢ ⊙ h_{t−i})", "Zhang et al., 2015", order=2),
    rnn("HORN", nn.HORN, "h_t = tanh(W·x + b + Σᵢ Wᵢ·0.6ⁱ h_{t−i})", "Soltani & Jiang, 2016", order=2),
    rnn("MIST", nn.MIST, "h_t = tanh(W·x + W_h·(r ⊙ Σ_d a_d h_{t−2^d}) + b)", "DiPietro et al., 2017",
        num_delays=2),
    rnn("SRNN", nn.SRNN, "h_t = relu(f(x_t) + rot(h_{t−1})), y_t = W·h_t + b", "Rotman & Wolf, 2020",
        multihead=True),
    rnn("CFN", nn.CFN, "h' = θ ⊙ tanh(h) + η ⊙ tanh(W·x)", "Laurent & von Brecht, 2017"),
    rnn("CFN, bidirectional", nn.CFN, "the CFN both ways, outputs concatenated", "Schuster & Paliwal, 1997",
        hidden=2, bidirectional=True),
    rnn("RAN", nn.RAN, "c' = i ⊙ (W_c·x) + f ⊙ c, h' = tanh(c')", "Lee et al., 2017"),
    rnn("DeltaRNN", nn.DeltaRNN, "h' = tanh(p ⊙ tanh(β₁Wx + β₂Uh + αWx⊙Uh + b) + (1 − p) ⊙ h)",
        "Ororbia et al., 2017"),
    rnn("LTM", nn.LTM, "c' = σ(W_c·(l₁ ⊙ l₂ + c)), h' = c' ⊙ l₃", "Nugaliyadde et al., 2019"),
    rnn("LSTMSC", nn.LSTMSC, "LSTM on λ·h_{t−1−k} + (1 − λ)·h_{t−1}, k = argmax π(h, x)", "Gui et al., 2019",
        skips=2),
    rnn("NRU", nn.NRU, "m_t = m_{t−1} + (1/K) Σ_k (α_k v_k − β_k w_k)", "Chandar et al., 2019",
        memory_size=2, k=2, use_relu=True, layer_norm=True),
    rnn("TPR", nn.TPR, "h' = vec(S·a_S ⊗ R·a_R)", "Palangi et al., 2018", hidden=4),
    rnn("RLA", nn.RLA, "S' = S + φ(k)vᵀ, y = φ(q)ᵀS' / (φ(q)·z' + ε)", "Katharopoulos et al., 2020"),
    rnn("LSTM, refined gates", nn.LSTM, "i' = i ⊙ x, o' = o ⊙ x in the LSTM", "Cheng et al., 2020",
        refined_gates=True),
]


def check_adanorm_grad(entry: Entry) -> None:
    """AdaNorm's gain is detached: its tape gradient is that of z(x) ⊙ C(1 − k·z(x₀)) with x₀ fixed."""
    from spago.testing import check_grad

    module = entry.make()
    x0 = entry.inputs()[0]
    z0 = (x0 - x0.mean(-1, keepdims=True)) / (x0.std(-1, keepdims=True) + module.eps)
    gain = module.scale * (1.0 - module.k * z0)

    def frozen(x):
        c = x - ops.mean(x, axis=-1, keepdims=True)
        return c / (ops.sqrt(ops.mean(c * c, axis=-1, keepdims=True)) + module.eps) * gain

    from spago.tensor import Tensor

    x = Tensor(x0.copy(), requires_grad=True)
    cot = np.random.default_rng(1).standard_normal(x0.shape)
    module(x).backward(Tensor(cot))
    y = Tensor(x0.copy(), requires_grad=True)
    frozen(y).backward(Tensor(cot))
    np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-10, atol=1e-12)
    check_grad(frozen, x0)


def check_eval_input_grad(entry: Entry) -> None:
    """In eval mode the running statistics are constants: check the input's gradient only."""
    from spago.testing import check_grad

    module = entry.make().double().eval()
    check_grad(lambda x: entry.run(module, x), *entry.inputs(), rtol=1e-4)


def batchnorm():
    bn = nn.BatchNorm(4)
    bn.running_mean.assign(rand(4, seed=3).astype(np.float32))
    bn.running_var.assign(np.abs(rand(4, seed=4)).astype(np.float32) + 0.5)
    bn.weight.assign(rand(4, seed=5).astype(np.float32))
    return bn


def x24(*_):
    return [rand(2, 3, 4)]


NORMALISATION = [
    Entry("LayerNormSimple", "normalisation", nn.LayerNormSimple, x24, "y = (x − μ) / (σ + ε)", "Xu et al., 2019"),
    Entry("ScaleNorm", "normalisation", lambda: nn.ScaleNorm(4), x24, "y = g ⊙ x / (‖x‖ + ε)",
          "Nguyen & Salazar, 2019"),
    Entry("FixNorm", "normalisation", nn.FixNorm, x24, "y = r·x / (‖x‖ + ε)", "Nguyen & Chiang, 2018"),
    Entry("AdaNorm", "normalisation", nn.AdaNorm, x24, "y = z ⊙ sg[C(1 − k·z)], z = (x − μ)/(σ + ε)",
          "Xu et al., 2019", grad=check_adanorm_grad),
    Entry("BatchNorm (training)", "normalisation", batchnorm, x24, "y = (x − μ_B)/√(σ²_B + ε)·γ + β",
          "Ioffe & Szegedy, 2015", train=True),
    Entry("BatchNorm (eval)", "normalisation", batchnorm, x24, "y = (x − μ_run)/√(σ²_run + ε)·γ + β",
          "Ioffe & Szegedy, 2015", grad=check_eval_input_grad),
]


def decode_in_two(module, x):
    first, cache = module.decode_step(x[:, :2])
    second, _ = module.decode_step(x[:, 2:], cache)
    return ops.concat([first, second], axis=1)


def x254(*_):
    return [rand(2, 5, 4)]


ATTENTION = [
    Entry("LinearAttention", "attention", lambda: nn.LinearAttention(4, 3, 2, generator=g()), x254,
          "y_i = φ(q_i)ᵀ Σ_j φ(k_j)v_jᵀ / (φ(q_i)·Σ_j φ(k_j)), φ = elu + 1", "Katharopoulos et al., 2020"),
    Entry("LinearAttention, causal", "attention", lambda: nn.LinearAttention(4, causal=True, generator=g()), x254,
          "the same, summing over j ≤ i", "Katharopoulos et al., 2020"),
    Entry("SyntheticAttention, dense", "attention", lambda: nn.SyntheticAttention(4, 6, 3, generator=g()), x254,
          "A_i = softmax_j(w_j·relu(W₁x_i + b₁)), y = A·V(x)", "Tay et al., 2020"),
    Entry("SyntheticAttention, random", "attention",
          lambda: nn.SyntheticAttention(4, 6, mode="random", generator=g()), x254, "A = softmax(R[:S, :S]), y = A·V(x)",
          "Tay et al., 2020"),
    Entry("LSHAttention", "attention", lambda: nn.LSHAttention(4, generator=g(3)), x254,
          "softmax over j with h(k_j) = h(q_i), h(u) = argmax[uR; −uR]", "Kitaev et al., 2020"),
    Entry("MultiHeadAttention, cached decoding", "attention", lambda: nn.MultiHeadAttention(4, 2, generator=g()),
          x254, "step t attends to cached keys/values 1..t", "Vaswani et al., 2017", call=decode_in_two),
]


def lin(n=4, m=4):
    return nn.Linear(n, m, generator=g(1))


BLOCKS = [
    Entry("Highway", "feed-forward", lambda: nn.Highway(4, generator=g()), x24, "y = t ⊙ f(W·x + b) + (1 − t) ⊙ x",
          "Srivastava et al., 2015"),
    Entry("Conv1x1", "feed-forward", lambda: nn.Conv1x1(3, 2, generator=g()), x24, "y = W·x + b over channels",
          "Lin et al., 2014"),
    Entry("Flatten", "structure", nn.Flatten, x24, "(B, d₁, d₂) → (B, d₁·d₂)", "—"),
    Entry("PreNorm", "structure", lambda: nn.PreNorm(4, lin()), x24, "y = x + F(LN(x))", "Xiong et al., 2020"),
    Entry("PostNorm", "structure", lambda: nn.PostNorm(4, lin()), x24, "y = LN(x + F(x))", "Vaswani et al., 2017"),
    Entry("ReZero", "structure", lambda: nn.ReZero(lin(), alpha=0.5), x24, "y = x + α·F(x)", "Bachlechner et al., 2020"),
    Entry("SqrDist", "feed-forward", lambda: nn.SqrDist(4, 2, generator=g()), x24, "y = ‖B·x‖²",
          "Hewitt & Manning, 2019"),
    Entry("Concat", "structure", lambda: nn.Concat(lin(4, 2), lin(4, 3)), x24, "y = [f₁(x); f₂(x)]", "—"),
    Entry("Stack", "structure", lambda: nn.Stack(lin(4, 2), lin(4, 2)), x24, "y[k] = f_k(x)", "—"),
    Entry("SpatialGatingUnit", "feed-forward", lambda: nn.SpatialGatingUnit(4, 5, init_eps=1.0, generator=g()),
          x24, "y = u ⊙ (W·LN(v) + b), [u; v] = x", "Liu et al., 2021"),
    Entry("GMLP", "feed-forward", lambda: nn.GMLP(4, 5, ff_mult=2, generator=g()), x24,
          "x ← x + W₂·SGU(gelu(W₁·LN(x)))", "Liu et al., 2021"),
    Entry("MLPMixer", "feed-forward", lambda: nn.MLPMixer(4, 3, token_hidden=3, channel_hidden=5, generator=g()),
          x24, "x ← x + MLP(LN(x)ᵀ)ᵀ, x ← x + MLP(LN(x))", "Tolstikhin et al., 2021"),
    Entry("BLS", "feed-forward", lambda: nn.BLS(4, 2, feature_size=2, num_features=2, enhanced_size=3,
                                                generator=g()), x24,
          "y = W·[z; φ(W_h·z)] + b, z = [W_z,i·x + b_z,i]ᵢ", "Chen & Liu, 2017"),
    Entry("RecursiveAutoEncoder", "feed-forward", lambda: nn.RecursiveAutoEncoder(4, 3, 6, generator=g()), x24,
          "merge neighbours to one code, split back", "Socher et al., 2011"),
    Entry("PositionalEncoding", "encoding", lambda: nn.PositionalEncoding(4, 8), x24,
          "y = x + PE, PE[p, 2j] = sin(p/10000^{2j/d}), PE[p, 2j+1] = cos(…)", "Vaswani et al., 2017"),
    Entry("SLSTM", "graph encoder", lambda: nn.SLSTM(2, 2, steps=2, generator=g()),
          lambda: [rand(2, 3, 2), MASK], "word and sentence LSTM states updated together", "Zhang et al., 2018",
          call=masked),
    Entry("StarTransformer", "graph encoder", lambda: nn.StarTransformer(4, generator=g()), x24,
          "satellites attend to neighbours and relay, relay to all", "Guo et al., 2019"),
]

ENTRIES = RECURRENT + NORMALISATION + ATTENTION + BLOCKS


# ------------------------------------------------------------------------------------------------ the checks

class _Calling(nn.Module):
    """Lets check_module_grad reach an entry's own call (keyword masks, decoding in steps, tuple outputs)."""

    def __init__(self, entry: Entry, inner):
        super().__init__()
        self.entry, self.inner = entry, inner

    def forward(self, *inputs):
        return self.entry.run(self.inner, *inputs)


def check_gradients(entry: Entry) -> None:
    """Float64 central finite differences against the tape, for every parameter and floating input."""
    from spago.testing import check_module_grad

    if entry.grad is not None:
        entry.grad(entry)
        return
    check_module_grad(_Calling(entry, entry.make()), *entry.inputs(), **entry.tolerance)


def check_compiled(entry: Entry) -> None:
    """The compiled function (float32, eval mode unless ``train``) returns what eager returns."""
    from spago.testing import assert_compiled_matches_eager

    module = entry.make().train(entry.train)
    inputs = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in entry.inputs()]
    assert_compiled_matches_eager(lambda *a: entry.run(module, *a), *inputs)


CHECKS = {"gradient": check_gradients, "compiled": check_compiled}

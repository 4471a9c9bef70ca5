"""A compiled training step runs a ragged last batch padded to its compiled size, with the padded rows
weighed out exactly, where the traced step proves that sound; otherwise it says why it compiles again.
The Trainer says when it is compiling."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import spago as sp
from spago import losses, nn, optim
from spago.errors import SpagoWarning

RNG = np.random.default_rng(0)
X = RNG.standard_normal((10, 3))
Y = RNG.integers(0, 2, 10)


def model(dropout: float = 0.0):
    sp.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.Tanh(), nn.Dropout(dropout),
                         nn.Linear(4, 2, dtype="float64"))


def loss(m, x, y):
    return losses.cross_entropy(m(x), y)


def mixing_loss(m, x, y):  # a batch mean outside spago.losses: padded rows would count
    out = m(x)
    return losses.cross_entropy(out, y) + 0.1 * sp.mean(out)


@pytest.fixture
def silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def eager_step(m, opt, rows) -> float:
    opt.zero_grad()
    out = loss(m, sp.tensor(X[rows]), Y[rows])
    out.backward()
    opt.step()
    return out.item()


def test_a_ragged_last_batch_runs_padded_and_matches_eager_bit_for_bit(silent):
    padded, eager, direct = model(), model(), model()
    step = optim.compile_step(loss, padded, optim.SGD(padded, lr=0.1), X[:4], Y[:4])  # compiled for 4 rows
    reference = optim.compile_step(loss, direct, optim.SGD(direct, lr=0.1), X[8:], Y[8:])  # ... for 2
    assert step.pads(X[8:], Y[8:]) and not step.compiles(X[8:], Y[8:])
    got, want = step(X[8:], Y[8:]), eager_step(eager, optim.SGD(eager, lr=0.1), slice(8, 10))
    assert abs(got - want) <= np.spacing(want) and got == reference(X[8:], Y[8:])
    assert len(step._cache) == 1  # no second compile
    for p, q, r in zip(padded.parameters(), eager.parameters(), direct.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())  # the gradients ignored the padding exactly
        np.testing.assert_array_equal(p.numpy(), r.numpy())


def test_an_epoch_with_a_ragged_end_follows_eager(silent):
    padded, eager = model(), model()
    step = optim.compile_step(loss, padded, optim.Adam(padded, lr=0.1), X[:4], Y[:4])
    opt = optim.Adam(eager, lr=0.1)
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)) * 2:
        np.testing.assert_allclose(step(X[rows], Y[rows]), eager_step(eager, opt, rows), rtol=1e-13)
    for p, q in zip(padded.parameters(), eager.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-14)


def test_padding_is_refused_when_rows_mix_and_the_step_says_why():
    m = model()
    step = optim.compile_step(mixing_loss, m, optim.SGD(m, lr=0.1), X[:4], Y[:4])
    assert not step.pads(X[8:], Y[8:]) and step.compiles(X[8:], Y[8:])
    with pytest.warns(SpagoWarning, match=r"a batch of 2 rows, fewer than before \(a ragged last batch\), which "
                                          r"cannot be padded exactly \(.*mixes batch rows"):
        step(X[8:], Y[8:])

    class Centred(nn.Module):  # rows mixed inside the model: subtracting the batch mean
        def __init__(self):
            super().__init__()
            self.inner = model()

        def forward(self, x):
            return self.inner(x - sp.mean(x, axis=0))

    c = Centred()
    step = optim.compile_step(loss, c, optim.SGD(c, lr=0.1), X[:4], Y[:4])
    assert not step.pads(X[8:], Y[8:])


def test_compile_step_says_why_it_recompiles(silent):
    m = model(dropout=0.1)
    step = optim.compile_step(loss, m, optim.SGD(m, lr=0.1), X[:4], Y[:4])
    step(X[:4], Y[:4])
    step(X[8:], Y[8:])  # ragged: padded, silent
    m.eval()
    with pytest.warns(SpagoWarning, match=r"switched between train\(\) and eval\(\)"):
        step(X[:4], Y[:4])
    with pytest.warns(SpagoWarning, match="a batch of new shapes"):
        step(X[:8], Y[:8])


def test_trainer_says_it_is_compiling_the_step(capsys):
    m = model()
    trainer = optim.Trainer(m, mixing_loss, optim.SGD(m, lr=0.1), compiled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpagoWarning)
        trainer.fit([(X[:4], Y[:4]), (X[4:8], Y[4:8]), (X[8:], Y[8:])], epochs=1)
    assert capsys.readouterr().err.count("compiling the training step") >= 2  # the first batch, the ragged one

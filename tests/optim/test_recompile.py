"""A compiled training step says when (and why) it compiles again; the Trainer says when it is compiling."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from spago import losses, nn, optim
from spago.errors import SpagoWarning

X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
Y = np.array([0, 1] * 5)


def model():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.1), nn.Linear(4, 2))


def loss(m, x, y):
    return losses.cross_entropy(m(x), y)


def test_compile_step_says_why_it_recompiles():
    m = model()
    step = optim.compile_step(loss, m, optim.SGD(m, lr=0.1), X[:4], Y[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(X[:4], Y[:4])  # the compiled shape: silent
    assert step.compiles(X[:2], Y[:2]) and not step.compiles(X[4:8], Y[4:8])
    with pytest.warns(SpagoWarning, match=r"a batch of 2 rows, fewer than before \(a ragged last batch\)"):
        step(X[8:], Y[8:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(X[6:8], Y[6:8])  # the ragged size again: compiled once, reused
    m.eval()
    with pytest.warns(SpagoWarning, match=r"switched between train\(\) and eval\(\)"):
        step(X[:4], Y[:4])
    with pytest.warns(SpagoWarning, match="a batch of new shapes"):
        step(X[:8], Y[:8])


def test_trainer_says_it_is_compiling_the_step(capsys):
    m = model()
    trainer = optim.Trainer(m, loss, optim.SGD(m, lr=0.1), compiled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpagoWarning)
        trainer.fit([(X[:4], Y[:4]), (X[4:8], Y[4:8]), (X[8:], Y[8:])], epochs=1)
    assert "training (compiled): compiling the training step" in capsys.readouterr().err

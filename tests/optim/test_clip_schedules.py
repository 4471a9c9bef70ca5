"""Gradient clipping and learning-rate schedules against their formulas; the Trainer loop."""
from __future__ import annotations

import math

import numpy as np
import pytest

import spago as sp
from spago import losses, nn, optim
from spago.errors import SpagoError

RNG = np.random.default_rng(3)


def params_with_grads(*grads):
    ps = []
    for g in grads:
        p = nn.Param(np.zeros(g.shape), dtype="float64")
        p.grad = sp.tensor(g)
        ps.append(p)
    return ps


# ----------------------------------------------------------------------------- clipping

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm(norm_type):
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    flat = np.concatenate([g.ravel() for g in grads])
    norm = np.abs(flat).max() if math.isinf(norm_type) else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    ps = params_with_grads(*grads)
    got = optim.clip_grad_norm_(ps, 0.5, norm_type)
    assert got == pytest.approx(norm, rel=1e-12)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * 0.5 / (norm + 1e-7), rtol=1e-12)
    ps = params_with_grads(*grads)
    optim.clip_grad_norm_(ps, norm * 2, norm_type)  # below the limit: untouched
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-12)


def test_clip_grad_value():
    g = RNG.standard_normal((4, 4)) * 3
    (p,) = params_with_grads(g)
    optim.clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -1.0, 1.0))


def test_clip_errors_and_params_without_grad():
    (p,) = params_with_grads(np.ones(3))
    q = nn.Param(np.ones(2))
    assert optim.clip_grad_norm_([p, q], 10.0) == pytest.approx(math.sqrt(3))
    assert q.grad is None
    with pytest.raises(SpagoError, match="max_norm"):
        optim.clip_grad_norm_([p], 0.0)
    with pytest.raises(SpagoError, match="norm_type"):
        optim.clip_grad_norm_([p], 1.0, 0.5)
    with pytest.raises(SpagoError, match="clip_value"):
        optim.clip_grad_value_([p], -1.0)


# ----------------------------------------------------------------------------- schedules

def go_exponential(init, final, times, steps):
    """The Go spaGO's recursion, step by step (it reaches ``final`` at t = times; past it, the Go code would
    divide by zero where rounding leaves lr a hair above ``final``, so the rate stays at ``final``)."""
    lr, out = init, []
    for t in range(1, steps + 1):
        if t > times:
            lr = final
        elif t > 1 and lr > final:
            lr = math.exp(((times - t) * math.log(lr) + math.log(final)) / (times - t + 1))
        out.append(lr)
    return out


def go_hyperbolic(init, final, rate, steps):
    lr, out = init, []
    for t in range(1, steps + 1):
        if t > 1 and rate > 0 and lr > final:
            lr = init / (1 + rate * t)
        out.append(lr)
    return out


def test_exponential_decay_matches_the_go_recursion():
    s = optim.ExponentialDecay(0.1, 0.001, 10)
    want = go_exponential(0.1, 0.001, 10, 14)
    np.testing.assert_allclose([s(t) for t in range(1, 15)], want, rtol=1e-9)
    assert s(1) == 0.1 and s(10) == pytest.approx(0.001) and s(50) == 0.001


@pytest.mark.parametrize("init,final,rate", [(0.1, 0.02, 0.5), (1.0, 0.3, 0.05), (0.1, 0.0, 0.1), (0.1, 0.1, 1.0)])
def test_hyperbolic_decay_matches_the_go_recursion(init, final, rate):
    s = optim.HyperbolicDecay(init, final, rate)
    np.testing.assert_allclose([s(t) for t in range(1, 80)], go_hyperbolic(init, final, rate, 79), rtol=1e-12)


def test_step_cosine_and_warmup():
    s = optim.StepDecay(0.1, step_size=3, gamma=0.5)
    assert [s(t) for t in range(1, 8)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    c = optim.CosineDecay(0.1, total_steps=10, min_lr=0.01)
    for t in (1, 4, 11, 20):
        want = 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * min(t - 1, 10) / 10))
        assert c(t) == pytest.approx(want)
    w = optim.LinearWarmup(c, warmup_steps=4)
    assert [w(t) for t in (1, 2, 4)] == pytest.approx([0.025, 0.05, 0.1])
    assert w(5) == pytest.approx(c(1)) and w(9) == pytest.approx(c(5))
    w0 = optim.LinearWarmup(0.2, warmup_steps=2, start_factor=0.5)
    assert [w0(1), w0(2), w0(3)] == pytest.approx([0.15, 0.2, 0.2])


def test_schedule_apply_and_errors():
    opt = optim.SGD([nn.Param(np.zeros(2))], lr=1.0)
    opt.steps = 3
    assert optim.StepDecay(0.1, 2).apply(opt) == pytest.approx(0.01) and opt.lr == pytest.approx(0.01)
    with pytest.raises(SpagoError, match="count from 1"):
        optim.CosineDecay(0.1, 10)(0)
    with pytest.raises(SpagoError, match="initial rate"):
        optim.ExponentialDecay(0.01, 0.1, 10)
    with pytest.raises(SpagoError, match="warmup_steps"):
        optim.LinearWarmup(0.1, 0)


# ----------------------------------------------------------------------------- Trainer

class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1, dtype="float64", generator=sp.Generator(5))

    def forward(self, x):
        return self.lin(x)


def mse_loss(model, x, y):
    return losses.mse(model(x), y)


def make_batches():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(4):
        x = rng.standard_normal((8, 3))
        out.append((x, x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3))
    return out


@pytest.mark.parametrize("compiled", [False, True])
def test_trainer_fits_and_schedules(compiled):
    model = Regressor()
    trainer = optim.Trainer(model, mse_loss, optim.Adam(model, lr=0.1), compiled=compiled,
                            schedule=optim.LinearWarmup(optim.CosineDecay(0.1, 40), 5), clip_norm=5.0)
    history = trainer.fit(make_batches(), epochs=10, progress=False)
    assert len(history) == 10 and len(trainer.losses) == 40
    assert history[-1] < 0.1 * history[0]
    assert trainer.optimizer.lr == pytest.approx(optim.CosineDecay(0.1, 40)(35))


@pytest.mark.parametrize("clip", [{"clip_norm": 1.0}, {"clip_value": 0.05}, {"clip_value": 0.5, "clip_norm": 0.8}])
def test_trainer_eager_and_compiled_agree(clip):
    models = [Regressor(), Regressor()]
    for m, compiled in zip(models, (False, True)):
        optim.Trainer(m, mse_loss, optim.RMSProp(m, lr=0.01), compiled=compiled, **clip).fit(
            make_batches, epochs=2, progress=False)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        np.testing.assert_allclose(b, a, rtol=1e-9)


def test_trainer_progress_bar(capsys):
    model = Regressor()
    trainer = optim.Trainer(model, mse_loss, optim.SGD(model, lr=0.05))
    history = trainer.fit(iter_batches, epochs=2, progress=True)
    assert len(history) == 2
    assert "training (eager)" in capsys.readouterr().err


def iter_batches():
    """A callable giving a fresh generator (of unknown length) each epoch."""
    return (b for b in make_batches())


def test_trainer_errors():
    model = Regressor()
    with pytest.raises(SpagoError, match="optimiser"):
        optim.Trainer(model, mse_loss, object())
    with pytest.raises(SpagoError, match="epochs"):
        optim.Trainer(model, mse_loss, optim.SGD(model)).fit(make_batches(), epochs=0)
    with pytest.raises(SpagoError, match="no batches"):
        optim.Trainer(model, mse_loss, optim.SGD(model)).fit([], progress=False)

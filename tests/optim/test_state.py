"""Optimizer.state_dict / load_state_dict: a run resumed from the saved state continues bit for bit, for every
optimiser in spago.optim; param_groups and zero_grad(set_to_none=) as in PyTorch; mismatches are named."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import spago as sp
from spago import nn, optim
from spago.errors import DTypeError, ShapeError, SpagoError

RNG = np.random.default_rng(5)
GRADS = [RNG.standard_normal((3, 2)) for _ in range(6)]

# non-default settings, so a load that forgot a hyperparameter would show
MAKERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    "AdaGrad": lambda p: optim.AdaGrad(p, lr=0.05, eps=1e-6),
    "RMSProp": lambda p: optim.RMSProp(p, lr=0.01, decay=0.9, eps=1e-6),
    "Adam": lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-7),
    "AdamW": lambda p: optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
    "RAdam": lambda p: optim.RAdam(p, lr=0.01, betas=(0.8, 0.9)),
    "Lamb": lambda p: optim.Lamb(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.02),
}


class Weights(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.w = nn.Param(np.random.default_rng(seed).standard_normal((3, 2)), dtype="float64")
        self.unused = nn.Param(np.ones(4), dtype="float64")  # never gets a gradient: no state


def run(opt, model, grads):
    for g in grads:
        opt.zero_grad()
        sp.sum(model.w * sp.tensor(g)).backward()
        opt.step()


def test_every_optimiser_is_covered():
    classes = {name for name in optim.__all__
               if inspect.isclass(getattr(optim, name)) and issubclass(getattr(optim, name), optim.Optimizer)
               and getattr(optim, name) is not optim.Optimizer}
    assert classes == set(MAKERS)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_resume_from_state_dict_is_bit_identical(name):
    make = MAKERS[name]
    straight = Weights()
    opt = make(straight)
    run(opt, straight, GRADS)

    first = Weights()
    opt1 = make(first)
    run(opt1, first, GRADS[:3])
    saved_model, saved_opt = first.state_dict(), opt1.state_dict()
    run(opt1, first, GRADS[3:4])  # what happens after the save must not leak into the saved copy

    resumed = Weights(seed=9)
    opt2 = getattr(optim, name)(resumed)  # default hyperparameters: the load restores them
    resumed.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    assert opt2.hyperparameters() == opt1.hyperparameters() and opt2.steps == 3
    run(opt2, resumed, GRADS[3:])
    assert np.array_equal(resumed.w.numpy(), straight.w.numpy())
    for key in opt.state_names:
        assert np.array_equal(resumed.w.state[key], straight.w.state[key])
    assert opt2.state_dict()["steps"] == 6 and 1 not in opt2.state_dict()["state"]


def test_state_dict_contents():
    model = Weights()
    opt = optim.Adam(model, lr=0.01)
    run(opt, model, GRADS[:2])
    state = opt.state_dict()
    assert state["class"] == "Adam" and state["steps"] == 2
    assert state["hyperparameters"] == {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert state["params"] == [{"name": "w", "shape": [3, 2]}, {"name": "unused", "shape": [4]}]
    assert sorted(state["state"][0]) == ["m", "v"]
    assert state["state"][0]["m"] is not model.w.state["m"]  # a copy


def test_sgd_state_follows_momentum():
    model = Weights()
    plain = optim.SGD(model, lr=0.1)
    assert plain.state_names == ()
    mom = optim.SGD(Weights(), lr=0.1, momentum=0.9)
    plain.load_state_dict(mom.state_dict())
    assert plain.momentum == 0.9 and plain.state_names == ("velocity",)


def test_load_errors_name_the_mismatch():
    model = Weights()
    adam = optim.Adam(model)
    run(adam, model, GRADS[:1])
    state = adam.state_dict()
    with pytest.raises(SpagoError, match="the state was saved by Adam"):
        optim.SGD(Weights(), lr=0.1).load_state_dict(state)
    with pytest.raises(SpagoError, match="for 2 parameters, this optimiser has 1"):
        optim.Adam([nn.Param(np.zeros((3, 2)))]).load_state_dict(state)
    other = Weights()
    other.w = nn.Param(np.zeros((2, 2)), dtype="float64")
    with pytest.raises(ShapeError, match=r"1 \(w\): saved unused \(4,\), here \(2, 2\)"):
        optim.Adam(other).load_state_dict(state)
    broken = {**state, "state": {0: {"m": state["state"][0]["m"]}}}
    with pytest.raises(SpagoError, match=r"has state \['m'\], expected \['m', 'v'\]"):
        optim.Adam(Weights()).load_state_dict(broken)
    f32 = {**state, "state": {0: {k: a.astype("float32") for k, a in state["state"][0].items()}}}
    with pytest.raises(DTypeError, match="float32, the parameter float64"):
        optim.Adam(Weights()).load_state_dict(f32)
    with pytest.raises(SpagoError, match="hyperparameters"):
        optim.Adam(Weights()).load_state_dict({**state, "hyperparameters": {"lr": 0.1}})
    with pytest.raises(SpagoError, match="expects what Optimizer.state_dict"):
        optim.Adam(Weights()).load_state_dict({"lr": 0.1})
    target = Weights()
    opt = optim.Adam(target)
    with pytest.raises(SpagoError):
        opt.load_state_dict(broken)
    assert opt.steps == 0 and target.w.state == {}  # a failed load changes nothing


def test_param_groups_are_live():
    model = Weights()
    opt = optim.AdamW(model, lr=0.01)
    (group,) = opt.param_groups
    assert group["params"] == opt.params and group["lr"] == 0.01 and group["weight_decay"] == 0.01
    for g in opt.param_groups:
        g["lr"] = 0.5
    assert opt.lr == 0.5
    opt.param_groups[0]["weight_decay"] = 0.2
    assert opt.weight_decay == 0.2
    with pytest.raises(SpagoError, match="no hyperparameter 'momentum'"):
        opt.param_groups[0]["momentum"] = 0.9
    with pytest.raises(SpagoError, match="positive"):
        opt.param_groups[0]["lr"] = 0.0
    assert "lr" in dict(opt.param_groups[0])


def test_zero_grad_set_to_none():
    model = Weights()
    opt = optim.SGD(model, lr=0.1)
    sp.sum(model.w * 2.0).backward()
    opt.zero_grad(set_to_none=False)
    assert np.array_equal(model.w.grad.numpy(), np.zeros((3, 2))) and model.unused.grad is None
    opt.zero_grad()
    assert model.w.grad is None
    sp.sum(model.w * 2.0).backward()
    model.zero_grad(set_to_none=False)
    assert not model.w.grad.numpy().any()


def test_compiled_step_recompiles_when_hyperparameters_change():
    model = Weights()
    opt = optim.SGD(model, lr=0.1, momentum=0.5)
    step = optim.compile_step(lambda m, g: sp.sum(m.w * g), model, opt, GRADS[0])
    step(GRADS[0])
    before = model.w.numpy().copy()
    opt.param_groups[0]["momentum"] = 0.0  # plain SGD from here: w ← w − lr·g
    step(GRADS[1])
    assert len(step._cache) == 2
    np.testing.assert_allclose(model.w.numpy(), before - 0.1 * GRADS[1], rtol=1e-12)

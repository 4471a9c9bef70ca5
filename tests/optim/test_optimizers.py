"""Each optimiser against a NumPy transcription of its published update rule (1, 3 and 6 steps), eagerly
and through the compiled training step; compiled == eager on a small MLP for every optimiser."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago import losses, nn, optim
from spago.errors import SpagoError

RNG = np.random.default_rng(1)
W0 = RNG.standard_normal((3, 2))
GRADS = [RNG.standard_normal((3, 2)) for _ in range(6)]
CHECK_AT = (1, 3, 6)


# ----------------------------------------------------------------------------- NumPy references

def ref_sgd(w, gs, lr, mu=0.0, nesterov=False):
    v = np.zeros_like(w)
    for g in gs:
        if mu == 0:
            w = w - lr * g
            continue
        prev, v = v, mu * v + lr * g
        w = w - ((1 + mu) * v - mu * prev if nesterov else v)
    return w


def ref_adagrad(w, gs, lr=0.01, eps=1e-8):
    s = np.zeros_like(w)
    for g in gs:
        s = s + g * g
        w = w - lr * g / (np.sqrt(s) + eps)
    return w


def ref_rmsprop(w, gs, lr=0.001, rho=0.95, eps=1e-8):
    v = np.zeros_like(w)
    for g in gs:
        v = rho * v + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(v) + eps)
    return w


def ref_adam(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - lr * wd * w - alpha * m / (np.sqrt(v) + eps)
    return w


def ref_radam(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    m, v = np.zeros_like(w), np.zeros_like(w)
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(gs, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho > 4:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            w = w - lr * r * m_hat * np.sqrt(1 - b2 ** t) / (np.sqrt(v) + eps)
        else:
            w = w - lr * m_hat
    return w


def ref_lamb(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, wd=0.1):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * w
        wn, un = np.linalg.norm(w), np.linalg.norm(u)
        trust = wn / un if wn > 0 and un > 0 else 1.0
        w = w - lr * trust * u
    return w


OPTIMISERS = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda w, gs: ref_sgd(w, gs, 0.1)),
    "sgd_momentum": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda w, gs: ref_sgd(w, gs, 0.1, 0.9)),
    "sgd_nesterov": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                     lambda w, gs: ref_sgd(w, gs, 0.1, 0.9, True)),
    "adagrad": (lambda p: optim.AdaGrad(p), ref_adagrad),
    "rmsprop": (lambda p: optim.RMSProp(p), ref_rmsprop),
    "adam": (lambda p: optim.Adam(p, lr=0.01), lambda w, gs: ref_adam(w, gs, 0.01)),
    "adamw": (lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.1), lambda w, gs: ref_adam(w, gs, 0.01, wd=0.1)),
    "radam": (lambda p: optim.RAdam(p, lr=0.01, betas=(0.9, 0.9)), lambda w, gs: ref_radam(w, gs, 0.01, b2=0.9)),
    "lamb": (lambda p: optim.Lamb(p, lr=0.01), lambda w, gs: ref_lamb(w, gs, 0.01)),
}


class Weights(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Param(W0, dtype="float64")


def linear_loss(model, g):
    """Its gradient with respect to w is g: each step sees the gradient we choose."""
    return sp.sum(model.w * g)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_eager_against_reference(name):
    make, ref = OPTIMISERS[name]
    model = Weights()
    opt = make(model)
    for t, g in enumerate(GRADS, 1):
        opt.zero_grad()
        linear_loss(model, sp.tensor(g)).backward()
        opt.step()
        if t in CHECK_AT:
            np.testing.assert_allclose(model.w.numpy(), ref(W0, GRADS[:t]), rtol=1e-10, atol=1e-12,
                                       err_msg=f"after {t} steps")
    assert opt.steps == len(GRADS)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_compiled_against_reference(name):
    make, ref = OPTIMISERS[name]
    model = Weights()
    opt = make(model)
    step = optim.compile_step(linear_loss, model, opt, GRADS[0])
    for t, g in enumerate(GRADS, 1):
        loss = step(g)
        assert isinstance(loss, float)
        if t in CHECK_AT:
            np.testing.assert_allclose(model.w.numpy(), ref(W0, GRADS[:t]), rtol=1e-10, atol=1e-12,
                                       err_msg=f"after {t} steps")
    assert opt.steps == len(GRADS)
    assert model.state_dict()["w"].tolist() == model.w.numpy().tolist()


# ----------------------------------------------------------------------------- compiled == eager on an MLP

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        g = sp.Generator(7)
        self.hidden, self.out = nn.Linear(4, 8, generator=g), nn.Linear(8, 3, generator=g)

    def forward(self, x):
        return self.out(sp.tanh(self.hidden(x)))


def mlp(dtype="float64"):
    return MLP().to(dtype)


def ce_loss(model, x, y):
    return losses.cross_entropy(model(x), y)


XB = RNG.standard_normal((5, 4))
YB = np.array([0, 2, 1, 1, 0])


def run_pair(make, dtype="float64", steps=3, clip_norm=None, norm_type=2.0, clip_value=None, rtol=1e-5):
    eager_model, compiled_model = mlp(dtype), mlp(dtype)
    eager_opt, compiled_opt = make(eager_model), make(compiled_model)
    x = XB.astype(dtype)
    step = optim.compile_step(ce_loss, compiled_model, compiled_opt, x, YB, clip_norm=clip_norm, norm_type=norm_type,
                              clip_value=clip_value)
    for _ in range(steps):
        eager_opt.zero_grad()
        loss = ce_loss(eager_model, sp.tensor(x), YB)
        loss.backward()
        if clip_value is not None:
            optim.clip_grad_value_(eager_model, clip_value)
        if clip_norm is not None:
            optim.clip_grad_norm_(eager_model, clip_norm, norm_type)
        eager_opt.step()
        compiled_loss = step(x, YB)
        assert compiled_loss == pytest.approx(loss.item(), rel=rtol)
    for (name, a), b in zip(eager_model.state_dict().items(), compiled_model.state_dict().values()):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-7, err_msg=name)
    for pe, pc in zip(eager_model.parameters(), compiled_model.parameters()):
        for k in pe.state:
            np.testing.assert_allclose(pc.state[k], pe.state[k], rtol=rtol, atol=1e-7, err_msg=f"{pe.name} {k}")


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_compiled_matches_eager_mlp(name):
    run_pair(OPTIMISERS[name][0])


@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_compiled_matches_eager_with_clipping(norm_type):
    run_pair(lambda p: optim.SGD(p, lr=0.5, momentum=0.9), clip_norm=0.05, norm_type=norm_type)


def test_compiled_matches_eager_with_value_clipping():
    run_pair(lambda p: optim.Adam(p, lr=0.01), clip_value=0.01, clip_norm=0.02)


def test_compiled_matches_eager_float32():
    run_pair(lambda p: optim.Adam(p, lr=0.01), dtype="float32", rtol=1e-5)


def test_schedule_changes_lr_without_recompiling():
    model = Weights()
    opt = optim.SGD(model, lr=0.1)
    step = opt.compile_step(linear_loss, model, GRADS[0])
    compiled = step.compiled
    expected = W0.copy()
    for t, g in enumerate(GRADS[:3], 1):
        opt.lr = 0.1 / t
        step(g)
        expected = expected - (0.1 / t) * g
    np.testing.assert_allclose(model.w.numpy(), expected, rtol=1e-12)
    assert step.compiled is compiled


def test_replaced_parameter_array_recompiles():
    model = Weights()
    opt = optim.SGD(model, lr=0.1)
    step = optim.compile_step(linear_loss, model, opt, GRADS[0])
    model.w.assign(np.zeros((3, 2)))  # in place: the same step
    first = step.compiled
    step(GRADS[0])
    assert step.compiled is first
    model.flatten_parameters()  # new arrays: the step must not write to the old ones
    with pytest.warns(sp.errors.SpagoWarning, match="parameter's array was replaced"):
        step(GRADS[1])
    np.testing.assert_allclose(model.w.numpy(), -0.1 * (GRADS[0] + GRADS[1]), rtol=1e-12)


# ----------------------------------------------------------------------------- dropout in a compiled step

class DropModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Param(np.ones(64), dtype="float64")
        self.drop = nn.Dropout(0.5)

    def forward(self):
        return sp.sum(self.drop(self.w))


def test_compiled_step_draws_a_new_dropout_mask_each_call():
    model = DropModel()
    opt = optim.SGD(model, lr=1.0)
    step = optim.compile_step(lambda m: m(), model, opt)
    deltas = []
    for _ in range(2):
        before = model.w.numpy().copy()
        step()
        deltas.append(before - model.w.numpy())  # = mask / (1 - p)
    for d in deltas:
        assert set(np.unique(d)) <= {0.0, 2.0} and 0 < np.count_nonzero(d) < 64
    assert not np.array_equal(deltas[0], deltas[1])
    model.eval()  # a new specialisation without dropout
    before = model.w.numpy().copy()
    with pytest.warns(sp.errors.SpagoWarning, match="eval"):
        step()
    np.testing.assert_array_equal(before - model.w.numpy(), np.ones(64))


def test_seed_offset_keeps_eager_dropout_and_reaches_the_interpreter():
    from spago.ops.random import seed_offset

    x = np.ones((3, 5))
    plain = sp.dropout(sp.tensor(x), 0.5, generator=sp.Generator(11)).numpy()
    with seed_offset(sp.tensor(np.int64(0))):
        same = sp.dropout(sp.tensor(x), 0.5, generator=sp.Generator(11)).numpy()
    np.testing.assert_array_equal(same, plain)

    def f(x, s):
        with seed_offset(s):
            return sp.dropout(x, 0.5, generator=sp.Generator(11))

    graph = sp.trace(f, x, np.array(0))
    masks = [sp.ir.interpret(graph, x, np.array(s)) for s in (0, 0, 99)]
    np.testing.assert_array_equal(masks[0], plain)
    np.testing.assert_array_equal(masks[1], masks[0])
    assert not np.array_equal(masks[2], masks[0])


# ----------------------------------------------------------------------------- errors and bookkeeping

def test_optimiser_errors():
    model = Weights()
    with pytest.raises(SpagoError, match="learning rate"):
        optim.SGD(model, lr=0.0)
    with pytest.raises(SpagoError, match="beta1"):
        optim.Adam(model, betas=(1.0, 0.9))
    with pytest.raises(SpagoError, match="Nesterov"):
        optim.SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(SpagoError, match="no parameters"):
        optim.Adam([])
    with pytest.raises(SpagoError, match="Params"):
        optim.Adam([sp.tensor(np.ones(2))])
    with pytest.raises(SpagoError, match="one-element"):
        optim.compile_step(lambda m: m.w * 2.0, model, optim.SGD(model, lr=0.1))


def test_go_spago_defaults():
    model = Weights()
    assert optim.AdaGrad(model).lr == 0.01 and optim.AdaGrad(model).eps == 1e-8
    r = optim.RMSProp(model)
    assert (r.lr, r.decay, r.eps) == (0.001, 0.95, 1e-8)
    for cls in (optim.Adam, optim.AdamW, optim.RAdam, optim.Lamb):
        a = cls(model)
        assert (a.lr, a.beta1, a.beta2, a.eps) == (0.001, 0.9, 0.999, 1e-8)
    assert optim.Lamb(model).weight_decay == 0.1


def test_parameters_without_gradient_are_left_alone():
    model = Weights()
    model.unused = nn.Param(np.ones(2), dtype="float64")
    opt = optim.Adam(model, lr=0.1)
    step = optim.compile_step(linear_loss, model, opt, GRADS[0])
    step(GRADS[0])
    opt.zero_grad()
    linear_loss(model, sp.tensor(GRADS[1])).backward()
    opt.step()
    assert model.unused.numpy().tolist() == [1.0, 1.0]
    assert not any(a.any() for a in model.unused.state.values())


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_compiled_step_writes_parameters_and_state_in_place(name):
    """New values go straight into the Params' and the state's own arrays: no copies after the call."""
    model = mlp()
    opt = OPTIMISERS[name][0](model)
    x = XB.astype("float64")
    step = optim.compile_step(ce_loss, model, opt, x, YB)
    arrays = [p._value for p in model.parameters()]
    step(x, YB)
    from spago.lower.schedule import alias_root

    graph = step.compiled.graph
    for k, source in enumerate(step.compiled._lowered.outputs[1:], 1):  # all but the loss
        writer = alias_root(graph.outputs[k])
        # the one exception: an update fused into its gradient's product (plain SGD), whose epilogue
        # reads the parameter after the product is stored — so it gets its own array and a copy
        assert source.kind == "donated" or writer.attrs.get("pattern") == "matmul", (name, k, writer.format())
    assert all(p._value is a for p, a in zip(model.parameters(), arrays))

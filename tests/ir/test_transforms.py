"""grad and value_and_grad: eagerly, traced into one graph, and against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.testing import numerical_grad

rng = np.random.default_rng(0)
PARAMS = {"w1": rng.standard_normal((4, 5)) * 0.5, "b1": np.zeros(5), "w2": rng.standard_normal((5, 1)) * 0.5}
X, Y = rng.standard_normal((8, 4)), rng.standard_normal((8, 1))


def loss(params, x, y):
    h = sp.tanh(x @ params["w1"] + params["b1"])
    return ((h @ params["w2"] - y) ** 2).mean()


def test_value_and_grad_eager_equals_traced_graph():
    value, grads = sp.value_and_grad(loss)(PARAMS, X, Y)
    graph = sp.trace(sp.value_and_grad(loss), PARAMS, X, Y)
    graph.verify()
    ops = graph.op_counts()
    assert ops["tanh"] == 1 and ops["matmul"] >= 4  # forward and backward in one graph
    v2, g2 = sp.ir.interpret(graph, PARAMS, X, Y)
    np.testing.assert_allclose(v2, value.numpy(), rtol=1e-12)
    for k in PARAMS:
        np.testing.assert_allclose(g2[k], grads[k].numpy(), rtol=1e-10, atol=1e-12)


def test_gradients_match_finite_differences():
    grads = sp.grad(loss)(PARAMS, X, Y)
    keys = list(PARAMS)
    flat = [PARAMS[k].copy() for k in keys]
    numeric = numerical_grad(lambda *ts: loss(dict(zip(keys, ts)), sp.tensor(X), sp.tensor(Y)), flat, np.ones(()))
    for k, n in zip(keys, numeric):
        np.testing.assert_allclose(grads[k].numpy(), n, rtol=1e-6, atol=1e-8)


def test_argnums_tuple_and_has_aux():
    def f(a, b):
        out = (a * b).sum()
        return out, {"double": out * 2.0}

    (value, aux), (ga, gb) = sp.value_and_grad(f, argnums=(0, 1), has_aux=True)(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert value.item() == 11.0 and aux["double"].item() == 22.0
    assert ga.tolist() == [3.0, 4.0] and gb.tolist() == [1.0, 2.0]
    g, aux = sp.grad(f, has_aux=True)(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert g.tolist() == [3.0, 4.0]


def test_unused_parameters_get_zero_gradients():
    g = sp.grad(lambda p: (p["used"] * 2.0).sum())({"used": np.ones(2), "unused": np.ones(3)})
    assert g["unused"].tolist() == [0.0, 0.0, 0.0] and g["used"].tolist() == [2.0, 2.0]


def test_errors():
    with pytest.raises(sp.GradError, match="one-element"):
        sp.grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(sp.GradError, match="int64"):
        sp.grad(lambda x: (x * 2).sum())(np.ones(3, np.int64))
    with pytest.raises(sp.GradError, match="out of range"):
        sp.grad(lambda x: x.sum(), argnums=2)(np.ones(3))
    with pytest.raises(sp.GradError, match="must return a Tensor"):
        sp.grad(lambda x: 3.0)(np.ones(3))


def test_a_training_step_is_one_graph():
    def step(params, x, y, lr=0.1):
        g = sp.grad(loss)(params, x, y)
        return {k: params[k] - lr * g[k] for k in params}

    graph = sp.trace(step, PARAMS, X, Y)
    new = sp.ir.interpret(graph, PARAMS, X, Y)
    eager = step({k: sp.tensor(v) for k, v in PARAMS.items()}, X, Y)
    for k in PARAMS:
        np.testing.assert_allclose(new[k], eager[k].numpy(), rtol=1e-12)

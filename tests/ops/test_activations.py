"""Activations built from primitives: PyTorch's gradients at the kinks, no overflow far out, eager and
compiled alike, and no primitive of their own."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.errors import DTypeError

# (function, inputs at its kinks, the gradient PyTorch 2.13 gives there)
KINKS = [
    ("relu6", sp.relu6, [0.0, 6.0], [0.0, 0.0]),
    ("hard_tanh", sp.hard_tanh, [-1.0, 1.0], [0.0, 0.0]),
    ("hard_tanh_bounds", lambda x: sp.hard_tanh(x, -2.0, 0.5), [-2.0, 0.5, 0.0], [0.0, 0.0, 1.0]),
    ("hard_sigmoid", sp.hard_sigmoid, [-2.5, 2.5, 0.0], [0.0, 0.0, 0.2]),
    ("threshold", lambda x: sp.threshold(x, 0.3, -1.0), [0.3], [0.0]),
    ("elu", lambda x: sp.elu(x, 1.5), [0.0], [1.5]),
    ("celu", lambda x: sp.celu(x, 0.7), [0.0], [1.0]),
    ("selu", sp.selu, [0.0], [1.7580993408473766]),
    ("softplus", lambda x: sp.softplus(x, beta=2.0, threshold=3.0), [0.0, 1.5], [0.5, 0.9525741268224333]),
    ("log_sigmoid", sp.log_sigmoid, [0.0], [0.5]),
    ("softsign", sp.softsign, [0.0], [1.0]),
    ("gelu", sp.gelu, [0.0], [0.5]),
    ("gelu_tanh", lambda x: sp.gelu(x, approximate="tanh"), [0.0], [0.5]),
    ("silu", sp.silu, [0.0], [0.5]),
    ("mish", sp.mish, [0.0], [0.6]),
]


@pytest.mark.parametrize("name,fn,at,want", KINKS, ids=[k[0] for k in KINKS])
def test_gradient_at_the_kinks_is_pytorchs(name, fn, at, want):
    x = np.array(at)
    grad = sp.grad(lambda v: fn(v).sum())
    np.testing.assert_allclose(grad(sp.tensor(x)).numpy(), want, rtol=1e-7, atol=1e-12)
    compiled = sp.compile(grad, x.astype(np.float32), cache=False)
    np.testing.assert_allclose(compiled(x.astype(np.float32)), want, rtol=1e-5, atol=1e-7)


FAR = np.array([-200.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 200.0], np.float32)
STABLE = {
    "softplus": (sp.softplus, lambda x: np.logaddexp(0, x)),
    "softplus_beta": (lambda x: sp.softplus(x, beta=3.0, threshold=50.0), lambda x: np.logaddexp(0, 3 * x) / 3),
    "log_sigmoid": (sp.log_sigmoid, lambda x: -np.logaddexp(0, -x)),
    "elu": (sp.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "mish": (sp.mish, lambda x: x * np.tanh(np.logaddexp(0, x))),
    "silu": (sp.silu, lambda x: x * np.exp(-np.logaddexp(0, -x))),
}


@pytest.mark.parametrize("name", list(STABLE))
def test_far_out_values_and_gradients_stay_finite(name):
    fn, ref = STABLE[name]
    x64 = FAR.astype(np.float64)
    np.testing.assert_allclose(fn(sp.tensor(x64)).numpy(), ref(x64), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(sp.compile(fn, FAR, cache=False)(FAR), ref(x64), rtol=2e-6, atol=1e-30)
    grad = sp.grad(lambda v: fn(v).sum())
    assert np.isfinite(grad(sp.tensor(x64)).numpy()).all()
    assert np.isfinite(sp.compile(grad, FAR, cache=False)(FAR)).all()


REBUILT = ["gelu", "silu", "elu", "celu", "selu", "softplus", "mish", "softsign", "hard_sigmoid", "hard_tanh",
           "relu6", "threshold", "log_sigmoid"]


def test_rebuilt_activations_are_no_primitives():
    assert not set(REBUILT) & set(sp.ops.OPS)
    x = sp.spec((3,))
    assert "softplus" not in sp.trace(sp.mish, x).op_counts()


@pytest.mark.parametrize("name", REBUILT)
def test_an_integer_tensor_is_refused_by_name(name):
    fn = getattr(sp, name)
    with pytest.raises(DTypeError, match=f"^{name}: expected a floating tensor"):
        fn(sp.tensor([1, 2]), *([0.0, 0.0] if name == "threshold" else []))


def test_nan_passes_through():
    x = np.array([np.nan, 1.0], np.float32)
    for name in REBUILT:
        fn = getattr(sp, name)
        fn = (lambda v: sp.threshold(v, 0.0, 0.0)) if name == "threshold" else fn
        assert np.isnan(fn(sp.tensor(x)).numpy()[0]), name
        assert np.isnan(sp.compile(fn, x, cache=False)(x)[0]), name

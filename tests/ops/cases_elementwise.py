"""Op cases for the elementwise primitives and activations (see cases.py for the format)."""
from __future__ import annotations

import numpy as np
import scipy.special as ss
from hypothesis import strategies as st

import spago as sp

from .cases import OpCase

SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def shape(draw, max_rank: int = 3) -> tuple:
    return tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=max_rank)))


def unary_shapes(draw):
    return [shape(draw)]


def broadcast_pair(draw):
    """Two shapes that broadcast, with size-1 and missing axes on either side."""
    out = shape(draw)
    a = tuple(d if draw(st.booleans()) else 1 for d in out)
    b = tuple(d if draw(st.booleans()) else 1 for d in out)
    a = a[draw(st.integers(0, len(a))):]
    b = b[draw(st.integers(0, len(b))):]
    return [a, b]


def away_from(*kinks, margin=0.1, low=-2.0, high=2.0):
    """Inputs drawn uniformly but kept ``margin`` away from kinks, so finite differences are valid."""
    def make(rng, shapes, dtype):
        out = []
        for s in shapes:
            x = rng.uniform(low, high, size=s)
            for k in kinks:
                near = np.abs(x - k) < margin
                x = np.where(near, k + np.sign(x - k + 1e-12) * margin * 2, x)
            out.append(x.astype(dtype))
        return out
    return make


def positive(low=0.2, high=3.0):
    def make(rng, shapes, dtype):
        return [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]
    return make


def apart(rng, shapes, dtype):
    """Two operands on interleaved grids, never closer than 0.25: maximum/minimum stay differentiable."""
    a = np.round(rng.uniform(-2, 2, size=shapes[0]) * 2) / 2 + 0.25
    b = np.round(rng.uniform(-2, 2, size=shapes[1]) * 2) / 2
    return [a.astype(dtype), b.astype(dtype)]


def _gelu(x):
    return 0.5 * x * (1 + ss.erf(x / np.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


UNARY = [
    ("neg", sp.neg, np.negative, {}),
    ("abs", sp.abs, np.abs, dict(make_inputs=away_from(0))),
    ("sign", sp.sign, np.sign, dict(make_inputs=away_from(0), grad_argnums=())),
    ("exp", sp.exp, np.exp, {}),
    ("expm1", sp.expm1, np.expm1, {}),
    ("log", sp.log, np.log, dict(make_inputs=positive())),
    ("log1p", sp.log1p, np.log1p, dict(make_inputs=positive(-0.5, 3.0))),
    ("sqrt", sp.sqrt, np.sqrt, dict(make_inputs=positive())),
    ("rsqrt", sp.rsqrt, lambda x: 1 / np.sqrt(x), dict(make_inputs=positive())),
    ("square", sp.square, np.square, {}),
    ("reciprocal", sp.reciprocal, np.reciprocal, dict(make_inputs=positive())),
    ("sin", sp.sin, np.sin, {}),
    ("cos", sp.cos, np.cos, {}),
    ("tan", sp.tan, np.tan, dict(low=-1.2, high=1.2, rtol32=2e-5)),
    ("tanh", sp.tanh, np.tanh, {}),
    ("sigmoid", sp.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {}),
    ("erf", sp.erf, ss.erf, {}),
    ("relu", sp.relu, lambda x: np.maximum(x, 0), dict(make_inputs=away_from(0))),
    ("relu6", sp.relu6, lambda x: np.clip(x, 0, 6), dict(make_inputs=away_from(0, 6, low=-2, high=8))),
    ("leaky_relu", lambda x: sp.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), dict(make_inputs=away_from(0))),
    ("elu", lambda x: sp.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), dict(make_inputs=away_from(0))),
    ("celu", lambda x: sp.celu(x, 0.7), lambda x: np.maximum(0, x) + np.minimum(0, 0.7 * np.expm1(x / 0.7)),
     dict(make_inputs=away_from(0))),
    ("selu", sp.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)), dict(make_inputs=away_from(0))),
    ("gelu", sp.gelu, _gelu, {}),
    ("gelu_tanh", lambda x: sp.gelu(x, approximate="tanh"), _gelu_tanh, {}),
    ("silu", sp.silu, lambda x: x / (1 + np.exp(-x)), {}),
    ("mish", sp.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), {}),
    ("softplus", lambda x: sp.softplus(x, beta=2.0, threshold=3.0), lambda x: _softplus(x, 2.0, 3.0),
     dict(make_inputs=away_from(1.5))),
    ("softsign", sp.softsign, lambda x: x / (1 + np.abs(x)), dict(make_inputs=away_from(0))),
    ("softshrink", lambda x: sp.softshrink(x, 0.5), lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
     dict(make_inputs=away_from(-0.5, 0.5))),
    ("hard_sigmoid", sp.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1), dict(make_inputs=away_from(-2.5, 2.5, low=-4, high=4))),
    ("hard_tanh", sp.hard_tanh, lambda x: np.clip(x, -1, 1), dict(make_inputs=away_from(-1, 1))),
    ("threshold", lambda x: sp.threshold(x, 0.3, -1.0), lambda x: np.where(x > 0.3, x, -1.0), dict(make_inputs=away_from(0.3))),
    ("log_sigmoid", sp.log_sigmoid, lambda x: -np.log1p(np.exp(-x)), {}),
    ("clip", lambda x: sp.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), dict(make_inputs=away_from(-0.5, 0.7))),
    ("cast_f_to_i", lambda x: sp.cast(x * 3.0, "int64"), lambda x: (x * 3.0).astype(np.int64), dict(grad_argnums=())),
]

BINARY = [
    ("add", lambda a, b: a + b, np.add, {}),
    ("sub", lambda a, b: a - b, np.subtract, {}),
    ("mul", lambda a, b: a * b, np.multiply, {}),
    ("div", lambda a, b: a / b, np.divide, dict(make_inputs=lambda r, s, d: [r.uniform(-2, 2, s[0]).astype(d),
                                                                              r.uniform(0.5, 2, s[1]).astype(d)])),
    ("pow", lambda a, b: a ** b, np.power, dict(make_inputs=lambda r, s, d: [r.uniform(0.5, 2, s[0]).astype(d),
                                                                               r.uniform(-1.5, 1.5, s[1]).astype(d)],
                                                rtol32=3e-5)),
    ("maximum", sp.maximum, np.maximum, dict(make_inputs=apart)),
    ("minimum", sp.minimum, np.minimum, dict(make_inputs=apart)),
]
COMPARE = [("eq", lambda a, b: a == b, np.equal), ("ne", lambda a, b: a != b, np.not_equal),
           ("lt", lambda a, b: a < b, np.less), ("le", lambda a, b: a <= b, np.less_equal),
           ("gt", lambda a, b: a > b, np.greater), ("ge", lambda a, b: a >= b, np.greater_equal)]


def _where_shapes(pair: list) -> list:
    """A condition of the full broadcast shape, then the two branches."""
    return [tuple(np.broadcast_shapes(*pair))] + pair


def _grid(rng, shapes, dtype):
    """Values on a coarse grid, so equalities actually happen."""
    return [(rng.integers(-2, 3, size=s) / 2).astype(dtype) for s in shapes]


CASES = (
    [OpCase(name, fn, ref, unary_shapes, ops=(name.split("_")[0] if name in ("gelu_tanh",) else
                                              "cast" if name.startswith("cast") else name,), **opts)
     for name, fn, ref, opts in UNARY]
    + [OpCase(name, fn, ref, broadcast_pair, ops=(name,), **opts) for name, fn, ref, opts in BINARY]
    + [OpCase(name, fn, ref, broadcast_pair, ops=(name,), make_inputs=_grid, grad_argnums=())
       for name, fn, ref in COMPARE]
    + [
        OpCase("where", lambda c, a, b: sp.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
               lambda draw: _where_shapes(broadcast_pair(draw)), ops=("where", "gt"), grad_argnums=(1, 2)),
        OpCase("swish_beta", lambda x, beta: sp.swish(x, beta), lambda x, beta: x / (1 + np.exp(-beta * x)),
               lambda draw: [shape(draw), ()], ops=("mul", "sigmoid")),
        OpCase("scalar_chain", lambda x: (x * 2.0 + 1.0) / 3.0 - 0.5, lambda x: (x * 2.0 + 1.0) / 3.0 - 0.5,
               unary_shapes, ops=("mul", "add", "div", "sub")),
        OpCase("cast_roundtrip", lambda x: sp.cast(sp.cast(x, "float64"), "float32") * 1.0,
               lambda x: x.astype(np.float64).astype(np.float32) * 1.0, unary_shapes, ops=("cast",),
               grad_argnums=()),
    ]
)

"""Activation functions, each an elementwise primitive with its derivative written with ops.

The set is the Go spaGO's: relu, leaky_relu, elu, celu, selu, gelu (erf and tanh forms), swish/silu
(and swish with a trainable beta), mish, softplus, softsign, softshrink, hard_sigmoid, hard_tanh,
threshold, relu6, log_sigmoid.
"""
from __future__ import annotations

import math

from typing import TYPE_CHECKING

import numpy as np

from ._types import TensorLike
from .elementwise import _erf_kernel, _sigmoid_kernel, _t, apply_unary, cast, erf, exp, sigmoid, tanh, unary, where

if TYPE_CHECKING:
    from ..tensor import Tensor

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _mask(cond, like):
    return cast(cond, like.dtype)


def _softplus_kernel(x, beta=1.0, threshold=20.0):
    bx = beta * x
    soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / beta
    return np.where(bx > threshold, x, soft)


relu_op = unary("relu", lambda x: np.maximum(x, 0), lambda g, y, x: (g * _mask(x > 0, g),))
relu6_op = unary("relu6", lambda x: np.clip(x, 0, 6), lambda g, y, x: (g * _mask(x > 0, g) * _mask(x < 6, g),))
leaky_relu_op = unary("leaky_relu", lambda x, alpha: np.where(x > 0, x, alpha * x),
                      lambda g, y, x, alpha: (where(x > 0, g, g * alpha),))
elu_op = unary("elu", lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
               lambda g, y, x, alpha: (where(x > 0, g, g * (y + alpha)),))
celu_op = unary("celu", lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha)),
                lambda g, y, x, alpha: (where(x > 0, g, g * (y / alpha + 1.0)),))
selu_op = unary("selu", lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
                lambda g, y, x: (where(x > 0, g * SELU_SCALE, g * (y + SELU_SCALE * SELU_ALPHA)),))


def _gelu_kernel(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + _erf_kernel(x * _INV_SQRT_2))


def _gelu_grad(g, y, x, approximate):
    if approximate == "tanh":
        t = tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
        return (g * d,)
    cdf = 0.5 * (1.0 + erf(x * _INV_SQRT_2))
    pdf = exp(-0.5 * x * x) * _INV_SQRT_2PI
    return (g * (cdf + x * pdf),)


gelu_op = unary("gelu", _gelu_kernel, _gelu_grad)
silu_op = unary("silu", lambda x: x * _sigmoid_kernel(x), lambda g, y, x: (g * (sigmoid(x) * (1.0 + x - y)),))


def _mish_grad(g, y, x):
    sp = softplus(x)
    t = tanh(sp)
    return (g * (t + x * (1.0 - t * t) * sigmoid(x)),)


mish_op = unary("mish", lambda x: x * np.tanh(_softplus_kernel(x)), _mish_grad)
softplus_op = unary("softplus", _softplus_kernel,
                    lambda g, y, x, beta, threshold: (where(x * beta > threshold, g, g * sigmoid(x * beta)),))
softsign_op = unary("softsign", lambda x: x / (1.0 + np.abs(x)),
                    lambda g, y, x: (g / ((1.0 + abs(x)) * (1.0 + abs(x))),))
softshrink_op = unary("softshrink",
                      lambda x, lambd: np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0)),
                      lambda g, y, x, lambd: (g * _mask(abs(x) > lambd, g),))
hard_sigmoid_op = unary("hard_sigmoid", lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
                        lambda g, y, x: (g * _mask(abs(x) < 2.5, g) * 0.2,))
hard_tanh_op = unary("hard_tanh", lambda x: np.clip(x, -1.0, 1.0),
                     lambda g, y, x: (g * _mask(abs(x) < 1.0, g),))
threshold_op = unary("threshold", lambda x, threshold, value: np.where(x > threshold, x, value),
                     lambda g, y, x, threshold, value: (g * _mask(x > threshold, g),))
log_sigmoid_op = unary("log_sigmoid", lambda x: -_softplus_kernel(-x), lambda g, y, x: (g * sigmoid(-x),))


def relu(x: TensorLike) -> Tensor:
    """max(x, 0)."""
    return apply_unary(relu_op, x)


def relu6(x: TensorLike) -> Tensor:
    """min(max(x, 0), 6)."""
    return apply_unary(relu6_op, x)


def leaky_relu(x: TensorLike, alpha: float = 0.01) -> Tensor:
    """x for x > 0, alpha·x otherwise."""
    return apply_unary(leaky_relu_op, x, alpha=float(alpha))


def elu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha·(exp(x) − 1) otherwise (Clevert et al., 2015)."""
    return apply_unary(elu_op, x, alpha=float(alpha))


def celu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """max(0, x) + min(0, alpha·(exp(x/alpha) − 1)) (Barron, 2017)."""
    if alpha == 0:
        from ..errors import SpagoError

        raise SpagoError("celu: alpha must be non-zero")
    return apply_unary(celu_op, x, alpha=float(alpha))


def selu(x: TensorLike) -> Tensor:
    """scale·elu(x, alpha) with the self-normalising constants (Klambauer et al., 2017)."""
    return apply_unary(selu_op, x)


def gelu(x: TensorLike, approximate: str = "none") -> Tensor:
    """x·Φ(x) (Hendrycks & Gimpel, 2016); ``approximate="tanh"`` gives the tanh form (BERT's gelu_new)."""
    if approximate not in ("none", "tanh"):
        from ..errors import SpagoError

        raise SpagoError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply_unary(gelu_op, x, approximate=approximate)


def silu(x: TensorLike) -> Tensor:
    """x·sigmoid(x) (Ramachandran et al., 2017: swish with beta = 1)."""
    return apply_unary(silu_op, x)


def swish(x: TensorLike, beta: float | None=None) -> Tensor:
    """x·sigmoid(beta·x); ``beta`` may be a trainable tensor (then its gradient is computed too)."""
    if beta is None:
        return silu(x)
    x = _t(x)
    return x * sigmoid(_t(beta, like=x) * x)


def mish(x: TensorLike) -> Tensor:
    """x·tanh(softplus(x)) (Misra, 2019)."""
    return apply_unary(mish_op, x)


def softplus(x: TensorLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """(1/beta)·log(1 + exp(beta·x)), linear once beta·x > threshold."""
    return apply_unary(softplus_op, x, beta=float(beta), threshold=float(threshold))


def softsign(x: TensorLike) -> Tensor:
    """x / (1 + |x|)."""
    return apply_unary(softsign_op, x)


def softshrink(x: TensorLike, lambd: float = 0.5) -> Tensor:
    """x − λ above λ, x + λ below −λ, 0 between."""
    if lambd < 0:
        from ..errors import SpagoError

        raise SpagoError(f"softshrink: lambda must be >= 0, got {lambd}")
    return apply_unary(softshrink_op, x, lambd=float(lambd))


def hard_sigmoid(x: TensorLike) -> Tensor:
    """clip(0.2·x + 0.5, 0, 1), as in the Go spaGO."""
    return apply_unary(hard_sigmoid_op, x)


def hard_tanh(x: TensorLike) -> Tensor:
    """clip(x, −1, 1)."""
    return apply_unary(hard_tanh_op, x)


def threshold(x: TensorLike, threshold: float, value: float) -> Tensor:
    """x where x > threshold, else value."""
    return apply_unary(threshold_op, x, threshold=float(threshold), value=float(value))


def log_sigmoid(x: TensorLike) -> Tensor:
    """log(sigmoid(x)) = −softplus(−x), stable for large |x|."""
    return apply_unary(log_sigmoid_op, x)

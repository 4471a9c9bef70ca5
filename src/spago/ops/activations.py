"""Activation functions: three primitives (relu, leaky_relu, softshrink) and composites of primitives.

The set is the Go spaGO's: relu, leaky_relu, elu, celu, selu, gelu (erf and tanh forms), swish/silu
(and swish with a trainable beta), mish, softplus, softsign, softshrink, hard_sigmoid, hard_tanh,
threshold, relu6, log_sigmoid. A composite's gradient is its primitives' gradients and its compiled
form is one fused loop (or a product's epilogue); docs/eager.md gives the measurements behind which
activations stay primitives.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..errors import DTypeError, SpagoError
from ._types import TensorLike
from .elementwise import (
    _t, abs, apply_unary, cast, erf, exp, expm1, log1p, maximum, minimum, sigmoid, tanh, unary, where,
)

if TYPE_CHECKING:
    from ..tensor import Tensor

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_CUBIC = 0.044715                   # Hendrycks & Gimpel's tanh approximation: x + 0.044715·x³
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def _mask(cond, like):
    return cast(cond, like.dtype)


def _float(x: TensorLike, name: str) -> Tensor:
    """``x`` as a Tensor, refused (naming the activation) unless it holds floats."""
    x = _t(x)
    if not dtypes.is_float(x.dtype):
        raise DTypeError(f"{name}: expected a floating tensor (float32 or float64), got {x.dtype.name}")
    return x


relu_op = unary("relu", lambda x: np.maximum(x, 0), lambda g, y, x: (g * _mask(x > 0, g),))
leaky_relu_op = unary("leaky_relu", lambda x, alpha: np.where(x > 0, x, alpha * x),
                      lambda g, y, x, alpha: (where(x > 0, g, g * alpha),))
softshrink_op = unary("softshrink",
                      lambda x, lambd: np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0)),
                      lambda g, y, x, lambd: (g * _mask(abs(x) > lambd, g),))


def relu(x: TensorLike) -> Tensor:
    """max(x, 0)."""
    return apply_unary(relu_op, x)


def leaky_relu(x: TensorLike, alpha: float = 0.01) -> Tensor:
    """x for x > 0, alpha·x otherwise."""
    return apply_unary(leaky_relu_op, x, alpha=float(alpha))


def softshrink(x: TensorLike, lambd: float = 0.5) -> Tensor:
    """x − λ above λ, x + λ below −λ, 0 between."""
    if lambd < 0:
        raise SpagoError(f"softshrink: lambda must be >= 0, got {lambd}")
    return apply_unary(softshrink_op, x, lambd=float(lambd))


# ----------------------------------------------------------------------------- composites

def _clamp(x: Tensor, lo: float, hi: float) -> Tensor:
    """x limited to [lo, hi] with a zero gradient at the bounds (PyTorch's hardtanh), NaN kept."""
    return where(x <= lo, lo, where(x >= hi, hi, x))


def _exp_linear(x: Tensor, alpha: float, inner: float = 1.0) -> Tensor:
    """x for x > 0, alpha·(exp(inner·x) − 1) otherwise; exp only ever sees x <= 0 (no overflow, no NaN
    gradient), and at 0 the gradient is the left one, alpha·inner, as PyTorch's."""
    negative = where(x > 0, 0.0, x)
    return where(x > 0, x, alpha * expm1(negative * inner if inner != 1.0 else negative))


def _softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(−|x|)): no overflow on either side."""
    return maximum(x, 0.0) + log1p(exp(-abs(x)))


def relu6(x: TensorLike) -> Tensor:
    """min(max(x, 0), 6)."""
    return _clamp(_float(x, "relu6"), 0.0, 6.0)


def elu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha·(exp(x) − 1) otherwise (Clevert et al., 2015)."""
    return _exp_linear(_float(x, "elu"), float(alpha))


def celu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """max(0, x) + min(0, alpha·(exp(x/alpha) − 1)) (Barron, 2017)."""
    if alpha == 0:
        raise SpagoError("celu: alpha must be non-zero")
    return _exp_linear(_float(x, "celu"), float(alpha), 1.0 / float(alpha))


def selu(x: TensorLike) -> Tensor:
    """scale·elu(x, alpha) with the self-normalising constants (Klambauer et al., 2017)."""
    return SELU_SCALE * _exp_linear(_float(x, "selu"), SELU_ALPHA)


def gelu(x: TensorLike, approximate: str = "none") -> Tensor:
    """x·Φ(x) = x·(1 + erf(x/√2))/2 (Hendrycks & Gimpel, 2016); ``approximate="tanh"`` gives the tanh form
    x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2 (BERT's gelu_new)."""
    if approximate not in ("none", "tanh"):
        raise SpagoError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _float(x, "gelu")
    if approximate == "tanh":
        return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * (x * x * x))))
    return 0.5 * x * (1.0 + erf(x * INV_SQRT_2))


def silu(x: TensorLike) -> Tensor:
    """x·sigmoid(x) (Ramachandran et al., 2017: swish with beta = 1)."""
    x = _float(x, "silu")
    return x * sigmoid(x)


def swish(x: TensorLike, beta: float | None=None) -> Tensor:
    """x·sigmoid(beta·x); ``beta`` may be a trainable tensor (then its gradient is computed too)."""
    if beta is None:
        return silu(x)
    x = _t(x)
    return x * sigmoid(_t(beta, like=x) * x)


def mish(x: TensorLike) -> Tensor:
    """x·tanh(softplus(x)) (Misra, 2019)."""
    x = _float(x, "mish")
    return x * tanh(softplus(x))


def softplus(x: TensorLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """(1/beta)·log(1 + exp(beta·x)), linear once beta·x > threshold (PyTorch's)."""
    x = _float(x, "softplus")
    beta = float(beta)
    if beta == 1.0:
        return where(x > threshold, x, _softplus(x))
    bx = x * beta
    return where(bx > threshold, x, _softplus(bx) / beta)


def softsign(x: TensorLike) -> Tensor:
    """x / (1 + |x|)."""
    x = _float(x, "softsign")
    return x / (1.0 + abs(x))


def hard_sigmoid(x: TensorLike) -> Tensor:
    """clip(0.2·x + 0.5, 0, 1), as in the Go spaGO."""
    return _clamp(_float(x, "hard_sigmoid") * 0.2 + 0.5, 0.0, 1.0)


def hard_tanh(x: TensorLike, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clip(x, min_val, max_val), −1 and 1 by default (PyTorch's hardtanh)."""
    if min_val > max_val:
        raise SpagoError(f"hard_tanh: min_val {min_val} > max_val {max_val}")
    return _clamp(_float(x, "hard_tanh"), float(min_val), float(max_val))


def threshold(x: TensorLike, threshold: float, value: float) -> Tensor:
    """x where x > threshold, else value (NaN stays NaN, as PyTorch's)."""
    x = _float(x, "threshold")
    return where(x <= float(threshold), float(value), x)


def log_sigmoid(x: TensorLike) -> Tensor:
    """log(sigmoid(x)) = min(x, 0) − log1p(exp(−|x|)), stable for large |x|."""
    x = _float(x, "log_sigmoid")
    return minimum(x, 0.0) - log1p(exp(-abs(x)))

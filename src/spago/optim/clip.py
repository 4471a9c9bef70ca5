"""Gradient clipping: by value, or by the norm of all gradients together (Pascanu et al., 2013).

`clip_by_value` and `clip_by_norm` are pure functions on lists of gradient tensors, written with ops, so
the compiled training step uses them too; the ``_`` forms apply them to parameters' ``.grad`` in place.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import ops
from ..autograd import no_grad
from ..errors import SpagoError
from ..tensor import Tensor
from .optimizer import collect_params

EPS = 1e-7  # as in the Go spaGO's NormClipper


def _norm_type(norm_type: float) -> float:
    norm_type = float(norm_type)
    if not (norm_type >= 1.0 or math.isinf(norm_type)) or math.isnan(norm_type):
        raise SpagoError(f"gradient clipping: norm_type must be >= 1 or inf, got {norm_type}")
    return norm_type


def total_norm(grads: Sequence[Tensor], norm_type: float = 2.0) -> Tensor:
    """‖(g₁, …, g_n)‖_p over all entries of all gradients: (Σ |g|ᵖ)^(1/p), or max |g| for p = ∞."""
    norm_type = _norm_type(norm_type)
    if not grads:
        raise SpagoError("gradient clipping: there are no gradients")
    if math.isinf(norm_type):
        parts = [ops.max(ops.abs(g)) for g in grads]
        out = parts[0]
        for q in parts[1:]:
            out = ops.maximum(out, q)
        return out
    if norm_type == 2.0:
        parts = [ops.sum(g * g) for g in grads]
    else:
        parts = [ops.sum(ops.pow(ops.abs(g), norm_type)) for g in grads]
    out = parts[0]
    for q in parts[1:]:
        out = out + q
    return ops.sqrt(out) if norm_type == 2.0 else ops.pow(out, 1.0 / norm_type)


def clip_by_norm(grads: Sequence[Tensor], max_norm: float, norm_type: float = 2.0) -> tuple[list, Tensor]:
    """Scale all gradients by min(1, max_norm / (‖g‖ + 1e-7)); returns (clipped gradients, total norm)."""
    if not max_norm > 0:
        raise SpagoError(f"gradient clipping: max_norm must be positive, got {max_norm}")
    norm = total_norm(grads, norm_type)
    coef = ops.minimum(float(max_norm) / (norm + EPS), 1.0)
    return [g * ops.cast(coef, g.dtype) for g in grads], norm


def clip_by_value(grads: Sequence[Tensor], clip_value: float) -> list:
    """Limit every gradient entry to [−clip_value, clip_value]."""
    if not clip_value > 0:
        raise SpagoError(f"gradient clipping: clip_value must be positive, got {clip_value}")
    return [ops.clip(g, -float(clip_value), float(clip_value)) for g in grads]


def _with_grads(params: Any) -> list:
    return [p for p in collect_params(params) if p.grad is not None]


def clip_grad_value_(params: Any, clip_value: float) -> None:
    """Clip the ``.grad`` of each parameter (a Module or Params) to [−clip_value, clip_value], in place."""
    params = _with_grads(params)
    with no_grad():
        for p, g in zip(params, clip_by_value([p.grad.detach() for p in params], clip_value)):
            p.grad = g


def clip_grad_norm_(params: Any, max_norm: float, norm_type: float = 2.0) -> float:
    """Rescale the ``.grad`` of the parameters so their joint norm is at most ``max_norm``; returns the
    norm before clipping."""
    params = _with_grads(params)
    if not params:
        return 0.0
    with no_grad():
        grads, norm = clip_by_norm([p.grad.detach() for p in params], max_norm, norm_type)
        for p, g in zip(params, grads):
            p.grad = g
    return float(norm.item())

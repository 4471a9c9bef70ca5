"""Lamb (You et al., 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes")."""
from __future__ import annotations

from typing import Any

from .. import ops
from .adam import moments
from .optimizer import Optimizer, check_beta, check_nonnegative


class Lamb(Optimizer):
    """Adam's step plus weight decay, rescaled per parameter by a trust ratio (the paper's Algorithm 2,
    with φ the identity):

        m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
        u = (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) + λ·θ
        θ ← θ − lr · (‖θ‖ / ‖u‖) · u          (trust ratio 1 when either norm is 0)

    Defaults (Go spaGO): lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-8, λ 0.1."""

    state_names = ("m", "v")

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.1):
        super().__init__(params, lr)
        self.beta1 = check_beta("beta1", betas[0], "Lamb")
        self.beta2 = check_beta("beta2", betas[1], "Lamb")
        self.eps = check_nonnegative("eps", eps, "Lamb")
        self.weight_decay = check_nonnegative("weight_decay", weight_decay, "Lamb")

    def update(self, value, grad, state, step, lr):
        m, v = moments(grad, state, self.beta1, self.beta2)
        m_hat = m / (1.0 - ops.pow(self.beta1, step))
        v_hat = v / (1.0 - ops.pow(self.beta2, step))
        u = m_hat / (ops.sqrt(v_hat) + self.eps) + value * self.weight_decay
        w_norm = ops.sqrt(ops.sum(value * value))
        u_norm = ops.sqrt(ops.sum(u * u))
        safe = ops.where(u_norm > 0.0, u_norm, 1.0)
        trust = ops.where(w_norm > 0.0, ops.where(u_norm > 0.0, w_norm / safe, 1.0), 1.0)
        return value - lr * trust * u, {"m": m, "v": v}

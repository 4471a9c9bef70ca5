"""RAdam (Liu et al., 2019, "On the Variance of the Adaptive Learning Rate and Beyond")."""
from __future__ import annotations

from typing import Any

from .. import ops
from .adam import moments
from .optimizer import Optimizer, check_beta, check_nonnegative


class RAdam(Optimizer):
    """Adam whose adaptive step is switched on only once the variance of its adaptive learning rate is
    tractable, and rectified by r_t until then (the paper's Algorithm 2):

        m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²,   m̂ = m / (1 − β₁ᵗ)
        ρ_∞ = 2/(1 − β₂) − 1,    ρ_t = ρ_∞ − 2t·β₂ᵗ / (1 − β₂ᵗ)
        if ρ_t > 4:  r_t = √((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t))
                     θ ← θ − lr · r_t · m̂ · √(1 − β₂ᵗ) / (√v + ε)
        else:        θ ← θ − lr · m̂                       (momentum SGD while the variance diverges)

    Defaults (Go spaGO): lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-8."""

    state_names = ("m", "v")

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1 = check_beta("beta1", betas[0], "RAdam")
        self.beta2 = check_beta("beta2", betas[1], "RAdam")
        self.eps = check_nonnegative("eps", eps, "RAdam")

    def update(self, value, grad, state, step, lr):
        b1, b2 = self.beta1, self.beta2
        m, v = moments(grad, state, b1, b2)
        m_hat = m / (1.0 - ops.pow(b1, step))
        b2t = ops.pow(b2, step)
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * step * b2t / (1.0 - b2t)
        tractable = rho > 4.0
        ratio = (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
        rect = ops.sqrt(ops.maximum(ratio, 0.0))
        adaptive = rect * m_hat * ops.sqrt(1.0 - b2t) / (ops.sqrt(v) + self.eps)
        return value - lr * ops.where(tractable, adaptive, m_hat), {"m": m, "v": v}

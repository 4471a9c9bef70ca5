"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019, decoupled weight decay)."""
from __future__ import annotations

from typing import Any

from .. import ops
from .optimizer import Optimizer, check_beta, check_nonnegative


def moments(grad, state: dict, beta1: float, beta2: float) -> tuple:
    """m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²  (shared by Adam, AdamW, RAdam and Lamb)."""
    m = state["m"] * beta1 + grad * (1.0 - beta1)
    v = state["v"] * beta2 + grad * grad * (1.0 - beta2)
    return m, v


class Adam(Optimizer):
    """The paper's efficient form (end of its section 2), as the Go spaGO computes it:

        m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
        α_t = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ)
        θ ← θ − α_t · m / (√v + ε)

    Defaults (Go spaGO): lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-8."""

    state_names = ("m", "v")

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        name = type(self).__name__
        self.beta1 = check_beta("beta1", betas[0], name)
        self.beta2 = check_beta("beta2", betas[1], name)
        self.eps = check_nonnegative("eps", eps, name)

    def adam_step(self, grad, state, step, lr) -> tuple:
        """(α_t · m / (√v + ε), new state)."""
        m, v = moments(grad, state, self.beta1, self.beta2)
        alpha = lr * ops.sqrt(1.0 - ops.pow(self.beta2, step)) / (1.0 - ops.pow(self.beta1, step))
        return alpha * m / (ops.sqrt(v) + self.eps), {"m": m, "v": v}

    def update(self, value, grad, state, step, lr):
        delta, new_state = self.adam_step(grad, state, step, lr)
        return value - delta, new_state


class AdamW(Adam):
    """Adam with decoupled weight decay λ: the decay is applied to the weights, not mixed into the gradient,

        θ ← θ − lr·λ·θ − α_t · m / (√v + ε)

    Defaults as Adam, λ = 0.01."""

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps)
        self.weight_decay = check_nonnegative("weight_decay", weight_decay, "AdamW")

    def update(self, value, grad, state, step, lr):
        delta, new_state = self.adam_step(grad, state, step, lr)
        return value - lr * self.weight_decay * value - delta, new_state

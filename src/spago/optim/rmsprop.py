"""RMSProp (Tieleman & Hinton, 2012, "Lecture 6.5: divide the gradient by a running average of its recent
magnitude"): AdaGrad with the sum of squared gradients replaced by a moving average."""
from __future__ import annotations

from typing import Any

from .. import ops
from .optimizer import Optimizer, check_beta, check_nonnegative


class RMSProp(Optimizer):
    """v ← ρ·v + (1 − ρ)·g²;  θ ← θ − lr·g / (√v + ε).  Go spaGO defaults: lr 0.001, ρ 0.95, ε 1e-8."""

    state_names = ("mean_sq",)

    def __init__(self, params: Any, lr: float = 0.001, decay: float = 0.95, eps: float = 1e-8):
        super().__init__(params, lr)
        self.decay = check_beta("decay", decay, "RMSProp")
        self.eps = check_nonnegative("eps", eps, "RMSProp")

    def update(self, value, grad, state, step, lr):
        v = state["mean_sq"] * self.decay + grad * grad * (1.0 - self.decay)
        return value - lr * grad / (ops.sqrt(v) + self.eps), {"mean_sq": v}

"""AdaGrad (Duchi, Hazan & Singer, 2011): per-coordinate steps shrinking with the gradients seen so far."""
from __future__ import annotations

from typing import Any

from .. import ops
from .optimizer import Optimizer, check_nonnegative


class AdaGrad(Optimizer):
    """G ← G + g²;  θ ← θ − lr·g / (√G + ε).  Defaults as in the Go spaGO: lr 0.01, ε 1e-8."""

    state_names = ("sum_sq",)

    def __init__(self, params: Any, lr: float = 0.01, eps: float = 1e-8):
        super().__init__(params, lr)
        self.eps = check_nonnegative("eps", eps, "AdaGrad")

    def update(self, value, grad, state, step, lr):
        g2 = state["sum_sq"] + grad * grad
        return value - lr * grad / (ops.sqrt(g2) + self.eps), {"sum_sq": g2}

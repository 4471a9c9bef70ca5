"""Stochastic gradient descent, with classical or Nesterov momentum (Sutskever et al., 2013)."""
from __future__ import annotations

from typing import Any

from ..errors import SpagoError
from .optimizer import Optimizer, check_beta


class SGD(Optimizer):
    """As in the Go spaGO, the learning rate sits inside the velocity:

        plain:     θ ← θ − lr·g
        momentum:  v ← μ·v + lr·g;             θ ← θ − v
        Nesterov:  v' ← μ·v + lr·g;            θ ← θ − ((1 + μ)·v' − μ·v)
    """

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = check_beta("momentum", momentum, "SGD")
        if nesterov and self.momentum == 0.0:
            raise SpagoError("SGD: Nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)

    @property
    def state_names(self) -> tuple:
        return self._state_names_for({"momentum": self.momentum})

    def _state_names_for(self, hyper: dict) -> tuple:
        return ("velocity",) if hyper["momentum"] > 0 else ()

    def update(self, value, grad, state, step, lr):
        if self.momentum == 0.0:
            return value - lr * grad, {}
        v = state["velocity"]
        new_v = v * self.momentum + lr * grad
        delta = new_v * (1.0 + self.momentum) - v * self.momentum if self.nesterov else new_v
        return value - delta, {"velocity": new_v}

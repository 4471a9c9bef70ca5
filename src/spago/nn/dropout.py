"""Dropout (Srivastava et al., 2014): zero each activation with probability p while training."""
from __future__ import annotations

from .. import ops
from ..errors import SpagoError
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """y = x · m / (1 − p) with m ~ Bernoulli(1 − p) in training mode; y = x in eval mode."""

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise SpagoError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.generator = float(p), generator

    def forward(self, x):
        """x of any shape, returned with the same shape (zeros where dropped, in training mode only)."""
        return ops.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"

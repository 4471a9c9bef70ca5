"""Normalisation layers."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from .module import Module, Param

__all__ = ["LayerNorm", "RMSNorm"]


class LayerNorm(Module):
    """y = (x − E[x]) / √(Var[x] + ε) · γ + β over the last axis (Ba, Kiros & Hinton, 2016, "Layer Normalization").

    γ starts at 1 and β at 0; compiled, the whole normalisation is one fused row-wise kernel."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, dtype="float32"):
        super().__init__()
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        self.weight = Param(np.ones(normalized_shape), dtype) if elementwise_affine else None
        self.bias = Param(np.zeros(normalized_shape), dtype) if elementwise_affine else None

    def forward(self, x):
        """x (..., normalized_shape): normalised over the trailing axes, any leading (batch) axes."""
        x = ops.elementwise._t(x)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ShapeError(f"{self._path or 'LayerNorm'}: expected last axis {self.normalized_shape}, "
                             f"got shape {x.shape}")
        return ops.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}"


class RMSNorm(Module):
    """y = x / √(mean(x²) + ε) · γ (Zhang & Sennrich, 2019, "Root Mean Square Layer Normalization")."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, dtype="float32"):
        super().__init__()
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        self.weight = Param(np.ones(normalized_shape), dtype)

    def forward(self, x):
        """x (..., normalized_shape): normalised over the trailing axes, any leading (batch) axes."""
        x = ops.elementwise._t(x)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ShapeError(f"{self._path or 'RMSNorm'}: expected last axis {self.normalized_shape}, "
                             f"got shape {x.shape}")
        return ops.rms_norm(x, self.weight, self.eps)

"""Normalisation layers: LayerNorm, RMSNorm, and the Go spaGO's LayerNormSimple, ScaleNorm, FixNorm, AdaNorm and
BatchNorm."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError, SpagoError
from .module import Module, Param

__all__ = ["LayerNorm", "RMSNorm", "LayerNormSimple", "ScaleNorm", "FixNorm", "AdaNorm", "BatchNorm"]


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


def _check_last(x, size: int | None, owner: str):
    x = ops.elementwise._t(x)
    if x.ndim == 0 or (size is not None and x.shape[-1] != size):
        raise ShapeError(f"{owner}: expected input with last axis {size}, got shape {x.shape}")
    return x


def _standardize(x, eps: float):
    """(x − mean) / (std + ε) over the last axis, ε outside the root as in the Go spaGO."""
    centred = x - ops.mean(x, axis=-1, keepdims=True)
    return centred / (ops.sqrt(ops.mean(centred * centred, axis=-1, keepdims=True)) + eps)


def _unit(x, eps: float):
    """x / (‖x‖₂ + ε) over the last axis."""
    return x / (ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True)) + eps)


class LayerNormSimple(Module):
    """LayerNorm without gain and bias (Xu et al., 2019, "Understanding and Improving Layer Normalization"):

        y = (x − μ) / (σ + ε),   μ, σ the mean and standard deviation over the last axis, ε = 1e-10"""

    def __init__(self, eps: float = 1e-10):
        super().__init__()
        self.eps = float(eps)

    def forward(self, x):
        """x: (…, features), normalised over the last axis; returns the same shape."""
        return _standardize(_check_last(x, None, self._path or "LayerNormSimple"), self.eps)


class ScaleNorm(Module):
    """ScaleNorm (Nguyen & Salazar, 2019, "Transformers without Tears: Improving the Normalization of
    Self-Attention"), with the Go spaGO's per-feature gain:

        y = g ⊙ x / (‖x‖₂ + ε),   g starts at √d as in the paper"""

    def __init__(self, size: int, eps: float = 1e-10, dtype="float32"):
        super().__init__()
        self.size, self.eps = int(size), float(eps)
        self.gain = Param(np.full(size, np.sqrt(size)), dtype)

    def forward(self, x):
        """x: (…, size), normalised over the last axis; returns the same shape."""
        return _unit(_check_last(x, self.size, self._path or "ScaleNorm"), self.eps) * self.gain


class FixNorm(Module):
    """FixNorm (Nguyen & Chiang, 2018, "Improving Lexical Choice in Neural Machine Translation"): every vector
    rescaled to a fixed length r (1 by default).

        y = r · x / (‖x‖₂ + ε)"""

    def __init__(self, radius: float = 1.0, eps: float = 1e-10):
        super().__init__()
        self.radius, self.eps = float(radius), float(eps)

    def forward(self, x):
        """x: (…, features), each vector along the last axis rescaled; returns the same shape."""
        y = _unit(_check_last(x, None, self._path or "FixNorm"), self.eps)
        return y * self.radius if self.radius != 1.0 else y


class AdaNorm(Module):
    """AdaNorm (Xu et al., 2019, "Understanding and Improving Layer Normalization"): LayerNorm whose gain
    adapts to the input instead of being learned.

        z = (x − μ) / (σ + ε),   y = z ⊙ sg[C·(1 − k·z)],   k = 0.1

    sg[·] stops the gradient: the adaptive gain is treated as a constant, as the paper prescribes."""

    def __init__(self, scale: float = 1.0, k: float = 0.1, eps: float = 1e-10):
        super().__init__()
        self.scale, self.k, self.eps = float(scale), float(k), float(eps)

    def forward(self, x):
        """x: (…, features), normalised over the last axis; returns the same shape."""
        z = _standardize(_check_last(x, None, self._path or "AdaNorm"), self.eps)
        return z * ((1.0 - z * self.k) * self.scale).detach()


class BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating Deep Network Training by
    Reducing Internal Covariate Shift") over every axis but the feature axis (the last):

        training:  y = (x − μ_B) / √(σ²_B + ε) · γ + β,   μ_B, σ²_B the batch mean and variance
                   running_mean ← (1 − m)·running_mean + m·μ_B,  running_var ← (1 − m)·running_var + m·σ²_B·n/(n−1)
        eval:      y = (x − running_mean) / √(running_var + ε) · γ + β

    ``running_mean`` and ``running_var`` are parameters that take no gradient (so they are saved with the
    model). Eager training calls update them; a traced call cannot write them, so a compiled training
    function asks ``forward(x, return_stats=True)`` for (y, new running mean, new running var) and the caller
    assigns them (`Param.assign`)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 dtype="float32"):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise SpagoError(f"BatchNorm: momentum must be in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.weight = Param(np.ones(num_features), dtype) if affine else None
        self.bias = Param(np.zeros(num_features), dtype) if affine else None
        self.running_mean = Param(np.zeros(num_features), dtype, requires_grad=False)
        self.running_var = Param(np.ones(num_features), dtype, requires_grad=False)

    def forward(self, x, return_stats: bool = False):
        """x: (…, num_features), statistics over every axis but the last (batch statistics in training, running ones in eval); with ``return_stats`` also returns the new running mean and variance."""
        x = _check_last(x, self.num_features, self._path or "BatchNorm")
        axes = tuple(range(x.ndim - 1))
        n = x.size // self.num_features
        if self.training:
            if n < 2:
                raise ShapeError(f"{self._path or 'BatchNorm'}: training needs more than one value per feature, "
                                 f"got shape {x.shape}")
            mean = ops.mean(x, axis=axes)
            var = ops.mean(ops.square(x - mean), axis=axes)
            m = self.momentum
            new_mean = self.running_mean * (1.0 - m) + mean.detach() * m
            new_var = self.running_var * (1.0 - m) + var.detach() * (m * n / (n - 1))
            if x.is_concrete:
                self.running_mean.assign(new_mean)
                self.running_var.assign(new_var)
        else:
            mean, var = self.running_mean, self.running_var
            new_mean, new_var = mean, var
        y = (x - mean) * ops.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return (y, new_mean, new_var) if return_stats else y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}"

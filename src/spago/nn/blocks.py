"""Feed-forward and structural blocks of the Go spaGO: Highway, Conv1x1, Flatten, the residual wrappers
PreNorm, PostNorm and ReZero, SqrDist, and the Concat and Stack combinators."""
from __future__ import annotations

import math
import numpy as np

from .. import ops
from ..errors import ShapeError, SpagoError
from ..ops.elementwise import _t
from . import init
from .cells.base import activation as _activation
from .linear import Linear
from .module import Module, ModuleList, Param
from .normalization import LayerNorm

__all__ = ["Highway", "Conv1x1", "Flatten", "PreNorm", "PostNorm", "ReZero", "SqrDist", "Concat", "Stack"]


class Highway(Module):
    """Highway layer (Srivastava, Greff & Schmidhuber, 2015, "Highway Networks"):

        t = σ(W_T·x + b_T),   h = f(W·x + b),   y = t ⊙ h + (1 − t) ⊙ x

    ``gate_bias`` starts b_T negative (−1), so the layer first carries its input, as the paper advises."""

    def __init__(self, size: int, activation: str = "tanh", gate_bias: float = -1.0, dtype="float32",
                 generator=None):
        super().__init__()
        self.size, self.activation = int(size), activation
        self._act = _activation(activation, "Highway")
        self.transform = Linear(size, size, dtype=dtype, generator=generator)
        self.gate = Linear(size, size, dtype=dtype, generator=generator)
        init.constant(self.gate.bias, gate_bias)

    def forward(self, x):
        """x: (…, size), features last; returns the same shape."""
        t = ops.sigmoid(self.gate(x))
        return x + t * (self._act(self.transform(x)) - x)


class Conv1x1(Module):
    """A 1×1 convolution over channels (kernel 1, stride 1, no padding), as the Go spaGO's ``conv1x1``:
    x (…, C_in, L) → y (…, C_out, L),  y = W·x + b, the same map applied at every position."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        bound = 1.0 / math.sqrt(in_channels)
        self.weight = init.uniform(Param(np.zeros((out_channels, in_channels)), dtype), -bound, bound, generator)
        self.bias = init.uniform(Param(np.zeros(out_channels), dtype), -bound, bound, generator) if bias else None

    def forward(self, x):
        """x: (…, in_channels, length), channels before positions; returns (…, out_channels, length)."""
        x = _t(x)
        if x.ndim < 2 or x.shape[-2] != self.in_channels:
            raise ShapeError(f"{self._path or 'Conv1x1'}: expected input (…, {self.in_channels}, length), "
                             f"got {x.shape}")
        y = ops.matmul(self.weight, x)
        return y + ops.expand_dims(self.bias, -1) if self.bias is not None else y


class Flatten(Module):
    """Every axis from ``start_axis`` on merged into one: (B, d₁, d₂, …) → (B, d₁·d₂·…)."""

    def __init__(self, start_axis: int = 1):
        super().__init__()
        self.start_axis = int(start_axis)

    def forward(self, x):
        """x: (B, d₁, d₂, …); returns the axes from ``start_axis`` on merged into one."""
        return ops.flatten(x, self.start_axis)


class PreNorm(Module):
    """Pre-normalised residual (Xiong et al., 2020, "On Layer Normalization in the Transformer
    Architecture"): y = x + F(LayerNorm(x))."""

    def __init__(self, size: int, block: Module, dtype="float32"):
        super().__init__()
        self.norm, self.block = LayerNorm(size, dtype=dtype), block

    def forward(self, x):
        """x: (…, size), features last, in the wrapped block's layout; returns x + block(LayerNorm(x))."""
        return x + self.block(self.norm(x))


class PostNorm(Module):
    """Post-normalised residual, the original Transformer's (Vaswani et al., 2017): y = LayerNorm(x + F(x))."""

    def __init__(self, size: int, block: Module, dtype="float32"):
        super().__init__()
        self.norm, self.block = LayerNorm(size, dtype=dtype), block

    def forward(self, x):
        """x: (…, size), features last, in the wrapped block's layout; returns LayerNorm(x + block(x))."""
        return self.norm(x + self.block(x))


class ReZero(Module):
    """ReZero residual (Bachlechner et al., 2020, "ReZero is All You Need: Fast Convergence at Large
    Depth"): y = x + α·F(x), with one scalar α that starts at 0, so the block starts as the identity."""

    def __init__(self, block: Module, alpha: float = 0.0, dtype="float32"):
        super().__init__()
        self.block = block
        self.alpha = Param(np.array(alpha), dtype)

    def forward(self, x):
        """x: any layout the wrapped block takes and returns unchanged in shape; returns x + α·block(x)."""
        return x + self.alpha * self.block(x)


class SqrDist(Module):
    """Squared distance under a learned low-rank metric (Hewitt & Manning, 2019, "A Structural Probe for
    Finding Syntax in Word Representations"), as the Go spaGO's ``sqrdist``:

        y = (B·x)ᵀ(B·x) = ‖B·x‖²,   B (rank, in)

    x (…, in) → y (…). Applied to differences of word vectors it is the structural probe's distance."""

    def __init__(self, in_features: int, rank: int, dtype="float32", generator=None):
        super().__init__()
        self.in_features, self.rank = int(in_features), int(rank)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = init.uniform(Param(np.zeros((rank, in_features)), dtype), -bound, bound, generator)

    def forward(self, x):
        """x: (…, in_features), features last; returns (…) the squared norm of each projected vector."""
        x = _t(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"{self._path or 'SqrDist'}: expected last axis {self.in_features}, got {x.shape}")
        bx = x @ self.weight.T
        return ops.sum(bx * bx, axis=-1)


class _Combinator(ModuleList):
    def __init__(self, *modules: Module, axis: int = -1):
        if not modules:
            raise SpagoError(f"{type(self).__name__}: needs at least one module")
        super().__init__(list(modules))
        self.axis = int(axis)

    def outputs(self, x) -> list:
        return [m(x) for m in self]


class Concat(_Combinator):
    """Several modules on the same input, their outputs concatenated along ``axis`` (the last by default) —
    the Go spaGO's stacked embeddings: y = [f₁(x); f₂(x); …]."""

    def forward(self, x):
        """x: any layout the wrapped modules take; returns their outputs concatenated along ``axis``."""
        return ops.concat(self.outputs(x), axis=self.axis)


class Stack(_Combinator):
    """Several modules on the same input, their (equal-shaped) outputs stacked on a new ``axis`` (0 by
    default): y[k] = f_k(x)."""

    def __init__(self, *modules: Module, axis: int = 0):
        super().__init__(*modules, axis=axis)

    def forward(self, x):
        """x: any layout the wrapped modules take; returns their equal-shaped outputs stacked on a new ``axis``."""
        return ops.stack(self.outputs(x), axis=self.axis)

"""Linear and Embedding: the two layers every other model starts from."""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..errors import ShapeError, SpagoError
from . import init
from .module import Module, Param

__all__ = ["Identity", "Linear", "Embedding"]


class Identity(Module):
    """y = x."""

    def forward(self, x):
        """Any input, returned as it is."""
        return x


class Linear(Module):
    """y = x·Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch and Hugging Face checkpoints.

    Initialised like PyTorch: W, b ~ U(−1/√in, 1/√in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype="float32",
                 generator=None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise SpagoError(f"Linear: features must be positive, got in={in_features}, out={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = init.uniform(Param(np.zeros((out_features, in_features)), dtype), -bound, bound, generator)
        self.bias = init.uniform(Param(np.zeros(out_features), dtype), -bound, bound, generator) if bias else None

    def forward(self, x):
        """x (..., in_features), any leading axes (batch-first: (B, in) or (B, T, in)) → (..., out_features)."""
        x = ops.elementwise._t(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"{self._path or 'Linear'}: expected input with last axis {self.in_features}, "
                             f"got shape {x.shape}")
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` (num_embeddings × embedding_dim) for each integer id ``i``.

    Initialised N(0, 1) as in PyTorch; ``padding_idx``'s row starts at zero."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype="float32",
                 generator=None):
        super().__init__()
        if num_embeddings <= 0 or embedding_dim <= 0:
            raise SpagoError(f"Embedding: sizes must be positive, got {num_embeddings}x{embedding_dim}")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = init.normal(Param(np.zeros((num_embeddings, embedding_dim)), dtype), 0.0, 1.0, generator)
        if padding_idx is not None:
            self.weight.numpy()[padding_idx] = 0.0

    def forward(self, ids):
        """ids: integer indices of any shape (e.g. (B, T)) → vectors (*ids.shape, embedding_dim). No mask:
        padded positions look up their padding id like any other."""
        ids = ops.elementwise._t(ids)
        if ids.dtype.kind not in "iu":
            raise SpagoError(f"{self._path or 'Embedding'}: ids must be integers, got {ids.dtype.name}")
        if ids.is_concrete and ids.size and (int(ids.numpy().min()) < 0
                                             or int(ids.numpy().max()) >= self.num_embeddings):
            raise SpagoError(f"{self._path or 'Embedding'}: ids must be in [0, {self.num_embeddings}), got "
                             f"values from {int(ids.numpy().min())} to {int(ids.numpy().max())}")
        return ops.embedding(self.weight, ids)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

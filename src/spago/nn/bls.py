"""Broad learning system (Chen & Liu, 2017, "Broad Learning System: An Effective and Efficient Incremental
Learning System Without the Need for Deep Architecture"): one wide layer of random feature maps and
enhancement nodes, with output weights found in closed form by ridge regression."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import no_grad
from ..errors import ShapeError, SpagoError
from ..ops.elementwise import _t
from ..tensor import Tensor
from .cells.base import activation as _activation
from .dropout import Dropout
from .linear import Linear
from .module import Module

__all__ = ["BLS"]


class BLS(Module):
    """Broad learning system, as the Go spaGO's ``bls``:

        z = φ_z([W_z,1·x + b_z,1; …; W_z,n·x + b_z,n])     n feature maps of ``feature_size`` each
        h = φ_h(W_h·z + b_h)                                 enhancement nodes
        y = φ_o(W·[z; h] + b)

    `fit` sets W and b by ridge regression, W = (AᵀA + λI)⁻¹AᵀY with A = [z; h; 1] — the paper's training,
    which keeps the random feature and enhancement weights. The whole model is differentiable too, so it
    can also be trained by gradient descent like any other."""

    def __init__(self, input_size: int, output_size: int, feature_size: int = 8, num_features: int = 4,
                 enhanced_size: int = 32, feature_activation: str = "identity", enhanced_activation: str = "tanh",
                 output_activation: str = "identity", features_dropout: float = 0.0, enhanced_dropout: float = 0.0,
                 dtype="float32", generator=None):
        super().__init__()
        self.input_size, self.output_size = int(input_size), int(output_size)
        self.output_activation = output_activation
        self._phi_z = _activation(feature_activation, "BLS")
        self._phi_h = _activation(enhanced_activation, "BLS")
        self._phi_o = _activation(output_activation, "BLS")
        width = num_features * feature_size
        self.features = Linear(input_size, width, dtype=dtype, generator=generator)  # the n maps, stacked
        self.enhance = Linear(width, enhanced_size, dtype=dtype, generator=generator)
        self.output = Linear(width + enhanced_size, output_size, dtype=dtype, generator=generator)
        self.features_dropout = Dropout(features_dropout, generator) if features_dropout else None
        self.enhanced_dropout = Dropout(enhanced_dropout, generator) if enhanced_dropout else None

    def hidden(self, x):
        """[z; h] for x (…, input_size)."""
        x = _t(x)
        if x.ndim == 0 or x.shape[-1] != self.input_size:
            raise ShapeError(f"{self._path or 'BLS'}: expected last axis {self.input_size}, got {x.shape}")
        z = self._phi_z(self.features(x))
        if self.features_dropout is not None:
            z = self.features_dropout(z)
        h = self._phi_h(self.enhance(z))
        if self.enhanced_dropout is not None:
            h = self.enhanced_dropout(h)
        return ops.concat([z, h], axis=-1)

    def forward(self, x):
        """x: (B, input_size), one example per row; returns (B, output_size)."""
        return self._phi_o(self.output(self.hidden(x)))

    def fit(self, x, y, penalty: float = 1e-3) -> "BLS":
        """Set the output weights by ridge regression on inputs x (N, input_size) and targets y (N, output_size)."""
        if self.output_activation != "identity":
            raise SpagoError("BLS.fit solves for a linear output; it needs output_activation='identity', "
                             f"got {self.output_activation!r}")
        x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        y = y.numpy() if isinstance(y, Tensor) else np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or y.shape[1] != self.output_size:
            raise ShapeError(f"BLS.fit: expected x (N, {self.input_size}) and y (N, {self.output_size}), "
                             f"got {x.shape} and {y.shape}")
        training = self.training
        self.eval()  # no dropout while collecting the features
        with no_grad():
            a = self.hidden(x.astype(self.features.weight.dtype)).numpy().astype(np.float64)
        self.train(training)
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
        w = np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ y)
        self.output.weight.assign(w[:-1].T)
        self.output.bias.assign(w[-1])
        return self

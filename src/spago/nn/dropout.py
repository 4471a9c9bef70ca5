"""Dropout (Srivastava et al., 2014): zero each activation with probability p while training; locked
(variational) dropout, one mask per sequence for every step (Gal & Ghahramani, 2016); word dropout, whole
token vectors zeroed — both as Flair's sequence tagger applies them."""
from __future__ import annotations

from .. import ops
from ..errors import SpagoError
from .module import Module

__all__ = ["Dropout", "LockedDropout", "WordDropout"]


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


class LockedDropout(Dropout):
    """Batch-first x (B, T, D): one mask (B, 1, D) per sequence, the same at every step, scaled by 1/(1 − p)
    (Flair's ``LockedDropout``)."""

    def forward(self, x):
        """x (B, T, D) -> the same shape, with the same features of a sequence dropped at every step."""
        if x.ndim != 3:
            raise SpagoError(f"LockedDropout: expected a batch-first (batch, time, features) tensor, got shape {x.shape}")
        return ops.dropout(x, self.p, self.training, self.generator, noise_shape=(x.shape[0], 1, x.shape[2]))


class WordDropout(Dropout):
    """Batch-first x (B, T, D): each token's whole vector zeroed with probability p, not rescaled (Flair's
    ``WordDropout``)."""

    def forward(self, x):
        """x (B, T, D) -> the same shape, with whole token vectors zeroed."""
        if x.ndim != 3:
            raise SpagoError(f"WordDropout: expected a batch-first (batch, time, features) tensor, got shape {x.shape}")
        return ops.dropout(x, self.p, self.training, self.generator, noise_shape=(x.shape[0], x.shape[1], 1),
                           scale=False)

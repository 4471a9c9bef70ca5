"""Loss layers, PyTorch's names for the functions in `spago.losses`: ``nn.CrossEntropyLoss()(logits, target)``.

Each wraps one loss function with its options (``reduction``, ``weight`` …) fixed when built. Layouts are
spago's: class scores on the LAST axis, ``(batch, ..., classes)``, with integer targets ``(batch, ...)``
(PyTorch puts classes on axis 1 for inputs of more than two axes).
"""
from __future__ import annotations

from typing import Any, Callable

from .. import losses
from .module import Module, function_layer

__all__ = ["Loss", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss"]


class Loss(Module):
    """``loss(input, target) = fn(input, target, **options)``; ``reduction`` is ``"mean"``, ``"sum"`` or
    ``"none"`` as in PyTorch."""

    fn: Callable = staticmethod(losses.mse)

    def __init__(self, **options: Any):
        super().__init__()
        losses._check_reduction(options.get("reduction", "mean"), type(self).__name__)
        self.options = options

    def forward(self, input, target):
        """``input``: predictions (for classification, scores with classes on the last axis); ``target``: values
        of the same shape, or class indices of the leading shape. No mask: leave padded positions out, or
        use ``reduction="none"`` and weight them yourself."""
        return type(self).fn(input, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not hasattr(v, "shape"))


def _loss(name: str, fn: Callable, doc: str, **defaults: Any) -> type:
    return function_layer(Loss, name, fn, doc, __name__, **defaults)


CrossEntropyLoss = _loss("CrossEntropyLoss", losses.cross_entropy,
                         "`spago.losses.cross_entropy`: logits (..., C), class indices (...).",
                         weight=None, label_smoothing=0.0, reduction="mean")
NLLLoss = _loss("NLLLoss", losses.nll, "`spago.losses.nll`: log-probabilities (..., C), class indices (...).",
                weight=None, reduction="mean")
MSELoss = _loss("MSELoss", losses.mse, "`spago.losses.mse`: mean of (input − target)².", reduction="mean")
L1Loss = _loss("L1Loss", losses.mae, "`spago.losses.mae`: mean of |input − target|.", reduction="mean")
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", losses.binary_cross_entropy_with_logits,
                          "`spago.losses.binary_cross_entropy_with_logits`: logits and 0/1 targets of one shape.",
                          pos_weight=None, reduction="mean")

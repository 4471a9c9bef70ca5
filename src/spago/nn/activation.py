"""Activation layers: each wraps one function of the op API, so it can sit in a `Sequential`."""
from __future__ import annotations

from typing import Any, Callable

from .. import ops
from .module import Module, function_layer

__all__ = ["Activation", "ReLU", "ReLU6", "LeakyReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Swish", "Mish",
           "Sigmoid", "Tanh", "Softplus", "Softsign", "HardSigmoid", "HardTanh", "LogSigmoid", "Softmax",
           "LogSoftmax"]


class Activation(Module):
    """y = fn(x, **options); ``options`` are fixed when the layer is built (e.g. LeakyReLU's slope)."""

    fn: Callable = staticmethod(ops.relu)

    def __init__(self, **options: Any):
        super().__init__()
        self.options = options

    def forward(self, x):
        """x of any shape, elementwise (Softmax / LogSoftmax: over ``axis``, the last by default)."""
        return type(self).fn(x, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


def _activation(name: str, fn: Callable, doc: str, **defaults: Any) -> type:
    return function_layer(Activation, name, fn, doc, __name__, **defaults)


ReLU = _activation("ReLU", ops.relu, "max(0, x).")
ReLU6 = _activation("ReLU6", ops.relu6, "min(max(0, x), 6).")
LeakyReLU = _activation("LeakyReLU", ops.leaky_relu, "x if x > 0 else alpha·x.", alpha=0.01)
ELU = _activation("ELU", ops.elu, "x if x > 0 else alpha·(eˣ − 1) (Clevert et al., 2015).", alpha=1.0)
CELU = _activation("CELU", ops.celu, "max(0, x) + min(0, alpha·(e^(x/alpha) − 1)) (Barron, 2017).", alpha=1.0)
SELU = _activation("SELU", ops.selu, "Scaled ELU (Klambauer et al., 2017).")
GELU = _activation("GELU", ops.gelu, "x·Φ(x) (Hendrycks & Gimpel, 2016); approximate='tanh' for the tanh form.",
                   approximate="none")
SiLU = _activation("SiLU", ops.silu, "x·σ(x) (Elfwing et al., 2017).")
Swish = _activation("Swish", ops.swish, "x·σ(βx) (Ramachandran et al., 2017).", beta=None)
Mish = _activation("Mish", ops.mish, "x·tanh(softplus(x)) (Misra, 2019).")
Sigmoid = _activation("Sigmoid", ops.sigmoid, "1 / (1 + e⁻ˣ).")
Tanh = _activation("Tanh", ops.tanh, "tanh(x).")
Softplus = _activation("Softplus", ops.softplus, "log(1 + e^(βx)) / β.", beta=1.0, threshold=20.0)
Softsign = _activation("Softsign", ops.softsign, "x / (1 + |x|).")
HardSigmoid = _activation("HardSigmoid", ops.hard_sigmoid, "A piecewise-linear sigmoid.")
HardTanh = _activation("HardTanh", ops.hard_tanh, "clip(x, −1, 1).")
LogSigmoid = _activation("LogSigmoid", ops.log_sigmoid, "log σ(x).")
Softmax = _activation("Softmax", ops.softmax, "e^x / Σ e^x over ``axis``.", axis=-1)
LogSoftmax = _activation("LogSoftmax", ops.log_softmax, "x − logsumexp(x) over ``axis``.", axis=-1)

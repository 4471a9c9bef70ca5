"""Seeded initialisers. Each fills a parameter in place and returns it; randomness comes from
``generator`` (default: spago's global one, reseeded by ``spago.manual_seed``).

Weights are laid out (out_features, in_features, *kernel), as in PyTorch, so fan-in is ``shape[1]·k``
and fan-out ``shape[0]·k``.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import SpagoError
from ..ops.random import Generator, default_generator
from .module import Param, skip_init, skipping_init  # noqa: F401 - skip_init is part of this API

GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "conv": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}


def gain(nonlinearity: str = "linear", negative_slope: float = 0.01) -> float:
    """The recommended gain for a nonlinearity: 1 for linear/sigmoid, √2 for ReLU, 5/3 for tanh."""
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity not in GAINS:
        raise SpagoError(f"gain: unknown nonlinearity {nonlinearity!r}; expected one of {sorted(GAINS)} or leaky_relu")
    return GAINS[nonlinearity]


def fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 0:
        raise SpagoError("fan-in and fan-out need a parameter with at least one axis")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: tuple, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise SpagoError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fans(shape)[0 if mode == "fan_in" else 1]


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).numpy()


def _fill(p: Param, values: np.ndarray) -> Param:
    if not skipping_init():
        p.assign(values.astype(p.dtype))
    return p


CHUNK = 1 << 18  # values drawn at a time


def _fill_drawn(p: Param, draw) -> Param:
    """Fill ``p`` with ``draw(n)`` (float64 values, n at a time) in chunks written straight into its array:
    the values are those of one draw of the whole shape, but a large table (BERT's 30522 x 384 word
    embeddings) never has a float64 copy of itself, nor a second float32 one, alive at once."""
    out = p.numpy()
    if skipping_init():
        return p
    if not out.flags["C_CONTIGUOUS"] or not out.flags["WRITEABLE"]:
        return _fill(p, draw(out.size).reshape(out.shape))
    flat = out.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        flat[start:start + CHUNK] = draw(min(CHUNK, flat.size - start))
    return p


def constant(p: Param, value: float) -> Param:
    return _fill(p, np.full(p.shape, value))


def zeros(p: Param) -> Param:
    return constant(p, 0.0)


def ones(p: Param) -> Param:
    return constant(p, 1.0)


def uniform(p: Param, low: float = -1.0, high: float = 1.0, generator: Generator | None = None) -> Param:
    rng = _rng(generator)
    return _fill_drawn(p, lambda n: rng.uniform(low, high, n))


def normal(p: Param, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Param:
    rng = _rng(generator)
    return _fill_drawn(p, lambda n: rng.normal(mean, std, n))


def xavier_uniform(p: Param, gain: float = 1.0, generator: Generator | None = None) -> Param:
    """Glorot & Bengio (2010): U(−a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(p.shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(p, -a, a, generator)


def xavier_normal(p: Param, gain: float = 1.0, generator: Generator | None = None) -> Param:
    """Glorot & Bengio (2010): N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(p.shape)
    return normal(p, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform(p: Param, nonlinearity: str = "relu", mode: str = "fan_in",
                    generator: Generator | None = None) -> Param:
    """He et al. (2015): U(−b, b) with b = gain·√(3 / fan)."""
    fan = _fan(p.shape, mode)
    bound = gain(nonlinearity) * math.sqrt(3.0 / fan)
    return uniform(p, -bound, bound, generator)


def kaiming_normal(p: Param, nonlinearity: str = "relu", mode: str = "fan_in",
                   generator: Generator | None = None) -> Param:
    """He et al. (2015): N(0, σ²) with σ = gain / √fan."""
    fan = _fan(p.shape, mode)
    return normal(p, 0.0, gain(nonlinearity) / math.sqrt(fan), generator)


def achlioptas(p: Param, generator: Generator | None = None) -> Param:
    """Achlioptas (2003) sparse random projection: √3·{+1 w.p. 1/6, 0 w.p. 2/3, −1 w.p. 1/6}."""
    r = _rng(generator).random(p.shape)
    return _fill(p, math.sqrt(3.0) * ((r < 1 / 6).astype(float) - (r > 5 / 6).astype(float)))

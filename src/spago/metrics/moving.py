"""Running averages of a stream of numbers, for losses and scores during training."""
from __future__ import annotations

import math

from ..errors import SpagoError

__all__ = ["MovingAverage", "ExponentialMovingAverage"]


class MovingAverage:
    """The mean and variance of every value added so far, updated one value at a time (Welford, 1962):

        n ← n + 1,   δ = v − mean,   mean ← mean + δ/n,   M₂ ← M₂ + δ·(v − mean),   variance = M₂/n

    (The Go spaGO's ``MovingAvg`` uses a step of 2/n, which overshoots; this is the exact running mean.)
    With ``window`` only the last ``window`` values count."""

    def __init__(self, window: int | None = None):
        if window is not None and window < 1:
            raise SpagoError(f"MovingAverage: window must be at least 1, got {window}")
        self.window = window
        self.values: list[float] = []
        self.count, self.mean, self._m2 = 0, 0.0, 0.0

    def add(self, value: float) -> float:
        """Add a value; returns the new mean."""
        value = float(value)
        if not math.isfinite(value):
            raise SpagoError(f"MovingAverage: expected a finite value, got {value}")
        if self.window is not None:
            self.values.append(value)
            if len(self.values) > self.window:
                self.values.pop(0)
            n = len(self.values)
            self.count, self.mean = n, sum(self.values) / n
            self._m2 = sum((v - self.mean) ** 2 for v in self.values)
            return self.mean
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        return self.mean

    @property
    def variance(self) -> float:
        return self._m2 / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


class ExponentialMovingAverage:
    """m ← β·m + (1 − β)·v, reported bias-corrected as m / (1 − βⁿ) (Kingma & Ba, 2015), so the first
    values are not pulled towards 0."""

    def __init__(self, beta: float = 0.9):
        if not 0.0 <= beta < 1.0:
            raise SpagoError(f"ExponentialMovingAverage: beta must be in [0, 1), got {beta}")
        self.beta, self.count, self._m = float(beta), 0, 0.0

    def add(self, value: float) -> float:
        self.count += 1
        self._m = self.beta * self._m + (1.0 - self.beta) * float(value)
        return self.value

    @property
    def value(self) -> float:
        return self._m / (1.0 - self.beta ** self.count) if self.count else 0.0

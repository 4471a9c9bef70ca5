"""Learning-rate schedules: ``schedule(t)`` is the learning rate of update t (counting from 1).

`Schedule.apply(optimizer)` sets the optimiser's ``lr`` for its next update; a compiled training step takes
``lr`` as an input, so changing it never recompiles. `ExponentialDecay` and `HyperbolicDecay` are the Go
spaGO's decays in closed form; `LinearWarmup` wraps any other schedule.
"""
from __future__ import annotations

import abc
import math

from ..errors import SpagoError


class Schedule(abc.ABC):
    """Base class: subclasses define ``__call__(t) -> lr``."""

    @abc.abstractmethod
    def __call__(self, t: int) -> float:
        """The learning rate of update ``t`` (t = 1, 2, …)."""

    def apply(self, optimizer) -> float:
        """Set ``optimizer.lr`` for its next update (number ``optimizer.steps + 1``) and return it."""
        optimizer.lr = float(self(optimizer.steps + 1))
        return optimizer.lr


def _positive(name: str, value: float, owner: str) -> float:
    if not value > 0:
        raise SpagoError(f"{owner}: {name} must be positive, got {value}")
    return float(value)


def _step(t: int, owner: str) -> int:
    if int(t) != t or t < 1:
        raise SpagoError(f"{owner}: steps count from 1, got {t}")
    return int(t)


class Constant(Schedule):
    def __init__(self, lr: float):
        self.lr = _positive("lr", lr, "Constant")

    def __call__(self, t: int) -> float:
        _step(t, "Constant")
        return self.lr


class ExponentialDecay(Schedule):
    """The Go spaGO's exponential decay from ``init`` to ``final`` over ``times`` steps. Its recursion
    lr_t = exp(((T − t)·log lr_{t−1} + log final) / (T − t + 1)) has the closed form

        lr_t = init · (final / init)^((t − 1)/(T − 1))   for 1 ≤ t ≤ T,   final afterwards."""

    def __init__(self, init: float, final: float, times: int):
        self.init = _positive("init", init, "ExponentialDecay")
        self.final = _positive("final", final, "ExponentialDecay")
        if init < final:
            raise SpagoError(f"ExponentialDecay: the initial rate {init} must be >= the final one {final}")
        if int(times) != times or times < 1:
            raise SpagoError(f"ExponentialDecay: times must be a positive integer, got {times}")
        self.times = int(times)

    def __call__(self, t: int) -> float:
        t = _step(t, "ExponentialDecay")
        if t == 1:
            return self.init
        if t >= self.times:
            return self.final
        return self.init * (self.final / self.init) ** ((t - 1) / (self.times - 1))


class HyperbolicDecay(Schedule):
    """The Go spaGO's hyperbolic decay: lr_t = init / (1 + rate·t) for t > 1, until it first reaches
    ``final``; it then stays at that value (lr_1 = init)."""

    def __init__(self, init: float, final: float, rate: float):
        self.init = _positive("init", init, "HyperbolicDecay")
        if final < 0 or init < final:
            raise SpagoError(f"HyperbolicDecay: need init >= final >= 0, got init {init}, final {final}")
        if rate < 0:
            raise SpagoError(f"HyperbolicDecay: rate must be >= 0, got {rate}")
        self.final, self.rate = float(final), float(rate)
        self.stop = self._last_step()

    def _value(self, t: int) -> float:
        return self.init / (1.0 + self.rate * t)

    def _last_step(self) -> float:
        """The first step whose rate is <= final (decay stops there), or inf."""
        if self.rate == 0.0 or self.final == 0.0:
            return math.inf
        if self.init <= self.final:
            return 1
        k = max(2, math.ceil((self.init / self.final - 1.0) / self.rate))
        while k > 2 and self._value(k - 1) <= self.final:
            k -= 1
        while self._value(k) > self.final:
            k += 1
        return k

    def __call__(self, t: int) -> float:
        t = _step(t, "HyperbolicDecay")
        if t == 1 or self.rate == 0.0 or self.stop == 1:
            return self.init
        return self._value(min(t, self.stop))


class StepDecay(Schedule):
    """lr_t = lr · γ^⌊(t − 1) / step_size⌋: multiplied by γ every ``step_size`` updates."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = _positive("lr", lr, "StepDecay")
        if int(step_size) != step_size or step_size < 1:
            raise SpagoError(f"StepDecay: step_size must be a positive integer, got {step_size}")
        self.step_size, self.gamma = int(step_size), _positive("gamma", gamma, "StepDecay")

    def __call__(self, t: int) -> float:
        t = _step(t, "StepDecay")
        return self.lr * self.gamma ** ((t - 1) // self.step_size)


class CosineDecay(Schedule):
    """Cosine annealing (Loshchilov & Hutter, 2017, without restarts) from ``lr`` to ``min_lr`` over
    ``total_steps``: lr_t = min + (lr − min)·(1 + cos(π·min(t − 1, T)/T)) / 2."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0):
        self.lr = _positive("lr", lr, "CosineDecay")
        if int(total_steps) != total_steps or total_steps < 1:
            raise SpagoError(f"CosineDecay: total_steps must be a positive integer, got {total_steps}")
        if not 0 <= min_lr <= lr:
            raise SpagoError(f"CosineDecay: min_lr must be in [0, lr], got {min_lr}")
        self.total, self.min_lr = int(total_steps), float(min_lr)

    def __call__(self, t: int) -> float:
        t = _step(t, "CosineDecay")
        progress = min(t - 1, self.total) / self.total
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LinearWarmup(Schedule):
    """Linear warm-up (Goyal et al., 2017) over ``warmup_steps``, then ``after`` (a schedule, or a
    constant rate) counted from its own step 1:

        t ≤ W:  lr_t = after(1) · (s + (1 − s)·t/W)     (s = ``start_factor``)
        t > W:  lr_t = after(t − W)"""

    def __init__(self, after: Schedule | float, warmup_steps: int, start_factor: float = 0.0):
        self.after = after if isinstance(after, Schedule) else Constant(after)
        if int(warmup_steps) != warmup_steps or warmup_steps < 1:
            raise SpagoError(f"LinearWarmup: warmup_steps must be a positive integer, got {warmup_steps}")
        if not 0.0 <= start_factor <= 1.0:
            raise SpagoError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor}")
        self.warmup, self.start = int(warmup_steps), float(start_factor)

    def __call__(self, t: int) -> float:
        t = _step(t, "LinearWarmup")
        if t <= self.warmup:
            return self.after(1) * (self.start + (1.0 - self.start) * t / self.warmup)
        return self.after(t - self.warmup)

"""`Optimizer`: the base of every gradient-descent method.

Each method defines ONE pure update rule, ``update(value, grad, state, step, lr) -> (new_value, new_state)``,
written with ops on Tensors. Eagerly, `Optimizer.step` runs it on every parameter that has a gradient and
writes the results in place (``Param.assign`` and the arrays in ``Param.state``); traced, the very same
rule becomes part of a compiled training step (`spago.optim.compile_step`). ``step`` and ``lr`` arrive as
0-d tensors of the parameter's dtype, so a compiled step takes them as inputs and a schedule never
forces a recompile.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..errors import DTypeError, SpagoError
from ..tensor import Tensor


def collect_params(params: Any) -> list:
    """The Params of a Module, or of an iterable of Params, each once, in order."""
    from ..nn.module import Module, Param

    if isinstance(params, Module):
        params = params.parameters()
    if isinstance(params, Param):
        params = [params]
    out, seen = [], set()
    for p in params:
        if not isinstance(p, Param):
            raise SpagoError(f"optimisers update Params (nn.Param), got {type(p).__name__}")
        if p.dtype.kind != "f":
            raise DTypeError(f"parameter {p.name or '?'} is {p.dtype.name}; optimisers need floating parameters")
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    if not out:
        raise SpagoError("the optimiser got no parameters")
    return out


def scalar(value: float, dtype) -> Tensor:
    """A 0-d tensor of ``dtype`` holding ``value`` (rounded as a float64 input cast to ``dtype`` would be)."""
    return Tensor._wrap(np.asarray(np.float64(value)).astype(dtype))


class Optimizer(abc.ABC):
    """Holds the parameters, the learning rate and the number of steps taken.

    Subclasses list their per-parameter state in ``state_names`` (arrays shaped like the parameter,
    zero at the start, kept in ``Param.state``) and write `update`."""

    state_names: tuple = ()

    def __init__(self, params: Any, lr: float):
        self.params = collect_params(params)
        if not lr > 0:
            raise SpagoError(f"{type(self).__name__}: the learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.steps = 0

    @abc.abstractmethod
    def update(self, value: Tensor, grad: Tensor, state: dict, step: Tensor, lr: Tensor) -> tuple:
        """The new parameter value and the new state, computed with ops from the current ones."""

    # -- state ----------------------------------------------------------------------------
    def state_of(self, p) -> dict:
        """This optimiser's state arrays for ``p`` (allocated as zeros on first use)."""
        for name in self.state_names:
            a = p.state.get(name)
            if not isinstance(a, np.ndarray) or a.shape != p.shape or a.dtype != p.dtype:
                p.state[name] = np.zeros(p.shape, p.dtype)
        return {name: p.state[name] for name in self.state_names}

    # -- eager use --------------------------------------------------------------------------
    def step(self) -> None:
        """Update every parameter that has a gradient, in place, and count the step."""
        self.steps += 1
        with no_grad():
            for p in self.params:
                if p.grad is None:
                    continue
                arrays = self.state_of(p)
                state = {k: Tensor._wrap(a) for k, a in arrays.items()}
                value, new_state = self.update(p.detach(), p.grad.detach(), state,
                                               scalar(self.steps, p.dtype), scalar(self.lr, p.dtype))
                p.assign(value)
                for k, a in arrays.items():
                    np.copyto(a, new_state[k].numpy())

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def compile_step(self, loss_fn, model, *example_batch: Any, clip_norm: float | None = None, **options: Any):
        """`spago.optim.compile_step` with this optimiser."""
        from .step import compile_step

        return compile_step(loss_fn, model, self, *example_batch, clip_norm=clip_norm, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g}, {len(self.params)} parameters, {self.steps} steps)"


def check_beta(name: str, value: float, owner: str) -> float:
    if not 0.0 <= value < 1.0:
        raise SpagoError(f"{owner}: {name} must be in [0, 1), got {value}")
    return float(value)


def check_nonnegative(name: str, value: float, owner: str) -> float:
    if not value >= 0:
        raise SpagoError(f"{owner}: {name} must be >= 0, got {value}")
    return float(value)

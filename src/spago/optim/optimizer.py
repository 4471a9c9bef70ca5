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
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..errors import DTypeError, ShapeError, SpagoError
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
            raise DTypeError(f"parameter {p.name or f'of shape {p.shape}'} is {p.dtype.name}; optimisers need "
                             "floating parameters")
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

    def hyperparameters(self) -> dict:
        """The settings that shape the update (``lr``, betas, ``eps`` …): every number or flag the
        constructor stored, by attribute name."""
        return {k: v for k, v in vars(self).items()
                if k not in ("params", "steps") and not k.startswith("_") and isinstance(v, (bool, int, float))}

    def state_dict(self) -> dict:
        """Everything a resumed run needs, copied: the class, the hyperparameters, the step count, each
        parameter's name and shape (to check the load) and every state array, keyed by parameter index::

            {"class": "Adam", "steps": 3, "hyperparameters": {"lr": 0.001, ...},
             "params": [{"name": "fc.weight", "shape": [2, 3]}, ...],
             "state": {0: {"m": array, "v": array}, ...}}

        Parameters that never had a gradient have no state yet (their state starts at zeros)."""
        state = {}
        for k, p in enumerate(self.params):
            arrays = {name: p.state[name].copy() for name in self.state_names
                      if isinstance(p.state.get(name), np.ndarray)}
            if arrays:
                state[k] = arrays
        return {"class": type(self).__name__, "steps": self.steps, "hyperparameters": self.hyperparameters(),
                "params": [{"name": p.name, "shape": list(p.shape)} for p in self.params], "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned: hyperparameters, step count and state arrays (copied).
        Another optimiser class, another number of parameters, other hyperparameter names or mis-shaped
        arrays are errors naming what differs; nothing changes unless everything fits."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"class", "steps", "hyperparameters", "state"} <= set(state_dict):
            raise SpagoError(f"{name}.load_state_dict expects what Optimizer.state_dict() returns "
                             "(class, steps, hyperparameters, state)")
        if state_dict["class"] != name:
            raise SpagoError(f"{name}.load_state_dict: the state was saved by {state_dict['class']}")
        hyper, own = dict(state_dict["hyperparameters"]), self.hyperparameters()
        if set(hyper) != set(own):
            raise SpagoError(f"{name}.load_state_dict: hyperparameters {sorted(hyper)} do not match {sorted(own)}")
        if not hyper["lr"] > 0:
            raise SpagoError(f"{name}.load_state_dict: the learning rate must be positive, got {hyper['lr']}")
        self._check_params(state_dict.get("params"))
        steps = state_dict["steps"]
        if isinstance(steps, bool) or int(steps) != steps or steps < 0:
            raise SpagoError(f"{name}.load_state_dict: steps must be a count >= 0, got {steps!r}")
        arrays = self._checked_state(state_dict["state"], hyper)
        for key, value in hyper.items():
            setattr(self, key, type(own[key])(value))
        self.steps = int(steps)
        for k, p in enumerate(self.params):
            for s in self.state_names:
                p.state.pop(s, None)
            for s, a in arrays.get(k, {}).items():
                p.state[s] = np.array(a, copy=True)

    def _check_params(self, saved: list | None) -> None:
        """The saved parameter list (name and shape of each) must describe this optimiser's parameters."""
        if saved is None:
            return
        name = type(self).__name__
        if len(saved) != len(self.params):
            raise SpagoError(f"{name}.load_state_dict: the state is for {len(saved)} parameters, "
                             f"this optimiser has {len(self.params)}")
        wrong = [f"{k} ({p.name}): saved {entry.get('name')} {tuple(entry.get('shape', ()))}, here {p.shape}"
                 for k, (entry, p) in enumerate(zip(saved, self.params))
                 if tuple(entry.get("shape", p.shape)) != p.shape
                 or (entry.get("name") and p.name and entry.get("name") != p.name)]
        if wrong:
            raise ShapeError(f"{name}.load_state_dict: the parameters differ from the saved ones: " + "; ".join(wrong))

    def _checked_state(self, state: dict, hyper: dict) -> dict:
        """The state arrays by integer parameter index, after checking names, shapes and dtypes."""
        name = type(self).__name__
        saved_names = self._state_names_for(hyper)
        out = {}
        for key, arrays in state.items():
            k = int(key)
            if not 0 <= k < len(self.params):
                raise SpagoError(f"{name}.load_state_dict: state for parameter {k}, but there are {len(self.params)}")
            p = self.params[k]
            if set(arrays) != set(saved_names):
                raise SpagoError(f"{name}.load_state_dict: parameter {k} ({p.name}) has state {sorted(arrays)}, "
                                 f"expected {sorted(saved_names)}")
            for s, a in arrays.items():
                a = np.asarray(a)
                if a.shape != p.shape:
                    raise ShapeError(f"{name}.load_state_dict: state {s!r} of parameter {k} ({p.name}) has shape "
                                     f"{a.shape}, the parameter {p.shape}")
                if a.dtype != p.dtype:
                    raise DTypeError(f"{name}.load_state_dict: state {s!r} of parameter {k} ({p.name}) is "
                                     f"{a.dtype.name}, the parameter {p.dtype.name}")
            out[k] = arrays
        return out

    def _state_names_for(self, hyper: dict) -> tuple:
        """The state names this optimiser keeps under the hyperparameters ``hyper``."""
        return tuple(self.state_names)

    @property
    def param_groups(self) -> list:
        """PyTorch's view of the settings: one group holding every parameter and the hyperparameters,
        live (``opt.param_groups[0]["lr"] = 1e-4`` sets ``opt.lr``)."""
        return [ParamGroup(self)]

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none=False``: set them to zeros instead, as PyTorch can)."""
        from ..nn.module import zero_grads

        zero_grads(self.params, set_to_none)

    def compile_step(self, loss_fn, model, *example_batch: Any, clip_norm: float | None = None, **options: Any):
        """`spago.optim.compile_step` with this optimiser."""
        from .step import compile_step

        return compile_step(loss_fn, model, self, *example_batch, clip_norm=clip_norm, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g}, {len(self.params)} parameters, {self.steps} steps)"


class ParamGroup(MutableMapping):
    """One PyTorch-style parameter group: ``"params"`` plus the optimiser's hyperparameters, read from and
    written to the optimiser itself."""

    def __init__(self, optimizer: Optimizer):
        self._opt = optimizer

    def __getitem__(self, key: str) -> Any:
        if key == "params":
            return list(self._opt.params)
        hyper = self._opt.hyperparameters()
        if key not in hyper:
            raise KeyError(key)
        return hyper[key]

    def __setitem__(self, key: str, value: Any) -> None:
        hyper = self._opt.hyperparameters()
        if key not in hyper:
            raise SpagoError(f"{type(self._opt).__name__} has no hyperparameter {key!r}; it has {sorted(hyper)}")
        if key == "lr" and not value > 0:
            raise SpagoError(f"the learning rate must be positive, got {value}")
        setattr(self._opt, key, type(hyper[key])(value))

    def __delitem__(self, key: str) -> None:
        raise SpagoError("a parameter group's entries cannot be deleted")

    def __iter__(self):
        return iter(["params", *self._opt.hyperparameters()])

    def __len__(self) -> int:
        return 1 + len(self._opt.hyperparameters())

    def __repr__(self) -> str:
        return f"ParamGroup({len(self._opt.params)} params, {self._opt.hyperparameters()})"


def check_beta(name: str, value: float, owner: str) -> float:
    if not 0.0 <= value < 1.0:
        raise SpagoError(f"{owner}: {name} must be in [0, 1), got {value}")
    return float(value)


def check_nonnegative(name: str, value: float, owner: str) -> float:
    if not value >= 0:
        raise SpagoError(f"{owner}: {name} must be >= 0, got {value}")
    return float(value)

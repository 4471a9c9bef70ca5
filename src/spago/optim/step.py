"""The compiled training step: forward, loss, backward, clipping and the optimiser update in ONE function.

`compile_step` traces ``loss_fn(model, *batch)``, then ``loss.backward()`` — the tape's gradient rules emit
IR nodes while tracing — then the optimiser's pure `update` rule for each parameter. The model's Params
become graph parameters that reference the live arrays (compiled with ``inference=False``), the optimiser
state arrays are graph inputs, and so are ``lr``, the step counter and a dropout seed (0-d arrays), so a
schedule never recompiles and every call draws fresh dropout masks. After each native call the new values
are copied into the very same Param and state arrays (``np.copyto``), so the eager model, its
``state_dict()`` and the compiled step always see one set of weights.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable

import numpy as np

from ..autograd import enable_grad
from ..errors import SpagoError, SpagoWarning
from ..ir.pytree import flatten
from ..ir.tracer import scope
from ..losses import row_weights
from ..ops.random import Generator, default_generator, seed_offset
from ..tensor import Tensor
from .clip import clip_by_norm, clip_by_value
from .optimizer import Optimizer
from .ragged import batch_rows, pad_batch, padding_is_exact


class CompiledStep:
    """``step(*batch) -> loss``: one optimiser update of ``model`` on ``batch``, in native code.

    Batches of a new shape, or a model switched between ``train()`` and ``eval()``, compile a new
    specialisation. If a parameter's array is replaced (``Module.to``, ``flatten_parameters``), the step
    recompiles so it never writes to a stale array. The optimiser's hyperparameters other than ``lr`` are
    constants of the compiled code: changing one (``load_state_dict``, ``param_groups``) compiles anew."""

    def __init__(self, loss_fn: Callable, model: Any, optimizer: Optimizer, *, clip_norm: float | None = None,
                 norm_type: float = 2.0, clip_value: float | None = None, generator: Generator | None = None,
                 **compile_options: Any):
        if not isinstance(optimizer, Optimizer):
            raise SpagoError(f"compile_step needs a spago.optim optimiser, got {type(optimizer).__name__}")
        self.loss_fn, self.model, self.optimizer = loss_fn, model, optimizer
        self.clip_norm, self.norm_type, self.clip_value = clip_norm, norm_type, clip_value
        self.generator = generator or default_generator
        self.compile_options = dict(compile_options, inference=False)
        self._cache: dict = {}
        self._rows: dict = {}  # each specialisation's batch sizes (leading dimensions), to explain recompiles

    # -- tracing ---------------------------------------------------------------------------
    def _traced(self, updated: list) -> Callable:
        """The function to compile; it records which parameters received a gradient in ``updated``."""
        opt, params = self.optimizer, self.optimizer.params

        def train_step(lr, step, seed, rows, state, batch):
            saved = [p.grad for p in params]
            for p in params:
                p.grad = None
            weighed = row_weights(rows) if rows is not None else contextlib.nullcontext()
            try:
                with seed_offset(seed), enable_grad(), weighed:
                    loss = self.loss_fn(self.model, *batch)
                if not isinstance(loss, Tensor) or loss.size != 1:
                    raise SpagoError("compile_step: loss_fn must return a one-element Tensor, got "
                                     f"{getattr(loss, 'shape', type(loss).__name__)}")
                if not loss.requires_grad:
                    raise SpagoError("compile_step: the loss does not depend on any parameter")
                with scope("backward"):  # drawn as their own clusters
                    loss.backward()
                grads = [p.grad for p in params]
            finally:
                for p, g in zip(params, saved):
                    p.grad = g
            updated[:] = [k for k, g in enumerate(grads) if g is not None]
            gs = [grads[k] for k in updated]
            if self.clip_value is not None:
                gs = clip_by_value(gs, self.clip_value)
            if self.clip_norm is not None:
                gs, _ = clip_by_norm(gs, self.clip_norm, self.norm_type)
            new_values, new_states = [], []
            with scope("optimizer", type(opt).__name__):
                for k, g in zip(updated, gs):
                    p = params[k]
                    value, new_state = opt.update(p.detach(), g, state[k], step.astype(p.dtype),
                                                  lr.astype(p.dtype))
                    new_values.append(value)
                    new_states.append({name: new_state[name] for name in opt.state_names})
            return loss.reshape(()), new_values, new_states

        train_step.__name__ = f"train_step_{type(opt).__name__.lower()}"
        return train_step

    def _key(self, batch: tuple) -> tuple:
        from ..compiler import signature

        modules = self.model.named_modules() if hasattr(self.model, "named_modules") else ()
        modes = tuple(m.training for _, m in modules)
        hyper = tuple(sorted((k, v) for k, v in self.optimizer.hyperparameters().items() if k != "lr"))
        # train() / eval() changes what the step computes (dropout); hyperparameters other than lr are constants
        return signature(batch, {}), modes, hyper

    def compiles(self, *batch: Any) -> bool:
        """Whether a call with ``batch`` would first compile a new specialisation."""
        return self._lookup(tuple(batch))[0] is None

    def _fresh(self, hit: tuple) -> bool:
        return all(p._value is v for p, v in zip(self.optimizer.params, hit[2]))

    def _lookup(self, batch: tuple) -> tuple:
        """(the specialisation to run, the batch to give it) — a ragged batch padded to the size of one
        that pads exactly — or (None, batch) when a new one must be compiled."""
        hit = self._cache.get(self._key(batch))
        if hit is not None and self._fresh(hit):
            return hit, batch
        rows = batch_rows(batch)
        if rows is not None:
            for size in sorted({h[4] for h in self._cache.values() if h[4] and h[4] > rows}):
                padded = pad_batch(batch, size)
                hit = self._cache.get(self._key(padded))
                if hit is not None and hit[4] == size and self._fresh(hit):
                    return hit, padded
        return None, batch

    def _specialize(self, batch: tuple) -> tuple:
        """(the specialisation for ``batch``, compiled if needed, and the batch to call it with)."""
        from ..compiler import compile
        from ..ir.tracer import trace

        hit, call_batch = self._lookup(batch)
        if hit is not None:
            return hit, call_batch
        key, params = self._key(batch), self.optimizer.params
        if self._cache:
            warnings.warn(f"compile_step recompiles the training step: {self._why(key, batch)}",
                          SpagoWarning, stacklevel=3)
        updated: list = []
        state = [self.optimizer.state_of(p) for p in params]
        size = batch_rows(batch)
        args = (*self._inputs(1, state, size, size), tuple(batch))
        graph = trace(self._traced(updated), *args)
        fn = compile(graph, donate=self._donations(graph, args, updated, state), **self.compile_options)
        pads, why = False, "its arrays do not share one batch size"
        if size is not None:
            named = {n.name: n for n in graph.inputs}
            batch_nodes = [n for n in graph.inputs if n.name.startswith("batch")]
            pads, why = padding_is_exact(graph, named["rows"], batch_nodes, graph.outputs[0])
        self._cache[key] = (fn, list(updated), [p._value for p in params], fn.output_buffers(),
                            size if pads else None, why)
        self._rows[key] = _rows_of(batch)
        return self._cache[key], batch

    def _why(self, key: tuple, batch: tuple) -> str:
        """Why a batch needs a new specialisation, in words."""
        if key in self._cache:
            return "a parameter's array was replaced (Module.to, flatten_parameters)"
        if any(k[:2] == key[:2] for k in self._cache):
            return "a hyperparameter other than lr changed (compiled in as a constant)"
        if any(k[0] == key[0] for k in self._cache):
            return "the model switched between train() and eval() (dropout differs)"
        rows, before = _rows_of(batch), [r for r in self._rows.values() if len(r) == 1]
        if len(rows) == 1 and before and all(min(rows) < min(r) for r in before):
            reasons = sorted({h[5] for h in self._cache.values() if h[5]})
            return (f"a batch of {min(rows)} rows, fewer than before (a ragged last batch), which cannot be padded "
                    f"exactly ({'; '.join(reasons) or 'the model was switched'}); it is compiled once and reused, "
                    "or drop the last batch to avoid it")
        return "a batch of new shapes (shapes are static in compiled code; each new one compiles once)"

    def _donations(self, graph, args: tuple, updated: list, state: list) -> dict:
        """New parameter values go straight into the Params' arrays, new optimiser state into the state
        arrays (flat output index -> parameter array or flat input index)."""
        opt, params = self.optimizer, self.optimizer.params
        leaves, paths, _ = flatten((args, {}))
        inputs = [leaf for leaf, p in zip(leaves, paths) if p not in graph.static_args]
        input_index = {id(a): i for i, a in enumerate(inputs)}
        marks = ("loss", [f"value {k}" for k in updated],
                 [{name: f"state {k} {name}" for name in opt.state_names} for k in updated])
        slot = {mark: i for i, mark in enumerate(flatten(marks)[0])}
        donate = {slot[f"value {k}"]: params[k]._value for k in updated}
        for k in updated:
            for name in opt.state_names:
                if id(state[k][name]) in input_index:
                    donate[slot[f"state {k} {name}"]] = input_index[id(state[k][name])]
        return donate

    def _inputs(self, seed: int, state: list, size: int | None, real: int | None) -> tuple:
        """lr, step counter, dropout seed, row weights (1 for the ``real`` rows of ``size``), optimiser state."""
        opt = self.optimizer
        rows = None if size is None else (np.arange(size) < real).astype(np.float64)
        return (np.asarray(opt.lr, np.float64), np.asarray(opt.steps + 1, np.float64), np.asarray(seed, np.int64),
                rows, state)

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *batch: Any) -> float:
        (fn, updated, _, buffers, *_), call_batch = self._specialize(tuple(batch))
        opt, params = self.optimizer, self.optimizer.params
        state = [opt.state_of(p) for p in params]
        # new values are written into the live arrays where that is safe (donated outputs come back as
        # those arrays); the others land in buffers kept from call to call and are copied over
        inputs = self._inputs(self.generator.next_seed(), state, batch_rows(call_batch), batch_rows(batch))
        loss, new_values, new_states = fn.call_into(buffers, *inputs, tuple(call_batch))
        opt.steps += 1
        for k, value, new_state in zip(updated, new_values, new_states):
            if value is not params[k]._value:
                params[k].assign(value)
            for name, a in new_state.items():
                if a is not state[k][name]:
                    np.copyto(state[k][name], a)
        return float(loss)

    def __repr__(self) -> str:
        clip = "".join(f", {k}={v:g}" for k, v in (("clip_norm", self.clip_norm), ("clip_value", self.clip_value))
                       if v is not None)
        name = getattr(self.loss_fn, "__qualname__", type(self.loss_fn).__name__)
        return (f"<CompiledStep {name} of {type(self.model).__name__} with {self.optimizer!r}{clip}: "
                f"{len(self._cache)} specialisation(s) compiled>")

    @property
    def compiled(self):
        """The compiled function of the most recent specialisation (for reports and inspection)."""
        if not self._cache:
            raise SpagoError("compile_step: nothing is compiled yet; call the step once")
        return next(reversed(self._cache.values()))[0]

    def pads(self, *batch: Any) -> bool:
        """Whether ``batch`` (a ragged last batch) runs padded on a compiled size, with no new compile."""
        hit, call_batch = self._lookup(tuple(batch))
        return hit is not None and batch_rows(call_batch) != batch_rows(tuple(batch))


def _rows_of(batch: tuple) -> frozenset:
    """The leading dimensions of a batch's arrays (one value when they agree on a batch size)."""
    return frozenset(np.shape(a)[0] for a in flatten((batch, {}))[0] if np.ndim(a))


def compile_step(loss_fn: Callable, model: Any, optimizer: Optimizer, *example_batch: Any,
                 clip_norm: float | None = None, **options: Any) -> CompiledStep:
    """Compile one training step of ``model`` for batches like ``example_batch``.

    ``loss_fn(model, *batch)`` returns the scalar loss. The returned step is called with a batch, updates
    the parameters (and optimiser state) in place, and returns the loss as a float. ``clip_norm`` clips the
    gradients' joint norm (``norm_type``, default 2) and ``clip_value`` their entries before the update;
    further options go to `spago.compile`.
    """
    step = CompiledStep(loss_fn, model, optimizer, clip_norm=clip_norm, **options)
    step._specialize(tuple(example_batch))
    return step

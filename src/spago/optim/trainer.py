"""`Trainer`: the training loop, eager or compiled behind one flag, with a tqdm progress bar."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..errors import SpagoError
from ..tensor import Tensor, as_tensor
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .schedules import Schedule
from .step import CompiledStep


def _as_batch(batch: Any) -> tuple:
    """A batch is a tuple (or list) of arguments for ``loss_fn(model, *batch)``, or one array."""
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


class Trainer:
    """Runs ``loss_fn(model, *batch)`` → backward → (clip) → optimiser update over batches.

    ``compiled=True`` runs each update as one native call (`spago.optim.compile_step`); otherwise
    eagerly. Both give the same parameters for models without dropout (the two modes draw dropout masks
    from different streams). A ``schedule`` sets the learning rate before every update; ``clip_norm``
    (global ``norm_type``-norm) and ``clip_value`` clip gradients before it."""

    def __init__(self, model: Any, loss_fn: Callable, optimizer: Optimizer, compiled: bool = False,
                 schedule: Schedule | None = None, clip_norm: float | None = None, norm_type: float = 2.0,
                 clip_value: float | None = None):
        if not isinstance(optimizer, Optimizer):
            raise SpagoError(f"Trainer needs a spago.optim optimiser, got {type(optimizer).__name__}")
        if schedule is not None and not callable(schedule):
            raise SpagoError(f"Trainer: schedule must be a Schedule, got {type(schedule).__name__}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.compiled, self.schedule = bool(compiled), schedule
        self.clip_norm, self.norm_type, self.clip_value = clip_norm, norm_type, clip_value
        self.losses: list = []  # every step's loss
        self._step: CompiledStep | None = None

    def train_step(self, *batch: Any) -> float:
        """One update on one batch; returns its loss."""
        opt = self.optimizer
        if self.schedule is not None:
            opt.lr = float(self.schedule(opt.steps + 1))
        if self.compiled:
            if self._step is None:
                self._step = CompiledStep(self.loss_fn, self.model, opt, clip_norm=self.clip_norm,
                                          norm_type=self.norm_type, clip_value=self.clip_value)
            loss = self._step(*batch)
        else:
            opt.zero_grad()
            out = self.loss_fn(self.model, *[as_tensor(b) if isinstance(b, np.ndarray) else b for b in batch])
            if not isinstance(out, Tensor) or out.size != 1:
                raise SpagoError("Trainer: loss_fn must return a one-element Tensor")
            out.backward()
            if self.clip_value is not None:
                clip_grad_value_(opt.params, self.clip_value)
            if self.clip_norm is not None:
                clip_grad_norm_(opt.params, self.clip_norm, self.norm_type)
            opt.step()
            loss = float(out.item())
        self.losses.append(loss)
        return loss

    def fit(self, batches: Iterable | Callable[[], Iterable], epochs: int = 1, progress: bool = True) -> list:
        """Train for ``epochs`` passes over ``batches`` (a re-iterable collection of batches, or a callable
        returning a fresh iterable each epoch); returns the mean loss of each epoch."""
        from tqdm.auto import tqdm

        if int(epochs) != epochs or epochs < 1:
            raise SpagoError(f"Trainer.fit: epochs must be a positive integer, got {epochs}")
        if hasattr(self.model, "train"):
            self.model.train()
        history = []
        try:
            per_epoch = len(batches)  # type: ignore[arg-type]
        except TypeError:
            per_epoch = None
        total = per_epoch * epochs if per_epoch is not None else None
        mode = "compiled" if self.compiled else "eager"
        with tqdm(total=total, disable=not progress, desc=f"training ({mode})", unit="step") as bar:
            for epoch in range(int(epochs)):
                source = batches() if callable(batches) else batches
                losses = []
                for batch in source:
                    batch = _as_batch(batch)
                    if self.compiled and (self._step is None or self._step.compiles(*batch)):
                        bar.set_description_str(f"training ({mode}): compiling the training step", refresh=True)
                    losses.append(self.train_step(*batch))
                    bar.set_description_str(f"training ({mode})", refresh=False)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4g}", refresh=False)
                if not losses:
                    raise SpagoError(f"Trainer.fit: epoch {epoch + 1} had no batches (pass a list of batches, or a "
                                     "callable returning a fresh iterable each epoch, not a used-up generator)")
                history.append(float(np.mean(losses)))
        return history

"""Loss functions, written only with ops, so each runs eagerly, differentiates, and compiles.

Every loss takes ``reduction``: ``"mean"`` (the default), ``"sum"`` or ``"none"`` (per-element losses).
Classification losses take logits (or log-probabilities for `nll`) with classes on the last axis and
integer targets of the leading shape; targets out of range are reported eagerly (while tracing they are
data, so the check runs on the concrete example only).

Conventions follow PyTorch where the Go spaGO leaves a choice open; where they differ, the docstring says
(``mse`` is the plain mean of squared errors, without the Go spaGO's factor ½).
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from . import dtypes, ops
from .errors import DTypeError, ShapeError, SpagoError
from .tensor import Tensor, as_tensor

__all__ = [
    "mae", "mse", "nll", "cross_entropy", "binary_cross_entropy_with_logits", "focal_loss", "weighted_focal_loss",
    "perplexity", "distance", "mse_seq", "mae_seq", "cross_entropy_seq",
]

REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- checks

def _check_reduction(reduction: str, name: str) -> None:
    if reduction not in REDUCTIONS:
        raise SpagoError(f"{name}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _float(x, name: str, what: str) -> Tensor:
    x = as_tensor(x)
    if not dtypes.is_float(x.dtype):
        raise DTypeError(f"{name}: {what} must be floating, got {x.dtype.name}")
    return x


def _pair(pred, target, name: str) -> tuple[Tensor, Tensor]:
    """Prediction and target as tensors of one floating dtype and one shape."""
    pred = _float(pred, name, "the prediction")
    target = as_tensor(target, dtype=pred.dtype) if not isinstance(target, Tensor) else target
    if not dtypes.is_float(target.dtype):
        raise DTypeError(f"{name}: the target must be floating, got {target.dtype.name}")
    if target.dtype != pred.dtype:
        raise DTypeError(f"{name}: prediction is {pred.dtype.name} but target is {target.dtype.name}")
    if target.shape != pred.shape:
        raise ShapeError(f"{name}: prediction has shape {pred.shape} but target has shape {target.shape}")
    return pred, target


def _classes(scores, target, name: str, what: str) -> tuple[Tensor, Tensor]:
    """Scores (..., C) and integer targets (...), checked against each other."""
    scores = _float(scores, name, what)
    target = as_tensor(target)
    if not dtypes.is_int(target.dtype):
        raise DTypeError(f"{name}: targets must be integer class indices, got {target.dtype.name}")
    if scores.ndim == 0 or target.shape != scores.shape[:-1]:
        raise ShapeError(f"{name}: {what} of shape {scores.shape} need targets of shape {scores.shape[:-1]} "
                         f"(one class index per row), got {target.shape}")
    n = scores.shape[-1]
    if target.is_concrete and target.size:
        t = target.numpy()
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n:
            raise ShapeError(f"{name}: target {hi if hi >= n else lo} is out of range for {n} classes")
    return scores, target


def _class_weights(weight, n: int, dtype, name: str) -> Tensor | None:
    if weight is None:
        return None
    w = as_tensor(weight, dtype=dtype) if not isinstance(weight, Tensor) else weight
    if w.shape != (n,):
        raise ShapeError(f"{name}: class weights must have shape ({n},), got {w.shape}")
    if w.dtype != dtype:
        raise DTypeError(f"{name}: class weights are {w.dtype.name}, scores are {dtype.name}")
    return w


# A compiled training step pads a ragged last batch to the size it was compiled for and weighs the padded
# rows out: inside ``row_weights(w)`` (w: 1 for a real row, 0 for padding) every "mean" and "sum" scales the
# leading axis by w and a mean counts only the real rows, so the padding changes neither loss nor gradients.
_rows = threading.local()


@contextlib.contextmanager
def row_weights(weights: Tensor):
    """Losses reduced inside weigh their leading (batch) axis by ``weights`` (see the comment above)."""
    saved, _rows.weights = getattr(_rows, "weights", None), weights
    try:
        yield
    finally:
        _rows.weights = saved


def _weigh_rows(loss: Tensor) -> tuple:
    """``loss`` with its batch rows weighed, and how many real elements it holds."""
    w = getattr(_rows, "weights", None)
    if w is None or loss.ndim == 0 or loss.shape[0] != w.shape[0]:
        return loss, float(max(loss.size, 1))
    per_row = float(loss.size // max(loss.shape[0], 1))
    w = ops.cast(w, loss.dtype)
    return loss * ops.reshape(w, (w.shape[0],) + (1,) * (loss.ndim - 1)), ops.sum(w) * per_row


def _reduce(loss: Tensor, reduction: str, name: str, denominator=None) -> Tensor:
    """``denominator``: per-element weights whose sum divides a "mean" (class weights), else the count."""
    _check_reduction(reduction, name)
    if reduction == "none":
        return loss
    loss, count = _weigh_rows(loss)
    total = ops.sum(loss)
    if reduction == "sum":
        return total
    return total / (ops.sum(_weigh_rows(denominator)[0]) if denominator is not None else count)


# ----------------------------------------------------------------------------- regression

def mae(pred, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error (L1 loss): |pred − target|."""
    pred, target = _pair(pred, target, "mae")
    return _reduce(ops.abs(pred - target), reduction, "mae")


def mse(pred, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: (pred − target)². (The Go spaGO's MSE has an extra factor ½.)"""
    pred, target = _pair(pred, target, "mse")
    return _reduce(ops.square(pred - target), reduction, "mse")


def distance(pred, target, reduction: str = "mean") -> Tensor:
    """Euclidean distance ‖pred − target‖₂ over the last axis (a 0-d pair gives |target − pred|, the Go
    spaGO's ``Distance``); one distance per row, then reduced."""
    pred = _float(pred, "distance", "the prediction")
    if not isinstance(target, Tensor) and np.ndim(target) == 0 and pred.ndim > 0:
        target = ops.full(pred.shape, float(target), pred.dtype)
    pred, target = _pair(pred, target, "distance")
    diff = pred - target
    if pred.ndim == 0:
        return _reduce(ops.abs(diff), reduction, "distance")
    return _reduce(ops.sqrt(ops.sum(ops.square(diff), axis=-1)), reduction, "distance")


# ----------------------------------------------------------------------------- classification

def nll(log_probs, target, weight=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood −log p[target] from log-probabilities (..., C) and class indices (...).

    With class ``weight`` w, each term is scaled by w[target] and "mean" divides by Σ w[target]."""
    log_probs, target = _classes(log_probs, target, "nll", "log-probabilities")
    n = log_probs.shape[-1]
    w = _class_weights(weight, n, log_probs.dtype, "nll")
    hot = ops.one_hot(target, n, log_probs.dtype)
    loss = -ops.sum(hot * log_probs, axis=-1)
    if w is None:
        return _reduce(loss, reduction, "nll")
    wt = ops.sum(hot * w, axis=-1)
    return _reduce(loss * wt, reduction, "nll", denominator=wt)


def cross_entropy(logits, target, weight=None, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy from logits (..., C) and class indices (...): −Σ_c q_c · log softmax(x)_c, where q is
    the one-hot target, smoothed to (1 − ε)·onehot + ε/C with ``label_smoothing`` ε (Szegedy et al., 2016).

    With class ``weight`` w, each row's loss is scaled by w[target] and "mean" divides by Σ w[target]."""
    logits, target = _classes(logits, target, "cross_entropy", "logits")
    if not 0.0 <= label_smoothing <= 1.0:
        raise SpagoError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    n = logits.shape[-1]
    w = _class_weights(weight, n, logits.dtype, "cross_entropy")
    hot = ops.one_hot(target, n, logits.dtype)
    logp = ops.log_softmax(logits, axis=-1)
    q = hot if label_smoothing == 0.0 else hot * (1.0 - label_smoothing) + label_smoothing / n
    loss = -ops.sum(q * logp, axis=-1)
    if w is None:
        return _reduce(loss, reduction, "cross_entropy")
    wt = ops.sum(hot * w, axis=-1)
    return _reduce(loss * wt, reduction, "cross_entropy", denominator=wt)


def binary_cross_entropy_with_logits(logits, target, pos_weight=None, reduction: str = "mean") -> Tensor:
    """−[p·y·log σ(x) + (1 − y)·log(1 − σ(x))] with p = ``pos_weight`` (default 1), computed with
    log σ(x) and log σ(−x) = log(1 − σ(x)) so no logit overflows."""
    logits, target = _pair(logits, target, "binary_cross_entropy_with_logits")
    pos = ops.log_sigmoid(logits)
    neg = ops.log_sigmoid(-logits)
    if pos_weight is not None:
        pos = pos * (as_tensor(pos_weight, dtype=logits.dtype) if not isinstance(pos_weight, Tensor) else pos_weight)
    return _reduce(-(target * pos + (1.0 - target) * neg), reduction, "binary_cross_entropy_with_logits")


def focal_loss(logits, target, gamma: float = 2.0, alpha=None, reduction: str = "mean") -> Tensor:
    """Focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection"): FL = −α_t·(1 − p_t)^γ·log p_t,
    where p_t is the softmax probability of the target class. γ ≥ 0 down-weights easy examples (γ = 0 is
    cross-entropy); ``alpha`` is a scalar factor or per-class weights α[target]. "mean" is the plain mean."""
    if gamma < 0:
        raise SpagoError(f"focal_loss: gamma must be >= 0, got {gamma}")
    logits, target = _classes(logits, target, "focal_loss", "logits")
    n = logits.shape[-1]
    ce = cross_entropy(logits, target, reduction="none")
    loss = ce if gamma == 0 else ops.pow(1.0 - ops.exp(-ce), float(gamma)) * ce
    if alpha is not None:
        if isinstance(alpha, (int, float)):
            loss = loss * float(alpha)
        else:
            w = _class_weights(alpha, n, logits.dtype, "focal_loss")
            loss = loss * ops.sum(ops.one_hot(target, n, logits.dtype) * w, axis=-1)
    return _reduce(loss, reduction, "focal_loss")


def weighted_focal_loss(logits, target, weights, gamma: float = 2.0, reduction: str = "mean") -> Tensor:
    """The focal loss with each example scaled by its class weight (the Go spaGO's WeightedFocalLoss)."""
    return focal_loss(logits, target, gamma=gamma, alpha=weights, reduction=reduction)


def perplexity(logits, target) -> Tensor:
    """exp of the mean cross-entropy: how many classes the model is, on average, as unsure as."""
    return ops.exp(cross_entropy(logits, target, reduction="mean"))


# ----------------------------------------------------------------------------- sequences
#
# A sequence is a list of steps or one (B, T, ...) tensor. As in the Go spaGO, each step's loss is summed
# over its elements; "sum" adds the steps, "mean" averages over steps (over the B·T positions of a
# tensor), "none" returns one loss per step ((T,) for a list, (B, T) for a tensor).

def _seq(per_element, pred, target, reduction: str, name: str) -> Tensor:
    """``per_element(pred, target)`` gives the losses of a step, or of a (B, T, ...) tensor."""
    _check_reduction(reduction, name)
    if isinstance(pred, (list, tuple)):
        if not isinstance(target, (list, tuple)) or len(pred) != len(target):
            got = len(target) if isinstance(target, (list, tuple)) else type(target).__name__
            raise ShapeError(f"{name}: {len(pred)} predicted steps need as many targets, got {got}")
        if not pred:
            raise ShapeError(f"{name}: the sequence is empty")
        steps = [ops.sum(_weigh_rows(per_element(p, t))[0]) for p, t in zip(pred, target)]
        losses = ops.stack(steps)
        count = float(losses.size)
    else:
        pred = as_tensor(pred)
        if pred.ndim < 2:
            raise ShapeError(f"{name}: a sequence tensor must be (batch, time, ...), got shape {pred.shape}")
        elements = per_element(pred, target)
        losses = ops.sum(elements, axis=tuple(range(2, elements.ndim))) if elements.ndim > 2 else elements
        if reduction == "none":
            return losses
        losses, count = _weigh_rows(losses)
    if reduction == "none":
        return losses
    total = ops.sum(losses)
    return total if reduction == "sum" else total / count


def mse_seq(pred, target, reduction: str = "mean") -> Tensor:
    """Squared error summed per step, over a sequence (list of steps or (B, T, ...) tensor)."""
    return _seq(lambda p, t: mse(p, t, "none"), pred, target, reduction, "mse_seq")


def mae_seq(pred, target, reduction: str = "mean") -> Tensor:
    """Absolute error summed per step, over a sequence (list of steps or (B, T, ...) tensor)."""
    return _seq(lambda p, t: mae(p, t, "none"), pred, target, reduction, "mae_seq")


def cross_entropy_seq(logits, target, reduction: str = "mean", weight=None,
                      label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy per step, over a sequence: a list of step logits ((C,) or (B, C)) with a list of
    targets, or (B, T, C) logits with (B, T) targets."""
    def per(p, t):
        return cross_entropy(p, t, weight=weight, label_smoothing=label_smoothing, reduction="none")

    if not isinstance(logits, (list, tuple)):
        logits = as_tensor(logits)
        if logits.ndim != 3:
            raise ShapeError(f"cross_entropy_seq: a sequence tensor of logits must be (batch, time, classes), "
                             f"got shape {logits.shape}")
    return _seq(per, logits, target, reduction, "cross_entropy_seq")

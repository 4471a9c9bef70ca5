"""Losses: values against independent NumPy references, finite-difference gradients (float64),
compiled against eager, and errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago import losses
from spago.errors import DTypeError, ShapeError, SpagoError
from spago.testing import assert_compiled_matches_eager, check_grad

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5))          # predictions / logits: 4 rows, 5 classes
Y = RNG.standard_normal((4, 5))          # regression targets
T = np.array([0, 3, 4, 1])               # class targets
W = np.array([0.5, 1.0, 2.0, 1.5, 0.25])  # class weights
B = (RNG.random((4, 5)) > 0.5).astype(np.float64)  # binary targets


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def np_ce(x, t, eps=0.0):
    logp = np_log_softmax(x)
    picked = np.take_along_axis(logp, t[..., None], -1)[..., 0]
    return -(1 - eps) * picked - eps * logp.mean(-1)


def np_focal(x, t, gamma):
    ce = np_ce(x, t)
    return (1 - np.exp(-ce)) ** gamma * ce


def np_bce(x, y):
    p = 1 / (1 + np.exp(-x))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


# name -> (loss of tensors, NumPy reference, float arguments, int arguments)
CASES = {
    "mae": (lambda a, b: losses.mae(a, b), lambda a, b: np.abs(a - b).mean(), (X, Y)),
    "mae_sum": (lambda a, b: losses.mae(a, b, "sum"), lambda a, b: np.abs(a - b).sum(), (X, Y)),
    "mse": (lambda a, b: losses.mse(a, b), lambda a, b: ((a - b) ** 2).mean(), (X, Y)),
    "mse_none": (lambda a, b: losses.mse(a, b, "none"), lambda a, b: (a - b) ** 2, (X, Y)),
    "distance": (lambda a, b: losses.distance(a, b), lambda a, b: np.sqrt(((a - b) ** 2).sum(-1)).mean(), (X, Y)),
    "nll": (lambda a: losses.nll(sp.log_softmax(a), T), lambda a: np_ce(a, T).mean(), (X,)),
    "nll_weighted": (lambda a: losses.nll(sp.log_softmax(a), T, weight=W),
                     lambda a: (np_ce(a, T) * W[T]).sum() / W[T].sum(), (X,)),
    "cross_entropy": (lambda a: losses.cross_entropy(a, T), lambda a: np_ce(a, T).mean(), (X,)),
    "cross_entropy_sum": (lambda a: losses.cross_entropy(a, T, reduction="sum"), lambda a: np_ce(a, T).sum(), (X,)),
    "cross_entropy_weighted": (lambda a: losses.cross_entropy(a, T, weight=W),
                               lambda a: (np_ce(a, T) * W[T]).sum() / W[T].sum(), (X,)),
    "cross_entropy_smoothed": (lambda a: losses.cross_entropy(a, T, label_smoothing=0.1),
                               lambda a: np_ce(a, T, 0.1).mean(), (X,)),
    "bce_with_logits": (lambda a: losses.binary_cross_entropy_with_logits(a, B), lambda a: np_bce(a, B).mean(),
                        (X * 3,)),
    "focal": (lambda a: losses.focal_loss(a, T, gamma=2.0), lambda a: np_focal(a, T, 2.0).mean(), (X,)),
    "focal_alpha": (lambda a: losses.focal_loss(a, T, gamma=1.5, alpha=0.25),
                    lambda a: 0.25 * np_focal(a, T, 1.5).mean(), (X,)),
    "weighted_focal": (lambda a: losses.weighted_focal_loss(a, T, W, gamma=2.0),
                       lambda a: (np_focal(a, T, 2.0) * W[T]).mean(), (X,)),
    "perplexity": (lambda a: losses.perplexity(a, T), lambda a: np.exp(np_ce(a, T).mean()), (X,)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_against_numpy(name):
    fn, ref, args = CASES[name]
    got = fn(*[sp.tensor(a) for a in args]).numpy()
    np.testing.assert_allclose(got, ref(*args), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_difference_gradient(name):
    fn, _, args = CASES[name]
    check_grad(fn, *args)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_matches_eager(name):
    fn, _, args = CASES[name]
    assert_compiled_matches_eager(fn, *[a.astype(np.float32) for a in args])


def test_bce_with_logits_is_stable_for_large_logits():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    got = losses.binary_cross_entropy_with_logits(sp.tensor(x), sp.tensor(y), reduction="none").numpy()
    want = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    pw = losses.binary_cross_entropy_with_logits(sp.tensor(x[:3]), sp.tensor(y[:3]), pos_weight=3.0, reduction="sum")
    want = -(3.0 * y[:3] * -np.logaddexp(0, -x[:3]) + (1 - y[:3]) * -np.logaddexp(0, x[:3])).sum()
    np.testing.assert_allclose(pw.numpy(), want, rtol=1e-12)


def test_focal_with_gamma_zero_is_cross_entropy():
    a = losses.focal_loss(sp.tensor(X), T, gamma=0.0).numpy()
    np.testing.assert_allclose(a, np_ce(X, T).mean(), rtol=1e-12)


def test_distance_of_scalars_is_the_go_absolute_difference():
    d = losses.distance(sp.tensor(np.float64(2.5)), 4.0)
    assert d.item() == pytest.approx(1.5)


# ----------------------------------------------------------------------------- sequences

SEQ_P = RNG.standard_normal((2, 3, 4))
SEQ_T = RNG.standard_normal((2, 3, 4))
SEQ_C = np.array([[0, 3, 1], [2, 2, 0]])


def test_sequence_losses_on_tensors():
    per_pos = ((SEQ_P - SEQ_T) ** 2).sum(-1)  # (B, T)
    np.testing.assert_allclose(losses.mse_seq(sp.tensor(SEQ_P), sp.tensor(SEQ_T)).numpy(), per_pos.mean())
    np.testing.assert_allclose(losses.mse_seq(sp.tensor(SEQ_P), sp.tensor(SEQ_T), "sum").numpy(), per_pos.sum())
    np.testing.assert_allclose(losses.mae_seq(sp.tensor(SEQ_P), sp.tensor(SEQ_T), "none").numpy(),
                               np.abs(SEQ_P - SEQ_T).sum(-1))
    ce = np_ce(SEQ_P, SEQ_C)
    np.testing.assert_allclose(losses.cross_entropy_seq(sp.tensor(SEQ_P), SEQ_C).numpy(), ce.mean())
    np.testing.assert_allclose(losses.cross_entropy_seq(sp.tensor(SEQ_P), SEQ_C, "sum").numpy(), ce.sum())


def test_sequence_losses_on_lists_follow_the_go_spago():
    steps = [SEQ_P[0, t] for t in range(3)]
    targets = [SEQ_T[0, t] for t in range(3)]
    per_step = ((SEQ_P[0] - SEQ_T[0]) ** 2).sum(-1)
    got = losses.mse_seq([sp.tensor(s) for s in steps], [sp.tensor(t) for t in targets])
    np.testing.assert_allclose(got.numpy(), per_step.mean())
    got = losses.mae_seq([sp.tensor(s) for s in steps], [sp.tensor(t) for t in targets], "sum")
    np.testing.assert_allclose(got.numpy(), np.abs(SEQ_P[0] - SEQ_T[0]).sum())
    got = losses.cross_entropy_seq([sp.tensor(s) for s in steps], [int(c) for c in SEQ_C[0]], "none")
    np.testing.assert_allclose(got.numpy(), np_ce(SEQ_P[0], SEQ_C[0]))


def test_sequence_loss_gradient_and_compiled():
    check_grad(lambda p, t: losses.mse_seq(p, t), SEQ_P, SEQ_T)
    check_grad(lambda p, t: losses.mae_seq(p, t), SEQ_P, SEQ_T)
    check_grad(lambda p: losses.cross_entropy_seq(p, SEQ_C), SEQ_P)
    for fn in (losses.mse_seq, losses.mae_seq):
        assert_compiled_matches_eager(fn, SEQ_P.astype(np.float32), SEQ_T.astype(np.float32))
    assert_compiled_matches_eager(lambda p: losses.cross_entropy_seq(p, SEQ_C), SEQ_P.astype(np.float32))


def test_sequence_losses_on_lists_gradient():
    steps = [SEQ_P[0, t] for t in range(3)]
    targets = [SEQ_T[0, t] for t in range(3)]
    check_grad(lambda *ps: losses.mse_seq(list(ps), [sp.tensor(t) for t in targets]), *steps)
    check_grad(lambda *ps: losses.mae_seq(list(ps), [sp.tensor(t) for t in targets], "sum"), *steps)
    check_grad(lambda *ps: losses.cross_entropy_seq(list(ps), [int(c) for c in SEQ_C[0]]), *steps)


# ----------------------------------------------------------------------------- errors

def test_errors():
    x = sp.tensor(X)
    with pytest.raises(ShapeError, match="shape"):
        losses.mse(x, sp.tensor(Y[:3]))
    with pytest.raises(DTypeError, match="float32"):
        losses.mae(x, sp.tensor(Y.astype(np.float32)))
    with pytest.raises(ShapeError, match="out of range"):
        losses.cross_entropy(x, np.array([0, 1, 5, 2]))
    with pytest.raises(ShapeError, match="out of range"):
        losses.nll(x, np.array([0, -1, 2, 2]))
    with pytest.raises(DTypeError, match="integer"):
        losses.cross_entropy(x, np.array([0.0, 1.0, 2.0, 2.0]))
    with pytest.raises(ShapeError, match="targets of shape"):
        losses.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(DTypeError, match="floating"):
        losses.cross_entropy(sp.tensor(np.arange(20).reshape(4, 5)), T)
    with pytest.raises(ShapeError, match="class weights"):
        losses.cross_entropy(x, T, weight=np.ones(3))
    with pytest.raises(SpagoError, match="reduction"):
        losses.mse(x, sp.tensor(Y), reduction="avg")
    with pytest.raises(SpagoError, match="gamma"):
        losses.focal_loss(x, T, gamma=-1.0)
    with pytest.raises(ShapeError, match="targets"):
        losses.mse_seq([x, x], [sp.tensor(Y)])
    with pytest.raises(ShapeError, match="empty"):
        losses.mae_seq([], [])
    with pytest.raises(ShapeError, match="batch, time"):
        losses.cross_entropy_seq(x, T)

"""The linear-chain CRF against brute-force enumeration of every tag path, finite differences and compiled code."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import spago
from spago.errors import DTypeError, ShapeError, SpagoError
from spago.nn import CRF
from spago.testing import assert_compiled_matches_eager, check_module_grad

from .time_loops import time_loops  # noqa: F401  (every test here runs with scan loops and unrolled)

K, T = 3, 4


def path_score(crf, emissions, path):
    """s(y) = start[y1] + Σ E[t, yt] + Σ transitions[y(t-1), yt] + end[yT], straight from the definition."""
    tr, start, end = crf.transitions.numpy(), crf.start.numpy(), crf.end.numpy()
    s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
    return s + sum(tr[a, b] for a, b in zip(path[:-1], path[1:]))


def all_paths(crf, emissions):
    paths = list(itertools.product(range(crf.num_tags), repeat=len(emissions)))
    return paths, np.array([path_score(crf, emissions, p) for p in paths])


@pytest.fixture
def case():
    rng = np.random.default_rng(3)
    crf = CRF(K).double()
    for p in crf.parameters():  # larger than the default init, so the paths differ clearly
        p.assign(rng.standard_normal(p.shape))
    emissions = rng.standard_normal((3, T, K))
    tags = rng.integers(0, K, (3, T))
    lengths = [4, 2, 1]
    mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return crf, emissions, tags, mask, lengths


def test_nll_equals_brute_force(case):
    crf, emissions, tags, mask, lengths = case
    got = crf.nll(emissions, tags, reduction="none").numpy()
    got_masked = crf.nll(emissions, tags, mask, reduction="none").numpy()
    for b, n in enumerate(lengths):
        _, scores = all_paths(crf, emissions[b])
        log_z = np.log(np.sum(np.exp(scores)))
        np.testing.assert_allclose(got[b], log_z - path_score(crf, emissions[b], tags[b]), rtol=1e-10)
        _, scores = all_paths(crf, emissions[b, :n])
        want = np.log(np.sum(np.exp(scores))) - path_score(crf, emissions[b, :n], tags[b, :n])
        np.testing.assert_allclose(got_masked[b], want, rtol=1e-10)
    np.testing.assert_allclose(crf.nll(emissions, tags, mask).numpy(), got_masked.mean(), rtol=1e-12)
    np.testing.assert_allclose(crf.nll(emissions, tags, mask, reduction="sum").numpy(), got_masked.sum(), rtol=1e-12)


def test_probabilities_sum_to_one(case):
    crf, emissions, _, _, _ = case
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    batch = np.repeat(emissions[:1], len(paths), axis=0)
    nll = crf.nll(batch, paths, reduction="none").numpy()
    np.testing.assert_allclose(np.exp(-nll).sum(), 1.0, rtol=1e-10)


def test_viterbi_equals_brute_force_argmax(case):
    crf, emissions, _, mask, lengths = case
    decoded = crf.decode(emissions, mask)
    full = crf.decode(emissions)
    for b, n in enumerate(lengths):
        paths, scores = all_paths(crf, emissions[b, :n])
        assert decoded[b] == list(paths[int(np.argmax(scores))])
        paths, scores = all_paths(crf, emissions[b])
        assert full[b] == list(paths[int(np.argmax(scores))])
    assert [len(p) for p in decoded] == lengths


def test_viterbi_scores_are_best_prefix_scores(case):
    """``with_scores``: at step t, tag k's score is the best score of any path over steps 1..t ending in k
    (held over padding), the same path as without scores, eager and compiled."""
    crf, emissions, _, mask, lengths = case
    path, scores = crf.viterbi(emissions, mask, with_scores=True)
    np.testing.assert_array_equal(path.numpy(), crf.viterbi(emissions, mask).numpy())
    for b, n in enumerate(lengths):
        for t in range(T):
            upto = min(t, n - 1) + 1
            paths = list(itertools.product(range(K), repeat=upto))
            best = np.full(K, -np.inf)
            for p in paths:  # a prefix's score: start + emissions + transitions, no end score
                s = path_score(crf, emissions[b, :upto], p) - crf.end.numpy()[p[-1]]
                best[p[-1]] = max(best[p[-1]], s)
            np.testing.assert_allclose(scores.numpy()[b, t], best, rtol=1e-10)
    crf.float()
    e, m = emissions.astype(np.float32), mask.astype(np.float32)
    got = spago.compile(lambda e, m: crf.viterbi(e, m, with_scores=True), e, m)(e, m)
    want = crf.viterbi(e, m, with_scores=True)
    np.testing.assert_array_equal(got[0], want[0].numpy())
    np.testing.assert_allclose(got[1], want[1].numpy(), rtol=1e-6, atol=1e-6)


def test_nll_gradient(case):
    crf, emissions, tags, mask, _ = case
    check_module_grad(crf, emissions, tags, mask)
    check_module_grad(CRF(K), emissions[:, :3], tags[:, :3])


def test_compiled_matches_eager(case):
    crf, emissions, tags, mask, _ = case
    crf.float()
    e = emissions.astype(np.float32)
    assert_compiled_matches_eager(lambda e, y, m: crf.nll(e, y, m, reduction="none"), e, tags, mask.astype(np.float32))


def test_bad_inputs(case):
    crf, emissions, tags, mask, _ = case
    with pytest.raises(ShapeError, match=r"\(batch, time, 3\)"):
        crf.nll(emissions[..., :2], tags)
    with pytest.raises(ShapeError, match="tags of shape"):
        crf.nll(emissions, tags[:, :2])
    with pytest.raises(DTypeError, match="integers"):
        crf.nll(emissions, tags.astype(np.float64))
    with pytest.raises(SpagoError, match=r"\[0, 3\)"):
        crf.nll(emissions, tags + 3)
    with pytest.raises(ShapeError, match="mask of shape"):
        crf.decode(emissions, mask[:, :2])
    bad = mask.copy()
    bad[1, 0] = 0
    with pytest.raises(SpagoError, match="first step"):
        crf.nll(emissions, tags, bad)
    bad = mask.copy()
    bad[0, 2] = 0
    with pytest.raises(SpagoError, match="ones followed by zeros"):
        crf.decode(emissions, bad)
    with pytest.raises(SpagoError, match="reduction"):
        crf.nll(emissions, tags, reduction="max")
    with pytest.raises(SpagoError, match="eagerly"):
        spago.trace(lambda e: crf.decode(e), emissions)


def test_start_and_end_transitions():
    """start[k] scores beginning with tag k and end[k] finishing with it: large values steer Viterbi, and the
    gradient of the NLL for them is (model probability − gold indicator) of the first and last tag."""
    rng = np.random.default_rng(4)
    crf = CRF(K).double()
    for p in crf.parameters():
        p.assign(0.1 * rng.standard_normal(p.shape))
    emissions = 0.1 * rng.standard_normal((1, T, K))
    crf.start.assign(np.array([0.0, 0.0, 20.0]))
    crf.end.assign(np.array([0.0, 20.0, 0.0]))
    path = crf.decode(emissions)[0]
    assert path[0] == 2 and path[-1] == 1

    crf.start.assign(rng.standard_normal(K))
    crf.end.assign(rng.standard_normal(K))
    tags = np.array([[0, 2, 1, 0]])
    crf.zero_grad()
    crf.nll(emissions, tags).backward()
    paths, scores = all_paths(crf, emissions[0])
    prob = np.exp(scores - np.log(np.exp(scores).sum()))
    first = np.array([prob[[p[0] == k for p in paths]].sum() for k in range(K)])
    last = np.array([prob[[p[-1] == k for p in paths]].sum() for k in range(K)])
    np.testing.assert_allclose(crf.start.grad.numpy(), first - np.eye(K)[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(crf.end.grad.numpy(), last - np.eye(K)[0], rtol=1e-9, atol=1e-12)

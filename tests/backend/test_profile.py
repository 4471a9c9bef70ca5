"""Profiling builds: compile(..., profile=True) counts cycles per kernel; report() shows where time goes."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.errors import SpagoError

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 96)).astype(np.float32)
W = rng.standard_normal((96, 80)).astype(np.float32)
G = np.ones(80, np.float32)


def model(x, w, g):
    return sp.layer_norm(sp.gelu(x @ w), g, None, 1e-5).sum(axis=0)


@pytest.fixture(scope="module")
def profiled():
    return sp.compile(model, X, W, G, cache=False, profile=True)


def test_profile_counts_every_kernel(profiled):
    profiled.reset_profile()
    for _ in range(3):
        out = profiled(X, W, G)
    np.testing.assert_allclose(out, model(sp.tensor(X), sp.tensor(W), sp.tensor(G)).numpy(), rtol=1e-4, atol=1e-4)
    p = profiled.report()["profile"]
    assert p["calls"] == 3 and p["seconds"] > 0
    names = profiled.report()["kernel_names"]
    assert sorted(r["kernel"] for r in p["kernels"]) == sorted(names)
    assert all(r["total_ms"] >= 0 and r["mean_ms"] * 3 == pytest.approx(r["total_ms"]) for r in p["kernels"])
    assert sum(r["percent"] for r in p["kernels"]) <= 100.0 + 1e-6  # the entry's own overhead is the rest
    assert [r["total_ms"] for r in p["kernels"]] == sorted((r["total_ms"] for r in p["kernels"]), reverse=True)
    assert set(p["families"]) == {r["family"] for r in p["kernels"]}
    matmul = next(r for r in p["kernels"] if r["family"] == "matmul")
    assert "matmul" in matmul["ops"] and matmul["shape"] == (64, 80)


def test_profile_table_and_reset(profiled):
    profiled(X, W, G)
    text = profiled.profile_table(top=2)
    assert "ms per call" in text and "families:" in text and len(text.splitlines()) == 5
    profiled.reset_profile()
    p = profiled.profile()
    assert p["calls"] == 0 and all(r["total_ms"] == 0 for r in p["kernels"])


def test_profile_is_off_by_default_and_cached_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    plain = sp.compile(model, X, W, G)
    assert "profile" not in plain.report()
    with pytest.raises(SpagoError, match="profile=True"):
        plain.profile()
    again = sp.compile(model, X, W, G, profile=True)  # same graph: must not load the plain object
    assert not again.cache_hit and "profile" in again.report()
    np.testing.assert_allclose(again(X, W, G), plain(X, W, G), rtol=1e-6)


def test_profile_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPAGO_PROFILE", "1")
    c = sp.compile(lambda x: sp.exp(x) * 2.0, X, cache=False)
    c(X)
    assert c.profile()["calls"] == 1

"""Code generation: vectorised loops, threaded large kernels, and every fusion pattern compiled."""
from __future__ import annotations

import re

import numpy as np
import pytest

import spago as sp
from spago.lower import parallel
from tests.passes.models import attention_args, attention_block, layer_norm, rms_norm

rng = np.random.default_rng(0)


def test_transcendental_loops_are_vectorised():
    x = rng.standard_normal(4096).astype(np.float32)
    c = sp.compile(lambda v: sp.tanh(sp.exp(v * 0.5)) + sp.erf(v) * sp.sigmoid(v) + sp.log1p(sp.abs(v)), x,
                   cache=False)
    asm = c.asm()
    assert re.search(r"\bv(fmadd|fmul|add|mul)\w*ps\s+%[yz]mm", asm), "no packed float arithmetic in the kernel"
    assert not re.search(r"call\w*\s+\w*(expf|logf|tanhf|erff|log1pf)\b", asm), "a scalar libm call per element"
    np.testing.assert_allclose(c(x), (lambda v: np.tanh(np.exp(v * 0.5)) + __import__("scipy.special").special.erf(v)
                                      / (1 + np.exp(-v)) + np.log1p(np.abs(v)))(x.astype(np.float64)), rtol=2e-5)


def test_float32_erf_is_accurate_everywhere():
    """The rational erf: < 5e-7 relative error on a dense grid and tiny values; exact ±1, NaN and ±0."""
    from scipy.special import erf

    grid = np.linspace(-6, 6, 200_001)
    tiny = np.geomspace(1e-30, 1, 2001)
    special = [np.inf, -np.inf, 0.0, -0.0, 3.93, -5.0]
    x = np.concatenate([grid, tiny, -tiny, special]).astype(np.float32)
    c = sp.compile(sp.erf, x, cache=False)
    y, want = c(x), erf(x.astype(np.float64))
    assert np.max(np.abs(y - want) / np.maximum(np.abs(want), 1e-38)) < 5e-7
    assert list(y[-6:]) == [1.0, -1.0, 0.0, -0.0, 1.0, -1.0] and np.signbit(y[-3])
    nan = sp.compile(sp.erf, np.array([np.nan, 1.0], np.float32), cache=False)(np.array([np.nan, 1.0], np.float32))
    assert np.isnan(nan[0]) and abs(nan[1] - erf(1.0)) < 1e-7


@pytest.mark.skipif(not parallel.enabled(), reason="one core: kernels are not threaded")
def test_large_kernels_run_threaded_and_agree():
    x = rng.standard_normal((512, 384)).astype(np.float32)
    g, b = np.ones(384, np.float32), np.zeros(384, np.float32)
    f = lambda v: layer_norm(sp.gelu(v) * 2.0 + 1.0, g, b)  # noqa: E731
    c = sp.compile(f, x, cache=False)
    assert "spago_parallel_for" in c.llvm_ir()
    np.testing.assert_allclose(c(x), f(sp.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
    small = sp.compile(f, x[:2], cache=False)
    assert "spago_parallel_for" not in small.llvm_ir()  # too small to be worth a second thread


def test_threading_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", "1")
    x = rng.standard_normal(1 << 17).astype(np.float32)
    c = sp.compile(lambda v: sp.exp(v) + 1.0, x, cache=False)
    assert "spago_parallel_for" not in c.llvm_ir()
    np.testing.assert_allclose(c(x), np.exp(x) + 1.0, rtol=1e-6)


W = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
B = rng.standard_normal(32).astype(np.float32)
PATTERNS = {
    "layer_norm": (lambda x: layer_norm(x, np.ones(16, np.float32), np.zeros(16, np.float32)), "rowwise"),
    "rms_norm": (lambda x: rms_norm(x, np.ones(16, np.float32)), "rowwise"),
    "softmax": (lambda x: sp.softmax(x, axis=-1), "rowwise"),
    "log_softmax": (lambda x: sp.log_softmax(x, axis=-1), "rowwise"),
    "mean_var": (lambda x: x.var(axis=-1, keepdims=True) + x.mean(axis=-1, keepdims=True), "rowwise"),
    "reduce_with_producers": (lambda x: ((x - 0.5) ** 2).sum(axis=0), "reduce"),
    "linear_gelu": (lambda x: sp.gelu(x @ W + B), "matmul"),
    "linear_transposed": (lambda x: x @ W.T.T * 0.5, "matmul"),
    "elementwise_chain": (lambda x: sp.tanh(sp.exp(x) * B[:16] + 1.0).sigmoid() - x, "elementwise"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(PATTERNS))
def test_every_fusion_pattern_compiles_to_the_eager_result(name, dtype):
    fn, pattern = PATTERNS[name]
    x = rng.standard_normal((6, 16)).astype(dtype)
    if dtype == np.float64:  # constants follow the input's precision
        fn = _as_f64(fn, name)
    c = sp.compile(fn, x)
    assert pattern in {n.attrs.get("pattern") for n in c.graph.nodes}
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c(x), fn(sp.tensor(x)).numpy(), **tol)


def _as_f64(fn, name):
    if name in ("linear_gelu", "linear_transposed", "elementwise_chain"):
        w, b = W.astype(np.float64), B.astype(np.float64)
        return {"linear_gelu": lambda x: sp.gelu(x @ w + b), "linear_transposed": lambda x: x @ w.T.T * 0.5,
                "elementwise_chain": lambda x: sp.tanh(sp.exp(x) * b[:16] + 1.0).sigmoid() - x}[name]
    if name in ("layer_norm", "rms_norm"):
        ones, zeros = np.ones(16), np.zeros(16)
        return (lambda x: layer_norm(x, ones, zeros)) if name == "layer_norm" else (lambda x: rms_norm(x, ones))
    return fn


def test_attention_block_compiles_to_eight_kernels_and_matches():
    args = attention_args(rng)
    c = sp.compile(attention_block, *args)
    assert c.report()["kernels"] <= 8
    np.testing.assert_allclose(c(*args), attention_block(*[sp.tensor(a) for a in args]).numpy(), rtol=1e-4, atol=1e-5)


def test_a_kernel_reading_one_value_twice_is_not_reused_for_two_values():
    """``add(x, x)`` is emitted reading one pointer twice; ``add(x + x, x)`` has the same op and types but two
    operands, so it needs its own code (it once reused the first and returned x + x)."""
    import spago as sp

    f = lambda x: (x + x, (x + x) + x)  # noqa: E731
    for x in (np.array(0.5, np.float32), np.full((3, 5), 0.5, np.float32)):
        out = sp.compile(f, x, cache=False)(x)
        np.testing.assert_array_equal(out[0], x + x)
        np.testing.assert_array_equal(out[1], x + x + x)

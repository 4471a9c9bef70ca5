"""fuse_attention: scores, mask, softmax and context become one kernel, and the graph still computes
the same values (interpreter before and after, and the native kernel against eager)."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.passes.fuse_attention import fuse_attention, is_softmax
from spago.passes.fuse_matmul import fuse_matmul
from spago.passes.fuse_rowwise import fuse_rowwise
from spago.passes.fusion import kernel_count

from .models import attention_args, attention_block


def block_args(batch: int, seq: int, dim: int) -> list:
    args = attention_args(np.random.default_rng(1), batch, seq, dim)
    args[-3][..., seq // 3:] = -10000.0  # a padded tail of keys, as BERT's additive mask makes
    return args


def attention(*args):
    return attention_block(*args, heads=2)


def patterns(graph) -> list:
    return [n.attrs["pattern"] for n in graph.nodes if n.kind == "op" and n.op.name == "fused"]


def test_attention_fuses_and_preserves_values():
    args = block_args(1, 128, 64)
    graph = sp.trace(attention, *args)
    before = sp.ir.interpret(graph, *args)
    for p in (fuse_matmul, fuse_rowwise, fuse_attention):
        graph = p(graph)
        graph.verify()
    assert patterns(graph).count("attention") == 1
    assert not any(is_softmax(n) for n in graph.nodes)  # the softmax went into the attention kernel
    np.testing.assert_allclose(sp.ir.interpret(graph, *args), before, rtol=1e-5, atol=1e-5)


def test_default_pipeline_has_one_attention_kernel():
    args = block_args(2, 128, 64)
    out, _ = sp.passes.optimize(sp.trace(attention, *args))
    assert patterns(out).count("attention") == 1 and kernel_count(out) <= 6


def test_small_products_stay_unfused():
    """Below BLAS size the three kernels stay as they are (the loop product handles them)."""
    args = block_args(2, 8, 16)
    out, _ = sp.passes.optimize(sp.trace(attention, *args))
    assert "attention" not in patterns(out)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_attention_kernel_matches_eager(threads, monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    for batch, seq in [(1, 128), (3, 96)]:
        args = block_args(batch, seq, 64)
        compiled = sp.compile(attention, *args, cache=False)
        assert any("attention" in name for name in compiled.report()["kernel_names"])
        want = attention(*[sp.tensor(a) for a in args]).numpy()
        np.testing.assert_allclose(compiled(*args), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_attention_kernel_nan_and_fully_masked_rows_match_eager(threads, monkeypatch):
    """The kernel's row maximum skips the NaN test and its division moved after the context product:
    a NaN score still makes its rows NaN and a row of -inf scores (all keys masked) still gives NaN,
    as eager softmax does, while the other sentences stay finite."""
    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    args = block_args(3, 128, 64)
    args[-3][1] = -np.inf          # sentence 1: every key masked
    args[-3][2, ..., 7] = np.nan   # sentence 2: one key's scores NaN
    compiled = sp.compile(attention, *args, cache=False)
    assert any("attention" in name for name in compiled.report()["kernel_names"])
    want = attention(*[sp.tensor(a) for a in args]).numpy()
    got = compiled(*args)
    assert np.isnan(want[1:]).all() and np.isfinite(want[0]).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)

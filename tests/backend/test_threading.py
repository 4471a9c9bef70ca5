"""Threaded kernels on spago's pool, and products cut into row or column blocks: the same values as
NumPy for every way a product can be split, and for calls from several threads at once."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import spago as sp
from spago.lower import parallel
from spago.lower.matmul import matmul_plan

rng = np.random.default_rng(0)


def weight(*shape):
    t = sp.tensor((rng.standard_normal(shape) * 0.1).astype(np.float32))
    t.name = "w"
    return t


W_TALL, B_TALL = weight(96, 160), weight(160)
W_OUT = weight(200, 96)  # (out, in) like a Linear: read transposed


def linear_gelu(x):
    return sp.gelu(x @ W_TALL + B_TALL)


def linear_t_residual(x):
    return x @ W_OUT.transpose((1, 0)) + 1.0


def fused_node(compiled):
    return next(n for n in compiled.graph.nodes if n.kind == "op" and n.op.name in ("fused", "matmul")
                and (n.op.name == "matmul" or n.attrs["pattern"] == "matmul"))


@pytest.mark.skipif(not parallel.enabled(), reason="one core: kernels are not threaded")
@pytest.mark.parametrize("fn,shape,split", [
    (linear_gelu, (2, 256, 96), "rows"),       # tall: batch folded into 512 rows, cut by rows
    (linear_gelu, (1, 100, 96), "cols"),       # one short sentence: cut by columns
    (linear_t_residual, (3, 24, 96), "cols"),  # transposed weight, residual epilogue
])
def test_split_products_match_numpy(fn, shape, split):
    x = rng.standard_normal(shape).astype(np.float32)
    compiled = sp.compile(fn, x, cache=False)
    plan = matmul_plan(fused_node(compiled))
    assert plan is not None and plan.groups == ()  # batch axes folded into rows
    assert (plan.blocks > 1) if split == "rows" else (plan.col_blocks > 1)
    assert "spago_parallel_for" in compiled.llvm_ir()
    want = fn(sp.tensor(x)).numpy()
    np.testing.assert_allclose(compiled(x), want, rtol=1e-4, atol=1e-5)


def test_batched_product_keeps_groups():
    a = rng.standard_normal((4, 3, 64, 48)).astype(np.float32)
    b = rng.standard_normal((4, 3, 48, 72)).astype(np.float32)
    compiled = sp.compile(lambda p, q: (p @ q) * 0.5, a, b, cache=False)
    plan = matmul_plan(fused_node(compiled))
    assert plan.groups == (4, 3)
    np.testing.assert_allclose(compiled(a, b), (a @ b) * 0.5, rtol=1e-4, atol=1e-4)


def test_calls_from_several_threads_at_once():
    """The pool serves one call at a time; a call that finds it busy runs on its own thread."""
    x = rng.standard_normal((8, 256, 96)).astype(np.float32)
    compiled = sp.compile(linear_gelu, x, cache=False)
    want = compiled(x)
    inputs = [x * (k + 1) for k in range(4)]
    wants = [compiled(v) for v in inputs]
    results: dict = {}

    def run(k):
        for _ in range(5):
            results[k] = compiled(inputs[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_array_equal(results[k], wants[k])
    np.testing.assert_array_equal(compiled(x), want)


def test_weight_transpose_stays_a_view():
    """Folding W.T would keep a second copy of the weight; the product reads W through strides."""
    x = rng.standard_normal((16, 96)).astype(np.float32)
    compiled = sp.compile(linear_t_residual, x, cache=False)
    consts = [n for n in compiled.graph.consts if n.spec.size == 200 * 96]
    assert len(consts) == 1 and np.shares_memory(consts[0].data, W_OUT.numpy())


@pytest.mark.skipif(not parallel.enabled(), reason="one core: kernels are not threaded")
def test_workers_sleep_when_idle_and_wake_for_the_next_call():
    """Idle workers sleep (on a futex on Linux) instead of spinning, and a call after a pause still
    gets the right values."""
    import time

    x = rng.standard_normal((1 << 18,)).astype(np.float32)
    f = sp.compile(lambda a: sp.tanh(a) * 2.0, x)
    want = np.tanh(x) * 2.0
    np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-6)
    for pause in (0.0, 0.02, 0.15):
        time.sleep(pause)
        np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-6)
    time.sleep(0.05)  # past the spinning
    cpu = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu < 0.1  # a spinning worker would burn the whole 0.3 s


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("m,k,n,a_transposed", [
    (32, 128, 512, False),  # an LSTM step's recurrent product
    (32, 512, 128, False),  # its gradient with respect to the state
    (30, 200, 96, False),   # rows left over after whole tiles of 4; columns in tiles of 32
    (13, 300, 64, True),    # A read through a transposed view
])
def test_register_tiled_products_match_numpy(m, k, n, a_transposed, threads, monkeypatch):
    """Few rows, contiguous weight rows, one thread: the product runs register tiles instead of BLAS
    (with two threads, BLAS on blocks split across them)."""
    from spago.lower.matmul import tiled as _tiled

    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    a = rng.standard_normal((k, m) if a_transposed else (m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)

    def f(a, w, bias):
        return sp.tanh((a.transpose((1, 0)) if a_transposed else a) @ w + bias)

    compiled = sp.compile(f, a, w, bias, cache=False)
    node = fused_node(compiled)
    assert (matmul_plan(node) is None) == (threads == "1") == _tiled(np.float32, m, n, k, (n, 1), int(threads))
    want = np.tanh((a.T if a_transposed else a) @ w + bias)
    np.testing.assert_allclose(compiled(a, w, bias), want, rtol=1e-4, atol=1e-4)  # sums of k float32 terms


def _attention(q, k, v, mask):
    return sp.softmax((q @ k.transpose((0, 1, 3, 2))) * 0.17 + mask, axis=-1) @ v


@pytest.mark.parametrize("batch", [1, 4])
def test_attention_is_threaded_by_its_work_and_cut_by_sequence(batch, monkeypatch):
    """One sentence's attention (12 heads x 128 x 32: an output below the elementwise threshold, yet
    12.6 M multiply-adds) runs on the threads; with a sequence per thread or more, each thread takes one
    contiguous run of sequences (the rows its row block of the product before wrote)."""
    from spago.lower.families import parallel_chunk, parallel_extent

    monkeypatch.setenv("SPAGO_NUM_THREADS", "2")
    q, k, v = (rng.standard_normal((batch, 12, 128, 32)).astype(np.float32) for _ in range(3))
    mask = np.zeros((batch, 1, 1, 128), np.float32)
    mask[..., 100:] = -10000.0
    compiled = sp.compile(_attention, q, k, v, mask, cache=False)
    node = next(n for _, n in compiled._lowered.kernels if n.op.name == "fused" and n.attrs["pattern"] == "attention")
    assert node.spec.size < parallel.MIN_ELEMENTS * batch
    extent = parallel_extent(node)
    assert extent == batch * 12
    assert parallel_chunk(node, extent) == (extent // 2 if batch >= 2 else extent // 8)
    want = _attention(*(sp.tensor(a) for a in (q, k, v, mask))).numpy()
    np.testing.assert_allclose(compiled(q, k, v, mask), want, rtol=1e-4, atol=1e-5)


W_WIDE = weight(96, 512)


def wide(x):
    return sp.gelu(x @ W_WIDE)


def test_short_product_of_a_packed_weight_takes_one_column_block_per_thread(monkeypatch):
    """Each column block packs all of A again: with the weight packed already, one block per thread
    (BLAS products keep a few per thread)."""
    monkeypatch.setenv("SPAGO_NUM_THREADS", "2")
    x = rng.standard_normal((1, 100, 96)).astype(np.float32)
    compiled = sp.compile(wide, x, cache=False)
    node = fused_node(compiled)
    plan = matmul_plan(node)
    assert node.meta.get("packed_b") and plan.col_blocks == 2 and plan.blocks == 1
    np.testing.assert_allclose(compiled(x), wide(sp.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)

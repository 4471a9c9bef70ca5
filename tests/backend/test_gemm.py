"""spago's own GEMM: packed constant weights, both ISA variants, paths in report(), GFLOP/s in profiles."""
from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvmlite import ir

import spago as sp
from spago.backend.kernels import gemm
from spago.errors import SpagoError

SUPPORTED = [name for name in gemm.ISAS
             if {"avx512": {"avx512f", "fma"}, "avx2": {"avx2", "fma"}}[name] <= gemm.host_features()]
needs_gemm = pytest.mark.skipif(not SUPPORTED, reason="this CPU has neither AVX2+FMA nor AVX-512")


@pytest.fixture(params=SUPPORTED or ["none"])
def isa(request, monkeypatch):
    """Each variant the host runs (the AVX2 one forced on an AVX-512 host)."""
    if request.param == "none":
        pytest.skip("this CPU has neither AVX2+FMA nor AVX-512")
    monkeypatch.setenv(gemm.ISA_VARIABLE, request.param)
    return gemm.ISAS[request.param]


def paths(compiled) -> list:
    return [p["path"] for p in compiled.report()["products"]]


def test_pack_weight_round_trips_and_refuses_partial_panels():
    isa = gemm.ISAS["avx2"]
    w = np.arange(5 * 32, dtype=np.float32).reshape(5, 32)
    packed = gemm.pack_weight(w, isa)
    assert packed.shape == w.shape and packed[0, :16].tolist() == w[0, :16].tolist()
    assert packed[0, 16:32].tolist() == w[1, :16].tolist()  # panel 0 continues with row 1
    np.testing.assert_array_equal(gemm.unpack_weight(packed, isa), w)
    with pytest.raises(SpagoError, match="multiple of 16"):
        gemm.pack_weight(np.ones((3, 20), np.float32), isa)


def test_forced_isa_is_checked(monkeypatch):
    monkeypatch.setenv(gemm.ISA_VARIABLE, "sse9")
    with pytest.raises(SpagoError, match="expected one of avx512, avx2 or off"):
        gemm.choose_isa()
    monkeypatch.setenv(gemm.ISA_VARIABLE, "off")
    assert gemm.choose_isa() is None


def test_blocks_fit_the_caches():
    isa = gemm.ISAS["avx512"]
    blocks = gemm.plan_blocks(isa, 1000)
    sizes = gemm.cache_sizes()
    assert blocks.kc * isa.nr * 4 <= sizes[1] and blocks.mc * blocks.kc * 4 <= sizes[2]
    assert blocks.nc * blocks.kc * isa.nr * 4 <= sizes[2] and blocks.nc >= 1
    assert blocks.mc % isa.mr == 0 and blocks.kc >= 1000 // -(-1000 // (sizes[1] // (isa.nr * 4)))
    assert gemm.plan_blocks(isa, 7).kc == 7


@needs_gemm
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("m,nc", [(29, 1), (47, 5), (45, 3)])
def test_kernel_reads_strided_activations(isa, a_transposed, m, nc):
    """The generated function alone, on a transposed A and a C with a wider row than n; the row counts
    leave every size of short tile (8, 4, 2, 1 rows) and the panel blocks every tile width."""
    k, n, ldc = 300, 5 * isa.nr, 5 * isa.nr + 5
    blocks = gemm.Blocks(kc=64, mc=2 * isa.mr, nc=nc)  # several k, row and panel blocks
    a_strides = (1, m) if a_transposed else (k, 1)
    module = ir.Module("t")
    fn = gemm.gemm_function(module, isa, blocks, a_strides[1])
    entry = ir.Function(module, gemm.GEMM_TYPE, "entry")
    b = ir.IRBuilder(entry.append_basic_block())
    b.call(fn, entry.args)
    b.ret_void()
    from spago.backend.jit import compile_ir, load_object

    address = load_object(compile_ir(str(module))[1], "entry")
    call = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 3, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.c_int64)(address)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    a_mem = np.ascontiguousarray(a.T) if a_transposed else a
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed = gemm.pack_weight(w, isa)
    c = np.full((m, ldc), 7.0, np.float32)
    call(m, n, k, a_mem.ctypes.data, a_strides[0], packed.ctypes.data, c.ctypes.data, ldc)
    np.testing.assert_allclose(c[:, :n], a @ w, rtol=1e-4, atol=1e-4)
    assert (c[:, n:] == 7.0).all()  # nothing written past the n columns


@needs_gemm
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 70), k=st.integers(1, 90), panels=st.integers(1, 3), transposed=st.booleans(),
       epilogue=st.sampled_from(["none", "bias", "bias-gelu", "residual"]), threads=st.sampled_from(["1", "2"]),
       batch=st.sampled_from([(), (3,)]))
def test_compiled_products_match_numpy(isa, monkeypatch, m, k, panels, transposed, epilogue, threads, batch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    rng = np.random.default_rng(m * 1000 + k)
    n = panels * isa.nr
    w = rng.standard_normal((n, k) if transposed else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal(batch + (m, k)).astype(np.float32)
    r = rng.standard_normal(batch + (m, n)).astype(np.float32)

    def f(x, r):
        y = x @ (w.T if transposed else w)
        if epilogue == "bias":
            y = y + bias
        elif epilogue == "bias-gelu":
            y = sp.gelu(y + bias)
        elif epilogue == "residual":
            y = y + r
        return y

    compiled = sp.compile(f, x, r, cache=False)
    expected = f(sp.tensor(x), sp.tensor(r)).numpy()
    np.testing.assert_allclose(compiled(x, r), expected, rtol=1e-4, atol=1e-4)
    assert paths(compiled) == [f"spago-gemm-{isa.name}"]


@needs_gemm
def test_epilogue_runs_once_after_the_last_k_block(isa, monkeypatch):
    """Bias, GELU and a residual applied strip by strip inside the GEMM: with k over several k blocks
    (added onto C block by block), rows short of a strip, panels over several L2 blocks, and the layers of
    a model sharing one GEMM function per epilogue."""
    monkeypatch.setenv("SPAGO_NUM_THREADS", "1")
    blocks = gemm.plan_blocks(isa, 10 ** 6)
    m, k, n = isa.mr + 7, 2 * blocks.kc + 5, (blocks.nc + 1) * isa.nr
    rng = np.random.default_rng(3)
    ws = [rng.standard_normal((k, n)).astype(np.float32) for _ in range(2)]
    bias = rng.standard_normal(n).astype(np.float32)
    xs = [rng.standard_normal((m, k)).astype(np.float32) for _ in range(2)]
    r = rng.standard_normal((m, n)).astype(np.float32)

    def f(x0, x1, r):
        return [sp.gelu(x @ w + bias) + r for x, w in zip((x0, x1), ws)]

    compiled = sp.compile(f, *xs, r, cache=False)
    for got, want in zip(compiled(*xs, r), f(*map(sp.tensor, xs), sp.tensor(r))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    assert paths(compiled) == [f"spago-gemm-{isa.name}"] * 2
    assert len(re.findall(r"define internal void @\"?spago_gemm_\w+_ep", compiled.llvm_ir())) == 1


@needs_gemm
def test_packed_weight_replaces_the_constant(isa):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 3 * isa.nr)).astype(np.float32)
    bias = rng.standard_normal(3 * isa.nr).astype(np.float32)
    x = rng.standard_normal((10, 64)).astype(np.float32)
    original = w.copy()
    compiled = sp.compile(lambda x: x @ w + bias, x, cache=False)
    np.testing.assert_allclose(compiled(x), x @ w + bias, rtol=1e-4, atol=1e-4)
    # the const table holds the packed weight and the bias, nothing more: no second copy
    assert sum(a.nbytes for a in compiled._consts) == w.nbytes + bias.nbytes
    weight = next(n for n in compiled.graph.consts if n.shape == w.shape)
    np.testing.assert_array_equal(weight.data, gemm.pack_weight(w, isa))
    assert not np.shares_memory(weight.data, w)
    assert weight.data.ctypes.data % 64 == 0  # panels start on cache lines: no split vector loads
    np.testing.assert_array_equal(w, original)  # the caller's array is untouched
    # the interpreter still reads the logical weight
    np.testing.assert_allclose(sp.ir.interpret(compiled.graph, x), x @ w + bias, rtol=1e-4, atol=1e-4)


@needs_gemm
def test_stacked_gate_weights_are_packed_in_place(isa):
    """Four gate weights W[k] of one stacked constant, read by products of different inputs."""
    rng = np.random.default_rng(2)
    hidden = isa.nr
    stacked = (rng.standard_normal((4, 2 * hidden, hidden)) * 0.1).astype(np.float32)
    xs = rng.standard_normal((4, 1, 2 * hidden)).astype(np.float32)

    def f(xs):
        return sp.concat([sp.sigmoid(xs[k] @ stacked[k]) for k in range(4)], axis=-1)

    compiled = sp.compile(f, xs, cache=False)
    np.testing.assert_allclose(compiled(xs), f(sp.tensor(xs)).numpy(), rtol=1e-5, atol=1e-5)
    assert set(paths(compiled)) == {f"spago-gemm-{isa.name}"}
    assert sum(a.nbytes for a in compiled._consts) == stacked.nbytes


@needs_gemm
def test_unrolled_loop_packs_its_weight_once(isa):
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((4, 2 * isa.nr, isa.nr)) * 0.1).astype(np.float32)
    xs = rng.standard_normal((6, 1, isa.nr)).astype(np.float32)

    def f(xs, h):
        for t in range(6):
            z = sp.concat([xs[t], h], axis=-1)
            h = sp.sigmoid(z @ w[0]) * sp.tanh(z @ w[1]) + sp.sigmoid(z @ w[2]) * sp.tanh(z @ w[3])
        return h

    h0 = np.zeros((1, isa.nr), np.float32)
    compiled = sp.compile(f, xs, h0, cache=False)
    np.testing.assert_allclose(compiled(xs, h0), f(sp.tensor(xs), sp.tensor(h0)).numpy(), rtol=1e-5, atol=1e-5)
    packed = {n.data.__array_interface__["data"][0]: n.data.nbytes
              for n in compiled.graph.consts if "stored_as" in n.meta}
    assert sum(packed.values()) == w.nbytes  # the gate weights packed once, however many steps read them
    assert set(paths(compiled)) == {f"spago-gemm-{isa.name}"}


@needs_gemm
def test_packed_constants_start_on_a_cache_line(isa):
    """A packed weight is the optimiser's own array: allocated 64-byte aligned, so no vector load of the
    micro-kernel straddles two cache lines (NumPy's allocator aligns to 16 bytes only)."""
    w = np.random.default_rng(8).standard_normal((300, 2 * isa.nr)).astype(np.float32)
    compiled = sp.compile(lambda x: x @ w, np.ones((3, 300), np.float32), cache=False)
    packed = [n.data for n in compiled.graph.consts if "stored_as" in n.meta]
    assert packed and all(a.ctypes.data % 64 == 0 for a in packed)


def test_report_names_each_products_path(monkeypatch):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((256, 96)).astype(np.float32)
    x = rng.standard_normal((200, 256)).astype(np.float32)
    ints = np.arange(12, dtype=np.int64).reshape(3, 4)
    monkeypatch.setenv("SPAGO_NUM_THREADS", "1")

    def f(x, w_in, i):
        return x @ w, x @ w_in, i @ i.T

    compiled = sp.compile(f, x, w, ints, cache=False)
    got = paths(compiled)
    assert got[0] == (f"spago-gemm-{gemm.choose_isa().name}" if gemm.choose_isa() else "openblas")
    assert got[1] == "openblas"  # a weight that is an input: BLAS
    assert got[2] == "loop"
    rows = compiled.report()["products"]
    assert rows[0]["gflop"] == pytest.approx(2 * 200 * 256 * 96 / 1e9)
    monkeypatch.setenv(gemm.ISA_VARIABLE, "off")
    assert paths(sp.compile(f, x, w, ints, cache=False))[0] == "openblas"


def test_profile_rows_give_gflops():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((128, 64)).astype(np.float32)
    x = rng.standard_normal((64, 128)).astype(np.float32)
    compiled = sp.compile(lambda x: sp.relu(x @ w), x, profile=True, cache=False)
    for _ in range(3):
        compiled(x)
    row = next(r for r in compiled.profile()["kernels"] if r["family"] == "matmul")
    assert row["gflops"] > 0
    assert "GFLOP/s" in compiled.profile_table()


@needs_gemm
def test_specialisations_share_one_packed_weight(isa):
    """Packing does not depend on the rows: every shape compiled from one weight reads one packed array,
    which lives as long as a compiled function holds it; a weight changed in place is packed anew."""
    import gc

    from spago.passes import pack_weights

    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 2 * isa.nr)).astype(np.float32)
    xs = [rng.standard_normal((rows, 64)).astype(np.float32) for rows in (1, 7, 40)]
    compiled = [sp.compile(lambda x: x @ w, x, cache=False) for x in xs]
    for k, x in enumerate(xs):
        np.testing.assert_allclose(compiled[k](x), x @ w, rtol=1e-4, atol=1e-4)
    weights = [next(n.data for n in f.graph.consts if "stored_as" in n.meta) for f in compiled]
    assert all(np.shares_memory(weights[0], other) for other in weights[1:])
    assert not weights[0].flags.writeable
    w *= 2  # in place: the next compilation must not reuse the old packing
    again = sp.compile(lambda x: x @ w, xs[0], cache=False)
    np.testing.assert_allclose(again(xs[0]), xs[0] @ w, rtol=1e-4, atol=1e-4)
    assert not np.shares_memory(next(n.data for n in again.graph.consts if "stored_as" in n.meta), weights[0])
    owner = weights[0].base
    alive = [r for r, _ in pack_weights._PACKED.values() if r() is owner]
    assert alive
    del compiled, weights, owner
    gc.collect()
    assert alive[0]() is None  # the last compiled function holding it took it along


def test_wide_vectors_where_the_gemm_runs_avx512(isa):
    """GELU epilogues and attention kernels ask LLVM for 512-bit vectors on an AVX-512 host (LLVM's own
    choice there is 256 bits), and only there; the results stay those of eager."""
    rng = np.random.default_rng(3)
    w = sp.tensor((rng.standard_normal((384, 512)) * 0.05).astype(np.float32))
    q, k, v = (rng.standard_normal((1, 2, 128, 32)).astype(np.float32) for _ in range(3))

    def block(x, q, k, v):
        attended = sp.softmax(q @ k.transpose((0, 1, 3, 2)) * 0.17, axis=-1) @ v
        return sp.gelu(x @ w), attended

    x = rng.standard_normal((128, 384)).astype(np.float32)
    compiled = sp.compile(block, x, q, k, v, cache=False)
    ir_text = compiled.llvm_ir()
    wide = re.findall(r'define internal void @"?(\w+)"?\(.*"prefer-vector-width"="512"', ir_text)
    if isa.name == "avx512":
        assert any(name.startswith("spago_tile_ep") for name in wide), wide
        assert any("attention" in name for name in wide), wide
    else:
        assert not wide
    want = block(*(sp.tensor(a) for a in (x, q, k, v)))
    for got, expected in zip(compiled(x, q, k, v), want):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)

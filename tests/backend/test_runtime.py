"""The compiled-function runtime: argument checking, threads, the disk cache, jit, shadow checks,
inspection, and ahead-of-time export."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import spago as sp

rng = np.random.default_rng(0)
W1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
W2 = (rng.standard_normal((32, 8)) * 0.3).astype(np.float32)


def mlp(x):
    return sp.softmax(sp.gelu(x @ W1 + 0.5) @ W2)


X = rng.standard_normal((4, 16)).astype(np.float32)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def compiled():
    return sp.compile(mlp, X, cache=False)


def test_compiled_matches_eager_and_returns_structure():
    def f(x, pair):
        a, b = pair
        return {"sum": x @ W1 + a, "list": [sp.tanh(b), x * 2.0]}

    a, b = rng.standard_normal(32).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    c = sp.compile(f, X, (a, b))
    got = c(X, (a, b))
    want = f(sp.tensor(X), (sp.tensor(a), sp.tensor(b)))
    assert set(got) == {"sum", "list"} and isinstance(got["list"], list)
    np.testing.assert_allclose(got["sum"], want["sum"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["list"][0], want["list"][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["list"][1], want["list"][1].numpy())


def test_accepts_tensors_and_converts_safely(compiled):
    np.testing.assert_allclose(compiled(sp.tensor(X)), compiled(X))
    fortran = np.asfortranarray(X)
    np.testing.assert_allclose(compiled(fortran), compiled(X))  # a non-contiguous layout is copied
    ints = np.ones((4, 16), np.int32)  # int32 -> float32 is not safe; refused
    with pytest.raises(sp.SpagoError, match="dtype int32, expected float32"):
        compiled(ints)


@pytest.mark.parametrize("bad, message", [
    (np.ones((4, 15), np.float32), "shape \\(4, 15\\), expected \\(4, 16\\)"),
    (np.ones((4, 16), np.float64), "dtype float64, expected float32"),
    (None, "is None"),  # structure differs: named as well
    ("text", "must be an array"),
    (object(), "must be an array"),
])
def test_wrong_calls_name_the_argument(compiled, bad, message):
    with pytest.raises(sp.SpagoError, match=message) as info:
        compiled(bad)
    assert "'x'" in str(info.value)


def test_wrong_argument_count_and_structure(compiled):
    with pytest.raises(sp.SpagoError):
        compiled()
    with pytest.raises(sp.SpagoError):
        compiled(X, X)
    with pytest.raises(sp.SpagoError):
        compiled((X,))


def test_a_thousand_random_wrong_calls_never_crash(tmp_path):
    """In a subprocess, so a crash of the process would show as a failed exit, not a dead test run."""
    script = textwrap.dedent("""
        import numpy as np, spago as sp
        rng = np.random.default_rng(1)
        f = sp.compile(lambda a, b: sp.tanh(a @ b) + 1.0, np.ones((3, 4), np.float32), np.ones((4, 5), np.float32))
        def junk():
            kind = rng.integers(8)
            if kind == 0: return rng.standard_normal(tuple(rng.integers(0, 6, rng.integers(0, 4)))).astype(np.float32)
            if kind == 1: return np.ones((3, 4), rng.choice([np.float64, np.int64, np.int8, np.complex64, np.bool_]))
            if kind == 2: return np.ones((4, 5, 1), np.float32)[..., 0].T
            if kind == 3: return None
            if kind == 4: return "x" * int(rng.integers(5))
            if kind == 5: return [[1.0] * 4] * int(rng.integers(1, 5))
            if kind == 6: return np.ones((6, 8), np.float32)[::2, ::2]
            return {"a": 1}
        raised = 0
        for i in range(1000):
            args = [junk() for _ in range(int(rng.integers(0, 4)))]
            try:
                f(*args)
            except sp.SpagoError:
                raised += 1
        print("raised", raised)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SPAGO_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    raised = int(done.stdout.split()[-1])
    assert raised >= 990  # a few random calls may happen to be valid (e.g. contiguous-able strided views)


def test_threads_call_one_compiled_function_at_once(compiled):
    inputs = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(8)]
    expected = [compiled(x) for x in inputs]
    results: dict = {}

    def work(k):
        for _ in range(50):
            results[k] = compiled(inputs[k])
            np.testing.assert_allclose(results[k], expected[k])

    assert not in_threads(work, 8)


def in_threads(work, count: int) -> list:
    """Run ``work(k)`` on ``count`` threads at once; the exceptions they raised."""
    errors: list = []

    def guarded(k):
        try:
            work(k)
        except Exception as exc:  # noqa: BLE001 - returned for the test's assertion
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_disk_cache_is_not_reused_after_the_code_generator_changes(tmp_path, monkeypatch):
    from spago.backend import codegen

    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    assert not sp.compile(mlp, X).cache_hit
    original = codegen.lower

    def changed_lower(*args, **kwargs):  # the same graph, lowered by a (pretend) newer code generator
        lowered = original(*args, **kwargs)
        lowered.module.add_metadata(["newer code generator"])
        return lowered

    monkeypatch.setattr(codegen, "lower", changed_lower)
    changed = sp.compile(mlp, X)
    assert not changed.cache_hit
    np.testing.assert_allclose(changed(X), sp.compile(mlp, X).__call__(X))
    assert sp.compile(mlp, X).cache_hit


def test_disk_cache_hit_miss_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    first = sp.compile(mlp, X)
    second = sp.compile(mlp, X)
    assert not first.cache_hit and second.cache_hit
    np.testing.assert_allclose(second(X), first(X))
    (entry,) = glob.glob(str(tmp_path / "*" / "*.spo"))
    with open(entry, "r+b") as f:  # damage the payload: the checksum no longer matches
        f.seek(-16, os.SEEK_END)
        f.write(b"\0" * 16)
    third = sp.compile(mlp, X)
    assert not third.cache_hit
    np.testing.assert_allclose(third(X), first(X))
    with open(entry, "wb") as f:  # a foreign file
        f.write(b"not an object file")
    fourth = sp.compile(mlp, X)
    assert not fourth.cache_hit
    np.testing.assert_allclose(fourth(X), first(X))
    assert sp.compile(mlp, X).cache_hit


def test_cache_can_be_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    sp.compile(mlp, X, cache=False)
    assert not glob.glob(str(tmp_path / "*" / "*.spo"))
    monkeypatch.setenv("SPAGO_CACHE", "0")
    sp.compile(mlp, X)
    assert not glob.glob(str(tmp_path / "*" / "*.spo"))


def test_cache_key_changes_with_constants(tmp_path, monkeypatch):
    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    a = np.ones(3, np.float32)
    sp.compile(lambda x: x * a, a)
    a2 = a * 2
    c = sp.compile(lambda x: x * a2, a)
    assert not c.cache_hit
    np.testing.assert_allclose(c(a), a * 2)


def test_jit_specialises_per_signature_with_an_lru():
    calls = []

    @sp.jit(maxsize=2)
    def f(x):
        calls.append(x.shape)
        return x * 2.0

    for shape in [(3,), (3,), (4,), (5,), (3,)]:
        np.testing.assert_allclose(f(np.ones(shape, np.float32)), np.full(shape, 2.0, np.float32))
    assert calls == [(3,), (4,), (5,), (3,)]  # (3,) was traced again after being evicted
    assert f.cache_info() == {"size": 2, "maxsize": 2}


def test_shadow_check_passes_on_correct_code_and_names_a_divergent_kernel(monkeypatch):
    checked = sp.compile(mlp, X, check=True)
    np.testing.assert_allclose(checked(X), mlp(sp.tensor(X)).numpy(), rtol=1e-5, atol=1e-6)
    from spago.backend import scalar

    real = scalar.LOWERINGS["tanh"]
    monkeypatch.setitem(scalar.LOWERINGS, "tanh", lambda b, args, *rest: b.fmul(real(b, args, *rest), args[0].type(1.01)))
    broken = sp.compile(lambda x: sp.tanh(x @ W1) * 3.0 + 1.0, X, check=True, passes=[])
    with pytest.raises(sp.SpagoError, match="shadow check: kernel .* differs from the interpreter"):
        broken(X)


def test_env_var_turns_on_shadow_checks(monkeypatch):
    monkeypatch.setenv("SPAGO_CHECK", "1")
    assert sp.compile(mlp, X).check


def test_inspection(compiled):
    assert compiled.graph.outputs
    assert "define" in compiled.llvm_ir() and "spago_entry" in compiled.llvm_ir()
    asm = compiled.asm()
    assert "spago_entry" in asm
    report = compiled.report()
    for key in ("kernels", "arena_bytes", "naive_bytes", "lower_bound_bytes", "compile_seconds"):
        assert key in report
    assert set(report["compile_seconds"]) >= {"trace", "optimize", "lower", "llvm", "load"}
    assert "CompiledFunction" in repr(compiled)


def test_gradients_through_compile_of_value_and_grad():
    def loss(params, x):
        return ((sp.tanh(x @ params["w"]) - 0.5) ** 2).mean()

    params = {"w": (rng.standard_normal((16, 8)) * 0.2)}
    x = rng.standard_normal((5, 16))
    c = sp.compile(sp.value_and_grad(loss), params, x, inference=False)
    value, grads = c(params, x)
    v_eager, g_eager = sp.value_and_grad(loss)(params, x)
    np.testing.assert_allclose(value, v_eager.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["w"], g_eager["w"].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on PATH")
@pytest.mark.parametrize("weights", ["embed", "file"])
def test_exported_library_runs_from_c(tmp_path, compiled, weights):
    paths = compiled.export(str(tmp_path / "mlp"), weights=weights)
    assert os.path.exists(paths["library"]) and os.path.exists(paths["header"])
    x = rng.standard_normal((4, 16)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    load = 'if (mlp_load(argv[2]) != 0) return 3;' if weights == "file" else ""
    (tmp_path / "main.c").write_text(textwrap.dedent(f"""
        #include <stdio.h>
        #include "mlp.h"
        int main(int argc, char **argv) {{
            float x[64], y[32];
            FILE *f = fopen(argv[1], "rb");
            if (!f || fread(x, sizeof(float), 64, f) != 64) return 4;
            fclose(f);
            {load}
            const void *in[1] = {{x}};
            void *out[1] = {{y}};
            if (mlp_run(in, out) != 0) return 2;
            for (int i = 0; i < 32; i++) printf("%.9g\\n", y[i]);
            return 0;
        }}
    """))
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(tmp_path / "main.c"), "-I", str(tmp_path), paths["library"],
                    f"-Wl,-rpath,{tmp_path}"], check=True, capture_output=True)
    args = [str(exe), str(tmp_path / "x.bin")] + ([paths["weights"]] if weights == "file" else [])
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    y = np.array(done.stdout.split(), dtype=np.float32).reshape(4, 8)
    np.testing.assert_allclose(y, compiled(x), rtol=1e-5, atol=1e-6)
    if weights == "file":  # a weights file of another model is refused
        other = sp.compile(lambda v: v * 2.0, x).export(str(tmp_path / "other"), weights="file")
        bad = subprocess.run([str(exe), str(tmp_path / "x.bin"), other["weights"]], capture_output=True)
        assert bad.returncode == 3


def test_call_into_reuses_output_buffers():
    def f(a, b):
        return {"sum": a + b, "prod": (a * b).sum()}

    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    fn = sp.compile(f, a, b)
    out = fn.output_buffers()
    res = fn.call_into(out, a, b)
    assert res["sum"] is out[0] or np.shares_memory(res["sum"], out[0])
    np.testing.assert_allclose(res["sum"], a + b)
    np.testing.assert_allclose(res["prod"], (a * b).sum())
    again = fn.call_into(out, a * 2, b)  # the same buffers, overwritten
    np.testing.assert_allclose(out[0], a * 2 + b)
    np.testing.assert_allclose(again["sum"], a * 2 + b)
    for bad in ([], out[:1], [np.empty((3, 2), np.float32), out[1]], [out[0].astype(np.float64), out[1]],
                [np.asfortranarray(np.empty((2, 3), np.float32)), out[1]]):
        with pytest.raises(sp.SpagoError, match="call_into needs"):
            fn.call_into(bad, a, b)


def test_a_call_writes_into_the_previous_results_only_once_nothing_holds_them():
    """Each call's outputs go into the memory of this thread's previous ones when the caller has dropped
    them (no fresh pages to fault in), never into a result, or a view of one, still held."""
    def f(a, b):
        return {"sum": a + b, "prod": a * b}

    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    fn = sp.compile(f, a, b, cache=False)
    first = fn(a, b)
    kept_sum, address = first["sum"], first["prod"].ctypes.data
    del first  # the caller keeps only one of the two results
    second = fn(a * 2, b)
    np.testing.assert_allclose(kept_sum, a + b)  # untouched
    assert second["sum"] is not kept_sum and not np.shares_memory(second["sum"], kept_sum)
    assert second["prod"].ctypes.data == address  # the dropped one's memory, written again
    np.testing.assert_allclose(second["prod"], a * 2 * b)
    view = second["prod"][:1]  # a view keeps its base
    del second
    third = fn(a * 3, b)
    np.testing.assert_allclose(view, (a * 2 * b)[:1])
    assert not np.shares_memory(third["prod"], view)
    np.testing.assert_allclose(third["sum"], a * 3 + b)
    np.testing.assert_allclose(third["prod"], a * 3 * b)


def test_each_thread_reuses_only_its_own_results():
    x = rng.standard_normal((64, 48)).astype(np.float32)
    fn = sp.compile(lambda v: sp.tanh(v) * 2.0, x, cache=False)
    results: dict = {}

    def work(k):
        for step in range(50):
            y = fn(x + k)
            if step % 7 == 0:
                results.setdefault(k, []).append(y)  # some results kept while calls go on
        for y in results[k]:
            np.testing.assert_allclose(y, np.tanh(x + k) * 2.0, rtol=1e-5)

    errors = in_threads(work, 3)
    assert not errors, errors


def test_donated_output_is_written_into_the_input():
    def update(p, g):
        return p - 0.1 * g, (g * g).sum()

    p, g = rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal((64, 32)).astype(np.float32)
    want = p - 0.1 * g
    fn = sp.compile(update, p, g, donate={0: 0})
    assert fn._lowered.outputs[0].kind == "donated"
    new, _ = fn(p, g)
    assert new is p  # the input's own array, overwritten
    np.testing.assert_allclose(p, want, rtol=1e-6)


def test_donation_is_refused_where_a_later_kernel_still_reads_the_input():
    def f(p, g):
        new = p - 0.1 * g
        return new, (new * p).sum()  # p is read again after its update

    p, g = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((8, 8)).astype(np.float32)
    before = p.copy()
    fn = sp.compile(f, p, g, donate={0: 0})
    new, total = fn(p, g)
    if fn._lowered.outputs[0].kind == "donated":  # fused into one safe kernel, or not donated at all
        np.testing.assert_allclose(total, ((before - 0.1 * g) * before).sum(), rtol=1e-5)
    else:
        assert new is not p and np.array_equal(p, before)
    np.testing.assert_allclose(new, before - 0.1 * g, rtol=1e-6)


def test_donated_output_updates_a_parameter_in_place():
    w = sp.tensor(rng.standard_normal((16, 16)).astype(np.float32))
    w.name = "w"
    x = rng.standard_normal((4, 16)).astype(np.float32)
    weights = w.numpy()

    def step(x):
        g = x.transpose((1, 0)) @ (x @ w)
        return w - 0.01 * g, g.sum()  # g has two readers: the update stays an elementwise kernel

    want = weights - 0.01 * (x.T @ (x @ weights))
    fn = sp.compile(step, x, inference=False, donate={0: weights})
    new, _ = fn(x)
    assert new is weights
    np.testing.assert_allclose(weights, want, rtol=1e-4, atol=1e-5)


def test_a_product_never_writes_over_an_operand_of_its_epilogue():
    """C = A·B is stored before the epilogue reads w: writing C over w would corrupt it."""
    w = sp.tensor(rng.standard_normal((16, 16)).astype(np.float32))
    w.name = "w"
    x = rng.standard_normal((16, 16)).astype(np.float32)
    weights = w.numpy()
    fn = sp.compile(lambda x: w - 0.01 * (x @ x), x, inference=False, donate={0: weights})
    assert fn._lowered.outputs[0].kind != "donated"


def test_donate_names_what_is_wrong():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(sp.SpagoError, match="not an output index"):
        sp.compile(lambda a: a * 2.0, x, donate={3: 0})
    with pytest.raises(sp.SpagoError, match="array inputs"):
        sp.compile(lambda a: a * 2.0, x, donate={0: 5})
    with pytest.raises(sp.SpagoError, match="not a parameter"):
        sp.compile(lambda a: a * 2.0, x, donate={0: np.ones((2, 2), np.float32)})


def test_shadow_checks_and_export_do_without_donation(tmp_path):
    x = rng.standard_normal((4, 4)).astype(np.float32)
    checked = sp.compile(lambda a: a * 2.0 + 1.0, x, donate={0: 0}, check=True)
    assert checked._lowered.outputs[0].kind != "donated"
    y = x.copy()
    np.testing.assert_allclose(checked(y), x * 2.0 + 1.0)
    donated = sp.compile(lambda a: a * 2.0 + 1.0, x, donate={0: 0})
    if shutil.which("cc") is not None:
        with pytest.raises(sp.SpagoError, match="without donate"):
            donated.export(str(tmp_path / "lib"))


def test_training_compiles_read_zero_dimensional_parameters_live():
    from spago import nn

    scale = nn.Param(np.float32(2.0))
    scale.name = "scale"
    x = np.ones(3, np.float32)
    fn = sp.compile(lambda v: v * scale, x, inference=False)
    np.testing.assert_allclose(fn(x), 2.0)
    scale.assign(np.float32(5.0))
    np.testing.assert_allclose(fn(x), 5.0)  # the parameter's own array, not a copy taken at compile time

"""spago's own linker: objects it links run as LLVM's MCJIT links them, a warm cache never loads LLVM, and
a malformed or unusual object is refused with a clear error (or handed to MCJIT), never run."""
import ctypes
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import spago as sp
from spago.backend import jit, linker
from spago.errors import SpagoError

pytestmark = pytest.mark.skipif(not linker.supported(), reason="spago's linker handles x86-64 Linux objects")

# a function touching every kind of section and symbol LLVM emits for kernels: code, a constant table
# (read-only data), a global counter (data), a zeroed buffer (bss), a call into libm and one into a
# symbol spago defines
IR = textwrap.dedent("""
    @table = private unnamed_addr constant [4 x float] [float 1.0, float 2.0, float 4.0, float 8.0], align 16
    @calls = global i64 0, align 8
    @scratch = global [64 x float] zeroinitializer, align 64
    declare float @expf(float)
    declare i64 @spago_test_add(i64, i64)

    define void @kernel(float* %out, i64 %n) {
    entry:
      br label %loop
    loop:
      %i = phi i64 [0, %entry], [%next, %loop]
      %k = and i64 %i, 3
      %slot = getelementptr [4 x float], [4 x float]* @table, i64 0, i64 %k
      %t = load float, float* %slot
      %fi = sitofp i64 %i to float
      %scaled = fmul float %fi, 0x3FB99999A0000000
      %e = call float @expf(float %scaled)
      %v = fmul float %e, %t
      %sp = getelementptr [64 x float], [64 x float]* @scratch, i64 0, i64 %k
      store float %v, float* %sp
      %p = getelementptr float, float* %out, i64 %i
      store float %v, float* %p
      %next = add i64 %i, 1
      %done = icmp eq i64 %next, %n
      br i1 %done, label %exit, label %loop
    exit:
      %c = load i64, i64* @calls
      %c1 = call i64 @spago_test_add(i64 %c, i64 1)
      store i64 %c1, i64* @calls
      ret void
    }
    """)

ADD = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(lambda a, b: a + b)
KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)


@pytest.fixture(scope="module")
def obj() -> bytes:
    linker.define("spago_test_add", ctypes.cast(ADD, ctypes.c_void_p).value)
    return jit.compile_ir(IR)[1]


def run(addresses: list, n: int = 37) -> tuple:
    kernel, calls = addresses
    out = np.zeros(n, np.float32)
    for _ in range(3):
        KERNEL(kernel)(out.ctypes.data, n)
    return out, ctypes.c_int64.from_address(calls).value


def expected(n: int = 37) -> np.ndarray:
    i = np.arange(n)
    return (np.exp(np.float32(0.1) * i.astype(np.float32)) * np.array([1, 2, 4, 8], np.float32)[i % 4]).astype(
        np.float32)


def test_native_link_runs_like_mcjit(obj):
    native = linker.load(obj, ["kernel", "calls"])
    out, calls = run([native["kernel"], native["calls"]])
    ref_out, ref_calls = run(jit._link_mcjit(obj, ["kernel", "calls"]))
    np.testing.assert_allclose(out, expected(), rtol=1e-6)
    np.testing.assert_array_equal(out, ref_out)
    assert calls == ref_calls == 3


def test_each_load_has_its_own_data(obj):
    first, second = (linker.load(obj, ["calls"])["calls"] for _ in range(2))
    assert first != second
    ctypes.c_int64.from_address(first).value = 5
    assert ctypes.c_int64.from_address(second).value == 0


def test_code_is_not_writable_and_data_is_not_executable(obj):
    found = linker.load(obj, ["kernel", "calls"])
    maps = open("/proc/self/maps").read().splitlines()

    def perms(address):
        for line in maps:
            span, mode = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return mode
        raise AssertionError(f"{address:#x} is not mapped")

    assert perms(found["kernel"]).startswith("r-x")
    assert perms(found["calls"]).startswith("rw-")


def test_missing_symbols_are_named(obj):
    with pytest.raises(SpagoError, match="no symbol 'nope'"):
        linker.load(obj, ["kernel", "nope"])
    bad = jit.compile_ir("declare void @spago_not_there()\ndefine void @f() {\n  call void @spago_not_there()\n"
                         "  ret void\n}\n")[1]
    with pytest.raises(SpagoError, match="spago_not_there"):
        jit.link(bad, ["f"])  # refused outright: LLVM's linker would abort the process on it


@pytest.mark.parametrize("damage, message", [
    (lambda o: b"MZ" + o[2:], "not an ELF"),
    (lambda o: o[:4] + b"\x01" + o[5:], "64-bit little-endian"),
    (lambda o: o[:18] + struct.pack("<H", 183) + o[20:], "not an x86-64 relocatable"),
    (lambda o: o[:200], "truncated|past the end|outside"),
    (lambda o: o[:58] + struct.pack("<H", 32) + o[60:], "section header table"),
])
def test_malformed_objects_are_refused(obj, damage, message):
    with pytest.raises(linker.LinkError, match=message):
        linker.load(damage(obj), ["kernel"])


def test_damaged_objects_never_crash(obj):
    """Bytes flipped anywhere: a clean error or a successful link (not run), never a crash."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        data = bytearray(obj)
        for at in rng.integers(0, len(data), 4):
            data[at] = int(rng.integers(0, 256))
        try:
            linker.load(bytes(data), [])
        except SpagoError:
            pass


def test_unhandled_objects_are_refused():
    """Thread-local data is beyond this linker: refused, never half-linked."""
    ir = "@x = thread_local global i64 0\ndefine i64* @f() {\n  ret i64* @x\n}\n"
    with pytest.raises(linker.LinkError, match="thread-local|\\.tbss|\\.tdata"):
        linker.load(jit.compile_ir(ir)[1], ["f"])


def test_what_this_linker_refuses_goes_to_mcjit(obj, monkeypatch):
    def refuse(data, names):
        raise linker.LinkError("not this one")

    monkeypatch.setattr(linker, "load", refuse)
    out, calls = run(jit.link(obj, ["kernel", "calls"]))
    np.testing.assert_allclose(out, expected(), rtol=1e-6)
    assert calls == 3


def test_mcjit_can_be_chosen(monkeypatch):
    monkeypatch.setenv(jit.LINKER_VARIABLE, "llvm")
    assert not jit.native_linking()
    monkeypatch.setenv(jit.LINKER_VARIABLE, "")
    assert jit.native_linking()


def test_compiled_model_matches_under_both_linkers(monkeypatch):
    x = np.random.default_rng(1).standard_normal((33, 70)).astype(np.float32)
    w = sp.tensor(np.random.default_rng(2).standard_normal((70, 50)).astype(np.float32))

    def f(a):
        return sp.gelu(a @ w).softmax(-1).sum(0)

    native = sp.compile(f, x, cache=False)(x)
    monkeypatch.setenv(jit.LINKER_VARIABLE, "llvm")
    mcjit = sp.compile(f, x, cache=False)(x)
    np.testing.assert_array_equal(np.asarray(native), np.asarray(mcjit))


WARM = textwrap.dedent("""
    import sys, numpy as np, spago as sp
    w = sp.tensor(np.linspace(-1, 1, 96 * 64, dtype=np.float32).reshape(96, 64))
    x = np.linspace(0, 1, 5 * 96, dtype=np.float32).reshape(5, 96)
    y = sp.compile(lambda a: sp.tanh(a @ w) + 1.0, x)(x)
    print(float(np.asarray(y).sum()), "llvmlite.binding" in sys.modules)
    """)


def test_a_warm_cache_never_loads_llvm(tmp_path):
    env = dict(os.environ, SPAGO_CACHE_DIR=str(tmp_path / "cache"), SPAGO_CACHE="1")
    env.pop(jit.LINKER_VARIABLE, None)
    runs = [subprocess.run([sys.executable, "-c", WARM], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    (cold_sum, cold_llvm), (warm_sum, warm_llvm) = (r.stdout.split() for r in runs)
    assert cold_llvm == "True" and warm_llvm == "False", [r.stderr for r in runs]
    assert cold_sum == warm_sum


def test_a_forged_host_record_is_ignored(tmp_path, monkeypatch):
    """The host's LLVM description is kept in the cache like compiled code, under its HMAC: a record
    planted without the secret (claiming another CPU) is discarded and LLVM is asked again."""
    from spago.backend import cache, target

    monkeypatch.setenv("SPAGO_CACHE_DIR", str(tmp_path))
    key = target.host_key()
    assert key is not None
    truth = target.host_cpu()
    path = cache._path(key, str(tmp_path))
    cache.store(key, b'["x86_64-unknown-linux-gnu", "forged", "+avx512f"]')
    assert target._recorded_host(key)[1] == "forged"  # a record written with the secret is used
    payload = b'["x86_64-unknown-linux-gnu", "planted", "+avx512f"]'
    header = b'{"key": "%s", "size": %d, "hmac": "%s"}' % (key.encode(), len(payload), b"0" * 64)
    with open(path, "wb") as f:
        f.write(cache.MAGIC + header + b"\n" + payload)
    assert target._recorded_host(key) is None
    assert not os.path.exists(path)  # the planted entry was removed
    cache.store(key, b"not json")
    assert target._recorded_host(key) is None
    assert truth == target.host_cpu()

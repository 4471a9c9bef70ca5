"""Feedback on long work: a cold compile shows its stages (after a delay, only where wanted), and Ctrl-C
during LLVM stops the caller at once without leaving anything in the disk cache."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import spago as sp
from spago import progress

W = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)


def chain(x):
    for _ in range(3):
        x = sp.tanh(x @ W + 1.0)
    return x


@pytest.mark.parametrize("flag, shown", [("1", True), ("0", False), ("", False)])  # "": stderr is no terminal
def test_compile_progress_names_its_stages(monkeypatch, capsys, flag, shown):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setenv("SPAGO_PROGRESS", flag)
    sp.compile(chain, sp.spec((4, 16)), cache=False)
    err = capsys.readouterr().err
    for stage in ("compiling chain: tracing", "passes: fuse_matmul", "lowering", "LLVM (3 kernels)", "loading"):
        assert (stage in err) == shown, (stage, err)


def test_progress_waits_for_the_delay(monkeypatch, capsys):
    monkeypatch.setenv("SPAGO_PROGRESS", "1")
    monkeypatch.setattr(progress, "DELAY", 3600.0)  # a compile that ends before the delay prints nothing
    sp.compile(chain, sp.spec((4, 16)), cache=False)
    assert capsys.readouterr().err == ""


INTERRUPTED = textwrap.dedent('''
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal (a background job ignores it)
    import spago as sp
    from spago.backend import jit

    real = jit.compile_ir

    def slow_llvm(ir_text):  # a long LLVM run: the worker is busy for a minute
        print("LLVM", flush=True)
        time.sleep(60)
        return real(ir_text)

    jit.compile_ir = slow_llvm
    try:
        sp.compile(lambda x: sp.tanh(x) * 2.0, sp.spec((4,)))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
''')


def test_ctrl_c_during_llvm_stops_at_once_and_caches_nothing(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, SPAGO_CACHE_DIR=str(cache), SPAGO_PROGRESS="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(os.path.dirname(__file__), "..", "src"),
                                                      env.get("PYTHONPATH")]))
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "LLVM"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)  # far less than the minute the worker is busy
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 3 and "interrupted" in out, err
    from spago.backend.target import host_key

    kept = {"hmac.key", f"{host_key()}.spo"}  # the key and the host's description are no compiled entries
    left = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files if f not in kept]
    assert left == []  # no entry, complete or broken
    compiled = sp.compile(lambda x: sp.tanh(x) * 2.0, sp.spec((4,)))  # and the next compile works
    np.testing.assert_allclose(compiled(np.ones(4, np.float32)), np.tanh(np.ones(4)) * 2.0, rtol=1e-6)

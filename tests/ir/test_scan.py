"""``spago.scan``: eager loop, one traced node, interpreter, passes, native loop, gradients, layers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import spago
from spago import nn, ops
from spago.errors import ShapeError, SpagoError
from spago.ir.interpreter import interpret
from spago.testing import numerical_grad

ACTS = {"tanh": ops.tanh, "sigmoid": ops.sigmoid, "sin": ops.sin, "relu": ops.relu}


def data(*shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def make_body(act: str, weight: np.ndarray, dict_carry: bool, y_kind: str):
    """A random-ish body: an RNN-like update of one or two carries, and a y of some structure."""
    f = ACTS[act]
    w = spago.tensor(weight)

    def body(carry, x):
        h = carry["h"] if dict_carry else carry
        new = f(h @ w + x["a"]) * 0.5 + x["b"] * 0.25
        carry = {"h": new, "s": carry["s"] + ops.sum(new, axis=-1)} if dict_carry else new
        y = {"none": None, "one": new * 2.0, "tuple": (new, ops.sum(new * new, axis=-1))}[y_kind]
        return carry, y

    return body


def python_loop(body, init, xs: dict, reverse: bool):
    steps = xs["a"].shape[0]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    carry, ys = init, {}
    for t in order:
        carry, ys[t] = body(carry, {k: v[t] for k, v in xs.items()})
    return carry, [ys[t] for t in range(steps)]


def leaves(tree):
    from spago.ir.pytree import flatten

    return [np.asarray(v.numpy() if isinstance(v, spago.Tensor) else v) for v in flatten(tree)[0]]


body_cases = st.fixed_dictionaries({
    "act": st.sampled_from(sorted(ACTS)), "steps": st.integers(1, 7), "batch": st.integers(1, 3),
    "hidden": st.integers(1, 5), "reverse": st.booleans(), "dict_carry": st.booleans(),
    "y_kind": st.sampled_from(["none", "one", "tuple"]), "seed": st.integers(0, 1000)})


def build(case):
    t, b, h = case["steps"], case["batch"], case["hidden"]
    body = make_body(case["act"], data(h, h, seed=case["seed"]) * 0.5, case["dict_carry"], case["y_kind"])
    h0 = data(b, h, seed=case["seed"] + 1)
    init = {"h": h0, "s": data(b, seed=case["seed"] + 2)} if case["dict_carry"] else h0
    xs = {"a": data(t, b, h, seed=case["seed"] + 3), "b": data(t, b, h, seed=case["seed"] + 4)}

    def run(init, xs):
        return spago.scan(body, init, xs, reverse=case["reverse"])

    return body, init, xs, run


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body_cases)
def test_eager_and_interpreted_scan_match_the_python_loop(case):
    body, init, xs, run = build(case)
    carry, ys = run(init, xs)
    want_carry, want_ys = python_loop(body, init, xs, case["reverse"])
    for a, b in zip(leaves(carry), leaves(want_carry)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    if case["y_kind"] == "none":
        assert ys is None
    else:
        stacked = [np.stack(col) for col in zip(*[leaves(y) for y in want_ys])]
        for a, b in zip(leaves(ys), stacked):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    graph = spago.trace(run, init, xs)
    assert graph.op_counts().get("scan") == 1  # one node, whatever the number of steps
    for a, b in zip(leaves(interpret(graph, init, xs)), leaves((carry, ys))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body_cases)
def test_compiled_scan_matches_eager(case):
    _, init, xs, run = build(case)
    want = leaves(run(init, xs))
    got = leaves(spago.compile(run, init, xs, cache=False)(init, xs))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_length_without_xs_and_structure_kept():
    def count(c, _):
        return (c[0] + 1.0, [c[1][0] * 2.0]), {"twice": c[0] * 2.0}

    init = (np.zeros(2, np.float32), [np.ones(2, np.float32)])
    carry, ys = spago.scan(count, init, length=4)
    assert isinstance(carry, tuple) and isinstance(carry[1], list) and set(ys) == {"twice"}
    np.testing.assert_allclose(carry[0].numpy(), 4.0)
    np.testing.assert_allclose(carry[1][0].numpy(), 16.0)
    np.testing.assert_allclose(ys["twice"].numpy()[:, 0], [0, 2, 4, 6])
    compiled = spago.compile(lambda a, b: spago.scan(count, (a, [b]), length=4), *init[:1], init[1][0], cache=False)
    carry_c, ys_c = compiled(init[0], init[1][0])
    np.testing.assert_allclose(carry_c[1][0], 16.0)
    np.testing.assert_allclose(ys_c["twice"][:, 0], [0, 2, 4, 6])


def test_reverse_puts_each_y_at_its_own_step():
    xs = np.arange(5, dtype=np.float32)[:, None]
    fn = lambda c, x: (c + x, c + x)  # noqa: E731
    for run in (lambda xs: spago.scan(fn, np.zeros(1, np.float32), xs, reverse=True),):
        carry, ys = run(xs)
        np.testing.assert_allclose(ys.numpy()[:, 0], [10, 10, 9, 7, 4])  # suffix sums
        carry_c, ys_c = spago.compile(run, xs, cache=False)(xs)
        np.testing.assert_allclose(ys_c[:, 0], [10, 10, 9, 7, 4])
        np.testing.assert_allclose(carry_c, carry.numpy())


def test_bad_carries_and_lengths_raise_clear_errors():
    h0 = np.zeros((2, 3), np.float32)
    xs = np.zeros((4, 2, 3), np.float32)
    with pytest.raises(SpagoError, match=r"carry leaf carry\[h\] is float32\[2,3\] in init but f returned "
                                         r"float32\[2,1\]"):
        spago.trace(lambda h, x: spago.scan(lambda c, x: ({"h": ops.sum(c["h"], -1, keepdims=True)}, x),
                                            {"h": h}, x), h0, xs)
    with pytest.raises(SpagoError, match="float64"):
        spago.scan(lambda c, x: (ops.cast(c, "float64"), x), h0, xs)
    with pytest.raises(SpagoError, match="structure"):
        spago.scan(lambda c, x: ((c, c), x), h0, xs)
    with pytest.raises(ShapeError, match="different lengths"):
        spago.scan(lambda c, x: (c, None), h0, (xs, xs[:2]))
    with pytest.raises(SpagoError, match="length="):
        spago.scan(lambda c, x: (c, None), h0)
    with pytest.raises(SpagoError, match="pair"):
        spago.scan(lambda c, x: c, h0, xs)


def test_printing_verify_and_dot_show_the_body():
    w = data(3, 3)
    graph = spago.trace(lambda h, xs: spago.scan(lambda c, x: (ops.tanh(c @ w + x), c), h, xs),
                        data(2, 3), data(6, 2, 3))
    graph.verify()
    text = str(graph)
    assert "scan(" in text and "graph scan_body(" in text and "tanh(" in text
    dot = graph.to_dot()
    assert "cluster_" in dot and "body of %" in dot and "6 steps" in dot
    bad = graph.copy()
    scan = next(n for n in bad.nodes if n.op.name == "scan")
    body = scan.attrs["body"].copy()
    body.outputs = body.outputs[:0]  # no carry left: the node no longer fits its body
    scan.attrs = dict(scan.attrs, body=body)
    with pytest.raises(SpagoError, match="scan"):
        bad.verify()


def lstm_loop(steps: int, hidden: int = 16):
    w = data(hidden, 4 * hidden, seed=1) * 0.1

    def run(xs, h, c):
        def step(state, x):
            h, c = state
            i, f, g, o = ops.split(x + h @ w, 4, axis=-1)
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            h = ops.sigmoid(o) * ops.tanh(c)
            return (h, c), h

        return spago.scan(step, (h, c), xs)

    return run, (data(steps, 2, 4 * hidden), data(2, hidden, seed=2), data(2, hidden, seed=3))


def test_kernels_do_not_grow_with_the_number_of_steps():
    counts = []
    for steps in (3, 40):
        run, args = lstm_loop(steps)
        compiled = spago.compile(run, *args, cache=False)
        report = compiled.report()
        counts.append((report["kernels"], len(compiled._lowered.body_kernels), len(compiled.llvm_ir())))
        want = leaves(run(*args))
        for a, b in zip(leaves(compiled(*args)), want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert counts[0][:2] == counts[1][:2]
    assert abs(counts[0][2] - counts[1][2]) < 200  # the same module but for a few constants


def test_nested_scans_run_compile_and_differentiate():
    w = data(3, 3, dtype="float64") * 0.3

    def inner_outer(x):  # x (T1, T2, 2, 3): a loop over T1 whose body loops over T2
        def outer(c, xt):
            c2, ys = spago.scan(lambda d, xu: (ops.tanh(d @ w + xu), d), c, xt)
            return c2 + 0.1, ops.sum(ys, axis=0)

        c, ys = spago.scan(outer, ops.zeros(2, 3, dtype="float64"), x)
        return ops.sum(c * c) + ops.sum(ys)

    x = data(3, 4, 2, 3, dtype="float64")
    eager = inner_outer(spago.tensor(x)).numpy()
    graph = spago.trace(inner_outer, x)
    assert graph.op_counts()["scan"] == 1
    np.testing.assert_allclose(interpret(graph, x), eager, rtol=1e-10)
    np.testing.assert_allclose(spago.compile(inner_outer, x, cache=False)(x), eager, rtol=1e-10)
    grad_fn = spago.grad(inner_outer)
    want = numerical_grad(inner_outer, [x.copy()], np.ones(()))[0]
    np.testing.assert_allclose(grad_fn(x).numpy(), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(interpret(spago.trace(grad_fn, x), x), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(spago.compile(grad_fn, x, cache=False)(x), want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reverse", [False, True])
def test_traced_gradient_matches_finite_differences(reverse):
    """Gradients through the scan node (a reverse scan over stacked carries) for every operand kind:
    captured weights, the initial carry, and the xs."""

    def loss(w, u, h0, xs):
        def step(c, x):
            h = ops.tanh(c["h"] @ w + x @ u + 0.1)
            return {"h": h, "n": c["n"] + ops.sum(h * h)}, ops.sigmoid(h)

        c, ys = spago.scan(step, {"h": h0, "n": ops.zeros((), dtype="float64")}, xs, reverse=reverse)
        return ops.sum(c["h"] * c["h"]) + c["n"] + ops.sum(ys * ys)

    args = [data(3, 3, seed=1, dtype="float64") * 0.5, data(2, 3, seed=2, dtype="float64"),
            data(2, 3, seed=3, dtype="float64"), data(5, 2, 2, seed=4, dtype="float64")]
    want = numerical_grad(loss, [a.copy() for a in args], np.ones(()))
    grad_fn = spago.grad(loss, argnums=(0, 1, 2, 3))
    for got in (interpret(spago.trace(grad_fn, *args), *args), spago.compile(grad_fn, *args, cache=False)(*args)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-8)


def test_loop_invariant_work_and_summed_gradients_leave_the_loop():
    w = spago.tensor(data(4, 4) * 0.3, requires_grad=True)
    u = spago.tensor(data(3, 4) * 0.3, requires_grad=True)

    def loss(w, u, xs, h0):
        c, _ = spago.scan(lambda h, x: (ops.tanh(h @ w.T + x @ u), None), h0, xs)
        return ops.sum(c * c)

    xs, h0 = data(6, 2, 3), data(2, 4)
    grad_fn = spago.grad(loss, (0, 1))
    compiled = spago.compile(grad_fn, w.numpy(), u.numpy(), xs, h0, cache=False)
    scans = [n for n in compiled.graph.nodes if n.op.name == "scan"]
    assert len(scans) == 2
    for n in scans:
        body = n.attrs["body"]
        ops_inside = {m.op.name for m in body.nodes} | {
            o.op.name for m in body.nodes if m.op.name == "fused" for o in m.attrs["body"].nodes}
        assert "transpose" not in ops_inside  # w.T is computed once, before the loop
        assert n.attrs["num_carry"] == 1      # the weights' gradient sums are no carries
    forward = next(n for n in scans if not n.attrs["reverse"])
    inner = [o.op.name for m in forward.attrs["body"].nodes
             for o in (m.attrs["body"].nodes if m.op.name == "fused" else [m])]
    assert inner.count("matmul") == 1  # h @ w.T; x_t @ u is one product over all steps, before the loop
    backward = next(n for n in scans if n.attrs["reverse"])
    assert len(backward.attrs["body"].inputs) < 8
    inner = [o.op.name for m in backward.attrs["body"].nodes
             for o in (m.attrs["body"].nodes if m.op.name == "fused" else [m])]
    assert "tanh" not in inner and inner.count("matmul") == 1  # the forward's tanh is read back, not redone
    want = grad_fn(w, u, xs, h0)
    for g, e in zip(compiled(w.numpy(), u.numpy(), xs, h0), want):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-5)


def placed(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` starting ``offset`` bytes past a 64-byte boundary (NumPy often puts arrays 16 past)."""
    from spago.layout import aligned_empty

    out = aligned_empty(a.nbytes + offset)[offset:].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def lstm_weights_in(xs, h, c, w, u, b):
    def step(state, x):
        h, c = state
        i, f, g, o = ops.split(x @ w + h @ u + b, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return (h, c), h

    (h, c), hs = spago.scan(step, (h, c), xs)
    return hs, c


def lstm_arrays(steps: int, batch: int = 1, hidden: int = 16, seed: int = 5) -> list:
    rng = np.random.default_rng(seed)
    w, u = (rng.standard_normal((2, hidden, 4 * hidden)) * 0.3).astype(np.float32)
    return [rng.standard_normal((steps, batch, hidden)).astype(np.float32),
            *rng.standard_normal((2, batch, hidden)).astype(np.float32), w, u,
            rng.standard_normal(4 * hidden).astype(np.float32)]


@pytest.mark.parametrize("check", [False, True])
def test_a_loop_reads_its_weight_from_an_aligned_copy_when_the_callers_is_not(check):
    """The step's product reads ``u`` at every step: the loop reads it from a cache-line aligned copy
    when the caller's array is misaligned, in place when it is aligned — the same results either way
    (with ``check=True`` the shadow check compares every body kernel with the interpreter)."""
    from spago.lower.memory import loop_aligned

    arrays = lstm_arrays(steps=6)
    compiled = spago.compile(lstm_weights_in, *arrays, cache=False, check=check)
    scan = next(n for n in compiled.graph.nodes if n.op.name == "scan")
    body = scan.attrs["body"]
    assert [body.inputs[k].shape for k in loop_aligned(scan)] == [(16, 64)]  # u (w's product left the loop)
    assert [p["in_loop"] for p in compiled.report()["products"]].count(True) == 1
    expected = [t.numpy() for t in lstm_weights_in(*[spago.tensor(a) for a in arrays])]
    for offset in (16, 0, 48):
        placed_args = [placed(a, offset) for a in arrays]
        for got, want in zip(compiled(*placed_args), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_short_loops_read_weights_where_they_lie():
    from spago.lower.memory import loop_aligned

    compiled = spago.compile(lstm_weights_in, *lstm_arrays(steps=3), cache=False)
    assert all(loop_aligned(n) == [] for n in compiled.graph.nodes if n.op.name == "scan")


def test_a_training_step_on_misaligned_weights_matches_eager():
    """The forward loop reads ``u`` from an aligned copy; the backward loop reads ``u``'s transpose, which
    is computed before it into the (aligned) arena, so it needs none."""
    from spago.lower.memory import loop_aligned

    arrays = [placed(a, 16) for a in lstm_arrays(steps=5, batch=2, seed=7)]

    def loss(xs, h, c, w, u, b):
        hs, c = lstm_weights_in(xs, h, c, w, u, b)
        return ops.sum(hs * hs) + ops.sum(c)

    grads = spago.grad(loss, argnums=(3, 4, 5))
    compiled = spago.compile(grads, *arrays, cache=False)
    assert [bool(loop_aligned(n)) for n in compiled.graph.nodes if n.op.name == "scan"] == [True, False]
    for got, want in zip(compiled(*arrays), grads(*[spago.tensor(a) for a in arrays])):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


def test_a_profile_counts_the_loop_as_one_scan_kernel():
    run, args = lstm_loop(5)
    compiled = spago.compile(run, *args, cache=False, profile=True)
    compiled(*args)
    assert "scan" in compiled.profile()["families"]


def test_memory_plan_gives_the_loop_its_scratch():
    run, args = lstm_loop(5)
    compiled = spago.compile(run, *args, cache=False)
    plan = compiled.memory_plan().check()
    scan = next(e for e in plan.entries if e.node.op.name == "scan")
    assert scan.size > scan.node.spec.nbytes  # the carry's second buffer and the body's arena follow


def test_shadow_check_names_the_step_and_the_body_kernel(monkeypatch):
    run, args = lstm_loop(4)
    compiled = spago.compile(run, *args, check=True)
    compiled(*args)  # agrees
    tanh = spago.ops.OPS["tanh"]
    real = tanh.kernel
    monkeypatch.setattr(tanh, "kernel", lambda x: real(x) + (np.abs(x) > 1e9))  # identical: still agrees
    compiled(*args)
    monkeypatch.setattr(tanh, "kernel", lambda x: real(x) + 1.0)
    with pytest.raises(SpagoError, match=r"loop loop\d+_scan_\w+ .* at step 0: body kernel k\d+_\w+ computing"):
        compiled(*args)


def test_a_bidirectional_lstm_keeps_its_directions_in_two_branches(monkeypatch):
    from spago.lower import parallel

    monkeypatch.setattr(parallel, "enabled", lambda: True)
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    lstm = nn.LSTM(8, 32, bidirectional=True, generator=spago.Generator(0))
    x = data(16, 30, 8)
    from spago.passes import optimize

    graph, _ = optimize(spago.trace(lambda x: lstm(x)[0], x))
    branches = {n.meta.get("branch") for n in graph.nodes if n.op.name == "scan"}
    assert len(branches) == 2 and None not in branches


# ------------------------------------------------------------------------------ layers in both forms

@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_scan_and_unrolled_agree(cls):
    layers = {u: cls(3, 4, num_layers=2, bidirectional=True, generator=spago.Generator(5), unroll=u)
              for u in (False, True)}
    x, mask = data(2, 5, 3), np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)
    outs = {}
    for u, layer in layers.items():
        graph = spago.trace(lambda x, m: layer(x, mask=m), x, mask)
        assert ("scan" in graph.op_counts()) is not u
        outs[u] = leaves(spago.compile(lambda x, m: layer(x, mask=m), x, mask, cache=False)(x, mask))
    eager = leaves(layers[False](x, mask=mask))
    for a, b, c in zip(outs[False], outs[True], eager):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-5)


def test_compiled_training_step_with_scans_matches_eager():
    from spago import losses, optim

    def model():
        return nn.LSTM(4, 6, bidirectional=True, generator=spago.Generator(2))

    def loss_fn(m, x, y):
        return losses.mse(m(x)[0], y)

    x, y = data(3, 7, 4), data(3, 7, 12)
    compiled_model, eager_model = model(), model()
    step = optim.compile_step(loss_fn, compiled_model, optim.Adam(compiled_model, lr=1e-2), x, y, cache=False)
    eager_opt = optim.Adam(eager_model, lr=1e-2)
    for _ in range(3):
        eager_opt.zero_grad()
        loss = loss_fn(eager_model, spago.tensor(x), spago.tensor(y))
        loss.backward()
        eager_opt.step()
        np.testing.assert_allclose(step(x, y), loss.item(), rtol=1e-4)
    for a, b in zip(compiled_model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_crf_forward_algorithm_and_viterbi_as_scans():
    crf = nn.CRF(5, generator=spago.Generator(0))
    e = data(3, 7, 5)
    mask = np.ones((3, 7), np.float32)
    mask[1, 4:] = 0
    mask[2, 1:] = 0
    paths = crf.decode(e, mask)
    tags = crf.viterbi(e, mask).numpy()
    for path, row in zip(paths, tags):
        assert row[:len(path)].tolist() == path and (row[len(path):] == path[-1]).all()
    compiled = spago.compile(lambda e, m: (crf.viterbi(e, m), crf.log_partition(e, m)), e, mask, cache=False)
    assert spago.trace(lambda e, m: crf.log_partition(e, m), e, mask).op_counts()["scan"] == 1
    got_tags, got_z = compiled(e, mask)
    assert (got_tags == tags).all()
    np.testing.assert_allclose(got_z, crf.log_partition(e, mask).numpy(), rtol=1e-5)
    unrolled = nn.CRF(5, generator=spago.Generator(0), unroll=True)
    assert "scan" not in spago.trace(lambda e, m: unrolled.log_partition(e, m), e, mask).op_counts()
    np.testing.assert_allclose(unrolled.log_partition(e, mask).numpy(), got_z, rtol=1e-5)
    assert (unrolled.viterbi(e, mask).numpy() == tags).all()


def test_the_loops_section_of_the_ir_guide_runs():
    import os
    import re

    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "ir.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Loops: `spago.scan`"):text.index("## The interpreter")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    for source in blocks:
        exec(compile(source, "docs/ir.md (loops)", "exec"), {"__name__": "ir_guide"})


@pytest.mark.skipif(__import__("shutil").which("cc") is None, reason="needs a C compiler (cc) to build the export")
def test_an_exported_loop_runs_from_c(tmp_path):
    """The library carries the body's constants, and the loop's results are copied out of its arena."""
    import subprocess
    import textwrap

    w = data(4, 4) * 0.5
    fn = spago.compile(lambda h, xs: spago.scan(lambda c, x: (ops.tanh(c @ w + x), c * 2.0), h, xs), data(1, 4),
                       data(6, 1, 4))
    paths = fn.export(str(tmp_path / "rnn"))
    h, xs = data(1, 4, seed=5), data(6, 1, 4, seed=6)
    (tmp_path / "in.bin").write_bytes(h.tobytes() + xs.tobytes())
    (tmp_path / "main.c").write_text(textwrap.dedent("""
        #include <stdio.h>
        #include "rnn.h"
        int main(int argc, char **argv) {
            float in[28], carry[4], ys[24];
            FILE *f = fopen(argv[1], "rb");
            if (!f || fread(in, sizeof(float), 28, f) != 28) return 4;
            fclose(f);
            const void *inputs[2] = {in, in + 4};
            void *outputs[2] = {carry, ys};
            if (rnn_run(inputs, outputs) != 0) return 2;
            for (int i = 0; i < 4; i++) printf("%.9g\\n", carry[i]);
            for (int i = 0; i < 24; i++) printf("%.9g\\n", ys[i]);
            return 0;
        }
    """))
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(tmp_path / "main.c"), "-I", str(tmp_path), paths["library"],
                    f"-Wl,-rpath,{tmp_path}"], check=True, capture_output=True)
    out = np.array(subprocess.run([str(exe), str(tmp_path / "in.bin")], capture_output=True, text=True,
                                  check=True).stdout.split(), dtype=np.float32)
    carry, ys = fn(h, xs)
    np.testing.assert_allclose(out[:4], carry.reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[4:], ys.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_results_the_body_does_not_compute_are_copied(steps):
    """A carry passed on from the step's input, a constant carry, a captured y and the previous carry as
    y: none is computed by a body kernel, so the loop copies each into place."""
    w = data(2, 3)

    def f(h, xs):
        def step(c, x):
            return (x, ops.ones(2, 3)), (spago.tensor(w) * 1.0, c[0], ops.full((2, 3), 5.0))

        return spago.scan(step, (h, h), xs, reverse=True)

    h, xs = data(2, 3, seed=1), data(steps, 2, 3, seed=2)
    want = leaves(f(h, xs))
    for got, ref in zip(leaves(spago.compile(f, h, xs, cache=False, check=True)(h, xs)), want):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_an_index_out_of_range_inside_a_loop_is_a_clear_error():
    """A take inside the body checks its ids at every step, as a take outside a loop does."""
    table = data(5, 3)

    def f(ids):
        def step(h, i):
            return h + ops.embedding(spago.tensor(table), i), None
        return spago.scan(step, ops.zeros(2, 3), ids)[0]

    ids = np.array([[0, 1], [4, 2], [3, 3]], np.int64)
    fast = spago.compile(f, ids)
    np.testing.assert_allclose(fast(ids), f(ids).numpy(), rtol=1e-6)
    bad = ids.copy()
    bad[2, 1] = 7
    with pytest.raises(SpagoError, match="index 7 is out of range .* inside the loop"):
        fast(bad)
    np.testing.assert_allclose(fast(ids), f(ids).numpy(), rtol=1e-6)  # the slot is cleared for the next call

"""Op cases for reductions, normalising maps, matmul, shape and indexing ops (see cases.py)."""
from __future__ import annotations

import numpy as np
import scipy.special as ss
from hypothesis import strategies as st

import spago as sp

from .cases import OpCase
from .cases_elementwise import shape


def distinct(rng, shapes, dtype):
    """Values with no ties (a shuffled range), so max/min/argmax are well defined and differentiable."""
    out = []
    for s in shapes:
        n = int(np.prod(s, dtype=np.int64))
        out.append((rng.permutation(n).reshape(s) * 0.37 - n * 0.1).astype(dtype))
    return out


def with_axis(draw, min_rank=1):
    s = tuple(draw(st.lists(st.integers(1, 4), min_size=min_rank, max_size=3)))
    return s, draw(st.integers(-len(s), len(s) - 1))


def _reduction_cases() -> list:
    cases = []
    for name, fn, ref in [("sum", sp.sum, np.sum), ("max", sp.max, np.max), ("min", sp.min, np.min),
                          ("mean", sp.mean, np.mean), ("var", sp.var, np.var), ("std", sp.std, np.std),
                          ("logsumexp", sp.logsumexp, lambda x, axis, keepdims: ss.logsumexp(x, axis=axis, keepdims=keepdims))]:
        for axis, keepdims in [(None, False), (0, True), (-1, False), ((0, 2), True), ((0, 2), False), (1, True)]:
            ops = {"sum": ("sum",), "max": ("max",), "min": ("min",), "mean": ("sum",), "var": ("sum",),
                   "std": ("sum", "sqrt"), "logsumexp": ("max", "sum", "exp", "log")}[name]
            cases.append(OpCase(
                f"{name}_axis{axis}_keep{int(keepdims)}".replace(" ", "").replace(",", "_").replace("(", "").replace(")", ""),
                lambda x, fn=fn, axis=axis, keepdims=keepdims: fn(x, axis=axis, keepdims=keepdims),
                lambda x, ref=ref, axis=axis, keepdims=keepdims: ref(x, axis=axis, keepdims=keepdims),
                [(3, 4, 2)], ops=ops, make_inputs=distinct if name in ("max", "min") else None,
                grad_rtol=1e-4 if name == "std" else 1e-5,
                # a float32 sum of 24 terms in [-2, 2] rounds differently in another order (vector lanes
                # against NumPy's pairwise sum): ~1e-6 absolute where terms cancel
                atol32=1e-5 if name in ("sum", "mean", "var", "std") else 1e-6))
    cases.append(OpCase("sum_random_axis", lambda x: sp.sum(x, axis=0), lambda x: np.sum(x, axis=0),
                        lambda draw: [shape(draw, 3) or (1,)], ops=("sum",)))
    for name, fn, ref in [("argmax", sp.argmax, np.argmax), ("argmin", sp.argmin, np.argmin)]:
        cases.append(OpCase(f"{name}_axis1", lambda x, fn=fn: fn(x, axis=1), lambda x, ref=ref: ref(x, axis=1),
                            [(3, 5)], ops=(name,), make_inputs=distinct, grad_argnums=()))
        cases.append(OpCase(f"{name}_flat", lambda x, fn=fn: fn(x), lambda x, ref=ref: ref(x), [(2, 3, 2)],
                            ops=(name,), make_inputs=distinct, grad_argnums=()))
    return cases


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sparsemax(x, axis=-1):
    z = np.moveaxis(x, axis, -1)
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        v = z[idx]
        srt = np.sort(v)[::-1]
        k = np.arange(1, len(v) + 1)
        support = 1 + k * srt > np.cumsum(srt)
        kz = k[support][-1]
        tau = (np.cumsum(srt)[kz - 1] - 1) / kz
        out[idx] = np.maximum(v - tau, 0)
    return np.moveaxis(out, -1, axis)


NORMALIZING = [
    OpCase("softmax_last", lambda x: sp.softmax(x, axis=-1), _softmax, lambda draw: [shape(draw, 3) or (3,)],
           ops=("max", "sub", "exp", "sum", "div")),
    OpCase("softmax_axis0", lambda x: sp.softmax(x, axis=0), lambda x: _softmax(x, 0), [(4, 3)], ops=("exp",)),
    OpCase("log_softmax", lambda x: sp.log_softmax(x, axis=-1), lambda x: x - ss.logsumexp(x, axis=-1, keepdims=True),
           [(3, 5)], ops=("exp", "log")),
    OpCase("sparsemax", lambda x: sp.sparsemax(x * 2.0), lambda x: _sparsemax(x * 2.0), [(3, 6)], ops=("sparsemax",),
           make_inputs=distinct),
]

MATMUL = [
    OpCase("matmul_vv", lambda a, b: a @ b, np.matmul, [(5,), (5,)], ops=("matmul",)),
    OpCase("matmul_mv", lambda a, b: a @ b, np.matmul, [(3, 5), (5,)], ops=("matmul",)),
    OpCase("matmul_vm", lambda a, b: a @ b, np.matmul, [(5,), (5, 4)], ops=("matmul",)),
    OpCase("matmul_mm", lambda a, b: a @ b, np.matmul,
           lambda draw: [(draw(st.integers(1, 5)), k := draw(st.integers(1, 5))), (k, draw(st.integers(1, 5)))],
           ops=("matmul",)),
    OpCase("matmul_batched", lambda a, b: a @ b, np.matmul, [(2, 1, 3, 4), (5, 4, 2)], ops=("matmul",)),
    OpCase("matmul_transposed", lambda a, b: a @ b.T, lambda a, b: a @ b.T, [(3, 4), (5, 4)],
           ops=("matmul", "transpose")),
    OpCase("dot", sp.dot, lambda a, b: np.sum(a * b), [(3, 4), (3, 4)], ops=("mul", "sum")),
]

IDX_REPEAT = np.array([[2, 0], [2, 1]])

SHAPE = [
    OpCase("reshape", lambda x: x.reshape(2, -1), lambda x: x.reshape(2, -1), [(2, 3, 2)], ops=("reshape",)),
    OpCase("transpose", lambda x: x.transpose((1, 2, 0)), lambda x: x.transpose(1, 2, 0), [(2, 3, 4)],
           ops=("transpose",)),
    OpCase("T", lambda x: x.T, lambda x: x.T, lambda draw: [shape(draw, 3)], ops=()),
    OpCase("swapaxes", lambda x: sp.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1), [(2, 3, 4)],
           ops=("transpose",)),
    OpCase("broadcast_to", lambda x: sp.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)),
           [(3, 1)], ops=("broadcast_to",)),
    OpCase("expand_squeeze", lambda x: sp.squeeze(sp.expand_dims(x, 1), 1) * 2.0, lambda x: x * 2.0, [(3, 4)],
           ops=("mul",)),
    OpCase("flatten", lambda x: sp.flatten(x, 1), lambda x: x.reshape(x.shape[0], -1), [(2, 3, 4)], ops=("reshape",)),
    OpCase("concat", lambda a, b: sp.concat([a, b, a], axis=1), lambda a, b: np.concatenate([a, b, a], axis=1),
           [(2, 3), (2, 1)], ops=("concat",)),
    OpCase("concat_many_steps", lambda a: sp.concat([a * float(k) for k in range(1, 6)], axis=1),
           lambda a: np.concatenate([a * float(k) for k in range(1, 6)], axis=1), [(3, 1, 5)], ops=("concat",)),
    OpCase("concat_axis0_uneven", lambda a, b: sp.concat([a, b, a, b], axis=0),
           lambda a, b: np.concatenate([a, b, a, b], axis=0), [(2, 3), (1, 3)], ops=("concat",)),
    OpCase("stack", lambda a, b: sp.stack([a, b], axis=-1), lambda a, b: np.stack([a, b], axis=-1), [(2, 3), (2, 3)],
           ops=("concat", "reshape")),
    OpCase("split_sections", lambda x: sp.split(x, 2, axis=1)[1] * 3.0, lambda x: np.split(x, 2, axis=1)[1] * 3.0,
           [(3, 4)], ops=("getitem",)),
    OpCase("split_indices", lambda x: sp.split(x, [1, 3], axis=0)[2], lambda x: np.split(x, [1, 3], axis=0)[2],
           [(5, 2)], ops=("getitem",)),
    OpCase("pad", lambda x: sp.pad(x, [(1, 2), (0, 1)], value=0.5),
           lambda x: np.pad(x, [(1, 2), (0, 1)], constant_values=0.5), [(2, 3)], ops=("pad",)),
    OpCase("getitem_basic", lambda x: x[1, ::-2, None, 1:], lambda x: x[1, ::-2, None, 1:], [(3, 5, 4)],
           ops=("getitem",)),
    OpCase("getitem_ellipsis", lambda x: x[..., -1], lambda x: x[..., -1], [(2, 3, 4)], ops=("getitem",)),
    OpCase("getitem_array_repeats", lambda x: x[[0, 2, 2, 0]], lambda x: x[[0, 2, 2, 0]], [(3, 4)],
           ops=("getitem", "unindex")),
    OpCase("getitem_mixed", lambda x: x[1:, [1, 1, 0]], lambda x: x[1:, [1, 1, 0]], [(3, 4)], ops=("getitem",)),
    OpCase("take_axis0", lambda x: sp.take(x, IDX_REPEAT, axis=0), lambda x: np.take(x, IDX_REPEAT, axis=0),
           [(3, 4)], ops=("take", "scatter_add")),
    OpCase("take_axis1_negative", lambda x: sp.take(x, np.array([-1, 0, -1]), axis=1),
           lambda x: np.take(x, [-1, 0, -1], axis=1), [(2, 3)], ops=("take",)),
    OpCase("embedding", lambda t: sp.embedding(t, np.array([[1, 1, 0], [3, 2, 1]])),
           lambda t: t[np.array([[1, 1, 0], [3, 2, 1]])], [(4, 5)], ops=("take", "scatter_add")),
    OpCase("one_hot", lambda x: sp.one_hot(sp.argmax(x, axis=-1), 5) * 1.0,
           lambda x: np.eye(5, dtype=np.float32)[np.argmax(x, axis=-1)], [(2, 3, 5)], ops=("one_hot", "argmax"), grad_argnums=(),
           make_inputs=distinct),
]


def _keep_mask_case() -> OpCase:
    """Dropout with a fixed generator and a seed-offset input (as a compiled training step feeds one; without
    it compile refuses a training-mode mask): the mask is a function of both, so eager and compiled agree."""
    from spago.ops.random import seed_offset

    def fn(x):
        with seed_offset(sp.tensor(np.asarray(5, np.int64))):
            return sp.dropout(x, 0.5, generator=sp.Generator(7))

    def ref(x):
        return fn(sp.tensor(x)).numpy()

    return OpCase("dropout", fn, ref, [(4, 6)], ops=("keep_mask", "mul"), grad_argnums=())


def _scan_case() -> OpCase:
    """A small RNN as one loop: h' = tanh(h·W + x_t), ys_t = h ⊙ x_t; returns ys + the final h."""
    def fn(x, w):
        def step(h, xt):
            return sp.tanh(h @ w + xt), h * xt

        h, ys = sp.scan(step, sp.zeros(x.shape[1:], dtype=x.dtype), x)
        return ys + h

    def ref(x, w):
        h, ys = np.zeros(x.shape[1:], x.dtype), []
        for xt in x:
            ys.append(h * xt)
            h = np.tanh(h @ w + xt)
        return np.stack(ys) + h

    return OpCase("scan_rnn", fn, ref, [(4, 2, 3), (3, 3)], ops=("scan", "scan_part"), rtol32=1e-5, atol32=1e-5)


CASES = _reduction_cases() + NORMALIZING + MATMUL + SHAPE + [_keep_mask_case(), _scan_case()]

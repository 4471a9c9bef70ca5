"""Scaled dot-product attention and multi-head attention against NumPy references; masks; gradients;
compiled parity; bad input."""
import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import DTypeError, ShapeError, SpagoError
from spago.ops import Generator
from spago.testing import assert_compiled_matches_eager, check_grad, check_module_grad


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention_reference(q, k, v, keep=None, add=None):
    """softmax(q·kᵀ/√d + mask)·v; ``keep`` is a bool mask (False → −∞), ``add`` a float mask."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if add is not None:
        scores = scores + add
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    weights = softmax(scores)
    return weights @ v, weights


def random_keep(shape, seed):
    """A random bool mask with at least one True per row."""
    keep = np.random.default_rng(seed).random(shape) < 0.6
    keep[..., 0] = True
    return keep


# ----------------------------------------------------------------------------- scaled_dot_product_attention

def test_attention_matches_numpy_with_batch_axes():
    q, k, v = rand(2, 3, 4, 5, seed=1), rand(2, 3, 6, 5, seed=2), rand(2, 3, 6, 7, seed=3)
    out, weights = nn.scaled_dot_product_attention(q, k, v, return_weights=True)
    want, want_w = attention_reference(q, k, v)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), want_w, rtol=1e-10, atol=1e-12)
    assert out.shape == (2, 3, 4, 7)


def test_attention_masks():
    q, k, v = rand(2, 4, 3, seed=1), rand(2, 5, 3, seed=2), rand(2, 5, 2, seed=3)
    keep = random_keep((2, 4, 5), 4)
    np.testing.assert_allclose(nn.scaled_dot_product_attention(q, k, v, mask=keep).numpy(),
                               attention_reference(q, k, v, keep=keep)[0], rtol=1e-10, atol=1e-12)
    add = rand(4, 5, seed=5)  # a float mask is added, broadcast over the batch
    np.testing.assert_allclose(nn.scaled_dot_product_attention(q, k, v, mask=add).numpy(),
                               attention_reference(q, k, v, add=add)[0], rtol=1e-10, atol=1e-12)
    causal = np.tril(np.ones((4, 5), bool))  # top-left aligned, as in PyTorch
    out, weights = nn.scaled_dot_product_attention(q, k, v, causal=True, return_weights=True)
    np.testing.assert_allclose(out.numpy(), attention_reference(q, k, v, keep=causal)[0], rtol=1e-10, atol=1e-12)
    assert np.all(weights.numpy()[:, ~causal] == 0)
    both = nn.scaled_dot_product_attention(q, k, v, mask=keep, causal=True).numpy()
    np.testing.assert_allclose(both, attention_reference(q, k, v, keep=keep & causal)[0], rtol=1e-10, atol=1e-12)


def test_a_fully_masked_row_attends_uniformly_instead_of_nan():
    q, k, v = rand(2, 3, seed=1), rand(4, 3, seed=2), rand(4, 2, seed=3)
    keep = np.array([[True, False, True, False], [False] * 4])
    out, weights = nn.scaled_dot_product_attention(q, k, v, mask=keep, return_weights=True)
    np.testing.assert_allclose(weights.numpy()[1], np.full(4, 0.25))
    np.testing.assert_allclose(out.numpy()[1], v.mean(0))
    np.testing.assert_allclose(out.numpy()[0], attention_reference(q[:1], k, v, keep=keep[:1])[0][0])


def test_attention_dropout_only_while_training():
    q, k, v = rand(3, 4, 4, seed=1), rand(3, 4, 4, seed=2), rand(3, 4, 4, seed=3)
    plain = nn.scaled_dot_product_attention(q, k, v).numpy()
    off = nn.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False).numpy()
    np.testing.assert_array_equal(off, plain)
    out, dropped = nn.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True, generator=Generator(0),
                                                   return_weights=True)
    full = attention_reference(q, k, v)[1]
    d = dropped.numpy()
    assert np.any(d == 0) and np.any(d != 0)
    np.testing.assert_allclose(d[d != 0], 2 * full[d != 0], rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), d @ v, rtol=1e-12)


def test_attention_gradients():
    keep = random_keep((3, 4), 1)
    check_grad(lambda q, k, v: nn.scaled_dot_product_attention(q, k, v, mask=keep, causal=True),
               rand(2, 3, 2, seed=1), rand(2, 4, 2, seed=2), rand(2, 4, 3, seed=3))
    check_grad(lambda q, k, v, m: nn.scaled_dot_product_attention(q, k, v, mask=m),
               rand(3, 2, seed=4), rand(3, 2, seed=5), rand(3, 2, seed=6), rand(3, 3, seed=7))


def test_attention_compiled_matches_eager():
    keep = random_keep((2, 4, 4), 3)

    def fn(q, k, v, add):
        return nn.scaled_dot_product_attention(q, k, v, mask=add, causal=True) + \
            nn.scaled_dot_product_attention(q, k, v, mask=keep)

    f32 = np.float32
    assert_compiled_matches_eager(fn, rand(2, 4, 3, seed=1, dtype=f32), rand(2, 4, 3, seed=2, dtype=f32),
                                  rand(2, 4, 3, seed=3, dtype=f32), rand(4, 4, seed=4, dtype=f32))


def test_attention_bad_input():
    sdpa = nn.scaled_dot_product_attention
    with pytest.raises(ShapeError, match="q must have at least 2 axes"):
        sdpa(rand(3), rand(2, 3), rand(2, 3))
    with pytest.raises(ShapeError, match="same feature size"):
        sdpa(rand(2, 3), rand(2, 4), rand(2, 4))
    with pytest.raises(ShapeError, match="same length"):
        sdpa(rand(2, 3), rand(4, 3), rand(5, 3))
    with pytest.raises(ShapeError, match=r"mask of shape \(3, 3\) does not broadcast .* \(2, 4\)"):
        sdpa(rand(2, 3), rand(4, 3), rand(4, 3), mask=np.ones((3, 3), bool))
    with pytest.raises(ShapeError, match=r"mask of shape \(5, 2, 4\) does not broadcast"):
        sdpa(rand(2, 3), rand(4, 3), rand(4, 3), mask=np.ones((5, 2, 4), bool))  # would add a batch axis
    with pytest.raises(DTypeError, match="mask must be bool .* or float .*, got int64"):
        sdpa(rand(2, 3), rand(4, 3), rand(4, 3), mask=np.ones((2, 4), np.int64))
    with pytest.raises(DTypeError, match="q must be floating"):
        sdpa(np.ones((2, 3), np.int64), rand(4, 3), rand(4, 3))


# ----------------------------------------------------------------------------- MultiHeadAttention

def linear(x, layer):
    return x @ layer.weight.numpy().T + (0 if layer.bias is None else layer.bias.numpy())


def mha_reference(m, query, key, value, keep=None):
    """Each head on its own slice of the projected features, concatenated, then the output projection."""
    q, k, v = linear(query, m.q_proj), linear(key, m.k_proj), linear(value, m.v_proj)
    d = m.head_dim
    if keep is not None and keep.ndim == 4:  # (B or 1, H or 1, S_q, S_k): one mask per head
        keep = np.broadcast_to(keep, (query.shape[0], m.num_heads, query.shape[1], key.shape[1]))
    heads, weights = [], []
    for h in range(m.num_heads):
        cols = slice(h * d, (h + 1) * d)
        out, w = attention_reference(q[..., cols], k[..., cols], v[..., cols],
                                     keep=None if keep is None else keep[:, h] if keep.ndim == 4 else keep)
        heads.append(out)
        weights.append(w)
    return linear(np.concatenate(heads, -1), m.out_proj), np.stack(weights, 1)


def test_self_attention_matches_numpy():
    m = nn.MultiHeadAttention(6, 3, dtype="float64", generator=Generator(0))
    x = rand(2, 4, 6, seed=1)
    out, weights = m(x, need_weights=True)
    want, want_w = mha_reference(m, x, x, x)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), want_w, rtol=1e-10, atol=1e-12)
    assert weights.shape == (2, 3, 4, 4)
    assert [n for n, _ in m.named_parameters()] == [f"{p}_proj.{w}" for p in ("q", "k", "v", "out")
                                                    for w in ("weight", "bias")]


def test_self_attention_masks_and_causal():
    m = nn.MultiHeadAttention(4, 2, dtype="float64", generator=Generator(1))
    x = rand(2, 5, 4, seed=2)
    causal = np.tril(np.ones((5, 5), bool))
    np.testing.assert_allclose(m(x, causal=True).numpy(), mha_reference(m, x, x, x, keep=causal)[0],
                               rtol=1e-10, atol=1e-12)
    keep3 = random_keep((2, 5, 5), 3)  # (B, S_q, S_k): the same for every head
    np.testing.assert_allclose(m(x, mask=keep3).numpy(), mha_reference(m, x, x, x, keep=keep3[:, None])[0],
                               rtol=1e-10, atol=1e-12)
    keep4 = random_keep((2, 2, 5, 5), 4)  # (B, H, S_q, S_k): per head
    np.testing.assert_allclose(m(x, mask=keep4, causal=True).numpy(),
                               mha_reference(m, x, x, x, keep=keep4 & causal)[0], rtol=1e-10, atol=1e-12)
    padding = np.array([[True] * 5, [True, True, True, False, False]])
    np.testing.assert_allclose(m(x, key_padding_mask=padding).numpy(),
                               mha_reference(m, x, x, x, keep=padding[:, None, None, :])[0], rtol=1e-10, atol=1e-12)
    combined = m(x, mask=keep3, key_padding_mask=padding).numpy()
    np.testing.assert_allclose(combined, mha_reference(m, x, x, x, keep=keep3[:, None] & padding[:, None, None])[0],
                               rtol=1e-10, atol=1e-12)


def test_cross_attention_with_own_key_and_value_sizes():
    m = nn.MultiHeadAttention(4, 2, kdim=3, vdim=5, dtype="float64", generator=Generator(2))
    assert m.k_proj.weight.shape == (4, 3) and m.v_proj.weight.shape == (4, 5)
    query, key, value = rand(2, 3, 4, seed=1), rand(2, 6, 3, seed=2), rand(2, 6, 5, seed=3)
    out, weights = m(query, key, value, need_weights=True)
    want, want_w = mha_reference(m, query, key, value)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    assert out.shape == (2, 3, 4) and weights.shape == (2, 2, 3, 6)
    shared = nn.MultiHeadAttention(4, 2, bias=False, dtype="float64")  # value defaults to key
    memory = rand(2, 6, 4, seed=4)
    assert shared.q_proj.bias is None
    np.testing.assert_allclose(shared(query, memory).numpy(), mha_reference(shared, query, memory, memory)[0],
                               rtol=1e-10, atol=1e-12)


def test_mha_dropout_in_train_and_eval():
    m = nn.MultiHeadAttention(4, 2, dropout=0.5, dtype="float64", generator=Generator(3))
    x = rand(2, 5, 4, seed=1)
    assert not np.allclose(m(x).numpy(), m(x).numpy())  # training: a new dropout mask each call
    m.eval()
    np.testing.assert_allclose(m(x).numpy(), mha_reference(m, x, x, x)[0], rtol=1e-10, atol=1e-12)


def test_mha_gradients():
    check_module_grad(nn.MultiHeadAttention(4, 2, generator=Generator(4)), rand(2, 3, 4, seed=1),
                      rtol=1e-4, atol=1e-6)
    keep = random_keep((2, 3, 2), 5)
    check_module_grad(nn.MultiHeadAttention(2, 2, kdim=3, vdim=1, generator=Generator(5)),
                      rand(2, 3, 2, seed=2), rand(2, 2, 3, seed=3), rand(2, 2, 1, seed=4), keep,
                      rtol=1e-4, atol=1e-6)


def test_mha_compiled_matches_eager():
    spago.manual_seed(0)
    self_attention = nn.MultiHeadAttention(8, 2).eval()
    cross_attention = nn.MultiHeadAttention(8, 2, kdim=6, vdim=6).eval()
    padding = np.array([[True] * 5, [True, True, False, False, False]])

    def fn(x, memory):
        return self_attention(x, causal=True) + cross_attention(x, memory, key_padding_mask=padding)

    assert_compiled_matches_eager(fn, rand(2, 5, 8, seed=1, dtype=np.float32),
                                  rand(2, 5, 6, seed=2, dtype=np.float32))


def test_mha_bad_input():
    with pytest.raises(ShapeError, match="embed_dim 6 is not divisible by num_heads 4"):
        nn.MultiHeadAttention(6, 4)
    with pytest.raises(ShapeError, match="must be positive"):
        nn.MultiHeadAttention(4, 0)
    with pytest.raises(SpagoError, match="dropout"):
        nn.MultiHeadAttention(4, 2, dropout=1.0)
    m = nn.MultiHeadAttention(4, 2, kdim=3, dtype="float64")
    with pytest.raises(ShapeError, match=r"expected query of shape \(B, S, 4\) \(batch first\), got \(5, 4\)"):
        m(rand(5, 4))
    with pytest.raises(ShapeError, match=r"expected key of shape \(2, S, 3\)"):
        m(rand(2, 5, 4), rand(2, 5, 4))
    with pytest.raises(ShapeError, match=r"expected key of shape \(2, S, 3\)"):
        m(rand(2, 5, 4), rand(3, 5, 3), rand(3, 5, 4))
    with pytest.raises(ShapeError, match="key and value must have the same length"):
        m(rand(2, 5, 4), rand(2, 5, 3), rand(2, 6, 4))
    with pytest.raises(ShapeError, match=r"key_padding_mask must be bool of shape \(2, 5\)"):
        m(rand(2, 5, 4), rand(2, 5, 3), rand(2, 5, 4), key_padding_mask=np.ones((2, 4), bool))
    with pytest.raises(ShapeError, match="does not broadcast"):
        m(rand(2, 5, 4), rand(2, 6, 3), rand(2, 6, 4), mask=np.ones((5, 5), bool))

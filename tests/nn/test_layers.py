"""Linear, Embedding, LayerNorm, RMSNorm, Dropout: NumPy references, finite-difference gradients,
compiled-vs-eager parity, and bad input."""
import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import DTypeError, ShapeError, SpagoError
from spago.ops import Generator
from spago.ops.random import seed_offset
from spago.testing import assert_compiled_matches_eager, check_module_grad


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def randomize(module, seed=0):
    """Non-trivial values for every parameter (LayerNorm starts at 1 and 0, which hides mistakes)."""
    rng = np.random.default_rng(seed)
    for _, p in module.named_parameters():
        p.assign(rng.standard_normal(p.shape).astype(p.dtype))
    return module


# ----------------------------------------------------------------------------- Linear

def test_linear_matches_numpy():
    layer = nn.Linear(4, 3, generator=Generator(0))
    x = rand(2, 5, 4, dtype=np.float32)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    assert layer.weight.shape == (3, 4)
    assert np.abs(w).max() <= 0.5 and np.abs(b).max() <= 0.5  # U(−1/√in, 1/√in)
    no_bias = nn.Linear(4, 3, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    np.testing.assert_allclose(no_bias(x).numpy(), x @ no_bias.weight.numpy().T, rtol=1e-5, atol=1e-6)


def test_linear_gradients():
    check_module_grad(nn.Linear(3, 2, generator=Generator(1)), rand(2, 3))


def test_linear_compiled_matches_eager():
    assert_compiled_matches_eager(nn.Linear(4, 3).eval(), rand(2, 4, dtype=np.float32))


def test_linear_bad_input():
    layer = nn.Linear(4, 3)
    with pytest.raises(ShapeError, match=r"expected input with last axis 4, got shape \(2, 5\)"):
        layer(rand(2, 5, dtype=np.float32))
    with pytest.raises(SpagoError, match="features must be positive"):
        nn.Linear(0, 3)
    with pytest.raises(DTypeError):
        layer(rand(2, 4))  # float64 input into a float32 layer


# ----------------------------------------------------------------------------- Embedding

def test_embedding_matches_numpy():
    emb = nn.Embedding(6, 3, padding_idx=0, generator=Generator(0))
    ids = np.array([[1, 0, 5], [5, 2, 2]])
    table = emb.weight.numpy()
    np.testing.assert_array_equal(table[0], np.zeros(3))
    np.testing.assert_array_equal(emb(ids).numpy(), table[ids])
    assert emb(ids).shape == (2, 3, 3)


def test_embedding_gradients_accumulate_repeated_ids():
    emb = nn.Embedding(5, 2, generator=Generator(1))
    check_module_grad(emb, np.array([[1, 3, 1], [4, 1, 0]]))
    emb.zero_grad()
    emb(np.array([2, 2, 2])).sum().backward()
    np.testing.assert_allclose(emb.weight.grad.numpy()[2], [3.0, 3.0])
    np.testing.assert_allclose(emb.weight.grad.numpy()[0], [0.0, 0.0])


def test_embedding_compiled_matches_eager():
    assert_compiled_matches_eager(nn.Embedding(7, 4).eval(), np.array([[0, 6, 3], [2, 2, 1]]))


def test_embedding_bad_input():
    emb = nn.Embedding(4, 2)
    with pytest.raises(SpagoError, match="ids must be integers"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(SpagoError, match=r"ids must be in \[0, 4\), got values from 0 to 4"):
        emb(np.array([0, 4]))
    with pytest.raises(SpagoError, match="sizes must be positive"):
        nn.Embedding(0, 2)


# ----------------------------------------------------------------------------- LayerNorm, RMSNorm

def layer_norm_reference(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_layer_norm_matches_numpy():
    norm = randomize(nn.LayerNorm(5, eps=1e-3, dtype="float64"))
    x = rand(3, 2, 5) * 4 + 1
    want = layer_norm_reference(x, norm.weight.numpy(), norm.bias.numpy(), 1e-3)
    np.testing.assert_allclose(norm(x).numpy(), want, rtol=1e-10, atol=1e-12)
    plain = nn.LayerNorm(5, elementwise_affine=False, dtype="float64")
    assert plain.num_parameters() == 0
    np.testing.assert_allclose(plain(x).numpy(), layer_norm_reference(x, 1.0, 0.0, 1e-5), rtol=1e-10, atol=1e-12)


def test_rms_norm_matches_numpy():
    norm = randomize(nn.RMSNorm(4, dtype="float64"))
    x = rand(3, 4) * 3
    want = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * norm.weight.numpy()
    np.testing.assert_allclose(norm(x).numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: nn.LayerNorm(4), lambda: nn.RMSNorm(4)], ids=["layer", "rms"])
def test_norm_gradients(make):
    check_module_grad(randomize(make()), rand(2, 4), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: nn.LayerNorm(6), lambda: nn.RMSNorm(6)], ids=["layer", "rms"])
def test_norm_compiled_matches_eager(make):
    assert_compiled_matches_eager(randomize(make()).eval(), rand(3, 6, dtype=np.float32))


def test_norm_bad_input():
    with pytest.raises(ShapeError, match=r"expected last axis 5, got shape \(2, 4\)"):
        nn.LayerNorm(5)(rand(2, 4, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"expected last axis 5, got shape \(\)"):
        nn.RMSNorm(5)(np.float32(1.0))


# ----------------------------------------------------------------------------- Dropout

def test_dropout_eval_is_identity():
    drop = nn.Dropout(0.5).eval()
    x = spago.tensor(rand(4, 5, dtype=np.float32))
    assert drop(x) is x


def test_dropout_train_zeroes_about_p_and_preserves_the_mean():
    drop = nn.Dropout(0.3, generator=Generator(0))
    y = drop(np.ones((200, 200), np.float32)).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    np.testing.assert_allclose(1 - kept.mean(), 0.3, atol=0.01)
    np.testing.assert_allclose(y.mean(), 1.0, atol=0.02)
    again = nn.Dropout(0.3, generator=Generator(0))(np.ones((200, 200), np.float32)).numpy()
    np.testing.assert_array_equal(y, again)  # seeded
    assert not np.array_equal(drop(np.ones((200, 200), np.float32)).numpy(), y)  # a new mask each call


def test_dropout_gradient_is_the_scaled_mask():
    drop = nn.Dropout(0.5, generator=Generator(2))
    x = spago.tensor(rand(6, 7) + 10.0, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    mask = (y.numpy() != 0).astype(np.float64)
    np.testing.assert_allclose(x.grad.numpy(), mask / 0.5)
    np.testing.assert_allclose(y.numpy(), x.numpy() * mask / 0.5)


def test_dropout_extremes_and_bad_input():
    x = rand(3, 3, dtype=np.float32)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x)
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).numpy(), np.zeros_like(x))
    with pytest.raises(SpagoError, match=r"p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(SpagoError, match="floating"):
        nn.Dropout(0.5)(np.array([1, 2]))


def test_dropout_compiled_in_eval_mode_matches_eager():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)).eval()
    assert_compiled_matches_eager(model, rand(2, 3, dtype=np.float32))


class FreshDropout(nn.Module):
    """Training-mode dropout whose mask is the same on every call (a new generator with one seed each time),
    so finite differences and compiled code see the mask the tape saw."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return nn.Dropout(self.p, generator=Generator(5))(x)


def test_dropout_training_mode_gradient_and_compiled_parity():
    check_module_grad(FreshDropout(0.4), rand(3, 5) + 2.0)
    x = rand(4, 6, dtype=np.float32)
    assert (FreshDropout(0.4)(x).numpy() == 0).any()  # really dropping
    with pytest.raises(SpagoError, match="dropout in training mode"):  # one frozen mask: refused
        spago.compile(FreshDropout(0.4), x)

    def with_seed(seed, x):  # a per-call seed input, as compile_step feeds: native code draws the eager mask
        with seed_offset(seed):
            return FreshDropout(0.4)(x)

    seed = np.asarray(7, np.int64)
    assert_compiled_matches_eager(with_seed, seed, x, rtol=0, atol=0)
    assert not np.array_equal(with_seed(spago.tensor(seed), x).numpy(),
                              with_seed(spago.tensor(np.asarray(8, np.int64)), x).numpy())


def test_locked_dropout_one_mask_per_sequence_over_time():
    """Flair's LockedDropout: mask (B, 1, D), the same features dropped at every step, rescaled by 1/(1 − p)."""
    drop = nn.LockedDropout(0.5, generator=Generator(3))
    y = drop(np.ones((8, 6, 40), np.float32)).numpy()
    kept = y != 0
    assert (kept == kept[:, :1, :]).all()                      # constant over time
    assert not (kept == kept[:1]).all()                        # one mask per sequence
    np.testing.assert_allclose(y[kept], 2.0, rtol=1e-6)
    assert 0.3 < 1 - kept.mean() < 0.7
    np.testing.assert_array_equal(drop.eval()(y).numpy(), y)   # eval: the identity
    with pytest.raises(SpagoError, match=r"LockedDropout: expected a batch-first \(batch, time, features\)"):
        nn.LockedDropout(0.5)(np.ones((3, 4), np.float32))


def test_word_dropout_zeroes_whole_token_vectors_unscaled():
    """Flair's WordDropout: mask (B, T, 1), a token's whole vector zeroed, the kept ones unchanged."""
    drop = nn.WordDropout(0.3, generator=Generator(4))
    x = rand(16, 12, 7, dtype=np.float32) + 1.0
    y = drop(x).numpy()
    dropped = (y == 0).all(axis=-1)
    np.testing.assert_array_equal(y[~dropped], x[~dropped])   # not rescaled
    assert ((y == 0).any(axis=-1) == dropped).all()          # whole vectors or nothing
    assert 0.15 < dropped.mean() < 0.45
    with pytest.raises(SpagoError, match="noise_shape"):
        spago.ops.dropout(x, 0.5, noise_shape=(16, 3, 1))


def test_locked_and_word_dropout_compiled_with_a_seed_offset():
    """In a compiled step (a seed offset per call) both draw the eager masks, new ones for a new offset."""
    def step(seed, x):
        with seed_offset(seed):
            return nn.LockedDropout(0.5, generator=Generator(1))(nn.WordDropout(0.2, generator=Generator(2))(x))

    x = rand(4, 5, 6, dtype=np.float32) + 1.0
    seed = np.asarray(3, np.int64)
    assert_compiled_matches_eager(step, seed, x, rtol=0, atol=0)
    assert not np.array_equal(step(spago.tensor(seed), x).numpy(), step(spago.tensor(np.asarray(4, np.int64)), x).numpy())

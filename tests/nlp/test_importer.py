"""The Hugging Face importer: folders, configs, weights, vocabularies, sentence-transformers folders,
spago's own format and the ``spago import-hf`` command — and a clear error, naming the file, for bad input."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from spago.cli import main
from spago.errors import SpagoError
from spago.nlp.transformers import BertModel, config_from_dict, from_pretrained, load_config

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def fixture(name: str) -> str:
    folder = os.path.join(FIXTURES, name)
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    return folder


def copy_model(name: str, dst, files=("config.json", "model.safetensors", "vocab.txt")) -> str:
    src = fixture(name)
    os.makedirs(dst, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    return str(dst)


def edit_config(folder: str, **changes) -> str:
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        data = json.load(f)
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def ref_inputs(name: str) -> dict:
    ref = np.load(os.path.join(fixture(name), "reference.npz"))
    return {k: ref[k] for k in INPUTS}


# -- PyTorch .bin checkpoints ----------------------------------------------------------

@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_pytorch_bin_checkpoint_matches_reference(tmp_path, compiled):
    folder = copy_model("tiny-bert/qa", tmp_path / "qa", ("config.json", "pytorch_model.bin", "vocab.txt"))
    ref = np.load(os.path.join(fixture("tiny-bert/qa"), "reference.npz"))
    out = from_pretrained(folder, compiled=compiled)(**{k: ref[k] for k in INPUTS}, output_hidden_states=True)
    for key in ("last_hidden_state", "hidden_states", "start_logits", "end_logits"):
        np.testing.assert_allclose(out[key], ref[key], rtol=0, atol=1e-5, err_msg=key)


# -- config.json -------------------------------------------------------------------------

def test_config_fields_are_read():
    config = load_config(fixture("tiny-bert/token-classification"))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.head_size) == (32, 2, 4, 8)
    assert config.architecture == "BertForTokenClassification" and config.num_labels == 9
    assert all(isinstance(k, int) for k in config.id2label)
    electra = load_config(fixture("tiny-electra/qa"))
    assert electra.model_type == "electra" and electra.embedding_size == 16


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": None}, "missing field 'hidden_size'"),
    ({"hidden_size": "32"}, "field 'hidden_size' must be an integer in [1, 65536], got '32'"),
    ({"layer_norm_eps": "tiny"}, "field 'layer_norm_eps' must be a finite number > 0.0"),
    ({"model_type": "gpt2"}, "unknown model_type 'gpt2'"),
    ({"architectures": ["BertForCausalLM"]}, "unknown architecture 'BertForCausalLM'"),
    ({"architectures": ["ElectraModel"]}, "unknown architecture 'ElectraModel' for model_type 'bert'"),
    ({"hidden_size": 30}, "hidden_size 30 is not divisible by num_attention_heads 4"),
    ({"hidden_act": "swish"}, "field 'hidden_act' must be one of"),
    ({"num_hidden_layers": 0}, "field 'num_hidden_layers' must be an integer in [1, 1024]"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"id2label": {"x": "A"}}, "field 'id2label' must be an object mapping an integer in [0, 1048576] to a string"),
])
def test_bad_config_is_reported_with_file_and_field(tmp_path, changes, message):
    folder = copy_model("tiny-bert/base", tmp_path / "m")
    path = edit_config(folder, **changes)
    with pytest.raises(SpagoError) as info:
        from_pretrained(folder, compiled=False)
    assert path in str(info.value) and message in str(info.value)


def test_missing_or_malformed_config_file(tmp_path):
    folder = copy_model("tiny-bert/base", tmp_path / "m", ("model.safetensors",))
    with pytest.raises(SpagoError, match="config.json: config file not found"):
        from_pretrained(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(SpagoError, match="config.json: malformed JSON"):
        from_pretrained(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write("[1, 2]")
    with pytest.raises(SpagoError, match="config.json: expected a JSON object"):
        from_pretrained(folder)
    with pytest.raises(SpagoError, match="model folder not found"):
        from_pretrained(tmp_path / "nowhere")
    with pytest.raises(SpagoError, match="missing field 'model_type'"):
        config_from_dict({"hidden_size": 8})


# -- weights -----------------------------------------------------------------------------

def test_missing_or_corrupt_weights_file(tmp_path):
    folder = copy_model("tiny-bert/base", tmp_path / "m", ("config.json",))
    with pytest.raises(SpagoError, match="no weights file found"):
        from_pretrained(folder)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(SpagoError, match="model.safetensors"):
        from_pretrained(folder)


def _rewrite_weights(folder: str, edit) -> str:
    path = os.path.join(folder, "model.safetensors")
    state = load_file(path)
    edit(state)
    save_file(state, path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("encoder.layer.1.output.dense.weight"), "missing 1 tensor(s): encoder.layer.1.output.dense.weight"),
    (lambda s: s.update(extra=np.zeros(3, np.float32)), "unexpected 1 tensor(s): extra"),
    (lambda s: s.update({"pooler.dense.bias": np.zeros(31, np.float32)}),
     "wrong shape for pooler.dense.bias: expected (32,), got (31,)"),
    (lambda s: s.update({"pooler.dense.bias": np.zeros(32, np.int64)}), "non-floating tensors for pooler.dense.bias"),
])
def test_mismatched_weights_are_named(tmp_path, edit, message):
    folder = copy_model("tiny-bert/base", tmp_path / "m")
    path = _rewrite_weights(folder, edit)
    with pytest.raises(SpagoError) as info:
        from_pretrained(folder, compiled=False)
    assert f"{path}: cannot load weights into BertModel" in str(info.value) and message in str(info.value)


def test_old_checkpoint_names_and_buffers_are_accepted(tmp_path):
    """gamma/beta LayerNorm names, a stored position_ids buffer, no pooler: all load."""
    folder = copy_model("tiny-bert/token-classification", tmp_path / "m")

    def old_names(state):
        for key in list(state):
            if key.endswith("LayerNorm.weight"):
                state[key.replace(".weight", ".gamma")] = state.pop(key)
            elif key.endswith("LayerNorm.bias"):
                state[key.replace(".bias", ".beta")] = state.pop(key)
        state["bert.embeddings.position_ids"] = np.arange(64, dtype=np.int64)[None]

    _rewrite_weights(folder, old_names)
    ref = np.load(os.path.join(fixture("tiny-bert/token-classification"), "reference.npz"))
    out = from_pretrained(folder, compiled=False)(**{k: ref[k] for k in INPUTS})
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=0, atol=1e-5)


def test_encoder_of_a_head_checkpoint(tmp_path):
    """architecture='BertModel' on a head checkpoint keeps the encoder (and its pooler) and drops the head."""
    ref = np.load(os.path.join(fixture("tiny-bert/nsp"), "reference.npz"))
    model = from_pretrained(fixture("tiny-bert/nsp"), compiled=False, architecture="BertModel")
    assert isinstance(model.module, BertModel)
    out = model(**{k: ref[k] for k in INPUTS})
    assert set(out) == {"last_hidden_state", "pooler_output"}
    np.testing.assert_allclose(out["pooler_output"], ref["pooler_output"], rtol=0, atol=1e-5)
    # a checkpoint without a pooler gives an encoder without one
    qa = from_pretrained(fixture("tiny-bert/qa"), compiled=False, architecture="BertModel")
    assert qa.module.pooler is None
    with pytest.raises(SpagoError, match="unknown architecture 'BertForMagic'"):
        from_pretrained(fixture("tiny-bert/qa"), architecture="BertForMagic")
    with pytest.raises(SpagoError, match="does not fit model_type 'bert'"):
        from_pretrained(fixture("tiny-bert/qa"), architecture="ElectraModel")


# -- vocabulary and inputs --------------------------------------------------------------------

def test_vocabulary_problems(tmp_path):
    folder = copy_model("tiny-bert/base", tmp_path / "m", ("config.json", "model.safetensors"))
    model = from_pretrained(folder, compiled=False)
    assert model.tokenizer is None
    with pytest.raises(SpagoError, match="no tokenizer \\(no vocab.txt"):
        model.encode("hello")
    vocab = os.path.join(folder, "vocab.txt")
    for content, message in ((b"", "is empty"), (b"a\na\n", "repeats line 1"), (b"\xff\xfe", "not valid UTF-8"),
                             (b"a\nb\n", "unk_token '[UNK]' is not in the vocabulary")):
        with open(vocab, "wb") as f:
            f.write(content)
        with pytest.raises(SpagoError) as info:
            from_pretrained(folder, compiled=False)
        assert vocab in str(info.value) and message in str(info.value)
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(395)]))
    with pytest.raises(SpagoError, match="400 tokens, more than the model's vocab_size 328"):
        from_pretrained(folder, compiled=False)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_bad_model_inputs(compiled):
    model = from_pretrained(fixture("tiny-bert/base"), compiled=compiled)
    ids = np.array([[2, 10, 3]])
    with pytest.raises(SpagoError, match="longer than the model's max_position_embeddings \\(64, .*config.json"):
        model(np.ones((1, 65), np.int64))
    with pytest.raises(SpagoError, match="input_ids must hold integers, got dtype float32"):
        model(ids.astype(np.float32))
    with pytest.raises(SpagoError, match="input_ids values must be in \\[0, 328\\)"):
        model(np.array([[2, 328, 3]]))
    with pytest.raises(SpagoError, match="token_type_ids values must be in \\[0, 2\\)"):
        model(ids, token_type_ids=np.array([[0, 2, 0]]))
    with pytest.raises(SpagoError, match="attention_mask must have the shape of input_ids"):
        model(ids, np.ones((1, 4), np.int64))
    with pytest.raises(SpagoError, match="input_ids must be \\(batch, sequence\\)"):
        model(np.array([2, 10, 3]))


# -- sentence-transformers folders and spago's own format -------------------------------------

def make_sentence_transformer(tmp_path, modes=("cls", "mean"), normalize=True) -> str:
    folder = copy_model("tiny-bert/base", tmp_path / "st")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    with open(os.path.join(folder, "modules.json"), "w") as f:
        json.dump(modules, f)
    os.makedirs(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": "cls" in modes,
                   "pooling_mode_mean_tokens": "mean" in modes, "pooling_mode_max_tokens": "max" in modes,
                   "pooling_mode_mean_sqrt_len_tokens": False}, f)
    return folder


def test_sentence_transformer_folder(tmp_path):
    folder = make_sentence_transformer(tmp_path)
    ref = np.load(os.path.join(fixture("tiny-bert/base"), "reference.npz"))
    model = from_pretrained(folder, compiled=False)
    out = model(**{k: ref[k] for k in INPUTS})
    h, m = ref["last_hidden_state"], ref["attention_mask"][..., None]
    expected = np.concatenate([h[:, 0], (h * m).sum(1) / m.sum(1)], -1)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(out["sentence_embedding"], expected, rtol=0, atol=1e-5)
    emb = model.encode(["the cat sat on the mat.", "hello world"])
    np.testing.assert_allclose(emb, expected[[0, 2]], rtol=0, atol=1e-5)


def test_bad_sentence_transformer_folders(tmp_path):
    folder = make_sentence_transformer(tmp_path, modes=())
    with pytest.raises(SpagoError, match="1_Pooling/config.json: no supported pooling mode"):
        from_pretrained(folder)
    with open(os.path.join(folder, "modules.json"), "w") as f:
        json.dump([{"path": "2_Dense", "type": "sentence_transformers.models.Dense"}], f)
    with pytest.raises(SpagoError, match="modules.json: unsupported sentence-transformers module"):
        from_pretrained(folder)


def test_import_hf_command_round_trip(tmp_path, capsys):
    """MLM (tied decoder) through ``spago import-hf``; the converted folder loads and matches the reference."""
    dst = str(tmp_path / "converted")
    assert main(["import-hf", fixture("tiny-bert/mlm"), dst, "--quiet"]) == 0
    assert "wrote BertForMaskedLM" in capsys.readouterr().out
    assert sorted(os.listdir(dst)) == ["config.json", "model.safetensors", "spago.json", "tokenizer.json",
                                       "tokenizer_config.json", "vocab.txt"]
    stored = load_file(os.path.join(dst, "model.safetensors"))
    assert "cls.predictions.bias" in stored and not any("decoder" in k for k in stored)
    ref = np.load(os.path.join(fixture("tiny-bert/mlm"), "reference.npz"))
    model = from_pretrained(dst, compiled=False)
    assert model.architecture == "BertForMaskedLM"
    np.testing.assert_allclose(model(**{k: ref[k] for k in INPUTS})["logits"], ref["logits"], rtol=0, atol=1e-5)


def test_convert_keeps_pooling_and_reports_bad_sources(tmp_path, capsys):
    folder = make_sentence_transformer(tmp_path, modes=("max",), normalize=False)
    dst = str(tmp_path / "out")
    assert main(["import-hf", folder, dst, "-q"]) == 0
    with open(os.path.join(dst, "spago.json")) as f:
        assert json.load(f)["pooling"] == {"modes": ["max"], "normalize": False}
    model = from_pretrained(dst, compiled=False)
    assert model.pooling.modes == ("max",) and not model.pooling.normalize

    os.remove(os.path.join(folder, "vocab.txt"))
    assert main(["import-hf", folder, str(tmp_path / "out2"), "-q"]) == 2
    assert "vocab.txt: vocabulary not found" in capsys.readouterr().err
    assert main(["import-hf", str(tmp_path / "nowhere"), str(tmp_path / "out3"), "-q"]) == 2
    assert "config.json: config file not found" in capsys.readouterr().err

    manifest = os.path.join(dst, "spago.json")
    with open(manifest, "w") as f:
        json.dump({"format": "spago-transformer", "format_version": 99, "architecture": "BertModel"}, f)
    with pytest.raises(SpagoError, match="spago.json: unsupported format_version 99"):
        from_pretrained(dst)


def test_long_text_is_an_error_unless_truncated():
    model = from_pretrained(fixture("tiny-bert/base"), compiled=False)
    text = "the cat sat on the mat " * 20  # 122 tokens with [CLS] and [SEP]; the model takes 64
    with pytest.raises(SpagoError, match="input of 122 tokens is longer than the model's max_position_embeddings"):
        model.encode(text)
    assert model.tokenize(text, truncation=True)["input_ids"].shape == (1, 64)
    emb = model.encode([text, "hello world"], truncation=True)
    assert emb.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-6)


def test_stored_mlm_decoder_must_be_tied(tmp_path):
    folder = copy_model("tiny-bert/mlm", tmp_path / "m")
    key, embeddings = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"
    _rewrite_weights(folder, lambda s: s.update({key: s[embeddings].copy()}))
    ref = np.load(os.path.join(fixture("tiny-bert/mlm"), "reference.npz"))
    out = from_pretrained(folder, compiled=False)(**{k: ref[k] for k in INPUTS})
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=0, atol=1e-5)
    path = _rewrite_weights(folder, lambda s: s.update({key: s[embeddings] + 1}))
    with pytest.raises(SpagoError, match=f"{path}: {key} differs from {embeddings}"):
        from_pretrained(folder, compiled=False)


# -- architecture choice, progress bar, newer sentence-transformers folders ------------------------

def test_architecture_from_architectures_or_model_type(tmp_path):
    """No ``architectures``: the base model of ``model_type``; no ``model_type``: the one its architecture
    belongs to."""
    folder = copy_model("tiny-bert/base", tmp_path / "bert")
    edit_config(folder, architectures=None)
    assert from_pretrained(folder, compiled=False).architecture == "BertModel"
    folder = copy_model("tiny-electra/discriminator", tmp_path / "electra")
    edit_config(folder, architectures=None)
    model = from_pretrained(folder, compiled=False, tokenizer=False)
    assert model.architecture == "ElectraModel" and model.tokenizer is None
    folder = copy_model("tiny-bert/qa", tmp_path / "qa")
    edit_config(folder, model_type=None)
    model = from_pretrained(folder, compiled=False)
    assert model.architecture == "BertForQuestionAnswering" and model.config.model_type == "bert"
    np.testing.assert_allclose(model(**ref_inputs("tiny-bert/qa"))["start_logits"],
                               np.load(os.path.join(fixture("tiny-bert/qa"), "reference.npz"))["start_logits"],
                               rtol=0, atol=1e-5)


def test_import_hf_shows_a_progress_bar(tmp_path, capsys):
    src = fixture("tiny-bert/qa")
    dst = str(tmp_path / "out")
    assert main(["import-hf", src, dst]) == 0
    captured = capsys.readouterr()
    assert "tensors: 100%" in captured.err and "39/39" in captured.err  # tqdm on stderr, one step per tensor (39)
    assert f"wrote BertForQuestionAnswering ({from_pretrained(src, compiled=False).encoder.num_parameters():,} " \
           f"parameters) to {dst}" in captured.out
    assert main(["import-hf", src, str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "tensors" not in capsys.readouterr().err


def test_pooling_config_of_newer_sentence_transformers(tmp_path):
    """Newer sentence-transformers write ``"pooling_mode": "cls"`` or a list, concatenated in that order."""
    folder = make_sentence_transformer(tmp_path)
    cfg = os.path.join(folder, "1_Pooling", "config.json")
    for value, modes in (("cls", ("cls",)), (["mean", "max"], ("mean", "max")),
                         (["mean_sqrt_len_tokens"], ("mean_sqrt_len",))):
        with open(cfg, "w") as f:
            json.dump({"embedding_dimension": 32, "pooling_mode": value, "include_prompt": True}, f)
        assert from_pretrained(folder, compiled=False).pooling.modes == modes
    for config, bad in (({"pooling_mode": "lasttoken"}, "lasttoken"), ({"pooling_mode": ["mean", "weightedmean"]},
                        "weightedmean"), ({"pooling_mode_mean_tokens": True, "pooling_mode_lasttoken": True},
                                          "lasttoken"), ({"pooling_mode": 3}, "must be a mode name")):
        with open(cfg, "w") as f:
            json.dump(config, f)
        with pytest.raises(SpagoError) as info:
            from_pretrained(folder)
        assert cfg in str(info.value) and bad in str(info.value)


def test_pooling_argument_overrides_the_folder_and_drops_a_head(tmp_path):
    model = from_pretrained(make_sentence_transformer(tmp_path), compiled=False, pooling="max")
    assert model.pooling.modes == ("max",) and model.pooling.normalize
    qa = from_pretrained(fixture("tiny-bert/qa"), compiled=False, pooling="cls+mean")
    assert qa.architecture == "BertModel" and set(qa(**ref_inputs("tiny-bert/qa"))) == {
        "last_hidden_state", "sentence_embedding"}
    with pytest.raises(SpagoError, match="pooling modes must be distinct names"):
        from_pretrained(fixture("tiny-bert/qa"), pooling="median")


def test_folder_with_only_tokenizer_json(tmp_path):
    """Newer tools save tokenizer.json without vocab.txt: its WordPiece vocabulary and BertNormalizer options
    are read, and ``spago import-hf`` writes the vocab.txt."""
    src = fixture("tiny-bert/qa")
    folder = copy_model("tiny-bert/qa", tmp_path / "m", ("config.json", "model.safetensors", "tokenizer.json"))
    model = from_pretrained(folder, compiled=False)
    inputs = model.tokenize(["who lives in paris?"], ["john lives in paris with his family."])
    np.testing.assert_array_equal(inputs["input_ids"][0], ref_inputs("tiny-bert/qa")["input_ids"][0, :16])
    dst = str(tmp_path / "converted")
    assert main(["import-hf", folder, dst, "-q"]) == 0
    with open(os.path.join(dst, "vocab.txt"), encoding="utf-8") as a, open(os.path.join(src, "vocab.txt")) as b:
        assert a.read() == b.read()
    # the normaliser options come from tokenizer.json (here: cased), tokenizer_config.json overrides them
    path = os.path.join(folder, "tokenizer.json")
    with open(path) as f:
        data = json.load(f)
    data["normalizer"]["lowercase"] = False
    with open(path, "w") as f:
        json.dump(data, f)
    assert from_pretrained(folder, compiled=False).tokenizer.tokenize("Paris") == ["[UNK]"]
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    assert from_pretrained(folder, compiled=False).tokenizer.tokenize("Paris") == ["paris"]
    for edit, message in ((lambda d: d["model"].update(type="BPE"), "model type 'BPE' is not WordPiece"),
                          (lambda d: d.update(pre_tokenizer=None), "expected a BertPreTokenizer"),
                          (lambda d: d["model"].update(vocab={"a": "x"}), "model.vocab must map")):
        broken = json.loads(json.dumps(data))
        edit(broken)
        with open(path, "w") as f:
            json.dump(broken, f)
        with pytest.raises(SpagoError) as info:
            from_pretrained(folder, compiled=False)
        assert path in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("inside", ["", "converted"])
def test_import_hf_refuses_to_write_into_its_source(tmp_path, capsys, inside):
    folder = make_sentence_transformer(tmp_path)
    before = {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
              if os.path.isfile(os.path.join(folder, name))}
    dst = os.path.join(folder, inside) if inside else folder + os.sep
    assert main(["import-hf", folder, dst, "-q"]) == 2
    assert "overwrite the model being read" in capsys.readouterr().err
    after = {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
             if os.path.isfile(os.path.join(folder, name))}
    assert after == before and not os.path.exists(os.path.join(folder, "converted"))

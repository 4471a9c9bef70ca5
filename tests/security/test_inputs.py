"""Careless or hostile configs, options and files: each is a spago error naming the file and field, never an
uncaught exception, a hang, a silent default or a wrong result."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import save_file

import spago
from spago import nn
from spago.errors import SpagoError
from spago.files import TEMP_MARK, atomic_write, remove_stale_temps
from spago.nlp.tokenizers import BertTokenizer, TokenizerError
from spago.nlp.transformers import from_pretrained
from spago.nlp.transformers.checkpoint import read_state_dict
from spago.nlp.transformers.config import config_from_dict
from spago.schema import ConfigError

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
DEEP = "[" * 100000 + "]" * 100000


def file_metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return f.metadata()


def fixture(name):
    folder = os.path.join(FIXTURES, name)
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    return folder


def model_copy(tmp_path, name="tiny-bert/base", files=("config.json", "model.safetensors", "vocab.txt")):
    src, dst = fixture(name), tmp_path / "m"
    os.makedirs(dst, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(src, f), dst / f)
    return dst


def set_config(folder, **changes):
    data = json.loads((folder / "config.json").read_text())
    data.update(changes)
    (folder / "config.json").write_text(json.dumps(data))


# -- config.json ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"num_hidden_layers": 10 ** 9}, "field 'num_hidden_layers' must be an integer in [1, 1024]"),
    ({"num_hidden_layers": 2 ** 63}, "field 'num_hidden_layers' must be an integer in [1, 1024]"),
    ({"hidden_size": 10 ** 9}, "field 'hidden_size' must be an integer in [1, 65536]"),
    ({"vocab_size": 2 ** 63}, "field 'vocab_size' must be an integer in [1, 16777216]"),
    ({"pad_token_id": 2 ** 63}, "field 'pad_token_id' must be an integer"),
    ({"pad_token_id": 328}, "field 'pad_token_id' must be below vocab_size 328"),
    ({"model_type": ["bert"]}, "unknown model_type ['bert']"),
    ({"architectures": "BertModel"}, "field 'architectures' must be a list of strings"),
    ({"architectures": [["BertModel"]]}, "field 'architectures' must be a list of strings"),
    ({"hidden_size": None}, "field 'hidden_size' is null"),
    ({"layer_norm_eps": None}, "field 'layer_norm_eps' is null"),
    ({"hidden_act": None}, "field 'hidden_act' is null"),
    ({"layer_norm_eps": float("inf")}, "field 'layer_norm_eps' must be a finite number"),
    ({"hidden_dropout_prob": 2.0}, "field 'hidden_dropout_prob' must be a finite number >= 0.0 and <= 1.0"),
    ({"num_hidden_layers": 1000}, "field 'num_hidden_layers' is 1000, but"),
    ({"intermediate_size": 1 << 20}, "describes a model of about"),
])
def test_config_fields_are_checked_before_anything_is_built(tmp_path, changes, message):
    folder = model_copy(tmp_path)
    set_config(folder, **changes)
    with pytest.raises(ConfigError) as info:
        from_pretrained(folder, compiled=False, tokenizer=False)
    assert str(folder / "config.json") in str(info.value) and message in str(info.value)


def test_null_fields_hugging_face_uses_for_defaults_are_accepted(tmp_path):
    folder = model_copy(tmp_path)
    set_config(folder, id2label=None, label2id=None, position_embedding_type=None, classifier_dropout=None)
    assert from_pretrained(folder, compiled=False, tokenizer=False).config.id2label == {}


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "tokenizer_config.json"])
def test_json_nested_too_deeply_is_a_clean_error(tmp_path, name):
    folder = model_copy(tmp_path, files=("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"))
    (folder / name).write_text(DEEP)
    with pytest.raises(SpagoError, match=r"malformed JSON \(nested too deeply\)"):
        from_pretrained(folder, compiled=False)


def test_config_json_that_is_a_fifo_is_refused(tmp_path):
    folder = model_copy(tmp_path)
    os.remove(folder / "config.json")
    os.mkfifo(folder / "config.json")
    with pytest.raises(SpagoError, match=r"expected a regular config file, found a FIFO"):
        from_pretrained(folder, compiled=False)


def test_config_from_dict_refuses_wrong_types_of_the_type_fields():
    base = json.load(open(os.path.join(fixture("tiny-bert/base"), "config.json")))
    with pytest.raises(ConfigError, match=r"unknown model_type \{'a': 1\}"):
        config_from_dict({**base, "model_type": {"a": 1}})
    with pytest.raises(ConfigError, match=r"field 'architectures' must be a list"):
        config_from_dict({**base, "model_type": None, "architectures": [{"x": 1}]})


# -- shard index -----------------------------------------------------------------------------------------------

def test_shard_index_defects(tmp_path):
    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "s1.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "model.safetensors.index.json"}}))
    with pytest.raises(SpagoError, match=r"names the index 'model.safetensors.index.json' as a shard"):
        read_state_dict(index)
    index.write_text(DEEP)
    with pytest.raises(SpagoError, match=r"index.json: malformed JSON \(nested too deeply\)"):
        read_state_dict(index)
    index.write_text(json.dumps({"weight_map": {"a": ["s1.safetensors"]}}))
    with pytest.raises(SpagoError, match=r"field 'weight_map' must be an object mapping a string to a string"):
        read_state_dict(index)
    index.write_text(json.dumps({"weight_map": {"a": "s1.safetensors"}}))
    assert list(read_state_dict(index)) == ["a"]


# -- tokenizer files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", None, [1], -1, 1.5, True, 2 ** 64])
def test_max_input_chars_per_word_must_be_a_non_negative_integer(tmp_path, value):
    folder = model_copy(tmp_path, files=("tokenizer.json",))
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["max_input_chars_per_word"] = value
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match=r"field 'model.max_input_chars_per_word' must be an integer"):
        BertTokenizer.from_pretrained(folder)
    vocab = {"[UNK]": 0, "[SEP]": 1, "[PAD]": 2, "[CLS]": 3, "[MASK]": 4, "a": 5}
    with pytest.raises(TokenizerError, match=r"max_input_chars_per_word must be a non-negative integer"):
        BertTokenizer(vocab, max_input_chars_per_word=value)


def test_a_vocab_txt_with_a_bom_is_named(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"\xef\xbb\xbf[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(TokenizerError, match=r"byte-order mark \(BOM\)"):
        BertTokenizer.from_pretrained(tmp_path)


# -- options of public calls -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qa():
    from spago.nlp.pipelines import QuestionAnswering

    return QuestionAnswering.from_pretrained(fixture("tiny-bert/qa"), compiled=False)


@pytest.mark.parametrize("option, message", [
    ({"max_answer_length": "3"}, "field 'max_answer_length' must be an integer"),
    ({"max_length": "64"}, "field 'max_length' must be an integer"),
    ({"max_length": 1.5}, "field 'max_length' must be an integer"),
    ({"min_confidence": "x"}, "field 'min_confidence' must be a finite number"),
    ({"top_k": 0}, "field 'top_k' must be an integer in [1,"),
    ({"stride": -1}, "field 'stride' must be an integer"),
])
def test_question_answering_options(qa, option, message):
    with pytest.raises(ConfigError) as info:
        qa("what?", "a passage to read", **option)
    assert str(info.value).startswith("question answering: ") and message in str(info.value)


@pytest.mark.parametrize("batch_size", [0, -1, "3", 2.0, None])
def test_encode_batch_size(batch_size):
    model = from_pretrained(fixture("tiny-bert/base"), compiled=False)
    with pytest.raises(ConfigError, match=r"encode: field 'batch_size' must be an integer in \[1, "):
        model.encode(["a", "b"], batch_size=batch_size)
    assert model.encode(["a", "b", "c"], batch_size=2).shape == (3, 32)


# -- compiled take --------------------------------------------------------------------------------------------

def test_compiled_embedding_raises_on_out_of_range_ids_like_eager():
    emb = nn.Embedding(30, 4)
    ids = np.array([[1, 2, 3]], np.int64)
    fn = spago.compile(lambda i: emb(i), ids, cache=False)
    for bad in (1000, 30, -1, -31):
        with pytest.raises(SpagoError, match=rf"index {bad} is out of range \[0, 30\) for take .* input 'i'"):
            fn(np.array([[1, bad, 3]], np.int64))
        with pytest.raises(SpagoError, match=r"ids must be in \[0, 30\)"):
            emb(np.array([[1, bad, 3]], np.int64))
    np.testing.assert_array_equal(fn(ids), emb(ids).numpy())  # a good call after a bad one is exact


def test_compiled_take_wraps_negatives_like_numpy_and_raises_beyond():
    table = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    idx = np.array([0, -1, 5], np.int64)
    fn = spago.compile(lambda t, i: spago.ops.take(t, i, axis=0), table, idx, cache=False)
    np.testing.assert_array_equal(fn(table, idx), np.take(table, idx, axis=0))
    for bad in (6, -7):
        with pytest.raises(SpagoError, match=rf"index {bad} is out of range \[-6, 6\)"):
            fn(table, np.array([0, bad, 1], np.int64))
        with pytest.raises(SpagoError, match=rf"index {bad} is out of range"):
            spago.ops.take(table, np.array([0, bad, 1], np.int64))


# -- spago.save / spago.load -----------------------------------------------------------------------------------

def test_spago_load_refuses_nan_weights(tmp_path):
    layer = nn.Linear(3, 2)
    spago.save(layer, tmp_path / "l.safetensors")
    layer.weight.numpy()[0, 0] = np.nan
    save_file({k: p.numpy() for k, p in layer.named_parameters()}, str(tmp_path / "nan.safetensors"),
              metadata=file_metadata(tmp_path / "l.safetensors"))
    with pytest.raises(SpagoError, match=r"nan.safetensors: tensor weight holds NaN or infinite values"):
        spago.load(nn.Linear, tmp_path / "nan.safetensors")


@pytest.mark.parametrize("value, expected", [("4", "an integer"), (4.5, "an integer"), (None, "an integer")])
def test_a_mistyped_saved_constructor_argument_is_named(tmp_path, value, expected):
    spago.save(nn.Linear(4, 2), tmp_path / "l.safetensors")
    meta = file_metadata(tmp_path / "l.safetensors")
    header = json.loads(meta["spago"])
    header["config"]["in_features"] = value
    layer = nn.Linear(4, 2)
    save_file({k: p.numpy() for k, p in layer.named_parameters()}, str(tmp_path / "bad.safetensors"),
              metadata={"spago": json.dumps(header)})
    with pytest.raises(SpagoError, match=rf"the saved argument in_features must be {expected}, got"):
        spago.load(nn.Linear, tmp_path / "bad.safetensors")


def test_spago_metadata_nested_too_deeply(tmp_path):
    layer = nn.Linear(2, 2)
    save_file({k: p.numpy() for k, p in layer.named_parameters()}, str(tmp_path / "deep.safetensors"),
              metadata={"spago": DEEP})
    with pytest.raises(SpagoError, match=r"spago metadata\): malformed JSON \(nested too deeply\)"):
        spago.load(nn.Linear, tmp_path / "deep.safetensors")


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_spago_load_names_a_directory_or_fifo(tmp_path, kind):
    path = tmp_path / "x.safetensors"
    os.mkdir(path) if kind == "directory" else os.mkfifo(path)
    found = "a directory" if kind == "directory" else "a FIFO"
    with pytest.raises(SpagoError, match=rf"expected a regular file, found {found}"):
        spago.load(nn.Linear(2, 2), path)


# -- temp files ----------------------------------------------------------------------------------------------

def test_a_save_killed_mid_write_leaves_a_named_temp_that_the_next_save_removes(tmp_path):
    target = tmp_path / "model.safetensors"
    code = textwrap.dedent(f"""
        import os, signal
        import spago
        from spago import nn, serialization
        def die(tensors, path, metadata):
            open(path, "wb").write(b"half a file")
            open(os.path.join(os.path.dirname(path), ".tmpAbC123"), "wb").write(b"the writer's own temp")
            os.kill(os.getpid(), signal.SIGKILL)
        serialization._safetensors_save_file = die
        spago.save(nn.Linear(3, 2), {str(target)!r})
    """)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.safetensors" + TEMP_MARK) and not target.exists()
    assert sorted(os.listdir(tmp_path / left[0])) == [".tmpAbC123", "model.safetensors"]
    spago.save(nn.Linear(3, 2), target)
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_temps_of_running_processes_are_kept(tmp_path):
    mine = tmp_path / f".a{TEMP_MARK}{os.getpid()}-00"
    parent = tmp_path / f".b{TEMP_MARK}{os.getppid()}-00"
    other = tmp_path / ".c.tmp"
    for p in (mine, parent, other):
        p.write_bytes(b"")
    assert remove_stale_temps(str(tmp_path)) == []
    atomic_write(tmp_path / "d", b"data")
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, parent.name, other.name, "d"])


@pytest.mark.parametrize("manifest, message", [
    ({"format": "spago-transformer", "format_version": 1, "architecture": ["BertModel"]},
     "field 'architecture' must be a string"),
    ({"format": "spago-transformer", "format_version": 1, "architecture": "BertModel", "pooling": {"modes": 3}},
     "field 'pooling' must be an object with modes"),
])
def test_a_malformed_spago_manifest_is_named(tmp_path, manifest, message):
    folder = model_copy(tmp_path)
    (folder / "spago.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=message):
        from_pretrained(folder, compiled=False)


def test_sentence_transformers_files_nested_too_deeply(tmp_path):
    folder = model_copy(tmp_path)
    (folder / "modules.json").write_text(DEEP)
    with pytest.raises(SpagoError, match=r"modules.json: malformed JSON \(nested too deeply\)"):
        from_pretrained(folder, compiled=False)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on PATH")
def test_an_exported_library_reports_an_out_of_range_id(tmp_path):
    emb = nn.Embedding(30, 4)
    ids = np.array([[1, 2, 3]], np.int64)
    paths = spago.compile(lambda i: emb(i), ids, cache=False).export(str(tmp_path / "emb"))
    (tmp_path / "main.c").write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        #include "emb.h"
        int main(int argc, char **argv) {
            long long ids[3] = {1, atoll(argv[1]), 3};
            float out[12];
            const void *in[1] = {ids};
            void *outs[1] = {out};
            int code = emb_run(in, outs);
            printf("%d %.9g\\n", code, out[4]);
            return 0;
        }
    """))
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(tmp_path / "main.c"), "-I", str(tmp_path), paths["library"],
                    f"-Wl,-rpath,{tmp_path}"], check=True, capture_output=True)
    for value, code in (("2", "0"), ("1000", "-3"), ("-1", "-3"), ("29", "0")):
        done = subprocess.run([str(exe), value], capture_output=True, text=True, check=True)
        assert done.stdout.split()[0] == code, (value, done.stdout)
    done = subprocess.run([str(exe), "29"], capture_output=True, text=True, check=True)
    assert float(done.stdout.split()[1]) == pytest.approx(float(emb.weight.numpy()[29, 0]))

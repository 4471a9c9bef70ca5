"""Fuzzing the readers of files from outside: .bin archives (their pickles, including the hostile shapes of
docs/security.md), safetensors files, config.json, tokenizer files, shard indexes and cache entries."""
import io
import json
import os
import struct
import tempfile
import zipfile

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from spago import nn
import spago
from spago.backend import cache
from spago.nlp.tokenizers import BertTokenizer
from spago.nlp.transformers.checkpoint import read_pytorch_bin, read_safetensors, read_state_dict
from spago.nlp.transformers.config import check_against_weights, config_from_dict

from .conftest import FUZZ, outcome, run_in_child

TMP = tempfile.mkdtemp(prefix="spago-fuzz-")

# -- JSON values ------------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                    st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 63, 10 ** 9, 2 ** 64]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
deep_json = st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n)


def json_text(value) -> str:
    try:
        return json.dumps(value)
    except ValueError:
        return "{}"


# -- .bin archives -----------------------------------------------------------------------------------------

def _unicode(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def tensor_call(key: str, numel: int, size: tuple, stride: tuple, offset: int, kind: str = "FloatStorage") -> bytes:
    """torch._utils._rebuild_tensor_v2((storage pid), offset, size, stride, False, OrderedDict())."""
    tup = lambda items: b"(" + b"".join(items) + b"t"  # noqa: E731
    ints = lambda vals: tup([b"J" + struct.pack("<i", v) if -2 ** 31 <= v < 2 ** 31 else b"N" for v in vals])  # noqa
    pid = tup([_unicode("storage"), b"ctorch\n" + kind.encode() + b"\n", _unicode(key), _unicode("cpu"),
               b"J" + struct.pack("<i", max(min(numel, 2 ** 31 - 1), -2 ** 31))]) + b"Q"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"J" + struct.pack("<i", offset) + ints(size)
            + ints(stride) + b"\x89ccollections\nOrderedDict\n)RtR")


hostile = st.one_of(
    st.integers(1, 300_000).map(lambda n: b"N" + b"\x85" * n),                     # a tuple nested n deep
    st.integers(1, 300_000).map(lambda n: b"(" * n + b"N" + b"t" * n),             # MARK/TUPLE nesting
    st.integers(1, 300_000).map(lambda n: b"]" * n + b"a" * (n - 1)),              # lists in lists
    st.integers(1, 100_000).map(lambda n: b"N0" * n),                              # NONE/POP work
    st.integers(0, 2 ** 32 - 1).map(lambda k: b"j" + struct.pack("<I", k)),        # LONG_BINGET anywhere
    st.integers(0, 2 ** 32 - 1).map(lambda k: b"Nr" + struct.pack("<I", k)),       # LONG_BINPUT anywhere
    st.sampled_from([b"cos\nsystem\n", b"cbuiltins\neval\n", b"c__builtin__\nexec\n", b"ctorch\nFloatStorage\n",
                     b"ccollections\nOrderedDict\n", b"\x8c\x02os\x8c\x06system\x93", b"R", b"\x81", b"b", b"Q",
                     b"s", b"u", b"e", b"a", b"}", b"]", b")", b"(", b"t", b".", b"0", b"1", b"2", b"\x94"]),
    st.binary(max_size=40),
)


@st.composite
def bin_archives(draw):
    numel = draw(st.sampled_from([0, 1, 6, 10, 2 ** 20, 2 ** 28, 2 ** 31 - 1, -1]))
    stored = draw(st.integers(0, 64)) * 4 if draw(st.booleans()) else max(numel, 0) * 4
    stored = min(stored, 1 << 22)
    size = tuple(draw(st.lists(st.integers(-2, 2 ** 33), max_size=3)))
    stride = tuple(draw(st.lists(st.integers(-2, 2 ** 33), min_size=len(size), max_size=len(size))))
    tensor = tensor_call("0", numel, size, stride, draw(st.integers(-1, 100)),
                         draw(st.sampled_from(["FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
                                               "BoolStorage", "NoSuchStorage"])))
    body = [b"ccollections\nOrderedDict\n)R", _unicode("w"), tensor, b"s"]
    for _ in range(draw(st.integers(0, 3))):
        body.insert(draw(st.integers(0, len(body))), draw(hostile))
    pkl = b"\x80\x02" + b"".join(body) + (b"." if draw(st.integers(0, 9)) else b"")
    if draw(st.integers(0, 9)) == 0:  # a random byte flip
        k = draw(st.integers(0, len(pkl) - 1))
        pkl = pkl[:k] + bytes([draw(st.integers(0, 255))]) + pkl[k + 1:]
    compress = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", bytes(stored))
        if draw(st.booleans()):
            z.writestr("archive/byteorder", draw(st.sampled_from([b"little", b"big", b"\xff\xfe", b"middle"])))
    return buf.getvalue()


def test_fuzz_pytorch_bin():
    """Run in a child process: these are the inputs that used to crash the interpreter."""
    run_in_child("tests.fuzz.test_fuzz_files", "fuzz_pytorch_bin")


@FUZZ
@given(bin_archives())
def fuzz_pytorch_bin(data):
    path = os.path.join(TMP, "pytorch_model.bin")
    with open(path, "wb") as f:
        f.write(data)
    result = outcome("pytorch .bin", read_pytorch_bin, path)
    if isinstance(result, dict):
        assert all(isinstance(v, np.ndarray) for v in result.values())


# -- safetensors -------------------------------------------------------------------------------------------

@st.composite
def safetensors_files(draw):
    entries, offset = {}, 0
    for name in draw(st.lists(st.sampled_from(["weight", "bias", "x", ""]), max_size=3, unique=True)):
        dtype = draw(st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "BOOL", "F8_E4M3", "Q4", 7]))
        shape = draw(st.lists(st.integers(-1, 2 ** 40), max_size=3)) if draw(st.booleans()) else [2, 2]
        nbytes = 16 if shape == [2, 2] else draw(st.integers(0, 64))
        end = offset + nbytes if draw(st.booleans()) else draw(st.integers(-1, 2 ** 40))
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}
        offset = max(offset, end if isinstance(end, int) and 0 <= end < 1 << 16 else offset)
    if draw(st.booleans()):
        spago_meta = draw(st.one_of(deep_json, json_values.map(json_text),
                                    st.just(json.dumps({"class": "spago.nn.linear.Linear",
                                                        "config": {"in_features": 2, "out_features": 2}}))))
        entries["__metadata__"] = {"spago": spago_meta}
    header = json.dumps(entries).encode()
    length = len(header) if draw(st.booleans()) else draw(st.integers(0, 2 ** 64 - 1))
    return struct.pack("<Q", length) + header + bytes(draw(st.integers(0, offset + 8)))


@FUZZ
@given(safetensors_files())
def test_fuzz_safetensors(data):
    path = os.path.join(TMP, "model.safetensors")
    with open(path, "wb") as f:
        f.write(data)
    outcome("safetensors", read_safetensors, path)
    outcome("spago.load", spago.load, nn.Linear, path)


# -- config.json, tokenizer files, shard index ----------------------------------------------------------

BASE_CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 20, "hidden_size": 8,
               "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
               "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0}
SMALL_STATE = {"encoder.layer.0.attention.self.query.weight": np.zeros((8, 8), np.float32)}


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(BASE_CONFIG) + ["embedding_size", "id2label", "label2id",
                                                               "position_embedding_type", "other"]),
                       json_values, max_size=4))
def test_fuzz_config_json(changes):
    config = outcome("config.json", config_from_dict, {**BASE_CONFIG, **changes}, "config.json")
    if not isinstance(config, Exception):
        assert isinstance(config.num_hidden_layers, int) and 1 <= config.num_hidden_layers <= 1024
        outcome("config vs weights", check_against_weights, config, SMALL_STATE, "weights")


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##b", "hello"]


def tokenizer_json(model_changes: dict, normalizer_changes: dict) -> dict:
    return {"normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None, "clean_text": True,
                           "handle_chinese_chars": True, **normalizer_changes},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(VOCAB)},
                      **model_changes}}


@FUZZ
@given(st.dictionaries(st.sampled_from(["unk_token", "max_input_chars_per_word", "vocab", "type",
                                        "continuing_subword_prefix"]), json_values, max_size=2),
       st.dictionaries(st.sampled_from(["lowercase", "strip_accents", "type"]), json_values, max_size=2),
       st.one_of(st.none(), json_values.map(json_text), deep_json))
def test_fuzz_tokenizer_files(model_changes, normalizer_changes, tokenizer_config):
    folder = os.path.join(TMP, "tok")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(model_changes, normalizer_changes), f)
    config_path = os.path.join(folder, "tokenizer_config.json")
    if tokenizer_config is None:
        if os.path.exists(config_path):
            os.remove(config_path)
    else:
        with open(config_path, "w") as f:
            f.write(tokenizer_config)
    tok = outcome("tokenizer files", BertTokenizer.from_pretrained, folder)
    if isinstance(tok, BertTokenizer):
        outcome("tokenizer files", tok.encode, "hello ab, a b")


@FUZZ
@given(st.one_of(json_values, st.dictionaries(st.just("weight_map"), json_values), deep_json))
def test_fuzz_shard_index(index):
    folder = os.path.join(TMP, "shards")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.safetensors.index.json")
    with open(path, "w") as f:
        f.write(index if isinstance(index, str) else json_text(index))
    outcome("shard index", read_state_dict, path)


# -- cache entries ----------------------------------------------------------------------------------------

KEY = "fe" + "0" * 62


@FUZZ
@given(st.one_of(json_values.map(lambda v: json_text(v).encode()), deep_json.map(str.encode),
                 st.fixed_dictionaries({"key": st.one_of(st.just(KEY), json_values),
                                        "size": st.one_of(st.integers(0, 64), json_values),
                                        "hmac": st.one_of(st.text(max_size=64), json_values)})
                 .map(lambda d: json_text(d).encode()), st.binary(max_size=64)),
       st.binary(max_size=64), st.booleans())
def test_fuzz_cache_entries(header, payload, magic):
    os.environ["SPAGO_CACHE_DIR"] = os.path.join(TMP, "cache")
    try:
        cache.store("00" * 32, b"x")  # the directory and its key
        path = cache._path(KEY)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write((cache.MAGIC if magic else b"") + header + b"\n" + payload)
        assert outcome("cache entry", cache.load, KEY) is None
        assert not os.path.lexists(path)
    finally:
        os.environ.pop("SPAGO_CACHE_DIR")

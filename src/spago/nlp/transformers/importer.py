"""Loading Hugging Face (and spago-converted) model folders, and running them eagerly or compiled.

A folder holds ``config.json``, the weights (``model.safetensors`` or ``pytorch_model.bin``, read without
executing code) and, usually, the tokenizer (``vocab.txt``). A sentence-transformers folder adds
``modules.json`` and ``1_Pooling/config.json``; a folder converted by ``spago import-hf`` adds ``spago.json``.

Compiled models have static shapes, so inputs are padded on the right to one of a few bucket lengths
(attention masks make the padding exact) and each (batch, bucket) pair is compiled once and cached.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import ShapeError, SpagoError
from ...files import atomic_write
from ...schema import ENCODE_OPTIONS, check_fields, read_json
from ...schema import MANIFEST as MANIFEST_SCHEMA
from ...nn import Module
from ...nn.module import skip_init
from . import bert, electra
from .config import ARCHITECTURES, BertConfig, check_against_weights, load_config
from .pooling import Pooling, SentenceEmbedding, read_sentence_transformer
from .outputs import ModelOutput
from .checkpoint import find_weights_file, read_state_dict
from .weights import load_weights

__all__ = ["MODEL_CLASSES", "DEFAULT_BUCKETS", "TransformerModel", "build_model", "from_pretrained", "convert",
           "save_pretrained"]

MODEL_CLASSES: dict[str, Callable[[BertConfig], Module]] = {
    "BertModel": bert.BertModel,
    "BertForMaskedLM": bert.BertForMaskedLM,
    "BertForPreTraining": bert.BertForPreTraining,
    "BertForNextSentencePrediction": bert.BertForNextSentencePrediction,
    "BertForTokenClassification": bert.BertForTokenClassification,
    "BertForQuestionAnswering": bert.BertForQuestionAnswering,
    "BertForSequenceClassification": bert.BertForSequenceClassification,
    "ElectraModel": electra.ElectraModel,
    "ElectraForPreTraining": electra.ElectraForPreTraining,
    "ElectraForQuestionAnswering": electra.ElectraForQuestionAnswering,
    "ElectraForTokenClassification": electra.ElectraForTokenClassification,
    "ElectraForSequenceClassification": electra.ElectraForSequenceClassification,
}
assert set(MODEL_CLASSES) == set(ARCHITECTURES)

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)
MANIFEST = "spago.json"
FORMAT_VERSION = 1
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")

# Outputs with a sequence axis (and which axis), sliced back after bucket padding.
_SEQUENCE_AXIS = {"last_hidden_state": 1, "hidden_states": 2, "start_logits": 1, "end_logits": 1,
                  "prediction_logits": 1}


def build_model(config: BertConfig, architecture: str | None = None) -> Module:
    """A freshly initialised model of ``architecture`` (default: the config's) in eval mode."""
    architecture = architecture or config.architecture
    if architecture not in MODEL_CLASSES:
        raise SpagoError(f"{config.source}: unknown architecture {architecture!r} "
                         f"(supported: {', '.join(MODEL_CLASSES)})")
    if ARCHITECTURES[architecture] != config.model_type:
        raise SpagoError(f"{config.source}: architecture {architecture!r} does not fit model_type "
                         f"{config.model_type!r}")
    return MODEL_CLASSES[architecture](config).eval()


def _base_architecture(config: BertConfig) -> str:
    return "ElectraModel" if config.model_type == "electra" else "BertModel"


def _load_tokenizer(folder: str):
    """The folder's tokenizer (vocab.txt, or a WordPiece tokenizer.json), or None when it has no vocabulary."""
    from ..tokenizers import BertTokenizer

    vocab = os.path.join(folder, "vocab.txt")
    if not os.path.isfile(vocab) and not os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return None
    try:
        return BertTokenizer.from_pretrained(folder)
    except SpagoError as exc:
        if folder in str(exc):
            raise
        raise type(exc)(f"{vocab}: {exc}") from None


class TransformerModel:
    """A loaded model: called with NumPy arrays, it returns a dict of NumPy arrays keyed by the Hugging Face
    output names (``last_hidden_state``, ``pooler_output``, ``logits``, ``start_logits``, ``end_logits``,
    ``sentence_embedding``; ``hidden_states`` stacked as (layers+1, B, S, H) when asked for)."""

    def __init__(self, module: Module, config: BertConfig, architecture: str, tokenizer: Any = None,
                 compiled: bool = True, buckets: Sequence[int] = DEFAULT_BUCKETS, source: str = "",
                 max_cached: int = 64):
        self.module, self.config, self.architecture = module, config, architecture
        self.tokenizer, self.compiled, self.source = tokenizer, bool(compiled), source
        limit = config.max_position_embeddings
        sizes = sorted({int(b) for b in buckets if 0 < int(b) <= limit})
        if not sizes or sizes[-1] < limit:
            sizes.append(limit)
        self.buckets = tuple(sizes)
        self.max_cached = max_cached
        self._compiled: "dict[tuple, Any]" = {}
        self._lock = threading.Lock()
        self.module.eval()

    # -- properties -----------------------------------------------------------------------
    @property
    def pooling(self) -> Pooling | None:
        return self.module.pooling if isinstance(self.module, SentenceEmbedding) else None

    @property
    def encoder(self) -> Module:
        """The module whose state dict is the checkpoint (the encoder of a sentence-embedding model)."""
        return self.module.model if isinstance(self.module, SentenceEmbedding) else self.module

    def __repr__(self) -> str:
        mode = f"compiled, buckets={self.buckets}" if self.compiled else "eager"
        return f"TransformerModel({self.architecture}, {mode}, source={self.source!r})"

    # -- running --------------------------------------------------------------------------
    def _check(self, input_ids, attention_mask, token_type_ids) -> tuple:
        def as_ids(name, value, like=None):
            array = np.asarray(value)
            if array.dtype.kind not in "iub":
                raise SpagoError(f"{name} must hold integers, got dtype {array.dtype}")
            if like is None and array.ndim != 2:
                raise ShapeError(f"{name} must be (batch, sequence), got shape {array.shape}")
            if like is not None and array.shape != like.shape:
                raise ShapeError(f"{name} must have the shape of input_ids {like.shape}, got {array.shape}")
            return np.ascontiguousarray(array, dtype=np.int64)

        ids = as_ids("input_ids", input_ids)
        mask = np.ones_like(ids) if attention_mask is None else as_ids("attention_mask", attention_mask, ids)
        types = np.zeros_like(ids) if token_type_ids is None else as_ids("token_type_ids", token_type_ids, ids)
        cfg = self.config
        if ids.shape[1] > cfg.max_position_embeddings:
            raise ShapeError(f"input of {ids.shape[1]} tokens is longer than the model's max_position_embeddings "
                             f"({cfg.max_position_embeddings}, {cfg.source})")
        if ids.size == 0:
            raise ShapeError(f"input_ids is empty (shape {ids.shape})")
        for name, array, high in (("input_ids", ids, cfg.vocab_size), ("token_type_ids", types, cfg.type_vocab_size),
                                  ("attention_mask", mask, 2)):
            if array.min() < 0 or array.max() >= high:
                raise SpagoError(f"{name} values must be in [0, {high}), got values from {array.min()} "
                                 f"to {array.max()}")
        return ids, mask, types

    def bucket(self, length: int) -> int:
        """The padded length a sequence of ``length`` tokens runs at when compiled."""
        for size in self.buckets:
            if size >= length:
                return size
        raise ShapeError(f"input of {length} tokens is longer than max_position_embeddings "
                         f"({self.config.max_position_embeddings})")

    def compiled_function(self, batch: int, length: int, output_hidden_states: bool = False):
        """The compiled forward for a (batch, bucket length) shape, compiled on first use and cached."""
        from ...compiler import compile

        key = (batch, length, bool(output_hidden_states))
        with self._lock:
            fn = self._compiled.get(key)
        if fn is not None:
            return fn
        example = np.zeros((batch, length), np.int64)
        module = self.module

        def forward(input_ids, attention_mask, token_type_ids):
            return module(input_ids, attention_mask, token_type_ids, output_hidden_states)

        fn = compile(forward, example, example, example, name=f"{self.architecture}_{batch}x{length}")
        with self._lock:
            self._compiled[key] = fn
            while len(self._compiled) > self.max_cached:
                self._compiled.pop(next(iter(self._compiled)))
        return fn

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 output_hidden_states: bool = False) -> ModelOutput:
        ids, mask, types = self._check(input_ids, attention_mask, token_type_ids)
        if not self.compiled:
            from ...autograd import no_grad

            with no_grad():
                out = self.module(ids, mask, types, output_hidden_states)
            return ModelOutput((k, v.numpy()) for k, v in out.items())
        batch, length = ids.shape
        size = self.bucket(length)
        if size > length:
            pad = ((0, 0), (0, size - length))
            ids = np.pad(ids, pad, constant_values=self.config.pad_token_id)
            mask, types = np.pad(mask, pad), np.pad(types, pad)
        out = self.compiled_function(batch, size, output_hidden_states)(ids, mask, types)
        return ModelOutput((k, self._unpad(k, v, length)) for k, v in out.items())

    def _unpad(self, key: str, value: np.ndarray, length: int) -> np.ndarray:
        axis = _SEQUENCE_AXIS.get(key)
        if axis is None and key == "logits" and getattr(self.module, "token_level", False):
            axis = 1
        if axis is None or value.shape[axis] == length:
            return value
        index = [slice(None)] * value.ndim
        index[axis] = slice(0, length)
        return np.ascontiguousarray(value[tuple(index)])

    # -- text conveniences ----------------------------------------------------------------
    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise SpagoError(f"{self.source}: this model has no tokenizer (no vocab.txt in the "
                             "folder); call it with input_ids instead")
        return self.tokenizer

    def tokenize(self, texts: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
                 truncation: bool = False) -> dict:
        """Token ids for ``texts`` (and pairs), padded to the longest: input_ids, token_type_ids,
        attention_mask as int64 arrays. ``truncation=True`` cuts inputs to max_position_embeddings tokens;
        otherwise a longer input is an error when the model runs."""
        tok = self._require_tokenizer()
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(text_pair, str):
            text_pair = [text_pair]
        limit = self.config.max_position_embeddings if truncation else None
        enc = tok(list(texts), text_pair=list(text_pair) if text_pair is not None else None, padding="longest",
                  truncation=bool(truncation), max_length=limit)
        return {k: np.asarray(enc[k], np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}

    def predict(self, texts: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
                output_hidden_states: bool = False) -> dict[str, np.ndarray]:
        """Tokenize and run: the model's outputs plus the ``input_ids`` and ``attention_mask`` used."""
        enc = self.tokenize(texts, text_pair)
        out = self(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], output_hidden_states)
        out.update(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return out

    def encode(self, texts: str | Sequence[str], batch_size: int = 32, truncation: bool = False,
               normalize_embeddings: bool = False, show_progress_bar: bool = False) -> np.ndarray:
        """Sentence embeddings (N, H): the folder's pooling (sentence-transformers), or else L2-normalised
        mean pooling. Texts are batched by length so little padding is computed; ``truncation`` as in
        `tokenize`. As in sentence-transformers, ``normalize_embeddings=True`` scales every row to unit
        length and ``show_progress_bar=True`` shows a tqdm bar over the batches."""
        check_fields({"batch_size": batch_size, "truncation": truncation, "normalize_embeddings": normalize_embeddings,
                      "show_progress_bar": show_progress_bar}, ENCODE_OPTIONS, "encode")
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts:
            raise SpagoError("encode: expected at least one text")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SpagoError(f"encode: batch_size must be a positive int, got {batch_size!r}")
        from tqdm.auto import tqdm

        pooling = self.pooling or Pooling(("mean",), normalize=True)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result: list = [None] * len(texts)
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not show_progress_bar):
            chunk = order[start:start + batch_size]
            enc = self.tokenize([texts[i] for i in chunk], truncation=truncation)
            out = self(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
            emb = out.get("sentence_embedding")
            if emb is None:
                emb = pooling(out["last_hidden_state"], enc["attention_mask"]).numpy()
            for row, i in enumerate(chunk):
                result[i] = emb[row]
        stacked = np.stack(result)
        if normalize_embeddings:
            norms = np.linalg.norm(stacked.astype(np.float64), axis=-1, keepdims=True)
            stacked = (stacked / np.maximum(norms, 1e-12)).astype(stacked.dtype)
        return stacked[0] if single else stacked

    # -- saving ---------------------------------------------------------------------------
    def save_pretrained(self, folder: str, progress: bool = False, tokenizer_source: str | None = None) -> None:
        """Write the model in spago's format (see `save_pretrained`)."""
        save_pretrained(self, folder, progress=progress, tokenizer_source=tokenizer_source or self.source)


def from_pretrained(path: str | os.PathLike, compiled: bool = True, buckets: Sequence[int] = DEFAULT_BUCKETS,
                    architecture: str | None = None, tokenizer: bool = True,
                    pooling: str | Sequence[str] | Pooling | None = None) -> TransformerModel:
    """Load a Hugging Face model folder (BERT or ELECTRA, any supported head, or a sentence-transformers
    folder) or one written by ``spago import-hf``.

    ``architecture`` overrides the config's (e.g. ``"BertModel"`` for just the encoder of a head checkpoint);
    ``compiled=False`` runs eagerly; ``buckets`` are the padded lengths compiled models run at. ``pooling``
    (``"cls"``, ``"mean"``, ``"max"``, ``"mean+max"`` …, L2-normalised; or a `Pooling`) makes it a
    sentence-embedding model with that pooling, replacing the folder's own."""
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise SpagoError(f"{folder}: model folder not found")
    config = load_config(folder)
    manifest = _read_manifest(folder)
    if manifest is not None:
        architecture = architecture or manifest["architecture"]
    if pooling is not None:
        pooling = Pooling.from_spec(pooling)
    elif manifest is not None:
        if manifest.get("pooling"):
            pooling = Pooling(tuple(manifest["pooling"]["modes"]), bool(manifest["pooling"]["normalize"]))
    else:
        pooling = read_sentence_transformer(folder)
    if pooling is not None and architecture is None:
        architecture = _base_architecture(config)
    architecture = architecture or config.architecture
    weights = find_weights_file(folder)
    state = read_state_dict(weights, mapped=True)  # the parameters become the mapped file: one copy
    check_against_weights(config, state, weights)  # before building: a config may ask for 10**9 layers
    with skip_init():  # every parameter is loaded next: no random values to throw away
        module = build_model(config, architecture)
    load_weights(module, state, weights)
    if pooling is not None:
        module = SentenceEmbedding(module, pooling).eval()
    tok = _load_tokenizer(folder) if tokenizer else None
    if tok is not None and tok.vocab_size > config.vocab_size:
        vocab = os.path.join(folder, "vocab.txt" if os.path.isfile(os.path.join(folder, "vocab.txt"))
                             else "tokenizer.json")
        raise SpagoError(f"{vocab}: {tok.vocab_size} tokens, more than the model's vocab_size "
                         f"{config.vocab_size} ({config.source})")
    return TransformerModel(module, config, architecture, tok, compiled=compiled, buckets=buckets, source=folder)


def _read_manifest(folder: str) -> dict | None:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    data = read_json(path, "manifest")
    if not isinstance(data, dict) or data.get("format") != "spago-transformer":
        raise SpagoError(f"{path}: not a spago model manifest (expected format 'spago-transformer')")
    if data.get("format_version") != FORMAT_VERSION:
        raise SpagoError(f"{path}: unsupported format_version {data.get('format_version')!r} "
                         f"(expected {FORMAT_VERSION})")
    data.update(check_fields(data, MANIFEST_SCHEMA, path, required=("architecture",)))
    if data["architecture"] not in MODEL_CLASSES:
        raise SpagoError(f"{path}: unknown architecture {data['architecture']!r}")
    return data


def _write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Write through a named temporary file in the same folder, then rename it into place (a model folder is
    meant to be shared: 0644)."""
    atomic_write(path, write, mode=0o644)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_pretrained(model: TransformerModel, folder: str, progress: bool = False,
                    tokenizer_source: str | None = None) -> list[str]:
    """Write ``model`` as a spago model folder: ``model.safetensors`` (float32, parameter names as in the
    Hugging Face checkpoints, tied weights stored once), ``config.json``, ``spago.json`` (architecture and
    pooling) and the tokenizer files of ``tokenizer_source``. Returns the files written."""
    from safetensors.numpy import save_file
    from tqdm import tqdm

    os.makedirs(folder, exist_ok=True)
    params = list(model.encoder.named_parameters())
    tensors = {}
    for name, p in tqdm(params, desc="tensors", unit="tensor", disable=not progress):
        tensors[name] = np.ascontiguousarray(p.numpy(), dtype=np.float32)
    written = []

    def out(name: str) -> str:
        written.append(name)
        return os.path.join(folder, name)

    _write_atomic(out("model.safetensors"), lambda tmp: save_file(tensors, tmp, metadata={"format": "np"}))
    config = model.config.to_dict()
    config["architectures"] = [model.architecture]
    manifest = {"format": "spago-transformer", "format_version": FORMAT_VERSION, "architecture": model.architecture,
                "pooling": ({"modes": list(model.pooling.modes), "normalize": model.pooling.normalize}
                            if model.pooling is not None else None),
                "tensors": len(tensors), "source": os.path.abspath(model.source) if model.source else None}
    for name, data in (("config.json", config), (MANIFEST, manifest)):
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        _write_atomic(out(name), lambda tmp, text=text: _write_text(tmp, text))
    if tokenizer_source and os.path.abspath(tokenizer_source) != os.path.abspath(folder):
        for name in TOKENIZER_FILES:
            src = os.path.join(tokenizer_source, name)
            if os.path.isfile(src):
                _write_atomic(out(name), lambda tmp, src=src: shutil.copyfile(src, tmp))
    if "vocab.txt" not in written and model.tokenizer is not None \
            and not os.path.isfile(os.path.join(folder, "vocab.txt")):
        model.tokenizer.save_vocabulary(out("vocab.txt"))  # the source had only tokenizer.json
    return written


def convert(src: str, dst: str, progress: bool = True) -> list[str]:
    """``spago import-hf``: load a Hugging Face folder (checking every tensor) and write it in spago's format."""
    source, target = os.path.realpath(src), os.path.realpath(dst)
    if target == source or target.startswith(source.rstrip(os.sep) + os.sep):
        where = "the source folder" if target == source else "inside the source folder"
        raise SpagoError(f"import-hf: the destination {dst!r} is {where} {src!r}; writing there would "
                         "overwrite the model being read. Choose another folder")
    load_config(src)
    model = from_pretrained(src, compiled=False)
    if model.tokenizer is None:
        raise SpagoError(f"{os.path.join(src, 'vocab.txt')}: vocabulary not found, nor a tokenizer.json (a "
                         "converted model ships one)")
    return save_pretrained(model, dst, progress=progress, tokenizer_source=src)


def import_hf_command(args) -> int:
    """``spago import-hf SRC DST``: convert, then print what was written."""
    written = convert(args.src, args.dst, progress=not args.quiet)
    model = from_pretrained(args.dst, compiled=False)
    print(f"wrote {model.architecture} ({model.encoder.num_parameters():,} parameters) to {args.dst}: "
          + ", ".join(written))
    return 0

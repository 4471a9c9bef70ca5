"""One place where files and options from outside are checked: JSON read with bounds, and field schemas.

Every config spago reads (``config.json``, ``tokenizer.json`` / ``tokenizer_config.json``, a shard index,
the metadata ``spago.save`` writes, a compiled-code cache header) and the options of public calls (QA
pipeline, ``encode``) go through these checks, so a wrong type, a value out of range or a cross-field
contradiction is a `ConfigError` naming the file (or call) and the field — never a ``TypeError`` or a
``RecursionError`` deep inside, a hang, or a silent default::

    from spago.schema import Int, check_fields
    options = check_fields({"top_k": 3}, {"top_k": Int(1, 1000)}, "question-answering")
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from .errors import SpagoError

__all__ = ["ConfigError", "MAX_JSON_BYTES", "MODEL_CONFIG", "MODEL_CONFIG_REQUIRED", "MODEL_CONFIG_NULLABLE",
           "SHARD_INDEX", "TOKENIZER_MODEL", "SAVED_METADATA", "CACHE_HEADER", "QA_OPTIONS", "ENCODE_OPTIONS",
           "MANIFEST", "Int", "Float", "Bool", "Str", "ListOf", "MapOf", "Record", "Any_", "Nullable",
           "check", "check_fields", "read_json", "parse_json", "require_int"]

MAX_JSON_BYTES = 256 << 20  # a tokenizer.json of a 250k-token vocabulary is ~20 MB


class ConfigError(SpagoError, ValueError):
    """A config file or an option has a missing, mistyped, out-of-range or contradictory field."""


def _fail(source: str, field: str, expected: str, value: Any) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    where = f"{source}: field {field!r}" if field else source
    return ConfigError(f"{where} must be {expected}, got {shown}")


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer (not a bool, not a float) in ``[low, high]``."""
    low: int | None = None
    high: int | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer" if self.high is None else f"an integer <= {self.high}"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return _BAD
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return _BAD
        return int(value)


@dataclasses.dataclass(frozen=True)
class Float:
    """A finite number in ``[low, high]`` (``low_open``: strictly above ``low``)."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        low = "" if self.low is None else (f" > {self.low}" if self.low_open else f" >= {self.low}")
        high = "" if self.high is None else f" <= {self.high}"
        return "a finite number" + (low + (" and" if low and high else "") + high)

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _BAD
        try:
            value = float(value)
        except OverflowError:
            return _BAD
        if not math.isfinite(value) or (self.low is not None and (value <= self.low if self.low_open
                                                                   else value < self.low)) \
                or (self.high is not None and value > self.high):
            return _BAD
        return value


@dataclasses.dataclass(frozen=True)
class Bool:
    def describe(self) -> str:
        return "true or false"

    def convert(self, value: Any) -> Any:
        return value if isinstance(value, bool) else _BAD


@dataclasses.dataclass(frozen=True)
class Str:
    """A string, one of ``choices`` when given, at most ``max_len`` characters."""
    choices: tuple | None = None
    max_len: int = 1 << 16

    def describe(self) -> str:
        return f"one of {', '.join(map(repr, self.choices))}" if self.choices else "a string"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > self.max_len or (self.choices and value not in self.choices):
            return _BAD
        return value


@dataclasses.dataclass(frozen=True)
class ListOf:
    item: Any
    max_len: int = 1 << 20

    def describe(self) -> str:
        return f"a list of {self.item.describe().removeprefix('a ').removeprefix('an ')}s"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, list) or len(value) > self.max_len:
            return _BAD
        out = [self.item.convert(v) for v in value]
        return _BAD if any(v is _BAD for v in out) else out


@dataclasses.dataclass(frozen=True)
class MapOf:
    """An object whose keys and values fit ``key`` / ``value`` (keys are strings in JSON: an `Int` key
    schema converts them)."""
    key: Any
    value: Any

    def describe(self) -> str:
        return f"an object mapping {self.key.describe()} to {self.value.describe()}"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return _BAD
        out = {}
        for k, v in value.items():
            if isinstance(self.key, Int) and isinstance(k, str):
                k = int(k) if k.strip().lstrip("-").isdigit() and len(k) < 20 else k
            k, v = self.key.convert(k), self.value.convert(v)
            if k is _BAD or v is _BAD:
                return _BAD
            out[k] = v
        return out


@dataclasses.dataclass(frozen=True)
class Record:
    """An object with the listed fields (each checked by its spec; ``required`` ones present)."""
    fields: tuple  # ((name, spec), ...)
    required: tuple = ()

    def describe(self) -> str:
        return "an object with " + ", ".join(f"{n} ({spec.describe()})" for n, spec in self.fields)

    def convert(self, value: Any) -> Any:
        if not isinstance(value, dict) or any(n not in value for n in self.required):
            return _BAD
        out = dict(value)
        for name, spec in self.fields:
            if name in value:
                out[name] = spec.convert(value[name])
                if out[name] is _BAD:
                    return _BAD
        return out


@dataclasses.dataclass(frozen=True)
class Any_:
    """Anything JSON holds (kept as is)."""
    def describe(self) -> str:
        return "any value"

    def convert(self, value: Any) -> Any:
        return value


@dataclasses.dataclass(frozen=True)
class Nullable:
    """``null`` (None) or ``inner``."""
    inner: Any

    def describe(self) -> str:
        return self.inner.describe() + " or null"

    def convert(self, value: Any) -> Any:
        return None if value is None else self.inner.convert(value)


_BAD = object()


def check(value: Any, spec: Any, source: str, field: str = "") -> Any:
    """``value`` converted by ``spec``, or a `ConfigError` naming ``source`` and ``field``."""
    out = spec.convert(value)
    if out is _BAD:
        raise _fail(source, field, spec.describe(), value)
    return out


def check_fields(data: Any, schema: Mapping[str, Any], source: str, required: tuple = ()) -> dict:
    """The fields of ``data`` that ``schema`` lists, each checked; fields not in ``schema`` are ignored.
    A field in ``required`` must be present."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    for name in required:
        if name not in data:
            raise ConfigError(f"{source}: missing field {name!r}")
    return {name: check(data[name], spec, source, name) for name, spec in schema.items() if name in data}


def require_int(value: Any, name: str, low: int | None = None, high: int | None = None, where: str = "") -> int:
    """An integer option of a call (``batch_size``, ``max_length`` …) or a `ConfigError` naming it."""
    return check(value, Int(low, high), where or name, name if where else "")


def parse_json(text: str | bytes, source: str) -> Any:
    """``json.loads`` whose every failure (syntax, nesting too deep, a 5000-digit number) is a `ConfigError`."""
    if len(text) > MAX_JSON_BYTES:
        raise ConfigError(f"{source}: {len(text)} bytes of JSON, more than the limit of {MAX_JSON_BYTES}")
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{source}: malformed JSON (nested too deeply)") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ConfigError(f"{source}: malformed JSON ({exc})") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """A JSON file: only a regular file, at most `MAX_JSON_BYTES`, parsed by `parse_json`."""
    from .files import read_regular_file

    path = os.fspath(path)
    data = read_regular_file(path, MAX_JSON_BYTES, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    return parse_json(text, path)


# -- the schemas of what spago reads ----------------------------------------------------------------------

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
MAX_LABELS = 1 << 20
_DIM = 1 << 16

# A BERT / ELECTRA config.json: the fields spago reads, their types and sane bounds (a config asking for 10**9
# layers is refused here, before anything is built; `from_pretrained` then compares it with the weights).
MODEL_CONFIG = {
    "vocab_size": Int(1, 1 << 24), "hidden_size": Int(1, _DIM), "num_hidden_layers": Int(1, 1024),
    "num_attention_heads": Int(1, _DIM), "intermediate_size": Int(1, 1 << 20), "hidden_act": Str(ACTIVATIONS),
    "max_position_embeddings": Int(1, 1 << 20), "type_vocab_size": Int(1, _DIM),
    "layer_norm_eps": Float(0.0, 1.0, low_open=True), "pad_token_id": Int(0, (1 << 24) - 1),
    "hidden_dropout_prob": Float(0.0, 1.0), "attention_probs_dropout_prob": Float(0.0, 1.0),
    "id2label": MapOf(Int(0, MAX_LABELS), Str()), "label2id": MapOf(Str(), Int(0, MAX_LABELS)),
    "architectures": ListOf(Str(), max_len=16), "model_type": Str(), "embedding_size": Int(1, _DIM),
}
MODEL_CONFIG_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# Fields Hugging Face writes as null to mean "the default"; any other null is refused, not defaulted.
MODEL_CONFIG_NULLABLE = ("architectures", "id2label", "label2id", "position_embedding_type")

# model.safetensors.index.json / pytorch_model.bin.index.json
SHARD_INDEX = {"weight_map": MapOf(Str(), Str(max_len=255))}

# the "model" object of a WordPiece tokenizer.json (its vocab is checked where it is read)
TOKENIZER_MODEL = {"unk_token": Str(), "max_input_chars_per_word": Int(0, 2 ** 63 - 1)}

# the JSON document spago.save writes into a safetensors file's metadata
SAVED_METADATA = {"class": Str(), "config": MapOf(Str(), Any_()), "spago_version": Str(), "dtype": Nullable(Str())}

# the header line of a compiled-code cache entry
CACHE_HEADER = {"key": Str(max_len=64), "size": Int(0, 1 << 30), "hmac": Str(max_len=64)}

# options of the question-answering pipeline
QA_OPTIONS = {"top_k": Int(1, 1 << 20), "max_answer_length": Int(1, 1 << 20), "min_confidence": Float(0.0, 1.0),
              "stride": Nullable(Int(0, 1 << 20)), "max_length": Nullable(Int(1, 1 << 20))}

# TransformerModel.encode
ENCODE_OPTIONS = {"batch_size": Int(1, 1 << 20), "truncation": Bool(), "normalize_embeddings": Bool(),
                  "show_progress_bar": Bool()}

# spago.json, the manifest of a folder written by `spago import-hf`
MANIFEST = {"format": Str(("spago-transformer",)), "format_version": Int(), "architecture": Str(),
            "pooling": Nullable(Record((("modes", ListOf(Str(), max_len=8)), ("normalize", Bool())),
                                       required=("modes", "normalize")))}

"""Model configurations read from a Hugging Face ``config.json``.

Only the fields the BERT and ELECTRA architectures use are kept; every one is checked on load so a
missing or malformed value is reported with the file and the field, not discovered later as a shape error.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ...errors import SpagoError

__all__ = ["BertConfig", "ElectraConfig", "load_config", "config_from_dict", "ACTIVATIONS", "ARCHITECTURES"]

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")

# architecture name -> model type it belongs to
ARCHITECTURES = {
    "BertModel": "bert",
    "BertForMaskedLM": "bert",
    "BertForPreTraining": "bert",
    "BertForNextSentencePrediction": "bert",
    "BertForTokenClassification": "bert",
    "BertForQuestionAnswering": "bert",
    "BertForSequenceClassification": "bert",
    "ElectraModel": "electra",
    "ElectraForPreTraining": "electra",
    "ElectraForQuestionAnswering": "electra",
    "ElectraForTokenClassification": "electra",
    "ElectraForSequenceClassification": "electra",
}
_BASE = {"bert": "BertModel", "electra": "ElectraModel"}


@dataclasses.dataclass
class BertConfig:
    """The hyper-parameters of a BERT encoder (Devlin et al., 2019) and its heads."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    id2label: dict = dataclasses.field(default_factory=dict)
    label2id: dict = dataclasses.field(default_factory=dict)
    architectures: list = dataclasses.field(default_factory=list)
    model_type: str = "bert"
    source: str = "config.json"

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label else 2

    @property
    def architecture(self) -> str:
        """The model class to build: the first of ``architectures``, else the base model of ``model_type``."""
        return self.architectures[0] if self.architectures else _BASE[self.model_type]

    def validate(self) -> None:
        where = self.source
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise SpagoError(f"{where}: field {name!r} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise SpagoError(f"{where}: hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise SpagoError(f"{where}: field 'hidden_act' must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.hidden_act!r}")
        if not self.layer_norm_eps > 0:
            raise SpagoError(f"{where}: field 'layer_norm_eps' must be positive, got {self.layer_norm_eps}")
        for arch in self.architectures:
            if ARCHITECTURES.get(arch) != self.model_type:
                known = ", ".join(a for a, t in ARCHITECTURES.items() if t == self.model_type)
                raise SpagoError(f"{where}: unknown architecture {arch!r} for model_type {self.model_type!r} "
                                 f"(supported: {known})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source")
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return d


@dataclasses.dataclass
class ElectraConfig(BertConfig):
    """ELECTRA (Clark et al., 2020): a BERT encoder whose embeddings may be narrower than the hidden size."""

    embedding_size: int = 128
    model_type: str = "electra"

    def validate(self) -> None:
        super().validate()
        if self.embedding_size <= 0:
            raise SpagoError(f"{self.source}: field 'embedding_size' must be positive, got {self.embedding_size}")


_CONFIGS = {"bert": BertConfig, "electra": ElectraConfig}
_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def _convert(value: Any, kind: type, name: str, where: str) -> Any:
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpagoError(f"{where}: field {name!r} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpagoError(f"{where}: field {name!r} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise SpagoError(f"{where}: field {name!r} must be a string, got {value!r}")
        return value
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpagoError(f"{where}: field {name!r} must be a list of strings, got {value!r}")
        return list(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise SpagoError(f"{where}: field {name!r} must be an object, got {value!r}")
        return dict(value)
    raise SpagoError(f"{where}: field {name!r} has an unsupported type")


def config_from_dict(data: dict, source: str = "config.json") -> BertConfig:
    """Build and validate the config for ``data`` (the parsed ``config.json``); ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise SpagoError(f"{source}: expected a JSON object, got {type(data).__name__}")
    model_type = data.get("model_type")
    if model_type is None:
        archs = data.get("architectures") or []
        model_type = ARCHITECTURES.get(archs[0]) if isinstance(archs, list) and archs else None
        if model_type is None:
            raise SpagoError(f"{source}: missing field 'model_type' (expected 'bert' or 'electra')")
    if model_type not in _CONFIGS:
        raise SpagoError(f"{source}: unknown model_type {model_type!r} (supported: {', '.join(_CONFIGS)})")
    cls = _CONFIGS[model_type]
    for name in _REQUIRED:
        if name not in data:
            raise SpagoError(f"{source}: missing field {name!r}")
    kinds = {"int": int, "float": float, "str": str, "list": list, "dict": dict}
    values: dict = {"source": source, "model_type": model_type}
    for f in dataclasses.fields(cls):
        if f.name in ("source", "model_type") or f.name not in data or data[f.name] is None:
            continue
        values[f.name] = _convert(data[f.name], kinds[f.type], f.name, source)
    if "id2label" in values:
        try:
            values["id2label"] = {int(k): str(v) for k, v in values["id2label"].items()}
        except ValueError:
            raise SpagoError(f"{source}: field 'id2label' must map integer ids to labels") from None
    if "label2id" in values:
        try:
            values["label2id"] = {str(k): int(v) for k, v in values["label2id"].items()}
        except (TypeError, ValueError):
            raise SpagoError(f"{source}: field 'label2id' must map labels to integer ids") from None
    position = data.get("position_embedding_type", "absolute")
    if position not in ("absolute", None):
        raise SpagoError(f"{source}: position_embedding_type {position!r} is not supported (only 'absolute')")
    if model_type == "electra" and "embedding_size" not in values:
        values["embedding_size"] = values["hidden_size"]
    config = cls(**values)
    config.validate()
    return config


def load_config(path: str | os.PathLike) -> BertConfig:
    """Read ``config.json`` (a file, or the folder holding it)."""
    path = os.fspath(path)
    if os.path.isdir(path) or not path.endswith(".json"):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        raise SpagoError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpagoError(f"{path}: malformed JSON ({exc})") from None
    return config_from_dict(data, source=path)

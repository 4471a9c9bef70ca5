"""Model configurations read from a Hugging Face ``config.json``.

Only the fields the BERT and ELECTRA architectures use are kept; every one is checked against `SCHEMA`
(types and sane bounds, through `spago.schema`) and the fields against each other, so a missing, null,
mistyped or absurd value is reported with the file and the field, not discovered later as a shape error,
an overflow or a hang building a billion layers.
"""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from ...errors import SpagoError
from ...schema import (ACTIVATIONS, MAX_LABELS, MODEL_CONFIG, MODEL_CONFIG_NULLABLE, MODEL_CONFIG_REQUIRED,
                       ConfigError, check, check_fields, read_json)

__all__ = ["BertConfig", "ElectraConfig", "load_config", "config_from_dict", "check_against_weights", "SCHEMA",
           "ACTIVATIONS", "ARCHITECTURES"]


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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field checked against `SCHEMA` (types, ranges), then the fields against each other."""
        where = self.source
        for name, spec in _schema(type(self)).items():
            check(getattr(self, name), spec, where, name)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{where}: hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                              f"{self.num_attention_heads}")
        if self.pad_token_id >= self.vocab_size:
            raise ConfigError(f"{where}: field 'pad_token_id' must be below vocab_size {self.vocab_size}, got "
                              f"{self.pad_token_id}")
        if self.model_type not in _BASE:
            raise ConfigError(f"{where}: unknown model_type {self.model_type!r} (supported: {', '.join(_BASE)})")
        for arch in self.architectures:
            if ARCHITECTURES.get(arch) != self.model_type:
                known = ", ".join(a for a, t in ARCHITECTURES.items() if t == self.model_type)
                raise ConfigError(f"{where}: unknown architecture {arch!r} for model_type {self.model_type!r} "
                                  f"(supported: {known})")
        for name in ("id2label", "label2id"):
            if len(getattr(self, name)) > MAX_LABELS:
                raise ConfigError(f"{where}: field {name!r} has more than {MAX_LABELS} labels")

    def num_parameters(self) -> int:
        """How many numbers the encoder described holds (to compare with the weights before building it)."""
        h, i, e = self.hidden_size, self.intermediate_size, getattr(self, "embedding_size", self.hidden_size)
        embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * e
        layer = 4 * h * h + 2 * h * i
        return embeddings + self.num_hidden_layers * layer

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


_CONFIGS = {"bert": BertConfig, "electra": ElectraConfig}
SCHEMA = MODEL_CONFIG
_REQUIRED = MODEL_CONFIG_REQUIRED
_NULLABLE = MODEL_CONFIG_NULLABLE


def _schema(cls: type) -> dict:
    return {f.name: SCHEMA[f.name] for f in dataclasses.fields(cls) if f.name in SCHEMA}


def config_from_dict(data: dict, source: str = "config.json") -> BertConfig:
    """Build and validate the config for ``data`` (the parsed ``config.json``); ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    archs = check(data.get("architectures") or [], SCHEMA["architectures"], source, "architectures")
    model_type = data.get("model_type")
    if model_type is None:
        model_type = ARCHITECTURES.get(archs[0]) if archs else None
        if model_type is None:
            raise ConfigError(f"{source}: missing field 'model_type' (expected 'bert' or 'electra')")
    if not isinstance(model_type, str) or model_type not in _CONFIGS:
        raise ConfigError(f"{source}: unknown model_type {model_type!r:.80} (supported: {', '.join(_CONFIGS)})")
    cls = _CONFIGS[model_type]
    nulls = [name for name in _schema(cls) if name in data and data[name] is None and name not in _NULLABLE]
    if nulls:
        raise ConfigError(f"{source}: field {nulls[0]!r} is null; give a value (spago does not guess defaults)")
    present = {k: v for k, v in data.items() if v is not None}
    values = check_fields(present, _schema(cls), source, required=_REQUIRED)
    values.update(source=source, model_type=model_type)
    position = data.get("position_embedding_type", "absolute")
    if position not in ("absolute", None):
        raise ConfigError(f"{source}: position_embedding_type {position!r:.80} is not supported (only 'absolute')")
    if model_type == "electra" and "embedding_size" not in values:
        values["embedding_size"] = values["hidden_size"]
    return cls(**values)


def check_against_weights(config: BertConfig, state: dict, weights: str) -> None:
    """Compare the config with the checkpoint's tensors before a model is built from it: the layer count,
    and the total size (a config describing far more numbers than the file holds is refused, not built)."""
    layers = {int(m.group(1)) for k in state for m in [re.search(r"(?:^|\.)encoder\.layer\.(\d+)\.", k)] if m}
    if layers and layers != set(range(config.num_hidden_layers)):
        raise ConfigError(f"{config.source}: field 'num_hidden_layers' is {config.num_hidden_layers}, but {weights} "
                          f"holds layers {min(layers)}..{max(layers)} ({len(layers)} layers)")
    held = sum(int(np.size(v)) for v in state.values())
    wanted = config.num_parameters()
    if wanted > 2 * held + 1_000_000:
        raise ConfigError(f"{config.source}: describes a model of about {wanted:,} numbers, but {weights} holds "
                          f"only {held:,}; check hidden_size, intermediate_size, vocab_size and "
                          f"max_position_embeddings")


def load_config(path: str | os.PathLike) -> BertConfig:
    """Read ``config.json`` (a file, or the folder holding it)."""
    path = os.fspath(path)
    if os.path.isdir(path) or not path.endswith(".json"):
        path = os.path.join(path, "config.json")
    if not os.path.exists(path):
        raise SpagoError(f"{path}: config file not found")
    return config_from_dict(read_json(path, "config file"), source=path)

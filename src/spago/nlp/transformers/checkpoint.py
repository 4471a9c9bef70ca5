"""Reading Hugging Face weight files into NumPy arrays, without PyTorch and without running any code.

``read_state_dict(path)`` takes a model folder or one of its weight files and returns ``{name: array}``:

- ``model.safetensors`` (read with the ``safetensors`` package; ``BF16`` tensors, which NumPy lacks, are
  widened exactly to float32);
- ``pytorch_model.bin`` as written by ``torch.save`` since PyTorch 1.6: a zip archive holding
  ``<prefix>/data.pkl`` (a pickle describing the tensors) and ``<prefix>/data/<key>`` (each storage's raw
  bytes, little-endian unless ``<prefix>/byteorder`` says ``big``);
- either one sharded: ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``, whose
  ``weight_map`` names the shard (a file in the same folder) holding each tensor.

``.bin`` archives are read by the restricted pickle reader of `spago.nlp.torch_pickle` (it never executes
code, and bounds the work a hostile file can ask for; see docs/security.md).

Dtypes: float16 stays float16 (NumPy has it; the importer casts when it builds the model); bfloat16 becomes
float32 (exact: a bfloat16 is the top half of a float32). Integer and bool tensors keep their types.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import DTypeError, SpagoError
from ...files import open_regular_file
from ...schema import SHARD_INDEX, check_fields, read_json
from ..torch_pickle import DEFAULT_LIMITS, STATE_DICT_GLOBALS, Limits, bfloat16_to_float32, read_torch_zip

__all__ = ["WEIGHT_FILES", "find_weights_file", "read_state_dict", "read_safetensors", "read_pytorch_bin"]

# Looked for in a model folder, in this order.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def find_weights_file(folder: str | os.PathLike) -> str:
    """The weights file of a model folder: single before sharded, safetensors before PyTorch."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise SpagoError(f"{folder}: no weights file found (looked for {', '.join(WEIGHT_FILES)})")


def read_state_dict(path: str | os.PathLike, mapped: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face checkpoint (a folder, a weights file or a shard index) by name;
    ``mapped=True`` maps safetensors files instead of reading them (see `read_safetensors`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = find_weights_file(path)
    if path.endswith(".index.json"):
        return _read_sharded(path, mapped)
    with open_regular_file(path, "weights file") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        return read_pytorch_bin(path)
    if head[8:9] == b"{":
        return read_safetensors(path, mapped)
    if head[:1] == b"\x80":
        raise SpagoError(f"{path}: a PyTorch checkpoint in the legacy (pre-1.6, non-zip) format, which is not "
                         f"supported; re-save it with a recent PyTorch or as safetensors")
    raise SpagoError(f"{path}: neither a safetensors file nor a PyTorch zip checkpoint")


# -- safetensors ------------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
                       "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str | os.PathLike, mapped: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, as writable NumPy arrays (BF16 widened to float32).

    ``mapped=True`` gives arrays over a private copy-on-write mapping of the file (`spago.mapped`): no
    copy is made, pages are read when used, and writes stay in this process. A model that adopts them as
    its parameters (`load_weights`) holds its weights once, and compiling it can give their pages back."""
    from safetensors import SafetensorError, deserialize, safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="np") as f:
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
            unknown = [f"{k} ({d})" for k, d in dtypes.items() if d not in _SAFETENSORS_DTYPES and d != "BF16"]
            if unknown:
                raise DTypeError(f"{path}: tensors of a dtype NumPy cannot hold: {', '.join(unknown)}")
            if "BF16" not in dtypes.values():
                if mapped and dtypes:
                    return _map_safetensors(path)
                return {name: f.get_tensor(name) for name in dtypes}
        with open(path, "rb") as raw:
            entries = deserialize(raw.read())
    except SpagoError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise SpagoError(f"{path}: not a valid safetensors file ({exc})") from None
    out = {}
    for name, entry in entries:
        shape, dtype, data = tuple(entry["shape"]), entry["dtype"], entry["data"]
        if dtype == "BF16":
            out[name] = bfloat16_to_float32(np.frombuffer(data, "<u2")).reshape(shape)
        else:
            out[name] = np.frombuffer(data, np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<")) \
                .astype(_SAFETENSORS_DTYPES[dtype]).reshape(shape)
    return out


def _map_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of a (validated, BF16-free) safetensors file over one mapping; a tensor whose bytes
    are not aligned for its dtype, or not in the host's byte order, is copied."""
    import json

    from ...mapped import map_file

    mm = map_file(path)
    size = int.from_bytes(mm[:8], "little")
    header = json.loads(bytes(mm[8:8 + size]))
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]]).newbyteorder("<")
        shape = tuple(entry["shape"])
        start, end = entry["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        offset = 8 + size + start
        if end - start != count * dtype.itemsize or offset + count * dtype.itemsize > len(mm):
            raise SpagoError(f"{path}: tensor {name} does not fit its byte range")
        array = np.frombuffer(mm, dtype, count, offset) if count else np.zeros(0, dtype)
        if not array.dtype.isnative or not array.flags["ALIGNED"]:
            array = array.astype(_SAFETENSORS_DTYPES[entry["dtype"]])
        out[name] = array.reshape(shape)
    return out


# -- sharded checkpoints ----------------------------------------------------------------------------

def _read_sharded(index_path: str, mapped: bool = False) -> dict[str, np.ndarray]:
    """The tensors of every shard an index names, checked against its ``weight_map``."""
    index = read_json(index_path, "shard index")
    weight_map = check_fields(index, SHARD_INDEX, index_path,
                              required=("weight_map",))["weight_map"]
    folder = os.path.dirname(index_path)
    out: dict[str, np.ndarray] = {}
    for shard in dict.fromkeys(weight_map.values()):
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise SpagoError(f"{index_path}: shard {shard!r} is not a file name in the index's folder")
        if shard == os.path.basename(index_path) or shard.endswith(".index.json"):
            raise SpagoError(f"{index_path}: the weight_map names the index {shard!r} as a shard; shards are "
                             f"weight files (.safetensors or .bin)")
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise SpagoError(f"{index_path}: shard {shard} is missing")
        tensors = read_state_dict(shard_path, mapped)
        listed = [k for k, v in weight_map.items() if v == shard]
        missing = [k for k in listed if k not in tensors]
        extra = [k for k in tensors if weight_map.get(k) != shard]
        problems = (["missing " + ", ".join(missing)] if missing else []) \
            + (["holds tensors the index does not list for it: " + ", ".join(extra)] if extra else [])
        if problems:
            raise SpagoError(f"{shard_path} does not match {index_path}: " + "; ".join(problems))
        out.update(tensors)
    return out


# -- PyTorch zip checkpoints ------------------------------------------------------------------------

def read_pytorch_bin(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """The state dict of a ``torch.save`` zip archive, rebuilt with NumPy by the restricted reader of
    `spago.nlp.torch_pickle`; no pickle code is run."""
    path = os.fspath(path)
    state = read_torch_zip(path, STATE_DICT_GLOBALS, limits)
    if not isinstance(state, dict):
        raise SpagoError(f"{path}: expected a state dict, the pickle holds a {type(state).__name__}")
    bad = [f"{repr(k)[:80]} ({type(v).__name__})" for k, v in state.items()
           if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise SpagoError(f"{path}: expected tensors by name, got {', '.join(bad[:10])}")
    return dict(state)

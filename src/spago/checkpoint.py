"""Training checkpoints: model, optimiser and your own values in ONE safetensors file.

    spago.save_checkpoint("run.safetensors", model=model, optimizer=opt, epoch=3, best_loss=0.41)
    extra = spago.load_checkpoint("run.safetensors", model=model, optimizer=opt)   # {"epoch": 3, ...}

Tensors are stored under prefixes: ``model.<dotted path>`` (parameters and buffers),
``optimizer.<parameter index>.<state name>`` (every state array), ``extra.<key>`` (values given as arrays or
Tensors). Everything else sits in the header's text metadata under ``"spago_checkpoint"`` as JSON: the
model's class and constructor config, the optimiser's class, hyperparameters, step count and parameter list,
the other extra values (JSON values, tuples and dtypes, tagged as `spago.save` tags constructor arguments),
and, when a ``generator`` is given, the position of its random stream. Nothing is pickled, and the file is
replaced atomically, so a crash mid-save leaves the previous checkpoint intact.

A run resumed from a checkpoint continues bit for bit as if it had never stopped, eagerly or with
`spago.optim.compile_step` (pass the dropout ``generator`` too when the model draws random numbers).
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .errors import SpagoError
from .nn.module import UnsupportedArgument, encode_argument, qualname
from .serialization import _decode, _match_dtypes, _open, _safetensors_save_file, atomic_write

__all__ = ["save_checkpoint", "load_checkpoint"]

METADATA_KEY = "spago_checkpoint"
FORMAT = 1


def _split_extra(extra: dict) -> tuple[dict, dict]:
    """(JSON-encoded values, arrays) of the user's extra values; anything else is an error naming it."""
    from .tensor import Tensor

    from .nn.module import Module
    from .ops.random import Generator
    from .optim.optimizer import Optimizer

    values, arrays = {}, {}
    for key, value in extra.items():
        if isinstance(value, (Module, Optimizer, Generator)):
            raise SpagoError(f"save_checkpoint: {key}= is a {type(value).__name__}; a checkpoint holds one model, "
                             "one optimizer and one generator, given as model=, optimizer= and generator=")
        if isinstance(value, (Tensor, np.ndarray)):
            arrays[key] = np.ascontiguousarray(value.numpy() if isinstance(value, Tensor) else value)
            continue
        try:
            values[key] = encode_argument(value)
        except (UnsupportedArgument, RecursionError) as exc:
            raise SpagoError(f"save_checkpoint: the value of {key!r} ({type(value).__name__}) cannot be stored: "
                             f"give numbers, strings, lists, tuples, dicts with str keys, or arrays ({exc})") from None
    return values, arrays


def save_checkpoint(path: str | os.PathLike, *, model: Any = None, optimizer: Any = None, generator: Any = None,
                    **extra: Any) -> None:
    """Write ``model`` (parameters and buffers), ``optimizer`` (hyperparameters, step count, state arrays),
    the position of ``generator`` and the keyword values ``extra`` to one safetensors file, atomically."""
    from ._version import __version__
    from .nn.module import Module
    from .ops.random import Generator
    from .optim.optimizer import Optimizer

    header: dict = {"format": FORMAT, "spago_version": __version__, "model": None, "optimizer": None,
                    "generator": None}
    tensors: dict = {}
    if model is not None:
        if not isinstance(model, Module):
            raise SpagoError(f"save_checkpoint: model must be a spago Module, got {type(model).__name__}")
        header["model"] = {"class": qualname(type(model)), "config": getattr(model, "_config", {})}
        tensors.update({f"model.{k}": np.ascontiguousarray(v) for k, v in model.state_dict().items()})
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise SpagoError(f"save_checkpoint: optimizer must be a spago.optim optimiser, got "
                             f"{type(optimizer).__name__}")
        state = optimizer.state_dict()
        header["optimizer"] = {k: v for k, v in state.items() if k != "state"}
        header["optimizer"]["state"] = {str(k): sorted(arrays) for k, arrays in state["state"].items()}
        for k, arrays in state["state"].items():
            tensors.update({f"optimizer.{k}.{name}": a for name, a in arrays.items()})
    if generator is not None:
        if not isinstance(generator, Generator):
            raise SpagoError(f"save_checkpoint: generator must be a spago Generator, got {type(generator).__name__}")
        header["generator"] = generator.state_dict()
    values, arrays = _split_extra(extra)
    header["extra"] = values
    header["extra_tensors"] = sorted(arrays)
    tensors.update({f"extra.{k}": a for k, a in arrays.items()})
    metadata = {METADATA_KEY: json.dumps(header)}
    atomic_write(path, lambda tmp: _safetensors_save_file(tensors, tmp, metadata))


def _header(metadata: dict, path: str) -> dict:
    if METADATA_KEY not in metadata:
        raise SpagoError(f"{path}: not a spago checkpoint (no {METADATA_KEY!r} metadata; spago.save files are "
                         "read with spago.load)")
    try:
        header = json.loads(metadata[METADATA_KEY])
    except ValueError as exc:
        raise SpagoError(f"{path}: the checkpoint metadata is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SpagoError(f"{path}: unknown checkpoint format {header.get('format') if isinstance(header, dict) else ''}"
                         f" (this spago reads format {FORMAT})")
    return header


def _section(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_checkpoint(path: str | os.PathLike, *, model: Any = None, optimizer: Any = None,
                    generator: Any = None) -> dict:
    """Restore what `save_checkpoint` wrote into ``model``, ``optimizer`` and ``generator`` (each optional)
    and return the extra values as a dict (arrays come back as NumPy arrays). Asking for a part the file
    does not hold, or a model / optimiser that does not match it, is an error naming the difference, raised
    before anything is loaded."""
    from .nn.module import state_mismatch

    path = os.fspath(path)
    metadata, tensors = _open(path)
    header = _header(metadata, path)
    for name, given in (("model", model), ("optimizer", optimizer), ("generator", generator)):
        if given is not None and header.get(name) is None:
            raise SpagoError(f"{path}: the checkpoint holds no {name} (it was saved without {name}=)")
    if model is not None:
        saved_class = header["model"]["class"]
        if saved_class != qualname(type(model)):
            raise SpagoError(f"{path}: the checkpoint's model is a {saved_class}, not a {qualname(type(model))}")
        state = _section(tensors, "model.")
        problems = state_mismatch(dict(model.named_tensors()), state)
        if problems:
            raise SpagoError(f"{path}: the model does not match the checkpoint: " + "; ".join(problems))
    if optimizer is not None:
        if type(optimizer).__name__ != header["optimizer"]["class"]:
            raise SpagoError(f"{path}: the checkpoint's optimiser is {header['optimizer']['class']}, "
                             f"not {type(optimizer).__name__}")
        try:  # before anything changes: the optimiser's parameters must be the saved ones
            optimizer._check_params(header["optimizer"].get("params"))
        except SpagoError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    if model is not None:
        _match_dtypes(model, state, path)
        model.load_state_dict(state)
    if optimizer is not None:
        saved = header["optimizer"]
        arrays = _section(tensors, "optimizer.")
        try:
            opt_state = {int(k): {name: arrays[f"{k}.{name}"] for name in names}
                         for k, names in saved["state"].items()}
            optimizer.load_state_dict({**saved, "state": opt_state})
        except KeyError as exc:
            raise SpagoError(f"{path}: the optimiser state array {exc} is missing from the file") from None
        except SpagoError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    if generator is not None:
        generator.load_state_dict(header["generator"])
    extra = {k: _decode(v, k) for k, v in header.get("extra", {}).items()}
    extra.update({k: tensors[f"extra.{k}"] for k in header.get("extra_tensors", [])})
    return extra

"""Saving and loading modules: ``spago.save(module, path)`` and ``spago.load(module_or_cls, path)``.

The file is one safetensors file (https://github.com/huggingface/safetensors): every parameter under its
dotted path (``encoder.layer.0.attention.query.weight``), plus, in the header's text metadata under the key
``"spago"``, a small JSON document::

    {"class": "spago.nn.linear.Linear",          # module.qualname of the saved module
     "config": {"in_features": 4, ...},          # its constructor arguments (see below)
     "spago_version": "0.1.0",
     "dtype": "float32"}                         # the parameters' dtype ("mixed" if several, null if none)

Why the metadata and no sibling ``config.json``: one file can be replaced atomically (temp file in the
same directory + ``os.replace``), two files cannot, so a crash never leaves weights and config out of step.
``saved_config(path)`` reads the JSON back without loading any tensor.

Constructor arguments are recorded when a module is built (spago.nn.module): ``Module.__init_subclass__``
wraps every subclass's ``__init__`` with ``record_config``, which keeps the bound arguments (defaults applied) of the
outermost constructor in ``self._config``, encoded as JSON. Tuples, NumPy dtypes, dataclass instances (a
model's ``BertConfig``) and sub-modules given as arguments (``Sequential(Linear(2, 3), ...)``) are tagged so
they decode to the same values; their classes are looked up among the modules already imported (loading a
file never imports anything). Random generators are recorded as ``None`` (they only choose initial values,
which loading overwrites). Anything else that JSON cannot hold (a function, an array) is recorded as
unsupported: ``save`` still works and ``load(instance, path)`` always works, but ``load(cls, path)`` fails
naming the argument.

Loading checks that the file holds exactly the module's parameters with the same shapes and names every
missing, unexpected or mis-shaped tensor and the file. Values round-trip bit for bit: when the file's
parameters all have one float dtype the module is cast to it first (so a float64 file gives a float64
module); otherwise each parameter's dtype must already match.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Any

import numpy as np

from .errors import DTypeError, SpagoError
from .files import atomic_write, open_regular_file
from .nn.module import CONFIG_TAGS, Module, qualname
from .schema import SAVED_METADATA, check_fields, parse_json

__all__ = ["save", "load", "saved_config"]

METADATA_KEY = "spago"


# -- rebuilding a module from its recorded constructor arguments -----------------------------------

def _decode(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in CONFIG_TAGS:
        tag, inner = next(iter(value.items()))
        if tag == "__tuple__":
            return tuple(_decode(v, f"{where}[{k}]") for k, v in enumerate(inner))
        if tag == "__dtype__":
            return np.dtype(inner)
        if tag == "__module__":
            return _build(_loaded_class(inner["class"], where, "Module"), inner["config"], where)
        if tag == "__dataclass__":
            cls = _loaded_class(inner["class"], where, "dataclass")
            return cls(**{k: _decode(v, f"{where}.{k}") for k, v in inner["fields"].items()})
        raise SpagoError(f"argument {where} was a {inner}, which cannot be saved as JSON; build the module "
                         f"yourself and call spago.load(instance, path)")
    return {k: _decode(v, f"{where}[{k!r}]") for k, v in value.items()}


def _loaded_class(name: str, where: str, kind: str) -> type:
    """A Module subclass or a dataclass by ``module.qualname``, looked up among the modules already imported
    (a file never makes spago import anything)."""
    import sys

    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        obj: Any = sys.modules.get(".".join(parts[:cut]))
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if isinstance(obj, type) and (issubclass(obj, Module) if kind == "Module" else dataclasses.is_dataclass(obj)):
            return obj
    raise SpagoError(f"argument {where} is a {name} {kind}, but no such class is loaded (import its module first)")


def _build(cls: type, config: dict, where: str) -> Any:
    """``cls(...)`` called with the recorded arguments, each passed the way its parameter takes it."""
    values = {name: _decode(v, f"{where}.{name}" if where else name) for name, v in config.items()}
    args: list = []
    kwargs: dict = {}
    gap = False  # an argument newer than the file (its default applies): later ones go by keyword
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if name not in values:
            gap = gap or param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
            continue
        if param.kind is param.POSITIONAL_OR_KEYWORD and gap:
            kwargs[name] = values.pop(name)
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD, param.VAR_POSITIONAL):
            if gap:
                raise SpagoError(f"{qualname(cls)}: the saved argument {name} cannot be passed in its place "
                                 f"(the constructor gained a positional argument before it)")
            if param.kind is param.VAR_POSITIONAL:
                args.extend(values.pop(name))
            else:
                args.append(values.pop(name))
        elif param.kind is param.KEYWORD_ONLY:
            kwargs[name] = values.pop(name)
        else:
            kwargs.update(values.pop(name))
    if values:
        raise SpagoError(f"{qualname(cls)} no longer takes the saved argument(s) {', '.join(values)}")
    _check_argument_types(cls, {**dict(zip(list(inspect.signature(cls.__init__).parameters)[1:], args)), **kwargs},
                          where)
    return cls(*args, **kwargs)


_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_argument_types(cls: type, values: dict, where: str) -> None:
    """Saved arguments whose parameter is annotated with a plain type (``int``, ``float``, ``bool``, ``str``,
    optionally ``| None``) must have it: a file edited to say ``"in_features": "4"`` names the argument
    instead of failing somewhere inside the constructor."""
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: nothing to check against
        return
    for name, value in values.items():
        hint = hints.get(name)
        allowed = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, getattr(
            __import__("types"), "UnionType", typing.Union)) else {hint}
        simple = [t for t in allowed if t in _SIMPLE]
        if not simple or not allowed <= set(_SIMPLE) | {type(None)}:
            continue
        if value is None and type(None) in allowed:
            continue
        ok = any((isinstance(value, bool) if t is bool else isinstance(value, t) and not isinstance(value, bool))
                 or (t is float and isinstance(value, int) and not isinstance(value, bool)) for t in simple)
        if not ok:
            expected = " or ".join(_SIMPLE[t] for t in simple) + (" or null" if type(None) in allowed else "")
            label = f"{where}.{name}" if where else name
            raise SpagoError(f"{qualname(cls)}: the saved argument {label} must be {expected}, got {value!r:.80}")


# -- writing --------------------------------------------------------------------------------------

def _safetensors_save_file(tensors: dict, path: str, metadata: dict) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, path, metadata=metadata)


def _file_dtype(arrays: list) -> str | None:
    names = {a.dtype.name for a in arrays}
    return None if not names else names.pop() if len(names) == 1 else "mixed"


def save(module: Any, path: str | os.PathLike) -> None:
    """Write every parameter of ``module`` and its constructor config to one safetensors file, atomically."""
    from ._version import __version__

    if not isinstance(module, Module):
        raise SpagoError(f"spago.save expects a Module, got {type(module).__name__}")
    tensors = {name: np.ascontiguousarray(p.numpy()) for name, p in module.named_tensors()}
    header = {"class": qualname(type(module)), "config": getattr(module, "_config", {}),
              "spago_version": __version__, "dtype": _file_dtype(list(tensors.values()))}
    metadata = {METADATA_KEY: json.dumps(header)}
    atomic_write(path, lambda tmp: _safetensors_save_file(tensors, tmp, metadata))


# -- reading --------------------------------------------------------------------------------------

def _open(path: str, with_tensors: bool = True) -> tuple[dict, dict]:
    """(metadata, tensors) of a safetensors file; any defect is a SpagoError naming the file."""
    from safetensors import SafetensorError, safe_open

    open_regular_file(path, "file").close()  # a directory or FIFO is named as such, never opened by safetensors
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise SpagoError(f"{path}: not a valid safetensors file ({exc})") from None
    return metadata, tensors


def saved_config(path: str | os.PathLike) -> dict:
    """The JSON document ``save`` wrote (class, config, spago_version, dtype); ``{}`` for other files."""
    path = os.fspath(path)
    metadata, _ = _open(path, with_tensors=False)
    return _parse_header(metadata, path)


def _parse_header(metadata: dict, path: str) -> dict:
    if METADATA_KEY not in metadata:
        return {}
    where = f"{path} (spago metadata)"
    header = parse_json(metadata[METADATA_KEY], where)
    if not isinstance(header, dict) or not isinstance(header.get("class"), str) \
            or not isinstance(header.get("config"), dict):
        raise SpagoError(f"{path}: the spago metadata lacks its class or config")
    check_fields(header, SAVED_METADATA, where)
    return header


def load(module_or_cls: Any, path: str | os.PathLike) -> Any:
    """Parameters from a file ``save`` wrote, into a module (returned) or into a new ``cls`` built from the
    saved constructor arguments. Missing, unexpected or mis-shaped tensors are errors naming them."""
    path = os.fspath(path)
    metadata, tensors = _open(path)
    header = _parse_header(metadata, path)
    if isinstance(module_or_cls, type) and issubclass(module_or_cls, Module):
        if not header:
            raise SpagoError(f"{path}: no spago config in this file, so {qualname(module_or_cls)} cannot be "
                             f"rebuilt from it; build the module yourself and call spago.load(instance, path)")
        if header["class"] != qualname(module_or_cls):
            raise SpagoError(f"{path} holds a {header['class']}, not a {qualname(module_or_cls)}")
        try:
            module = _build(module_or_cls, header["config"], "")
        except (SpagoError, TypeError, ValueError, KeyError) as exc:
            raise SpagoError(f"{path}: cannot rebuild {qualname(module_or_cls)}: {exc}") from None
    elif isinstance(module_or_cls, Module):
        module = module_or_cls
    else:
        raise SpagoError(f"spago.load expects a Module or a Module class, got {module_or_cls!r}")
    _match_dtypes(module, tensors, path)
    check_finite(tensors, path)
    try:
        module.load_state_dict(tensors)
    except SpagoError as exc:
        raise SpagoError(f"{path}: {exc}") from None
    return module


def check_finite(tensors: dict, source: str) -> None:
    """Refuse floating-point tensors holding NaN or infinity (a damaged or tampered file), naming them."""
    bad = [k for k, t in tensors.items() if np.asarray(t).dtype.kind in "fc" and not np.all(np.isfinite(t))]
    if bad:
        raise SpagoError(f"{source}: tensor {bad[0]} holds NaN or infinite values"
                         + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def _match_dtypes(module: Any, tensors: dict, path: str) -> None:
    """Cast the module to the file's float dtype when it has one; otherwise dtypes must already agree."""
    own = dict(module.named_parameters())
    file_dtype = _file_dtype([t for k, t in tensors.items() if k in own])
    if file_dtype not in (None, "mixed") and np.dtype(file_dtype).kind == "f":
        module.to(file_dtype)
    wrong = [f"{k}: module {p.dtype.name}, file {tensors[k].dtype.name}" for k, p in own.items()
             if k in tensors and tensors[k].dtype != p.dtype]
    if wrong:
        raise DTypeError(f"{path}: dtype mismatch for " + "; ".join(wrong))

"""Reading Hugging Face weight files into NumPy arrays, without PyTorch and without running any code.

``read_state_dict(path)`` takes a model folder or one of its weight files and returns ``{name: array}``:

- ``model.safetensors`` (read with the ``safetensors`` package; ``BF16`` tensors, which NumPy lacks, are
  widened exactly to float32);
- ``pytorch_model.bin`` as written by ``torch.save`` since PyTorch 1.6: a zip archive holding
  ``<prefix>/data.pkl`` (a pickle describing the tensors) and ``<prefix>/data/<key>`` (each storage's raw
  bytes, little-endian unless ``<prefix>/byteorder`` says ``big``);
- either one sharded: ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``, whose
  ``weight_map`` names the shard (a file in the same folder) holding each tensor.

A pickle is a program: unpickling it may call any function it names (``os.system`` …). So ``data.pkl`` is
never given to ``pickle``. ``pickletools.genops`` only decodes opcodes and their arguments, and a small stack
machine here interprets them, knowing nothing but containers, numbers, strings, the storage classes, and
three callables: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
``torch._utils._rebuild_parameter`` (which it re-implements with NumPy: storage + offset + shape + strides
-> ``as_strided`` copy). Any other opcode or global is refused with an error naming it and the file. A
tensor may not have more elements than its storage (an expanded, stride-0 view of a small storage is
refused: a few bytes of file could otherwise ask for any amount of memory).

Dtypes: float16 stays float16 (NumPy has it; the importer casts when it builds the model); bfloat16 becomes
float32 (exact: a bfloat16 is the top half of a float32). Integer and bool tensors keep their types.
"""
from __future__ import annotations

import json
import math
import os
import pickletools
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import DTypeError, SpagoError

__all__ = ["WEIGHT_FILES", "find_weights_file", "read_state_dict", "read_safetensors", "read_pytorch_bin",
           "read_pytorch_pickle"]

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


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face checkpoint (a folder, a weights file or a shard index) by name."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = find_weights_file(path)
    if not os.path.isfile(path):
        raise SpagoError(f"{path}: no such weights file")
    if path.endswith(".index.json"):
        return _read_sharded(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        return read_pytorch_bin(path)
    if head[8:9] == b"{":
        return read_safetensors(path)
    if head[:1] == b"\x80":
        raise SpagoError(f"{path}: a PyTorch checkpoint in the legacy (pre-1.6, non-zip) format, which is not "
                         f"supported; re-save it with a recent PyTorch or as safetensors")
    raise SpagoError(f"{path}: neither a safetensors file nor a PyTorch zip checkpoint")


# -- safetensors ------------------------------------------------------------------------------------

def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> the float32 values they stand for, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
                       "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, as writable NumPy arrays (BF16 widened to float32)."""
    from safetensors import SafetensorError, deserialize, safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="np") as f:
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
            unknown = [f"{k} ({d})" for k, d in dtypes.items() if d not in _SAFETENSORS_DTYPES and d != "BF16"]
            if unknown:
                raise DTypeError(f"{path}: tensors of a dtype NumPy cannot hold: {', '.join(unknown)}")
            if "BF16" not in dtypes.values():
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
            out[name] = _bfloat16_to_float32(np.frombuffer(data, "<u2")).reshape(shape)
        else:
            out[name] = np.frombuffer(data, np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<")) \
                .astype(_SAFETENSORS_DTYPES[dtype]).reshape(shape)
    return out


# -- sharded checkpoints ----------------------------------------------------------------------------

def _read_sharded(index_path: str) -> dict[str, np.ndarray]:
    """The tensors of every shard an index names, checked against its ``weight_map``."""
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpagoError(f"{index_path}: not a shard index with a weight_map ({exc!r})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SpagoError(f"{index_path}: weight_map must map tensor names to shard file names")
    folder = os.path.dirname(index_path)
    out: dict[str, np.ndarray] = {}
    for shard in dict.fromkeys(weight_map.values()):
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise SpagoError(f"{index_path}: shard {shard!r} is not a file name in the index's folder")
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path) or shard.endswith(".index.json"):
            raise SpagoError(f"{index_path}: shard {shard} is missing")
        tensors = read_state_dict(shard_path)
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

@dataclass(frozen=True)
class _Global:
    """A global the pickle named (only ever an allowed one); what calling it means is decided below."""
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, eq=False)
class _Storage:
    """A typed storage handed out by BINPERSID: its flat values, read from ``data/<key>``."""
    key: str
    kind: str
    values: np.ndarray


# torch storage class -> dtype of its raw bytes (little-endian); bfloat16 is read as its uint16 bits.
_STORAGE_DTYPES = {"DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "u2",
                   "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
                   "ByteStorage": "u1", "BoolStorage": "b1"}
_ORDERED_DICT = _Global("collections", "OrderedDict")
_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_ALLOWED_GLOBALS = {_ORDERED_DICT, _REBUILD_TENSOR, _REBUILD_PARAMETER} | {_Global("torch", n) for n in _STORAGE_DTYPES}


def read_pytorch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The state dict of a ``torch.save`` zip archive, rebuilt with NumPy; no pickle code is run."""
    path = os.fspath(path)
    state = read_pytorch_pickle(path)
    if not isinstance(state, dict):
        raise SpagoError(f"{path}: expected a state dict, the pickle holds a {type(state).__name__}")
    bad = [f"{k!r} ({type(v).__name__})" for k, v in state.items()
           if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise SpagoError(f"{path}: expected tensors by name, got {', '.join(bad)}")
    return dict(state)


def read_pytorch_pickle(path: str | os.PathLike, extra_globals: Mapping[tuple[str, str], Callable] | None = None
                        ) -> Any:
    """The object a ``torch.save`` zip archive holds, rebuilt as plain data and NumPy arrays.

    ``extra_globals`` admits more globals, ``(module, name) -> callable`` that builds plain data from the
    pickle's arguments; an object it returns may define ``pickle_build(state)`` to receive BUILD's state."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise SpagoError(f"{path}: expected one <prefix>/data.pkl in the archive, found "
                                 f"{pickles or 'none'} (not a torch.save checkpoint?)")
            prefix = pickles[0][: -len("data.pkl")]
            order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in archive.namelist() \
                else "little"
            if order not in ("little", "big"):
                raise SpagoError(f"{path}: unknown byte order {order!r}")
            reader = _StorageReader(archive, prefix, "<" if order == "little" else ">", path)
            return _interpret(archive.read(pickles[0]), reader.load, path, extra_globals)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise SpagoError(f"{path}: not a readable PyTorch zip checkpoint ({exc})") from None


class _StorageReader:
    """Reads each storage of the archive once, checking its size against its declared element count."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, order: str, path: str):
        self.archive, self.prefix, self.order, self.path = archive, prefix, order, path
        self.cache: dict[str, _Storage] = {}

    def load(self, pid: Any) -> _Storage:
        """BINPERSID: ('storage', torch.<Type>Storage, key, location, numel) -> the values of data/<key>."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Global)
                and pid[1] in _ALLOWED_GLOBALS and pid[1].name in _STORAGE_DTYPES and isinstance(pid[2], str)
                and isinstance(pid[3], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise SpagoError(f"{self.path}: unexpected persistent id {pid!r}; expected "
                             f"('storage', torch.<Type>Storage, key, location, numel)")
        _, kind, key, _, numel = pid
        if key in self.cache:
            if self.cache[key].kind != kind.name:
                raise SpagoError(f"{self.path}: storage {key} is used as both {self.cache[key].kind} and "
                                 f"{kind.name}")
            return self.cache[key]
        entry = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(entry)
        except KeyError:
            raise SpagoError(f"{self.path}: storage {key!r} not found (no {entry} in the archive)") from None
        dtype = np.dtype(_STORAGE_DTYPES[kind.name]).newbyteorder(self.order)
        if info.file_size != numel * dtype.itemsize:
            raise SpagoError(f"{self.path}: storage {key} holds {info.file_size} bytes, expected {numel} "
                             f"{kind.name} elements = {numel * dtype.itemsize} bytes")
        values = np.frombuffer(self.archive.read(entry), dtype).astype(dtype.newbyteorder("="), copy=False)
        self.cache[key] = _Storage(key, kind.name, values)
        return self.cache[key]


def _rebuild_tensor(path: str, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 with NumPy: the (possibly strided) view of a storage, copied."""
    ints = (lambda t: isinstance(t, tuple) and all(isinstance(v, int) and v >= 0 for v in t))
    if not (isinstance(storage, _Storage) and isinstance(offset, int) and offset >= 0 and ints(size)
            and ints(stride) and len(size) == len(stride) and isinstance(requires_grad, bool)
            and (hooks is None or (isinstance(hooks, dict) and not hooks))
            and (metadata is None or isinstance(metadata, dict))):
        raise SpagoError(f"{path}: malformed tensor (storage {storage!r}, offset {offset!r}, size {size!r}, "
                         f"stride {stride!r}, hooks {hooks!r})")
    count = math.prod(size)
    flat = storage.values
    if count == 0:
        values = np.zeros(size, flat.dtype)
    else:
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if end > flat.size or count > flat.size:
            raise SpagoError(f"{path}: tensor of size {size} with stride {stride} at offset {offset} does not fit "
                             f"in storage {storage.key} of {flat.size} elements")
        values = np.lib.stride_tricks.as_strided(flat[offset:], size, [s * flat.itemsize for s in stride],
                                                 writeable=False).copy()
    return _bfloat16_to_float32(values) if storage.kind == "BFloat16Storage" else values


def _call(path: str, fn: Any, args: Any, extra: Mapping[tuple[str, str], Callable] | None = None) -> Any:
    """REDUCE / NEWOBJ: only the three allowed callables (and the caller's extra ones), with plain arguments."""
    if not isinstance(fn, _Global):
        raise SpagoError(f"{path}: refusing to call a {type(fn).__name__}; only tensors and dicts are rebuilt")
    if not isinstance(args, tuple):
        raise SpagoError(f"{path}: malformed call of {fn}: arguments {args!r}")
    if extra and (fn.module, fn.name) in extra:
        return extra[(fn.module, fn.name)](*args)
    if fn == _ORDERED_DICT and not args:
        return OrderedDict()
    if fn == _REBUILD_TENSOR and 6 <= len(args) <= 7:
        return _rebuild_tensor(path, *args)
    if fn == _REBUILD_PARAMETER and len(args) == 3 and isinstance(args[0], np.ndarray) \
            and isinstance(args[2], dict) and not args[2]:
        return args[0]
    raise SpagoError(f"{path}: refusing to call {fn} with {len(args)} argument(s); only tensors and dicts "
                     f"are rebuilt")


def _interpret(data: bytes, load_storage: Callable[[Any], _Storage], path: str,
               extra: Mapping[tuple[str, str], Callable] | None = None) -> Any:
    """Run the pickle's opcodes on a stack machine that only builds plain data, storages and tensors."""
    stack: list = []
    marks: list = []  # the stacks saved by MARK
    memo: dict = {}

    def pop_mark() -> list:
        nonlocal stack
        items, stack = stack, marks.pop()
        return items

    try:
        for opcode, arg, pos in pickletools.genops(data):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            elif name == "STOP":
                if len(stack) != 1 or marks:
                    raise SpagoError(f"{path}: malformed pickle (stack of {len(stack)} at STOP)")
                return stack.pop()
            elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                          "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES",
                          "BINBYTES", "BINBYTES8"):
                stack.append(arg)
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name == "MARK":
                marks.append(stack)
                stack = []
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise SpagoError(f"{path}: malformed pickle: {name} of unset memo slot {arg} at byte {pos}")
                stack.append(memo[arg])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise SpagoError(f"{path}: malformed pickle: {name} on a stack of {len(stack)} at byte {pos}")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name in ("TUPLE", "LIST"):
                items = pop_mark()  # (before naming ``stack``: pop_mark replaces it)
                stack.append(tuple(items) if name == "TUPLE" else items)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name in ("APPEND", "APPENDS"):
                items = pop_mark() if name == "APPENDS" else [stack.pop()]
                if not isinstance(stack[-1], list):
                    raise SpagoError(f"{path}: refusing {name} on a {type(stack[-1]).__name__} at byte {pos}")
                stack[-1].extend(items)
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name in ("DICT", "SETITEM", "SETITEMS"):
                items = pop_mark() if name in ("DICT", "SETITEMS") else stack[-2:]
                if name == "SETITEM":
                    del stack[-2:]
                if len(items) % 2:
                    raise SpagoError(f"{path}: malformed pickle: odd number of items for {name} at byte {pos}")
                target = {} if name == "DICT" else stack[-1]
                if not isinstance(target, dict):
                    raise SpagoError(f"{path}: refusing {name} on a {type(target).__name__} at byte {pos}")
                target.update(zip(items[::2], items[1::2]))
                if name == "DICT":
                    stack.append(target)
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    module, attr = stack[-2], stack[-1]
                    del stack[-2:]
                if _Global(module, attr) not in _ALLOWED_GLOBALS and (module, attr) not in (extra or {}):
                    raise SpagoError(f"{path}: refusing to load: the pickle names the global {module}.{attr} "
                                     f"(at byte {pos}); only tensors, storages and dicts are allowed")
                stack.append(_Global(module, attr))
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                stack[-1] = _call(path, stack[-1], args, extra)
            elif name == "BUILD":
                state = stack.pop()
                if callable(getattr(stack[-1], "pickle_build", None)):  # an object an extra global made
                    stack[-1].pickle_build(state)
                elif not (isinstance(stack[-1], dict) and isinstance(state, dict)):
                    raise SpagoError(f"{path}: refusing BUILD of a {type(stack[-1]).__name__} with a "
                                     f"{type(state).__name__} at byte {pos}")
                # A state dict's own attributes (its ``_metadata`` of module versions) are not tensors.
            elif name == "BINPERSID":
                stack[-1] = load_storage(stack[-1])
            else:
                raise SpagoError(f"{path}: refusing to load: pickle opcode {name} (at byte {pos}) is not "
                                 f"allowed; only tensors, storages and dicts are rebuilt")
    except SpagoError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise SpagoError(f"{path}: malformed or truncated data.pkl ({type(exc).__name__}: {exc})") from None
    raise SpagoError(f"{path}: malformed data.pkl: no STOP opcode")

"""A restricted reader of ``torch.save`` zip archives: the pickle is interpreted, never executed.

A pickle is a program: unpickling it may call any function it names (``os.system`` …). So ``data.pkl`` is
never given to ``pickle``. ``pickletools.genops`` only decodes opcodes and their arguments, and a small stack
machine here interprets them, knowing nothing but containers, numbers, strings, and the globals its caller
admits: a mapping from ``(module, name)`` to a constructor, called with the pickle's arguments when the pickle
calls that global (``STATE_DICT_GLOBALS`` admits what a state dict needs: ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` re-implemented with NumPy, and the
``torch.*Storage`` classes). Any other opcode or global is refused with an error naming it and the file.

Whatever the globals, the same limits (`Limits`) bound the work a hostile file can ask for, so a small file
can neither crash the process nor make it run for minutes or fill memory:

- the decompressed ``data.pkl`` size, the number of opcodes, the memo size and the nesting depth of the
  objects built (a tuple nested a million deep would crash CPython when hashed);
- a container may not be changed once stored in another (the pickler never does it; it would defeat the
  depth count);
- storages are read lazily and only as far as the tensors built on them reach (a 1 GiB storage behind a
  10-element tensor costs 10 elements), streamed from the archive; a compressed entry may not expand more
  than ``max_expansion`` times beyond ``expansion_floor`` bytes; one storage may not declare more than
  ``max_storage_bytes``. A tensor may not have more elements than its storage (no stride-0 expansion).
"""
from __future__ import annotations

import dataclasses
import math
import os
import pickletools
import reprlib
import zipfile
import zlib
from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import SpagoError
from ..files import open_regular_file

__all__ = ["Limits", "DEFAULT_LIMITS", "Global", "StorageType", "Storage", "STORAGE_GLOBALS",
           "STATE_DICT_GLOBALS", "rebuild_tensor", "interpret", "read_torch_zip", "open_regular_file",
           "bfloat16_to_float32"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may make the reader do (see docs/security.md)."""

    max_pickle_bytes: int = 256 << 20   # decompressed data.pkl
    max_opcodes: int = 10_000_000
    max_memo: int = 4_000_000
    max_depth: int = 200                # nesting of tuples, lists, dicts and built objects
    max_storage_bytes: int = 64 << 30   # one storage, as declared
    max_expansion: int = 64             # decompressed / compressed bytes of a deflated entry ...
    expansion_floor: int = 16 << 20     # ... beyond this many bytes


DEFAULT_LIMITS = Limits()


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> the float32 values they stand for, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


@dataclasses.dataclass(frozen=True)
class Global:
    """A global the pickle named and the caller admitted; ``make`` is what calling it means."""
    module: str
    name: str
    make: Any = dataclasses.field(compare=False, repr=False, default=None)

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclasses.dataclass(frozen=True)
class StorageType:
    """A ``torch.<Type>Storage`` class: only named in persistent ids, never called."""
    kind: str
    dtype: str  # of its raw bytes (little-endian); bfloat16 is read as its uint16 bits


class Storage:
    """A typed storage of the archive, read lazily: only as many elements as the tensors on it use."""

    def __init__(self, key: str, kind: str, dtype: np.dtype, numel: int, read: Callable[[int], bytes]):
        self.key, self.kind, self.dtype, self.numel = key, kind, dtype, numel
        self._read = read
        self._values = np.zeros(0, dtype.newbyteorder("="))

    def prefix(self, count: int) -> np.ndarray:
        """The first ``count`` elements (read from the archive on first need, then kept)."""
        if count > self.numel:
            raise SpagoError(f"storage {self.key} has {self.numel} elements, {count} wanted")
        if count > self._values.size:
            raw = self._read(count * self.dtype.itemsize)
            self._values = np.frombuffer(raw, self.dtype).astype(self.dtype.newbyteorder("="), copy=False)
        return self._values[:count]

    def __repr__(self) -> str:
        return f"<{self.kind} {self.key} of {self.numel}>"


_STORAGE_DTYPES = {"DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "u2",
                   "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
                   "ByteStorage": "u1", "BoolStorage": "b1"}
STORAGE_GLOBALS: dict[tuple[str, str], Any] = {("torch", k): StorageType(k, v) for k, v in _STORAGE_DTYPES.items()}


def _short(value: Any) -> str:
    """A bounded repr (a hostile pickle's values may be huge) for error messages."""
    return reprlib.repr(value)


def rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                   hooks: Any = None, metadata: Any = None) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 with NumPy: the (possibly strided) view of a storage, copied."""
    ints = (lambda t: isinstance(t, tuple) and all(isinstance(v, int) and v >= 0 for v in t))
    if not (isinstance(storage, Storage) and isinstance(offset, int) and offset >= 0 and ints(size)
            and ints(stride) and len(size) == len(stride) and isinstance(requires_grad, bool)
            and (hooks is None or (isinstance(hooks, dict) and not hooks))
            and (metadata is None or isinstance(metadata, dict))):
        raise SpagoError(f"malformed tensor (storage {_short(storage)}, offset {_short(offset)}, size "
                         f"{_short(size)}, stride {_short(stride)}, hooks {_short(hooks)})")
    count = math.prod(size)
    if count == 0:
        values = np.zeros(size, storage.dtype.newbyteorder("="))
    else:
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if end > storage.numel or count > storage.numel:
            raise SpagoError(f"tensor of size {size} with stride {stride} at offset {offset} does not fit "
                             f"in storage {storage.key} of {storage.numel} elements")
        flat = storage.prefix(end)
        values = np.lib.stride_tricks.as_strided(flat[offset:], size, [s * flat.itemsize for s in stride],
                                                 writeable=False).copy()
    return bfloat16_to_float32(values) if storage.kind == "BFloat16Storage" else values


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any) -> np.ndarray:
    if not (isinstance(data, np.ndarray) and isinstance(hooks, dict) and not hooks):
        raise SpagoError("malformed parameter (expected a tensor, a flag and no hooks)")
    return data


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise SpagoError(f"OrderedDict called with {len(args)} argument(s); expected none")
    return OrderedDict()


STATE_DICT_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **STORAGE_GLOBALS,
}

_PUSH = frozenset(("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                   "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
                   "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"))  # bytes: Flair's Dictionary items
_CONTAINERS = (tuple, list, dict)


class _Depths:
    """Nesting depth of every container and object the interpreter built (kept alive, so ids stay unique),
    and which of them are stored inside another (those may no longer change)."""

    def __init__(self, limit: int, path: str):
        self.limit, self.path = limit, path
        self.depth: dict[int, tuple[int, Any]] = {}
        self.sealed: set[int] = set()

    def of(self, obj: Any) -> int:
        entry = self.depth.get(id(obj))
        return entry[0] if entry is not None else 0

    def set(self, obj: Any, depth: int) -> None:
        if depth > self.limit:
            raise SpagoError(f"{self.path}: refusing to load: objects nested more than {self.limit} deep")
        self.depth[id(obj)] = (depth, obj)

    def made(self, obj: Any, items: Any) -> Any:
        """``obj`` was just built from ``items``: record its depth and seal the items."""
        deepest = 0
        for item in items:
            deepest = max(deepest, self.of(item))
            if id(item) in self.depth:
                self.sealed.add(id(item))
        self.set(obj, deepest + 1)
        return obj

    def grow(self, obj: Any, items: Any, op: str, pos: int) -> None:
        """``items`` are being added to ``obj`` (APPEND, SETITEM, BUILD)."""
        if id(obj) in self.sealed and isinstance(obj, (list, dict)):
            raise SpagoError(f"{self.path}: refusing {op} at byte {pos}: the {type(obj).__name__} is already "
                             f"stored in another object")
        items = list(items)
        deepest = max((self.of(i) for i in items), default=0)
        for item in items:
            if id(item) in self.depth:
                self.sealed.add(id(item))
        self.set(obj, max(self.of(obj), deepest + 1))


def interpret(data: bytes, path: str, globals: Mapping[tuple[str, str], Any] = STATE_DICT_GLOBALS,
              persistent_load: Callable[[Any], Any] | None = None, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Run a pickle's opcodes on a stack machine that builds only plain data and what ``globals`` admit.

    ``globals`` maps ``(module, name)`` to a callable (called on REDUCE/NEWOBJ with the pickle's arguments)
    or to a `StorageType` (only named, in persistent ids). A built object whose class defines
    ``__setstate__`` receives BUILD's state; BUILD on a dict is ignored (a state dict's ``_metadata``)."""
    if len(data) > limits.max_pickle_bytes:
        raise SpagoError(f"{path}: refusing to load: the pickle has {len(data)} bytes, more than the limit "
                         f"of {limits.max_pickle_bytes}")
    stack: list = []
    marks: list = []  # the stacks saved by MARK
    memo: dict = {}
    depths = _Depths(limits.max_depth, path)

    def pop_mark() -> list:
        nonlocal stack
        items, stack = stack, marks.pop()
        return items

    def call(fn: Any, args: Any, pos: int) -> Any:
        if not isinstance(fn, Global):
            raise SpagoError(f"{path}: refusing to call a {type(fn).__name__} at byte {pos}; only admitted "
                             f"globals are called")
        if not callable(fn.make) or isinstance(fn.make, StorageType):
            raise SpagoError(f"{path}: refusing to call {fn} at byte {pos}: it is only named, never called")
        if not isinstance(args, tuple):
            raise SpagoError(f"{path}: malformed call of {fn}: arguments {type(args).__name__}")
        try:
            result = fn.make(*args)
        except SpagoError as exc:
            raise SpagoError(f"{path}: {fn}: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            raise SpagoError(f"{path}: refusing to call {fn} with these arguments ({type(exc).__name__}: "
                             f"{exc})") from None
        return depths.made(result, args)

    count = 0
    try:
        for opcode, arg, pos in pickletools.genops(data):
            count += 1
            if count > limits.max_opcodes:
                raise SpagoError(f"{path}: refusing to load: more than {limits.max_opcodes} pickle opcodes")
            name = opcode.name
            if name in _PUSH:
                stack.append(arg)
            elif name in ("PROTO", "FRAME"):
                continue
            elif name == "STOP":
                if len(stack) != 1 or marks:
                    raise SpagoError(f"{path}: malformed pickle (stack of {len(stack)} at STOP)")
                return stack.pop()
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
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                key = len(memo) if name == "MEMOIZE" else arg
                if key not in memo and len(memo) >= limits.max_memo:
                    raise SpagoError(f"{path}: refusing to load: more than {limits.max_memo} memo entries")
                memo[key] = stack[-1]
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
                stack.append(depths.made(items, items))
            elif name in ("TUPLE", "LIST"):
                items = pop_mark()  # (before naming ``stack``: pop_mark replaces it)
                stack.append(depths.made(tuple(items) if name == "TUPLE" else items, items))
            elif name in ("EMPTY_LIST", "EMPTY_DICT"):
                stack.append(depths.made([] if name == "EMPTY_LIST" else {}, ()))
            elif name in ("APPEND", "APPENDS"):
                items = pop_mark() if name == "APPENDS" else [stack.pop()]
                if not isinstance(stack[-1], list):
                    raise SpagoError(f"{path}: refusing {name} on a {type(stack[-1]).__name__} at byte {pos}")
                depths.grow(stack[-1], items, name, pos)
                stack[-1].extend(items)
            elif name in ("DICT", "SETITEM", "SETITEMS"):
                items = pop_mark() if name in ("DICT", "SETITEMS") else stack[-2:]
                if name == "SETITEM":
                    if len(stack) < 3:
                        raise SpagoError(f"{path}: malformed pickle: SETITEM on a stack of {len(stack)}")
                    del stack[-2:]
                if len(items) % 2:
                    raise SpagoError(f"{path}: malformed pickle: odd number of items for {name} at byte {pos}")
                target = depths.made({}, ()) if name == "DICT" else stack[-1]
                if not isinstance(target, dict):
                    raise SpagoError(f"{path}: refusing {name} on a {type(target).__name__} at byte {pos}")
                depths.grow(target, items, name, pos)  # (before hashing a key: its depth is bounded)
                target.update(zip(items[::2], items[1::2]))
                if name == "DICT":
                    stack.append(target)
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    module, attr = stack[-2], stack[-1]
                    del stack[-2:]
                    if not (isinstance(module, str) and isinstance(attr, str)):
                        raise SpagoError(f"{path}: malformed pickle: STACK_GLOBAL of a {type(module).__name__} "
                                         f"and a {type(attr).__name__} at byte {pos}")
                make = globals.get((module, attr))
                if make is None:
                    raise SpagoError(f"{path}: refusing to load: the pickle names the global {module}.{attr} "
                                     f"(at byte {pos}), which is not among the {len(globals)} allowed")
                stack.append(Global(module, attr, make))
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                stack[-1] = call(stack[-1], args, pos)
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, dict) and isinstance(state, dict):
                    continue  # a state dict's own attributes (its ``_metadata`` of module versions)
                setstate = getattr(type(target), "__setstate__", None)
                if isinstance(target, (*_CONTAINERS, str, bytes, int, float, bool, type(None), np.ndarray,
                                       Storage, Global)) or setstate is None:
                    raise SpagoError(f"{path}: refusing BUILD of a {type(target).__name__} with a "
                                     f"{type(state).__name__} at byte {pos}")
                depths.grow(target, (state,), name, pos)
                try:
                    setstate(target, state)
                except SpagoError as exc:
                    raise SpagoError(f"{path}: {exc}") from None
            elif name == "BINPERSID":
                if persistent_load is None:
                    raise SpagoError(f"{path}: malformed pickle: a persistent id outside an archive")
                stack[-1] = persistent_load(stack[-1])
            else:
                raise SpagoError(f"{path}: refusing to load: pickle opcode {name} (at byte {pos}) is not "
                                 f"allowed; only data and admitted globals are rebuilt")
    except SpagoError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, AttributeError, MemoryError, OverflowError,
            RecursionError) as exc:
        raise SpagoError(f"{path}: malformed or truncated data.pkl ({type(exc).__name__}: {exc})") from None
    raise SpagoError(f"{path}: malformed data.pkl: no STOP opcode")


class _Archive:
    """Bounded, streamed reads of a zip archive's entries."""

    def __init__(self, archive: zipfile.ZipFile, path: str, limits: Limits):
        self.archive, self.path, self.limits = archive, path, limits

    def read(self, info: zipfile.ZipInfo, size: int) -> bytes:
        """The first ``size`` bytes of an entry, decompressing no more than that."""
        if info.compress_type != zipfile.ZIP_STORED \
                and size > self.limits.expansion_floor + self.limits.max_expansion * info.compress_size:
            raise SpagoError(f"{self.path}: refusing to load: {info.filename} would expand {info.compress_size} "
                             f"compressed bytes to {size} (more than {self.limits.max_expansion} times)")
        with self.archive.open(info) as f:
            data = f.read(size)
        if len(data) != size:
            raise SpagoError(f"{self.path}: {info.filename} holds {len(data)} bytes, {size} expected")
        return data


def read_torch_zip(path: str | os.PathLike, globals: Mapping[tuple[str, str], Any] = STATE_DICT_GLOBALS,
                   limits: Limits = DEFAULT_LIMITS) -> Any:
    """The object a ``torch.save`` zip archive holds, rebuilt from plain data and the admitted ``globals``."""
    path = os.fspath(path)
    try:
        with open_regular_file(path, "checkpoint") as raw, zipfile.ZipFile(raw) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise SpagoError(f"{path}: expected one <prefix>/data.pkl in the archive, found "
                                 f"{pickles or 'none'} (not a torch.save checkpoint?)")
            prefix = pickles[0][: -len("data.pkl")]
            reader = _Archive(archive, path, limits)
            order = "little"
            if prefix + "byteorder" in names:
                info = archive.getinfo(prefix + "byteorder")
                raw_order = reader.read(info, min(info.file_size, 16))
                order = raw_order.decode("ascii", errors="replace")
                if order not in ("little", "big"):
                    raise SpagoError(f"{path}: unknown byte order {raw_order[:16]!r} in {info.filename} "
                                     f"(expected 'little' or 'big')")
            info = archive.getinfo(pickles[0])
            if info.file_size > limits.max_pickle_bytes:
                raise SpagoError(f"{path}: refusing to load: {info.filename} has {info.file_size} bytes, more "
                                 f"than the limit of {limits.max_pickle_bytes}")
            storages = _Storages(archive, reader, prefix, "<" if order == "little" else ">", path, limits)
            return interpret(reader.read(info, info.file_size), path, globals, storages.load, limits)
    except SpagoError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
            KeyError) as exc:
        raise SpagoError(f"{path}: not a readable PyTorch zip checkpoint ({type(exc).__name__}: {exc})") from None


class _Storages:
    """BINPERSID: each storage of the archive, checked against its declared element count, read lazily."""

    def __init__(self, archive: zipfile.ZipFile, reader: _Archive, prefix: str, order: str, path: str,
                 limits: Limits):
        self.archive, self.reader, self.prefix, self.order, self.path = archive, reader, prefix, order, path
        self.limits = limits
        self.cache: dict[str, Storage] = {}

    def load(self, pid: Any) -> Storage:
        """('storage', torch.<Type>Storage, key, location, numel) -> a lazy `Storage` of data/<key>."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], Global)
                and isinstance(pid[1].make, StorageType) and isinstance(pid[2], str)
                and isinstance(pid[3], str) and isinstance(pid[4], int) and pid[4] >= 0):
            raise SpagoError(f"{self.path}: unexpected persistent id {_short(pid)}; expected "
                             f"('storage', torch.<Type>Storage, key, location, numel)")
        _, kind, key, _, numel = pid
        kind = kind.make
        if key in self.cache:
            if self.cache[key].kind != kind.kind:
                raise SpagoError(f"{self.path}: storage {key} is used as both {self.cache[key].kind} and "
                                 f"{kind.kind}")
            return self.cache[key]
        entry = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(entry)
        except KeyError:
            raise SpagoError(f"{self.path}: storage {key!r} not found (no {entry} in the archive)") from None
        dtype = np.dtype(kind.dtype).newbyteorder(self.order)
        if numel * dtype.itemsize > self.limits.max_storage_bytes:
            raise SpagoError(f"{self.path}: refusing to load: storage {key} declares {numel} {kind.kind} "
                             f"elements, more than the limit of {self.limits.max_storage_bytes} bytes")
        if info.file_size != numel * dtype.itemsize:
            raise SpagoError(f"{self.path}: storage {key} holds {info.file_size} bytes, expected {numel} "
                             f"{kind.kind} elements = {numel * dtype.itemsize} bytes")
        self.cache[key] = Storage(key, kind.kind, dtype, numel, lambda size: self.reader.read(info, size))
        return self.cache[key]

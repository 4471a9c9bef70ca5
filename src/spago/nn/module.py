"""`Module` and `Param`: the containers models are built from.

A module registers the `Param`s and sub-modules assigned to its attributes, so ``named_parameters()``
can list them by dotted path (``encoder.layer.0.attention.query.weight``). Each parameter's ``name`` is
kept equal to that path, and calling a module runs its ``forward`` inside a trace scope of the same
path — so a traced model's graph names and clusters its weights by where they live.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError, SpagoError
from ..tensor import Tensor


_SKIP_INIT = contextvars.ContextVar("spago_skip_init", default=False)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Build modules whose parameters loaded weights are about to replace (`from_pretrained` does):
    zero parameters stay untouched, lazily zeroed memory and `spago.nn.init`'s initialisers draw nothing,
    so building BERT before loading its checkpoint makes no resident copy of weights thrown away."""
    token = _SKIP_INIT.set(True)
    try:
        yield
    finally:
        _SKIP_INIT.reset(token)


def skipping_init() -> bool:
    """Whether modules are being built inside `skip_init`."""
    return _SKIP_INIT.get()


class Param(Tensor):
    """A trainable tensor: its value, its gradient, and the optimiser's state for it."""

    __slots__ = ("state",)

    def __init__(self, data: Any, dtype=None, requires_grad: bool = True):
        if _SKIP_INIT.get() and isinstance(data, np.ndarray) and data.size and not data.any():
            array = np.zeros(data.shape, dtypes.as_dtype(dtype) if dtype is not None else data.dtype)  # untouched
        else:
            array = np.array(data, dtype=dtypes.as_dtype(dtype) if dtype is not None else None, copy=True)
        if array.dtype.kind != "f":
            array = array.astype(dtypes.DEFAULT_FLOAT)
        super().__init__(array, requires_grad=requires_grad)
        self.state: dict = {}

    def assign(self, value: Any) -> None:
        """Overwrite the value in place (same array, so compiled code that holds it sees the change)."""
        value = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if value.shape != self.shape:
            which = f"parameter {self.name}" if self.name else "a parameter"
            raise ShapeError(f"cannot assign shape {value.shape} to {which} of shape {self.shape}")
        np.copyto(self._value, value, casting="same_kind")

    def adopt(self, array: np.ndarray) -> None:
        """Take ``array`` itself as the value, no copy (weights mapped from a file, `spago.mapped`): it must
        have the parameter's shape and dtype and be C-contiguous and writable. Call it before compiling:
        compiled code already made keeps the array it was given."""
        if array.shape != self.shape or array.dtype != self.dtype or not array.flags["C_CONTIGUOUS"] \
                or not array.flags["WRITEABLE"]:
            raise ShapeError(f"cannot adopt a {array.dtype}{list(array.shape)} array (contiguous: "
                             f"{array.flags['C_CONTIGUOUS']}, writable: {array.flags['WRITEABLE']}) as "
                             f"{self!r}: expected a writable, contiguous {self.dtype}{list(self.shape)} array")
        self._value = array

    def __repr__(self) -> str:
        return f"Param({self.name}: {self.spec})" if self.name else f"Param({self.spec})"


Parameter = Param  # PyTorch's name


def zero_grads(params: Any, set_to_none: bool = True) -> None:
    """``p.grad = None`` for every parameter, or zeros of its shape when ``set_to_none`` is False."""
    for p in params:
        p.grad = None if set_to_none or p.grad is None else Tensor._wrap(np.zeros(p.shape, p.dtype))


def _names(keys: list) -> str:
    shown = ", ".join(keys[:8])
    return f"{len(keys)} tensor(s): {shown}" + (" …" if len(keys) > 8 else "")


def state_mismatch(own: dict, state: dict, strict: bool = True) -> list[str]:
    """What keeps ``state`` (name -> array) from loading into the parameters ``own`` (name -> Param):
    missing and unexpected names (when ``strict``) and mis-shaped tensors, each named; empty if it fits."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: expected {own[k].shape}, got {tuple(np.shape(state[k]))}" for k in own
             if k in state and tuple(np.shape(state[k])) != own[k].shape]
    problems = []
    if strict and missing:
        problems.append("missing " + _names(missing))
    if strict and unexpected:
        problems.append("unexpected " + _names(unexpected))
    if wrong:
        problems.append("wrong shape for " + "; ".join(wrong))
    return problems


# -- recording constructor arguments (spago.load(cls, path) rebuilds a module from them) -------------

CONFIG_TAGS = ("__tuple__", "__dtype__", "__module__", "__dataclass__", "__unsupported__")  # tagged JSON values


def qualname(cls: type) -> str:
    """``module.qualname`` of a class: the name a file records and ``load(cls, path)`` compares."""
    return f"{cls.__module__}.{cls.__qualname__}"


class UnsupportedArgument(Exception):
    """A constructor argument JSON cannot hold (recorded as a tagged marker, so only ``load(cls, ...)`` fails)."""


def encode_argument(value: Any) -> Any:
    """JSON-able form of one constructor argument, or UnsupportedArgument."""
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).name}
    from ..ops.random import Generator

    if isinstance(value, (Generator, np.random.Generator, np.random.RandomState)):
        return None
    if isinstance(value, list):
        return [encode_argument(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode_argument(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value) or (len(value) == 1 and next(iter(value)) in CONFIG_TAGS):
            raise UnsupportedArgument("dict")
        return {k: encode_argument(v) for k, v in value.items()}
    if isinstance(value, Module):
        return {"__module__": {"class": qualname(type(value)), "config": getattr(value, "_config", {})}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode_argument(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {"__dataclass__": {"class": qualname(type(value)), "fields": fields}}
    raise UnsupportedArgument(type(value).__name__)


def _bind_config(signature: inspect.Signature, self: Any, args: tuple, kwargs: dict) -> dict:
    try:
        bound = signature.bind(self, *args, **kwargs)
    except TypeError:
        return {}  # the call itself is wrong: let __init__ raise its own error
    bound.apply_defaults()
    config = {}
    for name, value in list(bound.arguments.items())[1:]:
        try:
            config[name] = encode_argument(value)
        except UnsupportedArgument as exc:
            config[name] = {"__unsupported__": str(exc)}
        except RecursionError:
            config[name] = {"__unsupported__": "self-referencing container"}
    return config


def record_config(init: Callable) -> Callable:
    """Wrap a Module subclass's ``__init__`` to keep its JSON-encoded arguments in ``self._config``.

    Only the outermost constructor records (a subclass calling ``super().__init__(...)`` does not overwrite
    its own arguments with its parent's)."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is __init__:
            object.__setattr__(self, "_config", _bind_config(signature, self, args, kwargs))
        init(self, *args, **kwargs)

    return __init__



class Module:
    """Base class: assign Params and Modules as attributes in ``__init__``, write ``forward``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap each subclass's ``__init__`` so its constructor arguments are kept in ``self._config``
        (JSON-able, for ``spago.load(cls, path)``; see `record_config`)."""
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = record_config(cls.__init__)

    def __init__(self) -> None:
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_path", "")
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise SpagoError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
        self._params.pop(name, None)
        self._modules.pop(name, None)
        if name in self._buffers:
            self._buffers.pop(name)
            if isinstance(value, (Tensor, np.ndarray)):  # a new value for a buffer stays a buffer
                if isinstance(value, Tensor) and not value.is_concrete:
                    self._buffers[name] = getattr(self, name)
                    raise SpagoError(f"{self._qualified(name)}: a buffer cannot be assigned while the module is "
                                     "traced (its new value does not exist yet); update it eagerly, outside the "
                                     "compiled function")
                self.register_buffer(name, value)
                return
        if isinstance(value, Param):
            self._params[name] = value
            value.name = self._qualified(name)
        elif isinstance(value, Module):
            self._modules[name] = value
            value._set_path(self._qualified(name))
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._params.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (a non-trainable tensor, e.g. running statistics) as attribute ``name``: it is saved
        and loaded with the parameters (``state_dict``, ``spago.save``) but no optimiser updates it. Assigning a
        new value to the attribute keeps it a buffer; a traced (compiled) forward may read a buffer, but
        assigning one while tracing is an error, since the value does not exist yet."""
        if "_buffers" not in self.__dict__:
            raise SpagoError(f"{type(self).__name__}.__init__ must call super().__init__() before register_buffer")
        if not isinstance(name, str) or not name.isidentifier():
            raise SpagoError(f"register_buffer: the name must be an identifier, got {name!r}")
        if name in self._params or name in self._modules:
            raise SpagoError(f"register_buffer: {name!r} is already a parameter or sub-module of "
                             f"{type(self).__name__}")
        if isinstance(value, Param):
            raise SpagoError(f"register_buffer: {name!r} is a Param; buffers are not trained (assign Params as "
                             "attributes instead)")
        buffer = Tensor(value.detach() if isinstance(value, Tensor) else value)
        buffer.name = self._qualified(name)
        self._buffers[name] = buffer
        object.__setattr__(self, name, buffer)
    def _qualified(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _set_path(self, path: str) -> None:
        object.__setattr__(self, "_path", path)
        for name, p in [*self._params.items(), *self._buffers.items()]:
            p.name = self._qualified(name)
        for name, m in self._modules.items():
            m._set_path(self._qualified(name))

    # -- traversal -------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, depth first."""
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules."""
        return iter(self._modules.values())

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(attribute name, sub-module) for the direct sub-modules."""
        return iter(self._modules.items())

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every sub-module and then on this one (PyTorch's order, e.g. for custom init)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, flag: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter (False freezes them: no gradient reaches them)."""
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted path, buffer) for every registered buffer."""
        for path, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield (f"{path}.{name}" if path else name), b

    def buffers(self) -> list[Tensor]:
        return [b for _, b in self.named_buffers()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """(dotted path, parameter) for every parameter, each once, in registration order."""
        seen: set = set()
        for path, m in self.named_modules(prefix):
            for name, p in m._params.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self) -> list[Param]:
        return [p for _, p in self.named_parameters()]

    # -- state ----------------------------------------------------------------------------
    def named_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """Parameters, then buffers: what `state_dict` holds."""
        yield from self.named_parameters()
        yield from self.named_buffers()

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter's and buffer's value, by dotted path."""
        return OrderedDict((name, p.numpy().copy()) for name, p in self.named_tensors())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values into the parameters and buffers; missing, unexpected and mis-shaped entries are named."""
        own = dict(self.named_tensors())
        problems = state_mismatch(own, state, strict)
        if problems:
            raise SpagoError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for k, p in own.items():
            if k in state:
                value = state[k].numpy() if isinstance(state[k], Tensor) else np.asarray(state[k])
                np.copyto(p._value, value, casting="same_kind")

    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (``set_to_none=False``: set it to zeros)."""
        zero_grads(self.parameters(), set_to_none)

    def flatten_parameters(self) -> np.ndarray:
        """Move every parameter into one contiguous buffer and return it: each parameter's array becomes a
        view of it, so the flat vector and the parameters are the same memory (per dtype: all must match)."""
        params = self.parameters()
        if not params:
            return np.zeros(0, dtypes.DEFAULT_FLOAT)
        dtype = params[0].dtype
        if any(p.dtype != dtype for p in params):
            raise SpagoError("flatten_parameters needs all parameters in one dtype")
        flat = np.empty(sum(p.size for p in params), dtype)
        offset = 0
        for p in params:
            view = flat[offset:offset + p.size].reshape(p.shape)
            view[...] = p.numpy()
            p._value = view
            offset += p.size
        return flat

    def to(self, dtype) -> "Module":
        """Cast every floating parameter to ``dtype`` in place (``float64`` for gradient checks)."""
        dtype = dtypes.as_dtype(dtype)
        for p in [*self.parameters(), *(b for b in self.buffers() if dtypes.is_float(b.dtype))]:
            if p.dtype != dtype:
                p._value = p.numpy().astype(dtype)
                p.spec = type(p.spec)(p.shape, dtype)
                p.grad = None
        return self

    def double(self) -> "Module":
        return self.to("float64")

    def float(self) -> "Module":
        return self.to("float32")

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- calling ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation, written with ops on Tensors; call the module (``model(x)``), not ``forward``,
        so the call runs in the module's trace scope. Each layer's ``forward`` docstring states its input
        layout (spago is batch-first: ``(batch, ..., features)``) and, where it takes one, its mask format."""
        raise SpagoError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ..ir.tracer import module_scope

        try:
            with module_scope(self._path, type(self).__name__) if self._path else contextlib.nullcontext():
                return self.forward(*args, **kwargs)
        except DTypeError as exc:  # name the innermost layer, as its shape errors do
            if getattr(exc, "layer", None) is not None:
                raise
            label = f"{self._path} ({type(self).__name__})" if self._path else type(self).__name__
            named = type(exc)(f"{label}: {exc}")
            named.layer = label
            raise named.with_traceback(exc.__traceback__) from None

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


def function_layer(base: type, name: str, fn: Callable, doc: str, module: str, **defaults: Any) -> type:
    """A subclass ``name`` of ``base`` (whose ``__init__(**options)`` stores the options and whose ``forward``
    calls ``fn``) taking exactly the options in ``defaults``; PyTorch's ``dim=`` is accepted for ``axis=``."""
    from ..ops._util import rename_keywords

    def __init__(self, **options: Any):
        options = rename_keywords(options, defaults, name)
        unknown = set(options) - set(defaults)
        if unknown:
            raise SpagoError(f"{name}: unknown option(s) {sorted(unknown)}; expected {sorted(defaults) or 'none'}")
        base.__init__(self, **{**defaults, **options})

    return type(name, (base,), {"fn": staticmethod(fn), "__init__": __init__, "__doc__": doc, "__module__": module})


class ModuleList(Module):
    """A list of modules, registered under their index."""

    def __init__(self, modules: list | None = None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, m: Module) -> "ModuleList":
        setattr(self, str(len(self._modules)), m)
        return self

    def __getitem__(self, k: int) -> Module:
        return list(self._modules.values())[k]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after another."""

    def __init__(self, *modules: Module):
        super().__init__(list(modules))

    def forward(self, x: Any) -> Any:
        """x through every module in turn; the layout is whatever the first module takes."""
        for m in self._modules.values():
            x = m(x)
        return x

"""Seeded randomness: a `Generator` hands out seeds; ``dropout`` draws its mask through a primitive."""
from __future__ import annotations

import threading

from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..errors import SpagoError
from ._types import TensorLike
from .registry import Op, Spec, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


class Generator:
    """A seeded source of randomness; every draw advances it, so runs are reproducible from the seed."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> "Generator":
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        return self

    def next_seed(self) -> int:
        with self._lock:
            return int(self._rng.integers(0, 2**63 - 1))

    def state_dict(self) -> dict:
        """The position of the stream (JSON-able), so a resumed run draws what an uninterrupted one would."""
        with self._lock:
            return {"bit_generator": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a position `state_dict` returned."""
        try:
            with self._lock:
                self._rng.bit_generator.state = state["bit_generator"]
                self.seed = "restored"
        except (KeyError, TypeError, ValueError) as exc:
            raise SpagoError(f"Generator.load_state_dict: not a generator state ({exc})") from None

    def __repr__(self) -> str:
        return f"Generator(seed={self.seed!r})"

    def numpy(self) -> np.random.Generator:
        return np.random.default_rng(self.next_seed())


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Reseed the default generator (used by dropout and the initialisers when none is given)."""
    return default_generator.manual_seed(seed)


GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _keep_mask_kernel(*offset, shape, keep, seed, dtype):
    """A counter-based draw (splitmix64 of seed + (i+1)·γ), so compiled code can give the very same mask.
    An optional int64 0-d input is added to ``seed`` (mod 2⁶⁴): a compiled training step feeds a new one
    on every call, so its dropout masks change from call to call."""
    n = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):
        base = np.uint64(seed)
        if offset:
            base = base + np.asarray(offset[0]).astype(np.uint64)
        z = base + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN_GAMMA))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -24
    return (u < keep).astype(dtype).reshape(shape)


def _keep_mask_spec(*offset: Spec, shape, keep, seed, dtype) -> Spec:
    if len(offset) > 1 or any(o.shape != () or o.dtype != dtypes.int64 for o in offset):
        raise SpagoError(f"keep_mask takes at most one 0-d int64 seed offset, got {[str(o) for o in offset]}")
    return Spec(shape, dtype)


keep_mask_op = register(Op("keep_mask", _keep_mask_spec, _keep_mask_kernel, None, "opaque",
                           traits={"effectful"},
                           doc="A 0/1 mask whose entries are 1 with probability ``keep``, from ``seed`` "
                               "(plus an optional int64 seed-offset input)."))

_seed_offsets = threading.local()


class seed_offset:
    """Context manager: ``dropout`` inside adds the 0-d int64 tensor ``offset`` to its drawn seed, so a
    function traced once draws new masks whenever it is called with a new offset (a compiled training step)."""

    def __init__(self, offset):
        self.offset = offset

    def __enter__(self):
        stack = getattr(_seed_offsets, "stack", None)
        if stack is None:
            stack = _seed_offsets.stack = []
        stack.append(self.offset)
        return self.offset

    def __exit__(self, *exc):
        _seed_offsets.stack.pop()


def _current_offset():
    stack = getattr(_seed_offsets, "stack", None)
    return stack[-1] if stack else None


def dropout(x: TensorLike, p: float = 0.5, training: bool = True, generator: Generator | None = None,
            noise_shape: tuple | None = None, scale: bool = True) -> Tensor:
    """Zero each entry with probability ``p`` and scale the rest by 1/(1−p); the identity when not training.

    ``noise_shape`` draws the mask at that shape (1 on the axes it is shared along) and broadcasts it:
    (B, 1, D) drops the same features at every step of a sequence (locked dropout), (B, T, 1) whole token
    vectors (word dropout). ``scale=False`` leaves the kept entries as they are (Flair's word dropout)."""
    from .elementwise import _t

    x = _t(x)
    if not 0.0 <= p <= 1.0:
        raise SpagoError(f"dropout: p must be in [0, 1], got {p}")
    if not dtypes.is_float(x.dtype):
        raise SpagoError(f"dropout: expected a floating tensor, got {x.dtype.name}")
    shape = tuple(x.shape) if noise_shape is None else tuple(int(n) for n in noise_shape)
    if len(shape) != len(x.shape) or any(n not in (1, d) for n, d in zip(shape, x.shape)):
        raise SpagoError(f"dropout: noise_shape {noise_shape} does not broadcast to the input's shape {x.shape} "
                         "(each axis its size or 1)")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    seed = (generator or default_generator).next_seed()
    offset = _current_offset()
    mask = bind(keep_mask_op, [] if offset is None else [_t(offset)],
                {"shape": shape, "keep": 1.0 - p, "seed": seed, "dtype": x.dtype})
    return x * mask * (1.0 / (1.0 - p)) if scale else x * mask

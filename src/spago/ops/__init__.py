"""The op API: every function here works on Tensors, eagerly or while tracing.

Primitives live in the registry (``spago.ops.OPS``); the functions below are their public faces plus
composites built from them.
"""
from .registry import OPS, Op, Spec, bind, current_mode, use_mode  # noqa: F401
from .elementwise import (  # noqa: F401
    abs, add, cast, clip, cos, div, divide, eq, erf, exp, expm1, ge, gt, le, log, log1p, lt, maximum, minimum, mul,
    multiply, ne, neg, pow, power, reciprocal, rsqrt, sigmoid, sign, sin, sqrt, square, sub, subtract, tan, tanh,
    where,
)
from .activations import (  # noqa: F401
    celu, elu, gelu, hard_sigmoid, hard_tanh, leaky_relu, log_sigmoid, mish, relu, relu6, selu, silu, softplus,
    softshrink, softsign, swish, threshold,
)
from .reductions import argmax, argmin, logsumexp, max, mean, min, std, sum, var  # noqa: F401
from .normalizing import layer_norm, log_softmax, rms_norm, softmax, sparsemax  # noqa: F401
from .linalg import dot, matmul  # noqa: F401
from .shape import (  # noqa: F401
    broadcast_to, chunk, concat, concatenate, expand_dims, flatten, pad, permute, reshape, split, squeeze, stack,
    swapaxes, transpose,
)
from .indexing import embedding, gather, getitem, one_hot, take  # noqa: F401
from .random import Generator, dropout, manual_seed  # noqa: F401
from .creation import arange, eye, full, ones, ones_like, rand, randn, zeros, zeros_like  # noqa: F401
from . import fused as _fused  # noqa: F401,E402  (registers the fused-kernel op)
from .scan import scan  # noqa: F401,E402
from .elementwise import clone  # noqa: F401
from ._util import accept_torch_names as _accept_torch_names
from .._exports import public_names as _public_names


def _torch_names() -> None:
    """Every public op function taking ``axis``/``keepdims`` also takes PyTorch's ``dim``/``keepdim``."""
    import inspect

    for name, value in list(globals().items()):
        if not name.startswith("_") and inspect.isfunction(value):
            globals()[name] = _accept_torch_names(value)


_torch_names()
cat = concat  # PyTorch's name

__all__ = _public_names(globals())  # without sum, max, min, abs, pow: reach them as ops.sum …

"""spago: a machine-learning library whose models run eagerly (NumPy + autograd tape) or compiled."""
from .errors import AxisError, DTypeError, GradError, ShapeError, SpagoError  # noqa: F401
from .dtypes import bool_, float32, float64, int32, int64  # noqa: F401
from .tensor import Tensor, as_tensor, from_numpy, tensor  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad  # noqa: F401
from .ops import *  # noqa: F401,F403
from .ops import Spec  # noqa: F401
from . import ops  # noqa: F401
from .ops import random  # noqa: F401  (spago.random.Generator; a module, so not in __all__)

from ._version import __version__  # noqa: F401,E402


def spec(shape, dtype="float32") -> Spec:
    """A shape and dtype standing for an argument (for tracing without example data)."""
    from .dtypes import as_dtype

    return Spec(tuple(shape), as_dtype(dtype))


from . import ir  # noqa: E402
from .ir import trace  # noqa: E402,F401
from .ir.tape import to_dot  # noqa: E402,F401
from .transforms import grad, value_and_grad  # noqa: E402,F401
from . import passes  # noqa: E402,F401
from .compiler import compile, jit  # noqa: E402,F401
from . import nn, losses, optim  # noqa: E402,F401
from .serialization import load, save  # noqa: E402,F401
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402,F401
from .ops import abs, max, min, pow, sum  # noqa: E402,F401  (spago.sum …; kept out of __all__)
from ._exports import public_names as _public_names  # noqa: E402

# `from spago import *` exports no name of a Python builtin (sum, max, min, abs, pow, compile): see docs/eager.md
__all__ = _public_names(globals(), modules=("ops", "nn", "losses", "optim", "ir", "passes"))

"""Type aliases for the op API's signatures (what each argument may be)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from ..tensor import Tensor

# a Tensor, or anything `spago.tensor` turns into one (an array, a number, nested lists of numbers)
TensorLike = Union["Tensor", np.ndarray, float, int, bool, Sequence[Any]]
# one axis, several, or None for all of them
Axis = Union[int, Sequence[int], None]
# "float32", np.float32, np.dtype("float32"), spago.float32 …
DTypeLike = Union[str, np.dtype, type]
ShapeLike = Union[int, Sequence[int]]

"""Dtypes: float32 by default, float64 everywhere, integers and bool for indices and masks."""
from __future__ import annotations

import numpy as np

from .errors import DTypeError

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32
SUPPORTED = (float32, float64, int32, int64, bool_)
_BY_NAME = {d.name: d for d in SUPPORTED}
_BY_NAME.update({"bool_": bool_, "f32": float32, "f64": float64, "i32": int32, "i64": int64})


def as_dtype(dtype) -> np.dtype:
    """Turn a name, NumPy dtype or Python type into one of spago's supported dtypes."""
    if isinstance(dtype, str):
        if dtype in _BY_NAME:
            return _BY_NAME[dtype]
        raise DTypeError(f"unknown dtype {dtype!r}; expected one of {sorted(_BY_NAME)}")
    if dtype is float:
        return DEFAULT_FLOAT
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        d = np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"unknown dtype {dtype!r}") from exc
    if d not in SUPPORTED:
        raise DTypeError(f"unsupported dtype {d.name}; expected one of float32, float64, int32, int64, bool")
    return d


def is_float(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def is_int(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind in "iu"

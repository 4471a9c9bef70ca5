"""Evaluation metrics: classification scores, confusion matrices, running averages, entity-level F1."""
from .classification import *  # noqa: F401,F403
from .moving import *  # noqa: F401,F403
from .sequence import *  # noqa: F401,F403
from .._exports import public_names as _public_names

__all__ = _public_names(globals())

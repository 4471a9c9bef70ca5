"""Evaluation metrics: classification scores, confusion matrices, running averages."""
from .classification import *  # noqa: F401,F403
from .moving import *  # noqa: F401,F403

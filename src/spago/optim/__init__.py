"""Optimisers, gradient clipping, learning-rate schedules, the compiled training step and a Trainer.

Every optimiser is one pure update rule written with ops (see `Optimizer`), used both by the eager
``opt.step()`` and inside `compile_step`'s single native training step.
"""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adagrad import AdaGrad  # noqa: F401
from .rmsprop import RMSProp  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .radam import RAdam  # noqa: F401
from .lamb import Lamb  # noqa: F401
from .clip import clip_by_norm, clip_by_value, clip_grad_norm_, clip_grad_value_, total_norm  # noqa: F401
from .schedules import (  # noqa: F401
    Constant, CosineDecay, ExponentialDecay, HyperbolicDecay, LinearWarmup, Schedule, StepDecay,
)
from .step import CompiledStep, compile_step  # noqa: F401
from .trainer import Trainer  # noqa: F401
from .de import DifferentialEvolution  # noqa: F401
from .._exports import public_names as _public_names  # noqa: E402

__all__ = _public_names(globals(), modules=())

"""Modules and layers, written only against the op API: each runs eagerly and compiled.

Each layer lives in its own file with its equations and paper in the docstring.
"""
from .module import Module, ModuleList, Param, Parameter, Sequential  # noqa: F401
from . import init  # noqa: F401
from .linear import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .attention_variants import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .cells import *  # noqa: F401,F403
from .crf import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .mixers import *  # noqa: F401,F403
from .bls import *  # noqa: F401,F403
from .encoding import *  # noqa: F401,F403
from .rae import *  # noqa: F401,F403
from .graph_encoders import *  # noqa: F401,F403
from .tagger import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .._exports import public_names as _public_names

__all__ = _public_names(globals(), modules=("init",))

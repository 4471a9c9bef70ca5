"""The Go spaGO's other recurrent cells, each an `RNNCellBase` with a sequence layer built on `_RNNBase`:
``XCell(input_size, hidden_size, ...)`` and ``X(input_size, hidden_size, num_layers=1, bidirectional=False,
...)`` returning ``(outputs, last_state)``, batch-first, with a padding ``mask``."""
from .base import Cell, CellRNN  # noqa: F401
from .simple import *  # noqa: F401,F403
from .gated import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from ..._exports import public_names as _public_names

__all__ = _public_names(globals())

"""The IR layer: graphs, tracing, the reference interpreter, and rendering."""
from .graph import Graph, IRError, Node  # noqa: F401
from .tracer import scope, trace  # noqa: F401
from .interpreter import Interpreter, interpret  # noqa: F401
from .._exports import public_names as _public_names  # noqa: E402

__all__ = _public_names(globals(), modules=())

"""The IR layer: graphs, tracing, the reference interpreter, and rendering."""
from .graph import Graph, IRError, Node  # noqa: F401
from .tracer import scope, trace  # noqa: F401
from .interpreter import Interpreter, interpret  # noqa: F401

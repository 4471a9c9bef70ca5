"""spago's exception types: every bad call raises one of these, naming what was expected."""


class SpagoError(Exception):
    """Base class of every error spago raises on purpose."""


class ShapeError(SpagoError, ValueError):
    """Operand shapes do not fit the op (broadcasting, axes, matmul dimensions)."""


class DTypeError(SpagoError, TypeError):
    """An operand has a dtype the op does not accept."""


class AxisError(ShapeError):
    """An axis is out of range for the operand's rank."""


class GradError(SpagoError, RuntimeError):
    """Backward was asked for something the tape cannot give."""


class SpagoWarning(UserWarning):
    """Something works but costs more than it should (a recompile, say); the message says what and why."""

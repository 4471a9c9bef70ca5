"""``__all__`` for spago's packages: what ``from package import *`` gives."""
from __future__ import annotations

import builtins
import types

# Names spago defines that are also Python builtins. They stay reachable as ``spago.sum``, ``spago.ops.max``,
# ``spago.compile`` …, but ``from spago import *`` never exports them, so it cannot shadow a builtin.
BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_"))


def public_names(namespace: dict, modules: tuple = ()) -> list[str]:
    """The names of ``namespace`` to export: not private, not a builtin's name, and no sub-module except
    those listed in ``modules`` (sub-packages meant to be used as ``spago.nn``, ``spago.ops`` …)."""
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and name not in BUILTIN_NAMES
                  and (not isinstance(value, types.ModuleType) or name in modules)
                  and name not in ("annotations",))
